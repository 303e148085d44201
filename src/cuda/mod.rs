//! The low-level CUDA layer: device handles with an NVRTC module cache ([`device`]), the
//! CUDA backend of tensor storage, and the crate-private kernel launchers over
//! `cudarc::driver::CudaSlice` (`src/cuda/ops/`, one file per `kernels/*.cu`).
//!
//! Nothing here panics when CUDA is absent: every entry point first asks whether the
//! driver and NVRTC libraries can be loaded and returns [`crate::error::Error::Cuda`]
//! with the reason otherwise.

pub mod device;
pub(crate) mod ops;

pub use device::{
    compile_ptx, compile_source_ptx, cuda_available, expand_kernel_source, kernel_sources,
    CudaDevice, MAX_USER_KERNELS,
};
mod storage;

pub(crate) use storage::CudaStorage;
