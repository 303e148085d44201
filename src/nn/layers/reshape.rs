//! Glue without parameters: `Flatten` and `Lambda` (a block from a closure).

use crate::error::Result;
use crate::nn::{Block, Forward};
use crate::tensor::Tensor;

/// Flattens `[batch, ...]` to `[batch, Π ...]`.
#[derive(Block)]
pub struct Flatten;

impl Forward for Flatten {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten_from(1)
    }
}

type LambdaFn = dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync;

/// A block from a closure (Gluon's `Lambda`), for glue such as reshapes.
#[derive(Block)]
pub struct Lambda(#[block(skip)] Box<LambdaFn>);

impl Lambda {
    /// Wraps `f`.
    pub fn new(f: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static) -> Lambda {
        Lambda(Box::new(f))
    }
}

impl Forward for Lambda {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (self.0)(x)
    }
}
