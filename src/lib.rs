pub mod error;
pub mod rng;
#[cfg(feature = "cuda")]
pub mod cuda;
