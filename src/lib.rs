#[cfg(feature = "cuda")]
pub mod cuda;
pub mod error;
pub mod rng;
