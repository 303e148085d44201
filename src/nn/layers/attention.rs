//! `MultiHeadAttention`: scaled dot-product attention over several heads, with causal and
//! key-padding masks (GluonNLP's `MultiHeadAttentionCell`, PyTorch's
//! `nn.MultiheadAttention` with `batch_first=True`).

use crate::error::{Error, Result};
use crate::nn::{Block, Dense, Dropout, Forward};
use crate::tensor::Tensor;

/// What a masked score becomes before the softmax: a large negative number rather than
/// −∞, so that a query that may see no key at all gets uniform weights instead of NaN.
const MASKED: f32 = -1e9;

/// Multi-head attention on `[batch, time, units]` inputs: query, key and value
/// projections (`Dense(units)` each), `heads` heads of `units / heads` dimensions,
/// softmax of `q·kᵀ/√d` with the masks applied, dropout on the weights (training only),
/// and an output projection. As a [`Forward`] it is self-attention without masks.
#[derive(Block)]
pub struct MultiHeadAttention {
    /// `[units, in]`
    pub query: Dense,
    /// `[units, in]`
    pub key: Dense,
    /// `[units, in]`
    pub value: Dense,
    /// `[units, units]`
    pub output: Dense,
    /// On the attention weights, in training.
    pub dropout: Dropout,
    #[block(skip)]
    heads: usize,
    #[block(skip)]
    units: usize,
}

/// Which keys each query may attend to.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionMask<'a> {
    /// Query `i` sees keys `j <= i` only (needs as many queries as keys).
    pub causal: bool,
    /// `[batch, keys]`, nonzero for a real key and 0 for padding.
    pub key_padding: Option<&'a Tensor>,
}

impl MultiHeadAttention {
    /// `units` in all (a multiple of `heads`), input size inferred at the first forward.
    pub fn new(units: usize, heads: usize) -> Result<MultiHeadAttention> {
        if heads == 0 || units == 0 || !units.is_multiple_of(heads) {
            return Err(Error::InvalidArgument(format!(
                "MultiHeadAttention: units ({units}) must be a positive multiple of heads ({heads})"
            )));
        }
        let dense = || Dense::new(units).flatten(false);
        Ok(MultiHeadAttention {
            query: dense(),
            key: dense(),
            value: dense(),
            output: dense(),
            dropout: Dropout::new(0.0),
            heads,
            units,
        })
    }

    /// Dropout on the attention weights (default 0).
    pub fn dropout(mut self, rate: f32) -> MultiHeadAttention {
        self.dropout = Dropout::new(rate);
        self
    }

    /// Fixes the input size of the three input projections.
    pub fn in_units(mut self, n: usize) -> MultiHeadAttention {
        let dense = || Dense::new(self.units).flatten(false).in_units(n);
        (self.query, self.key, self.value) = (dense(), dense(), dense());
        self.output = Dense::new(self.units).flatten(false).in_units(self.units);
        self
    }

    /// The number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// `[batch, queries, units]` from `query [batch, queries, in]` attending to
    /// `key`/`value [batch, keys, in]` under `mask`.
    pub fn attend(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        mask: AttentionMask,
    ) -> Result<Tensor> {
        let (n, tq, tk) = check_shapes(query, key, value)?;
        let (h, d) = (self.heads, self.units / self.heads);
        // [n, t, units] → [n·h, t, d]
        let split = |x: Tensor, t: usize| -> Result<Tensor> {
            x.reshape(&[n, t, h, d])?
                .transpose(1, 2)?
                .reshape(&[n * h, t, d])
        };
        let q = split(self.query.forward(query)?, tq)?;
        let k = split(self.key.forward(key)?, tk)?;
        let v = split(self.value.forward(value)?, tk)?;
        let mut scores = q
            .matmul_t(&k, false, true)?
            .mul_scalar(1.0 / (d as f32).sqrt())?
            .reshape(&[n, h, tq, tk])?;
        for bias in mask_biases(&mask, n, tq, tk, query.device())? {
            scores = scores.add(&bias)?;
        }
        let weights = self.dropout.forward(&scores.softmax(3)?)?;
        let out = weights
            .reshape(&[n * h, tq, tk])?
            .matmul(&v)?
            .reshape(&[n, h, tq, d])?
            .transpose(1, 2)?
            .reshape(&[n, tq, self.units])?;
        self.output.forward(&out)
    }
}

impl Forward for MultiHeadAttention {
    type Input = Tensor;
    /// Self-attention without masks.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.attend(x, x, x, AttentionMask::default())
    }
}

/// `(batch, queries, keys)` of rank-3 inputs whose batch sizes agree and whose keys and
/// values have the same length.
fn check_shapes(query: &Tensor, key: &Tensor, value: &Tensor) -> Result<(usize, usize, usize)> {
    for (what, t) in [("query", query), ("key", key), ("value", value)] {
        if t.rank() != 3 {
            return Err(Error::InvalidShape {
                op: "MultiHeadAttention",
                msg: format!("{what} must be [batch, time, units], got {:?}", t.shape()),
            });
        }
    }
    let (q, k, v) = (query.shape(), key.shape(), value.shape());
    if q[0] != k[0] || k[..2] != v[..2] {
        return Err(Error::InvalidShape {
            op: "MultiHeadAttention",
            msg: format!(
                "query {q:?}, key {k:?} and value {v:?} need one batch size, and key and value one length"
            ),
        });
    }
    Ok((q[0], q[1], k[1]))
}

/// The additive biases of `mask`, each broadcasting over `[n, heads, tq, tk]` scores:
/// causal `[1, 1, tq, tk]`, padding `[n, 1, 1, tk]`.
fn mask_biases(
    mask: &AttentionMask,
    n: usize,
    tq: usize,
    tk: usize,
    device: crate::Device,
) -> Result<Vec<Tensor>> {
    let mut biases = Vec::new();
    if mask.causal {
        if tq != tk {
            return Err(Error::InvalidArgument(format!(
                "MultiHeadAttention: a causal mask needs as many queries as keys, got {tq} and {tk}"
            )));
        }
        let values = (0..tq)
            .flat_map(|i| (0..tk).map(move |j| if j > i { MASKED } else { 0.0 }))
            .collect();
        biases.push(Tensor::from_vec(values, &[1, 1, tq, tk])?.to_device(device)?);
    }
    if let Some(p) = mask.key_padding {
        if p.shape() != [n, tk] {
            return Err(Error::InvalidShape {
                op: "MultiHeadAttention",
                msg: format!(
                    "key_padding must be [batch, keys] = [{n}, {tk}], got {:?}",
                    p.shape()
                ),
            });
        }
        let values = p
            .to_dtype(crate::tensor::DType::F32)?
            .to_vec_f32()?
            .iter()
            .map(|&keep| if keep != 0.0 { 0.0 } else { MASKED })
            .collect();
        biases.push(Tensor::from_vec(values, &[n, 1, 1, tk])?.to_device(device)?);
    }
    Ok(biases)
}
