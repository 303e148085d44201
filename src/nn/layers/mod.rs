//! The built-in layers, one file each.

mod activation;
mod attention;
mod batch_norm;
mod conv;
mod dense;
mod dropout;
mod embedding;
mod layer_norm;
mod pool;
mod reshape;
mod rnn;
mod transformer;

pub use activation::Activation;
pub use attention::{AttentionMask, MultiHeadAttention};
pub use batch_norm::BatchNorm;
pub use conv::{Conv1D, Conv2D, Conv2DTranspose};
pub use dense::Dense;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use pool::{AvgPool1D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool1D, MaxPool2D};
pub use reshape::{Flatten, Lambda};
pub use rnn::{RnnLayout, GRU, LSTM};
pub use transformer::{PositionalEmbedding, TransformerEncoderLayer};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Checks `x` has `rank` axes, naming the layer and the expected layout.
fn check_rank(x: &Tensor, rank: usize, layer: &'static str, layout: &str) -> Result<()> {
    if x.rank() != rank {
        return Err(Error::InvalidShape {
            op: layer,
            msg: format!("input must be {layout}, got {:?}", x.shape()),
        });
    }
    Ok(())
}
