//! Batched matrix products through cuBLAS (transposes are GEMM flags).

use super::elementwise::fill;
use super::launch::{check_len, cuda_err, invalid};
use crate::cuda::device::CudaDevice;
use crate::error::Result;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::CudaSlice;

/// Shape of a (batched) row-major matmul: `C[b] = op(A[b]) · op(B[b])` with `C[b]`
/// `m × n`. `A[b]` is stored `m × k`, or `k × m` when `trans_a`; `B[b]` `k × n`, or
/// `n × k` when `trans_b`. Matrices of one batch follow each other contiguously.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Row-major (batched) matmul through cuBLAS `sgemm_strided_batched` (full f32, no
/// TF32 unless the process enables it via `NVIDIA_TF32_OVERRIDE`). Overwrites `c`.
pub fn matmul(
    dev: &CudaDevice,
    sh: &MatmulShape,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
) -> Result<()> {
    let MatmulShape {
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
    } = *sh;
    check_len("matmul A", a.len(), batch * m * k)?;
    check_len("matmul B", b.len(), batch * k * n)?;
    check_len("matmul C", c.len(), batch * m * n)?;
    if batch * m * n == 0 {
        return Ok(());
    }
    if k == 0 {
        return fill(dev, c, 0.0);
    }
    let too_big = |v: usize| v > i32::MAX as usize;
    if too_big(m) || too_big(n) || too_big(k) || too_big(batch) {
        return Err(invalid(format!("matmul dims exceed i32: {sh:?}")));
    }
    // cuBLAS is column-major. A row-major X is the column-major X^T, so compute
    // C^T = op(B)^T · op(A)^T: cuBLAS's "A" is our B and its "B" is our A, with the
    // same transpose flags, and the leading dimensions are the row lengths as stored.
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let gemm = GemmConfig {
        transa: op(trans_b),
        transb: op(trans_a),
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: 1.0f32,
        lda: if trans_b { k } else { n } as i32,
        ldb: if trans_a { m } else { k } as i32,
        beta: 0.0f32,
        ldc: n as i32,
    };
    let blas = dev.blas()?;
    let cfg = StridedBatchedConfig {
        gemm,
        batch_size: batch as i32,
        stride_a: (k * n) as i64,
        stride_b: (m * k) as i64,
        stride_c: (m * n) as i64,
    };
    // SAFETY: lengths checked above cover batch strides and leading dimensions.
    unsafe { blas.gemm_strided_batched(cfg, b, a, c) }
        .map_err(|e| cuda_err("cuBLAS sgemm_strided_batched", e))
}
