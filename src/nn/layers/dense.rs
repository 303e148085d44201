//! `Dense`: the fully connected layer.

use super::Activation;
use crate::error::{Error, Result};
use crate::nn::{Block, Forward, Initializer, Parameter};
use crate::tensor::Tensor;

/// A fully connected layer: `y = act(x · Wᵀ + b)` with `W: [units, in_units]` (Gluon's
/// layout). `in_units = 0` infers the input size at the first forward pass.
#[derive(Block)]
pub struct Dense {
    /// `[units, in_units]`
    pub weight: Parameter,
    /// `[units]`, absent when `use_bias` is false.
    pub bias: Option<Parameter>,
    #[block(skip)]
    activation: Option<Activation>,
    #[block(skip)]
    flatten: bool,
    #[block(skip)]
    units: usize,
}

impl Dense {
    /// `units` outputs, input size inferred, with bias, no activation, flattening inputs.
    pub fn new(units: usize) -> Dense {
        Dense {
            weight: Parameter::new("weight", &[units, 0], None),
            bias: Some(Parameter::new("bias", &[units], Some(Initializer::Zero))),
            activation: None,
            flatten: true,
            units,
        }
    }

    /// Fixes the input size (no deferred initialisation).
    pub fn in_units(mut self, in_units: usize) -> Dense {
        self.weight = Parameter::new("weight", &[self.units, in_units], None);
        self
    }

    /// Applies an activation after the affine map.
    pub fn activation(mut self, act: Activation) -> Dense {
        self.activation = Some(act);
        self
    }

    /// Whether to add a bias (default true).
    pub fn use_bias(mut self, use_bias: bool) -> Dense {
        if !use_bias {
            self.bias = None;
        }
        self
    }

    /// Whether to flatten inputs of rank > 2 to `[batch, Π rest]` (default true, as
    /// Gluon); when false the layer maps the last axis.
    pub fn flatten(mut self, flatten: bool) -> Dense {
        self.flatten = flatten;
        self
    }
}

impl Forward for Dense {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x2 = if self.flatten && x.rank() > 2 {
            x.flatten_from(1)?
        } else if x.rank() < 1 {
            return Err(Error::InvalidShape {
                op: "Dense",
                msg: format!("input must have at least 1 dimension, got {:?}", x.shape()),
            });
        } else {
            x.clone()
        };
        let in_units = *x2.shape().last().unwrap_or(&0);
        self.weight.finish_deferred_init(&[self.units, in_units])?;
        let w = self.weight.data()?;
        if w.shape()[1] != in_units {
            return Err(Error::ShapeMismatch {
                op: "Dense input vs weight [units, in_units]",
                lhs: x2.shape().to_vec(),
                rhs: w.shape().to_vec(),
            });
        }
        // Map the last axis: fold leading axes into rows, multiply, unfold.
        let lead: Vec<usize> = x2.shape()[..x2.rank() - 1].to_vec();
        let rows: usize = lead.iter().product();
        let mut y = x2.reshape(&[rows, in_units])?.matmul(&w.transpose(0, 1)?)?;
        if let Some(b) = &self.bias {
            y = y.add(&b.data()?)?;
        }
        let mut out_shape = lead;
        out_shape.push(self.units);
        let y = y.reshape(&out_shape)?;
        match self.activation {
            Some(a) => a.apply(&y),
            None => Ok(y),
        }
    }
}
