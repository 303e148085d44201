//! Safe launchers for the kernels in `kernels/*.cu` plus cuBLAS matmul, one file per
//! kernel file: `elementwise`, `reduce`, `embedding`, `optim`, `window`, `user` (users' own
//! element-wise kernels) and `matmul`, over what
//! they share in `launch`. Crate-private: tensors reach them through `CudaStorage`;
//! the launchers' own contracts are tested beside them (`tests.rs`), the tensors' in
//! `tests/gpu_tensor.rs`.
//!
//! Conventions:
//! - Every launcher takes the device, its inputs and the output buffers (allocated by the
//!   caller, e.g. with [`alloc_zeros`]), validates every length and shape against what the
//!   kernel will touch (so a kernel can never read or write out of its buffers), queues
//!   the kernel on [`CudaDevice::stream`] and returns the launch error, if any.
//! - Launches are asynchronous. Launchers that read indices (gather, scatter-add, one_hot,
//!   the optimizer updates) synchronise once at the end to read the device error cell
//!   (16 bytes) and return `Error::IndexOutOfRange` naming the first bad index.
//! - All buffers must belong to `dev` (its stream allocated them).
//!
//! [`CudaDevice::stream`]: crate::cuda::CudaDevice::stream

#[cfg(test)]
mod bandwidth;
mod elementwise;
mod embedding;
mod launch;
mod matmul;
mod optim;
mod reduce;
#[cfg(test)]
mod tests;
mod user;
mod window;

pub(crate) use elementwise::*;
pub(crate) use embedding::*;
pub(crate) use launch::{alloc_uninit, alloc_zeros, copy, deferring_index_checks, dtoh, htod};
pub(crate) use matmul::*;
pub(crate) use optim::*;
pub(crate) use reduce::*;
pub(crate) use user::*;
pub(crate) use window::*;
