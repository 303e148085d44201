//! The launcher for users' element-wise kernels (`tensor::ElementwiseKernel`): one
//! signature, `(n, a, b, c, out, s0, s1, s2, s3)`, for every such kernel.

use super::launch::{as_i64, cfg_for, check_len, invalid, launch};
use crate::cuda::device::CudaDevice;
use crate::error::Result;
use crate::tensor::ElementwiseKernel;
use cudarc::driver::{CudaSlice, PushKernelArg};

/// Runs `kernel` over `inputs` (1 to 3 buffers of `out.len()` floats; null pointers past
/// them) writing `out`, with its four `scalars`.
pub fn elementwise_kernel(
    dev: &CudaDevice,
    kernel: &ElementwiseKernel,
    inputs: &[&CudaSlice<f32>],
    out: &mut CudaSlice<f32>,
    scalars: &[f32; 4],
) -> Result<()> {
    if inputs.is_empty() || inputs.len() > 3 {
        return Err(invalid(format!(
            "kernel {}: 1 to 3 inputs, got {}",
            kernel.name(),
            inputs.len()
        )));
    }
    for x in inputs {
        check_len("kernel input", x.len(), out.len())?;
    }
    let n = as_i64(out.len());
    if n == 0 {
        return Ok(());
    }
    let f = dev.user_function(kernel)?;
    let null = 0u64; // a null device pointer for absent inputs
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n);
    for k in 0..3 {
        match inputs.get(k) {
            Some(x) => l.arg(*x),
            None => l.arg(&null),
        };
    }
    l.arg(&mut *out);
    for s in scalars {
        l.arg(s);
    }
    // The kernel keeps to its buffers: `ElementwiseKernel::new` is unsafe on that promise.
    launch(l, cfg_for(n as u64), kernel.name())
}
