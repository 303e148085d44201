//! The built-in layers, one file each.

mod activation;
mod batch_norm;
mod dense;
mod dropout;
mod embedding;
mod layer_norm;
mod reshape;

pub use activation::Activation;
pub use batch_norm::BatchNorm;
pub use dense::Dense;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use reshape::{Flatten, Lambda};
