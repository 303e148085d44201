//! The low-level CUDA layer: device handles with an NVRTC module cache ([`device`]) and
//! safe kernel launchers over `cudarc::driver::CudaSlice` ([`ops`]).
//!
//! Nothing here panics when CUDA is absent: every entry point first asks whether the
//! driver and NVRTC libraries can be loaded and returns [`crate::error::Error::Cuda`]
//! with the reason otherwise.

pub mod device;
pub mod ops;

pub use device::{compile_ptx, cuda_available, kernel_sources, CudaDevice};
#[cfg(test)]
mod emulator_tests;
mod storage;

pub(crate) use storage::CudaStorage;
