//! Element-wise CUDA kernels given as source by the user: the GPU path of an op defined
//! outside the crate (a [`CustomOp`](crate::autograd::CustomOp)), compiled by NVRTC the
//! first time it runs on a device and cached there, as the crate's own `kernels/*.cu`.
//!
//! Every such kernel has one signature, so it can be launched without unsafe code on the
//! caller's side: the element count, up to three inputs of that many `float`s (null past
//! the ones given), the output, and four scalars:
//!
//! ```text
//! extern "C" __global__ void NAME(long long n, const float* a, const float* b,
//!                                 const float* c, float* out,
//!                                 float s0, float s1, float s2, float s3)
//! ```
//!
//! It is launched with 256 threads a block and at most 2^20 blocks, so it loops over the
//! elements with a grid stride:
//! `for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)`.

use super::storage::{CudaStorage, Storage};
use super::Tensor;
use crate::device::Device;
use crate::error::{Error, Result};

/// Inputs a kernel takes at most.
pub const MAX_KERNEL_INPUTS: usize = 3;
/// Scalars a kernel takes at most.
pub const MAX_KERNEL_SCALARS: usize = 4;

/// An element-wise CUDA C kernel: the name of its `extern "C" __global__` function and
/// the source that defines it (see the module docs for the signature).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElementwiseKernel {
    name: String,
    source: String,
}

impl ElementwiseKernel {
    /// Kernel `name` defined in `source` (CUDA C; no `#include`s beyond what NVRTC
    /// provides).
    ///
    /// # Safety
    ///
    /// The kernel runs on the GPU with raw pointers: it must have the signature of the
    /// module docs, read `a`, `b`, `c` and write `out` only at indices below `n`, and read
    /// only the inputs it is given (the others are null). boson checks the tensors it
    /// passes, not what the kernel does with them.
    pub unsafe fn new(name: impl Into<String>, source: impl Into<String>) -> ElementwiseKernel {
        ElementwiseKernel {
            name: name.into(),
            source: source.into(),
        }
    }

    /// The kernel function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its CUDA C source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl Tensor {
    /// Runs `kernel` over `inputs` (1 to 3 f32 tensors of one shape, on one GPU) with up
    /// to 4 `scalars` (missing ones are 0): a new tensor of that shape whose element `i`
    /// the kernel writes from element `i` of each input. Not recorded by autograd: call
    /// it inside a [`CustomOp`](crate::autograd::CustomOp)'s forward or backward, which
    /// says the gradient. CPU tensors are refused (compute their values with tensor ops
    /// or on the host); so is every input count, shape, dtype or scalar count outside the
    /// above, before anything runs.
    pub fn map_kernel(
        inputs: &[&Tensor],
        kernel: &ElementwiseKernel,
        scalars: &[f32],
    ) -> Result<Tensor> {
        let name = kernel.name.as_str();
        let Some(first) = inputs.first() else {
            return Err(Error::InvalidArgument(format!(
                "map_kernel {name}: give 1 to {MAX_KERNEL_INPUTS} input tensors, got none"
            )));
        };
        if inputs.len() > MAX_KERNEL_INPUTS || scalars.len() > MAX_KERNEL_SCALARS {
            return Err(Error::InvalidArgument(format!(
                "map_kernel {name}: at most {MAX_KERNEL_INPUTS} inputs and \
                 {MAX_KERNEL_SCALARS} scalars, got {} and {}",
                inputs.len(),
                scalars.len()
            )));
        }
        for t in inputs {
            if t.shape() != first.shape() {
                return Err(Error::ShapeMismatch {
                    op: "map_kernel inputs",
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                });
            }
            t.expect_f32("map_kernel")?;
            if t.device() != first.device() {
                return Err(Error::DeviceMismatch {
                    op: "map_kernel",
                    lhs: first.device().to_string(),
                    rhs: t.device().to_string(),
                });
            }
        }
        if first.device() == Device::Cpu {
            return Err(Error::InvalidArgument(format!(
                "map_kernel {name}: the inputs are on the CPU; a CUDA kernel runs on cuda \
                 tensors (on the CPU, compute the values with tensor ops or on the host)"
            )));
        }
        let mut all = [0.0f32; MAX_KERNEL_SCALARS];
        all[..scalars.len()].copy_from_slice(scalars);
        let guards: Vec<_> = inputs.iter().map(|t| t.storage()).collect();
        let mut cuda = Vec::with_capacity(guards.len());
        for g in &guards {
            match &**g {
                Storage::Cuda(c) => cuda.push(c),
                Storage::Cpu(_) => {
                    return Err(Error::DeviceMismatch {
                        op: "map_kernel",
                        lhs: first.device().to_string(),
                        rhs: Device::Cpu.to_string(),
                    })
                }
            }
        }
        let out = CudaStorage::map_kernel(&cuda, kernel, &all)?;
        Ok(Tensor::from_storage(
            Storage::Cuda(out),
            first.shape().to_vec(),
            None,
        ))
    }
}
