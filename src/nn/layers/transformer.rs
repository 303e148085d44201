//! `TransformerEncoderLayer` (pre-norm) and `PositionalEmbedding` (learned).

use super::attention::{AttentionMask, MultiHeadAttention};
use crate::error::{Error, Result};
use crate::nn::{Activation, Block, Dense, Dropout, Forward, LayerNorm, Parameter};
use crate::tensor::Tensor;

/// One pre-norm transformer encoder layer on `[batch, time, units]`:
/// `y = x + drop(attention(norm1(x)))`, `out = y + drop(ffn2(drop(gelu(ffn1(norm2(y))))))`
/// (PyTorch's `nn.TransformerEncoderLayer` with `norm_first=True`, `activation="gelu"`,
/// `batch_first=True`).
#[derive(Block)]
pub struct TransformerEncoderLayer {
    /// Before the attention.
    pub norm1: LayerNorm,
    /// Self-attention.
    pub attention: MultiHeadAttention,
    /// Before the feed-forward.
    pub norm2: LayerNorm,
    /// `[hidden, units]`, GELU after it.
    pub ffn1: Dense,
    /// `[units, hidden]`
    pub ffn2: Dense,
    /// On both residual branches and the feed-forward's hidden layer, in training.
    pub dropout: Dropout,
}

impl TransformerEncoderLayer {
    /// `units` wide (a multiple of `heads`), a feed-forward of `hidden` units, no dropout.
    pub fn new(units: usize, heads: usize, hidden: usize) -> Result<TransformerEncoderLayer> {
        if hidden == 0 {
            return Err(Error::InvalidArgument(
                "TransformerEncoderLayer: the feed-forward needs hidden > 0 units".into(),
            ));
        }
        Ok(TransformerEncoderLayer {
            norm1: LayerNorm::new(units),
            attention: MultiHeadAttention::new(units, heads)?.in_units(units),
            norm2: LayerNorm::new(units),
            ffn1: Dense::new(hidden)
                .flatten(false)
                .in_units(units)
                .activation(Activation::Gelu),
            ffn2: Dense::new(units).flatten(false).in_units(hidden),
            dropout: Dropout::new(0.0),
        })
    }

    /// Dropout on the attention weights, the residual branches and the feed-forward's
    /// hidden layer (default 0).
    pub fn dropout(mut self, rate: f32) -> TransformerEncoderLayer {
        self.attention = self.attention.dropout(rate);
        self.dropout = Dropout::new(rate);
        self
    }

    /// The layer under `mask` (causal and/or key padding).
    pub fn forward_masked(&self, x: &Tensor, mask: AttentionMask) -> Result<Tensor> {
        let a = self.norm1.forward(x)?;
        let y = x.add(
            &self
                .dropout
                .forward(&self.attention.attend(&a, &a, &a, mask)?)?,
        )?;
        let f = self.ffn1.forward(&self.norm2.forward(&y)?)?;
        let f = self.ffn2.forward(&self.dropout.forward(&f)?)?;
        y.add(&self.dropout.forward(&f)?)
    }
}

impl Forward for TransformerEncoderLayer {
    type Input = Tensor;
    /// The layer without masks.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, AttentionMask::default())
    }
}

/// A learned position embedding: adds row `t` of a `[max_len, units]` table to step `t`
/// of a `[batch, time, units]` input.
#[derive(Block)]
pub struct PositionalEmbedding {
    /// `[max_len, units]`
    pub weight: Parameter,
    #[block(skip)]
    max_len: usize,
    #[block(skip)]
    units: usize,
}

impl PositionalEmbedding {
    /// Positions `0..max_len` of `units` values each.
    pub fn new(max_len: usize, units: usize) -> PositionalEmbedding {
        PositionalEmbedding {
            weight: Parameter::new("weight", &[max_len, units], None),
            max_len,
            units,
        }
    }
}

impl PositionalEmbedding {
    /// Positions counted back from the end: step `t` of `T` gets row `max_len − T + t`,
    /// so the last step always has the last row. For left-padded sequences trimmed to
    /// their batch's longest: the latest item keeps its position whatever the trim.
    pub fn forward_right_aligned(&self, x: &Tensor) -> Result<Tensor> {
        self.add_rows(x, true)
    }

    fn add_rows(&self, x: &Tensor, from_end: bool) -> Result<Tensor> {
        if x.rank() != 3 || x.shape()[2] != self.units || x.shape()[1] > self.max_len {
            return Err(Error::InvalidShape {
                op: "PositionalEmbedding",
                msg: format!(
                    "input must be [batch, time <= {}, {}], got {:?}",
                    self.max_len,
                    self.units,
                    x.shape()
                ),
            });
        }
        let t = x.shape()[1];
        let start = if from_end { self.max_len - t } else { 0 };
        let rows = self.weight.data()?.slice_axis(0, start, start + t)?;
        x.add(&rows.reshape(&[1, t, self.units])?)
    }
}

impl Forward for PositionalEmbedding {
    type Input = Tensor;
    /// Step `t` gets row `t`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.add_rows(x, false)
    }
}
