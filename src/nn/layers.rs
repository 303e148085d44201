//! Basic layers: Dense, Embedding, Dropout, Activation, Flatten, Lambda, LayerNorm, BatchNorm.

use super::block::{Block, Forward};
use super::init::Initializer;
use super::parameter::{GradStype, Parameter};
use crate::autograd;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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
}

impl Activation {
    /// Applies the activation.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Softrelu => x.softrelu(),
        }
    }
}

impl Forward for Activation {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x)
    }
}

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

/// A lookup table `[input_dim, output_dim]` mapping `i64` indices to rows. Its gradient is
/// row-sparse by default (`sparse_grad`), so a step costs O(batch × dim) whatever the
/// vocabulary size.
#[derive(Block)]
pub struct Embedding {
    /// `[input_dim, output_dim]`
    pub weight: Parameter,
    #[block(skip)]
    sparse_grad: bool,
}

impl Embedding {
    /// A table of `input_dim` rows of `output_dim` values, sparse gradients, f32.
    pub fn new(input_dim: usize, output_dim: usize) -> Embedding {
        Self::with_options(input_dim, output_dim, true, DType::F32)
    }

    /// A table with explicit gradient type and dtype (`F16`/`BF16` tables are read as f32).
    pub fn with_options(
        input_dim: usize,
        output_dim: usize,
        sparse_grad: bool,
        dtype: DType,
    ) -> Embedding {
        let stype = if sparse_grad {
            GradStype::RowSparse
        } else {
            GradStype::Default
        };
        Embedding {
            weight: Parameter::with_options("weight", &[input_dim, output_dim], None, dtype, stype),
            sparse_grad,
        }
    }
}

impl Forward for Embedding {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.weight.data()?.take(x, self.sparse_grad)
    }
}

/// Inverted dropout, active only in training mode. Each call draws a fresh mask from a
/// counter-based stream, so runs with the same seed drop the same elements. The count of
/// masks drawn is the layer's [`State`](super::State) (`{name}.calls`), so checkpoints
/// resume with the same masks.
#[derive(Block)]
pub struct Dropout {
    #[block(skip)]
    rate: f32,
    #[block(skip)]
    seed: u64,
    #[block(state)]
    calls: AtomicU64,
}

impl Dropout {
    /// Drops each element with probability `rate`; the seed comes from the global stream.
    pub fn new(rate: f32) -> Dropout {
        Dropout {
            rate,
            seed: crate::rng::next_seed(),
            calls: AtomicU64::new(0),
        }
    }

    /// Uses an explicit seed.
    pub fn with_seed(mut self, seed: u64) -> Dropout {
        self.seed = seed;
        self
    }

    /// How many masks this layer has drawn (saved in checkpoints for exact resume).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Restores the mask counter.
    pub fn set_calls(&self, calls: u64) {
        self.calls.store(calls, Ordering::SeqCst)
    }
}

impl Forward for Dropout {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !autograd::is_training() || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let c = self.calls.fetch_add(1, Ordering::SeqCst);
        x.dropout(self.rate, crate::rng::mix_seed(self.seed, c))
    }
}

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

/// Batch normalisation over axis 1 (channels). Training mode normalises with the batch's
/// statistics and updates the running ones (`running = momentum·running + (1−momentum)·batch`);
/// predict mode uses the running statistics. The running statistics are non-trainable
/// parameters (as in Gluon), so parameter files and checkpoints hold them.
#[derive(Block)]
pub struct BatchNorm {
    /// `[channels]`, ones.
    pub gamma: Parameter,
    /// `[channels]`, zeros.
    pub beta: Parameter,
    /// `[channels]`, not trained.
    pub running_mean: Parameter,
    /// `[channels]`, not trained.
    pub running_var: Parameter,
    #[block(skip)]
    momentum: f32,
    #[block(skip)]
    epsilon: f32,
    #[block(skip)]
    lock: Mutex<()>,
}

impl BatchNorm {
    /// `in_channels = 0` infers the channel count; momentum 0.9, epsilon 1e-5 (Gluon's).
    pub fn new(in_channels: usize) -> BatchNorm {
        BatchNorm {
            gamma: Parameter::new("gamma", &[in_channels], Some(Initializer::One)),
            beta: Parameter::new("beta", &[in_channels], Some(Initializer::Zero)),
            running_mean: Parameter::new("running_mean", &[in_channels], Some(Initializer::Zero))
                .frozen(),
            running_var: Parameter::new("running_var", &[in_channels], Some(Initializer::One))
                .frozen(),
            momentum: 0.9,
            epsilon: 1e-5,
            lock: Mutex::new(()),
        }
    }

    /// Sets the running-statistics momentum.
    pub fn momentum(mut self, m: f32) -> BatchNorm {
        self.momentum = m;
        self
    }
}

impl Parameter {
    /// This parameter with `grad_req = null` (never trained).
    pub fn frozen(self) -> Parameter {
        self.set_grad_req(crate::autograd::GradReq::Null);
        self
    }
}

impl Forward for BatchNorm {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 {
            return Err(Error::InvalidShape {
                op: "BatchNorm",
                msg: format!("input must be [batch, channels, ...], got {:?}", x.shape()),
            });
        }
        let c = x.shape()[1];
        for p in [
            &self.gamma,
            &self.beta,
            &self.running_mean,
            &self.running_var,
        ] {
            p.finish_deferred_init(&[c])?;
        }
        // Statistics are per channel: reduce every axis but 1, keep dims for broadcasting.
        let axes: Vec<usize> = (0..x.rank()).filter(|&a| a != 1).collect();
        let mut bshape = vec![1; x.rank()];
        bshape[1] = c;
        let (mean, var) = if autograd::is_training() {
            let mean = x.mean_axes(&axes, true)?;
            let var = x.sub(&mean)?.square()?.mean_axes(&axes, true)?;
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            let m = self.momentum;
            let rm = self.running_mean.data()?;
            let rv = self.running_var.data()?;
            let new_m = rm
                .mul_scalar(m)?
                .add(&mean.detach().reshape(&[c])?.mul_scalar(1.0 - m)?)?;
            let new_v = rv
                .mul_scalar(m)?
                .add(&var.detach().reshape(&[c])?.mul_scalar(1.0 - m)?)?;
            rm.assign(&new_m)?;
            rv.assign(&new_v)?;
            (mean, var)
        } else {
            (
                self.running_mean.data()?.reshape(&bshape)?,
                self.running_var.data()?.reshape(&bshape)?,
            )
        };
        let xhat = x.sub(&mean)?.div(&var.add_scalar(self.epsilon)?.sqrt()?)?;
        let gamma = self.gamma.data()?.reshape(&bshape)?;
        let beta = self.beta.data()?.reshape(&bshape)?;
        xhat.mul(&gamma)?.add(&beta)
    }
}
