//! boson: a Gluon-style deep learning library for Rust.

pub mod autograd;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod data;
pub mod device;
pub mod error;
pub mod estimator;
pub mod io;
pub mod loss;
pub mod metric;
pub mod nn;
pub mod optim;
pub mod ratings;
pub mod rng;
pub mod tensor;

pub use device::Device;
pub use error::{Error, Result};
pub use tensor::Tensor;
