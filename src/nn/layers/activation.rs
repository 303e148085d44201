//! `Activation`: element-wise relu, sigmoid, tanh, softrelu, gelu.

use crate::error::Result;
use crate::nn::{Block, Forward};
use crate::tensor::Tensor;

/// Element-wise activations (Gluon's `Activation` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Block)]
pub enum Activation {
    /// `max(x, 0)`
    Relu,
    /// logistic sigmoid
    Sigmoid,
    /// hyperbolic tangent
    Tanh,
    /// `log(1 + e^x)`
    Softrelu,
    /// `x·Φ(x)` (exact GELU)
    Gelu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Softrelu => x.softrelu(),
            Activation::Gelu => x.gelu(),
        }
    }
}

impl Forward for Activation {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x)
    }
}
