//! `BatchNorm`: normalisation over channels with running statistics.

use crate::autograd;
use crate::error::{Error, Result};
use crate::nn::{Block, Forward, Initializer, Parameter};
use crate::tensor::Tensor;
use std::sync::Mutex;

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
