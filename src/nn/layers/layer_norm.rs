//! `LayerNorm`: normalisation over the last axis.

use crate::error::{Error, Result};
use crate::nn::{Block, Forward, Initializer, Parameter};
use crate::tensor::Tensor;

/// Normalises over the last axis, then scales by `gamma` and shifts by `beta`.
#[derive(Block)]
pub struct LayerNorm {
    /// `[channels]`, initialised to ones.
    pub gamma: Parameter,
    /// `[channels]`, initialised to zeros.
    pub beta: Parameter,
    #[block(skip)]
    epsilon: f32,
}

impl LayerNorm {
    /// `in_channels = 0` infers the size from the first input.
    pub fn new(in_channels: usize) -> LayerNorm {
        LayerNorm {
            gamma: Parameter::new("gamma", &[in_channels], Some(Initializer::One)),
            beta: Parameter::new("beta", &[in_channels], Some(Initializer::Zero)),
            epsilon: 1e-5,
        }
    }

    /// Sets the epsilon added to the variance (default 1e-5).
    pub fn epsilon(mut self, eps: f32) -> LayerNorm {
        self.epsilon = eps;
        self
    }
}

impl Forward for LayerNorm {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let axis = x.rank().checked_sub(1).ok_or_else(|| Error::InvalidShape {
            op: "LayerNorm",
            msg: "input must have at least 1 dimension".into(),
        })?;
        let c = x.shape()[axis];
        self.gamma.finish_deferred_init(&[c])?;
        self.beta.finish_deferred_init(&[c])?;
        let mean = x.mean_axis(axis, true)?;
        let centered = x.sub(&mean)?;
        let var = centered.square()?.mean_axis(axis, true)?;
        let xhat = centered.div(&var.add_scalar(self.epsilon)?.sqrt()?)?;
        xhat.mul(&self.gamma.data()?)?.add(&self.beta.data()?)
    }
}
