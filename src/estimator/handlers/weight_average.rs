//! `WeightAverageHandler`: validates, keeps and ends with an exponential moving average of
//! the trained parameters.

use crate::autograd::GradReq;
use crate::error::{Error, Result};
use crate::estimator::event::{EventHandler, Signal};
use crate::estimator::{Estimator, Mode, StepOutput};
use crate::nn::Parameter;
use crate::tensor::Tensor;

/// Keeps an exponential moving average of every trained parameter, updated after each
/// optimizer step: `avg = decay · avg + (1 − decay) · param`, with the decay held at
/// `min(decay, (1 + t) / (10 + t))` for the `t`-th update so the first steps do not pull
/// the average toward the initial values (TensorFlow's `ExponentialMovingAverage` with
/// `num_updates`; PyTorch's `AveragedModel` and Keras' `use_ema` are the same idea).
///
/// At every epoch's end the averaged values replace the parameters before validation,
/// so validation, early stopping (and its `restore_best`) and checkpoints all see the
/// average; the next epoch trains on from the raw values. Training ends with the average
/// in the model. Parameters with `GradReq::Null` are left alone.
///
/// A checkpoint taken at an epoch's end holds the average as the parameters and the raw
/// values in this handler's state, so a resumed run goes on exactly as an uninterrupted
/// one. (One taken mid-epoch holds the raw values only: the resumed run's average starts
/// again from them.)
#[derive(Clone, Debug)]
pub struct WeightAverageHandler {
    decay: f32,
    updates: u64,
    /// The trained parameters (`GradReq::Null` ones left out), found at the first
    /// `epoch_begin`, and the average of each.
    params: Vec<Parameter>,
    average: Vec<Tensor>,
    /// The raw values, on the host, while the average stands in for them (between an
    /// epoch's end and the next epoch's start; checkpointed).
    raw: Option<Vec<Vec<f32>>>,
}

impl WeightAverageHandler {
    /// An average with `decay` in (0, 1): the weight of the past at each step (0.99 keeps
    /// about the last hundred steps). Errors name the value otherwise.
    pub fn new(decay: f32) -> Result<Self> {
        if !(decay > 0.0 && decay < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "WeightAverageHandler: decay must be in (0, 1), got {decay}"
            )));
        }
        Ok(WeightAverageHandler {
            decay,
            updates: 0,
            params: Vec::new(),
            average: Vec::new(),
            raw: None,
        })
    }

    /// Writes host `values` into the trained parameters; an error if their number or
    /// sizes do not match (a checkpoint of another model).
    fn assign_host(&self, values: Vec<Vec<f32>>) -> Result<()> {
        if self.params.len() != values.len() {
            return Err(Error::InvalidArgument(format!(
                "weight average state holds {} parameters, the model trains {}",
                values.len(),
                self.params.len()
            )));
        }
        for (p, v) in self.params.iter().zip(values) {
            p.set_data(&Tensor::from_vec(v, &p.shape())?.to_dtype(p.dtype())?)?;
        }
        Ok(())
    }
}

impl EventHandler for WeightAverageHandler {
    /// After the gradient update (−2000), before validation (−1000).
    fn priority(&self) -> i32 {
        -1500
    }

    fn state(&self) -> Option<(String, serde_json::Value)> {
        let state = serde_json::json!({ "updates": self.updates, "raw": self.raw });
        Some(("weight average".into(), state))
    }

    fn restore_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let bad = || Error::InvalidArgument(format!("weight average state {state} is malformed"));
        self.updates = state["updates"].as_u64().ok_or_else(bad)?;
        self.raw = serde_json::from_value(state["raw"].clone()).map_err(|_| bad())?;
        Ok(())
    }

    fn train_begin(&mut self, _est: &mut Estimator) -> Result<()> {
        self.updates = 0;
        self.raw = None;
        self.params.clear();
        self.average.clear();
        Ok(())
    }

    fn epoch_begin(&mut self, est: &mut Estimator) -> Result<()> {
        // The average starts from the parameters of the first epoch's start: after every
        // handler's `train_begin`, so a resumed run's checkpoint is loaded by then (and
        // holds the average when it was taken at an epoch's end).
        if est.mode() != Mode::Train {
            return Ok(());
        }
        if self.params.is_empty() {
            self.params = est
                .net()
                .collect_params()
                .iter()
                .filter(|(_, p)| p.grad_req() != GradReq::Null)
                .map(|(_, p)| p.clone())
                .collect();
            self.average = self
                .params
                .iter()
                .map(|p| p.data()?.copy())
                .collect::<Result<_>>()?;
        }
        if let Some(raw) = self.raw.take() {
            self.assign_host(raw)?;
        }
        Ok(())
    }

    fn batch_end(&mut self, est: &mut Estimator, _out: &StepOutput) -> Result<Signal> {
        if est.mode() != Mode::Train {
            return Ok(Signal::Continue);
        }
        self.updates += 1;
        let t = self.updates as f32;
        let decay = self.decay.min((1.0 + t) / (10.0 + t));
        for (avg, p) in self.average.iter_mut().zip(&self.params) {
            *avg = avg
                .mul_scalar(decay)?
                .add(&p.data()?.detach().mul_scalar(1.0 - decay)?)?;
        }
        Ok(Signal::Continue)
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        if est.mode() != Mode::Train || self.updates == 0 {
            return Ok(Signal::Continue);
        }
        let raw = self
            .params
            .iter()
            .map(|p| p.data()?.to_vec_f32())
            .collect::<Result<Vec<_>>>()?;
        for (p, avg) in self.params.iter().zip(&self.average) {
            p.set_data(avg)?;
        }
        self.raw = Some(raw);
        Ok(Signal::Continue)
    }
}
