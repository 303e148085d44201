//! `Trainer`: applies an optimizer to a set of parameters (Gluon's `gluon.Trainer`).

use super::optimizer::{Optimizer, StepArgs};
use crate::autograd::{Grad, GradReq, RowSparse};
use crate::distributed::{all_gather_rows, all_reduce_dense, Communicator, Traffic};
use crate::error::{Error, Result};
use crate::io;
use crate::nn::{GradStype, ParameterDict};
use crate::tensor::Tensor;
use std::path::Path;
use std::sync::Arc;

/// Dense gradients are summed over ranks in all-reduces of at most this many values
/// (16 MiB of f32), as PyTorch DDP's 25 MB buckets.
const BUCKET_VALUES: usize = 1 << 22;

/// Updates parameters from their gradients. `step(batch_size)` rescales gradients by
/// `1/batch_size` (gradients are sums over the batch, as Gluon's losses are per sample)
/// and applies the optimizer; row-sparse gradients update only their rows.
pub struct Trainer {
    params: ParameterDict,
    optimizer: Box<dyn Optimizer>,
    states: Vec<Option<Vec<Tensor>>>,
    num_update: u64,
    clip_global_norm: Option<f32>,
    ignore_stale_grad: bool,
    /// Data parallel: gradients are summed over these ranks before each update.
    comm: Option<Arc<dyn Communicator>>,
    traffic: Traffic,
}

impl Trainer {
    /// A trainer for `params`; an error if the optimizer's hyperparameters are invalid
    /// ([`Optimizer::validate`]).
    pub fn new(params: ParameterDict, optimizer: impl Optimizer + 'static) -> Result<Trainer> {
        optimizer.validate()?;
        let names = optimizer.state_names();
        if names.len() != optimizer.num_states() {
            return Err(Error::InvalidArgument(format!(
                "optimizer '{}' keeps {} states but names {} ({names:?}): state_names needs \
                 one name per state",
                optimizer.name(),
                optimizer.num_states(),
                names.len()
            )));
        }
        let optimizer: Box<dyn Optimizer> = Box::new(optimizer);
        let n = params.len();
        Ok(Trainer {
            params,
            optimizer,
            states: vec![None; n],
            num_update: 0,
            clip_global_norm: None,
            ignore_stale_grad: false,
            comm: None,
            traffic: Traffic::default(),
        })
    }

    /// The parameters being trained.
    pub fn params(&self) -> &ParameterDict {
        &self.params
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &dyn Optimizer {
        &*self.optimizer
    }

    /// How many updates have been applied.
    pub fn num_update(&self) -> u64 {
        self.num_update
    }

    /// The learning rate the next step will use.
    pub fn learning_rate(&self) -> f32 {
        self.optimizer.lr_at(self.num_update + 1)
    }

    /// Sets the learning rate; an error when a scheduler controls it (as Gluon).
    pub fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        if self.optimizer.hyper().scheduler.is_some() {
            return Err(Error::InvalidArgument(
                "the optimizer has an LR scheduler; set_learning_rate only works without one"
                    .into(),
            ));
        }
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "learning rate must be finite and >= 0, got {lr}"
            )));
        }
        self.optimizer.hyper_mut().lr = lr;
        Ok(())
    }

    /// Rescales all gradients together so that their global L2 norm is at most `max_norm`
    /// (Gluon's `clip_global_norm`), on every step.
    pub fn set_clip_global_norm(&mut self, max_norm: Option<f32>) {
        self.clip_global_norm = max_norm;
    }

    /// The global L2 norm of the current gradients (before rescaling).
    /// Gradients on the CPU are read in place; gradients on a GPU are reduced there and
    /// summed into one device scalar, so a step reads back one value, not one per
    /// parameter (the estimator checks this norm every batch).
    pub fn grad_global_norm(&self) -> Result<f32> {
        self.settle_sharded()?;
        let mut sq = 0.0f64;
        let mut on_device: Option<Tensor> = None;
        for (_, p) in self.params.iter() {
            let Some(g) = p.grad() else { continue };
            let v = g.values();
            if v.device() == crate::device::Device::Cpu {
                sq += v.squared_norm()?;
            } else {
                let s = v.square()?.sum_all()?;
                on_device = Some(match on_device {
                    Some(acc) => acc.add(&s)?,
                    None => s,
                });
            }
        }
        if let Some(acc) = on_device {
            sq += f64::from(acc.to_scalar()?);
        }
        Ok(sq.sqrt() as f32)
    }

    /// Whether [`step`](Self::step) skips parameters that backward gave no gradient
    /// since the last step, instead of failing (Gluon's `ignore_stale_grad`; default
    /// false). Set it when a step intentionally uses only some of the parameters.
    pub fn set_ignore_stale_grad(&mut self, ignore: bool) {
        self.ignore_stale_grad = ignore;
    }

    /// Trains data parallel over `comm`'s ranks (Horovod's `DistributedOptimizer` and
    /// `broadcast_parameters` in one): rank 0's parameter values are copied to every rank
    /// now, and each [`step`](Self::step) sums the gradients and batch sizes of all ranks
    /// first, so every rank applies the same update. Call it on every rank, with the
    /// same parameters, after they are initialised.
    pub fn set_communicator(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        // A sharded table's part differs per rank by design.
        for (name, p) in self.params.iter().filter(|(_, p)| !p.is_sharded()) {
            let data = p.data().map_err(|e| {
                Error::InvalidArgument(format!(
                    "set_communicator: parameter {name} has no value ({e}); initialise the \
                     model before setting the communicator"
                ))
            })?;
            let mut values = data.to_vec_f32()?;
            comm.broadcast(&mut values, 0)?;
            if comm.rank() == 0 {
                self.traffic.bytes += 4 * values.len() as u64;
                self.traffic.densified_bytes += 4 * values.len() as u64;
            }
            p.set_data(&Tensor::from_vec(values, data.shape())?.to_device(data.device())?)?;
        }
        self.comm = Some(comm);
        Ok(())
    }

    /// The communicator of a data-parallel trainer.
    pub fn communicator(&self) -> Option<&Arc<dyn Communicator>> {
        self.comm.as_ref()
    }

    /// Completes the gradients of sharded tables (their rows' gradients come from the
    /// other ranks); a no-op without any, or when done already this step.
    fn settle_sharded(&self) -> Result<()> {
        for (_, p) in self.params.iter() {
            p.settle_grad()?;
        }
        Ok(())
    }

    /// What this rank has sent to the others (zero without a communicator).
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Sums the gradients over the ranks in place; returns the global batch size. A
    /// parameter with a gradient on some rank but not this one contributes zeros here; a
    /// parameter with none anywhere stays without one (stale, as in one process).
    fn reduce_gradients(&mut self, comm: &dyn Communicator, batch_size: usize) -> Result<usize> {
        let trained: Vec<_> = self
            .params
            .iter()
            .filter(|(_, p)| p.grad_req() != GradReq::Null && !p.is_sharded())
            .map(|(_, p)| p.clone())
            .collect();
        let mut flags: Vec<i64> = vec![batch_size as i64];
        flags.extend(trained.iter().map(|p| i64::from(p.grad().is_some())));
        let all = comm.all_gather_i64(&flags)?;
        if let Some((r, f)) = all.iter().enumerate().find(|(_, f)| f.len() != flags.len()) {
            return Err(Error::InvalidArgument(format!(
                "rank {r} trains {} parameters, rank {} trains {}: every rank must build the \
                 same model",
                f.len() - 1,
                comm.rank(),
                flags.len() - 1
            )));
        }
        let global_batch: i64 = all.iter().map(|f| f[0]).sum();
        let mut dense = Vec::new();
        for (k, p) in trained.iter().enumerate() {
            if !all.iter().any(|f| f[k + 1] == 1) {
                continue;
            }
            let data = p.data()?;
            let row_sparse = p.grad_stype() == GradStype::RowSparse;
            let grad = p.grad();
            if row_sparse {
                let local = match grad {
                    Some(Grad::RowSparse(rs)) => rs,
                    Some(Grad::Dense(_)) => {
                        return Err(Error::InvalidArgument(format!(
                            "parameter {} has a row-sparse gradient type but a dense \
                             gradient",
                            p.name()
                        )))
                    }
                    None => RowSparse {
                        indices: Tensor::from_vec_i64(Vec::new(), &[0])?
                            .to_device(data.device())?,
                        values: Tensor::zeros(
                            &[0, data.shape().get(1).copied().unwrap_or(1)],
                            data.device(),
                        )?,
                        shape: data.shape().to_vec(),
                    },
                };
                let summed = all_gather_rows(comm, &local, &mut self.traffic)?;
                p.set_grad(Some(Grad::RowSparse(summed)));
            } else {
                let local = match grad {
                    Some(g) => g.to_dense()?,
                    None => Tensor::zeros(data.shape(), data.device())?,
                };
                dense.push((p, local));
            }
        }
        let tensors: Vec<Tensor> = dense.iter().map(|(_, t)| t.clone()).collect();
        let summed = all_reduce_dense(comm, &tensors, BUCKET_VALUES, &mut self.traffic)?;
        for ((p, _), g) in dense.iter().zip(summed) {
            p.set_grad(Some(Grad::Dense(g)));
        }
        Ok(global_batch as usize)
    }

    /// One optimizer update for a batch of `batch_size` samples. Every trained
    /// parameter (`grad_req` write) must have a gradient from a `backward` since the last
    /// step; stale ones are an error naming them, as in Gluon, unless
    /// [`set_ignore_stale_grad`](Self::set_ignore_stale_grad) says to skip them.
    ///
    /// With a communicator, `batch_size` is this rank's, and the gradients and batch
    /// sizes of all ranks are summed first ([`set_communicator`](Self::set_communicator)).
    pub fn step(&mut self, batch_size: usize) -> Result<()> {
        self.settle_sharded()?;
        let batch_size = match self.comm.clone() {
            Some(comm) => self.reduce_gradients(&*comm, batch_size)?,
            None => batch_size,
        };
        if batch_size == 0 {
            return Err(Error::InvalidArgument(
                "step(batch_size) needs batch_size > 0".into(),
            ));
        }
        let stale: Vec<&str> = self
            .params
            .iter()
            .filter(|(_, p)| p.grad_req() == GradReq::Write && p.grad().is_none())
            .map(|(name, _)| name)
            .collect();
        let trained = self
            .params
            .iter()
            .filter(|(_, p)| p.grad_req() != GradReq::Null)
            .count();
        if !stale.is_empty() && (stale.len() == trained || !self.ignore_stale_grad) {
            return Err(Error::InvalidArgument(format!(
                "step() with no gradient for {} of {trained} parameter(s) ({}): call \
                 backward() on a loss computed under autograd::record before each step; \
                 if a step uses only some parameters on purpose, call \
                 set_ignore_stale_grad(true)",
                stale.len(),
                stale.join(", ")
            )));
        }
        if let Some(c) = self
            .optimizer
            .hyper()
            .clip_gradient
            .filter(|c| c.is_nan() || *c < 0.0)
        {
            return Err(Error::InvalidArgument(format!(
                "clip_gradient must be a bound >= 0, got {c}"
            )));
        }
        let mut rescale = 1.0 / batch_size as f32;
        if let Some(max) = self.clip_global_norm {
            let norm = self.grad_global_norm()? * rescale;
            if !norm.is_finite() {
                return Err(Error::NonFinite(format!("gradient global norm is {norm}")));
            }
            if norm > max {
                rescale *= max / norm;
            }
        }
        self.num_update += 1;
        let lr = self.optimizer.lr_at(self.num_update);
        for (i, (_, p)) in self.params.iter().enumerate() {
            if p.grad_req() == GradReq::Null {
                continue;
            }
            let Some(grad) = p.grad() else { continue };
            let data = p.data()?;
            if self.states[i].is_none() {
                let n = self.optimizer.num_states();
                let s = (0..n)
                    .map(|_| Tensor::zeros_prefaulted(data.shape(), data.device()))
                    .collect::<Result<Vec<_>>>()?;
                self.states[i] = Some(s);
            }
            let states = self.states[i].as_deref().unwrap_or(&[]);
            let args = StepArgs {
                lr: lr * p.lr_mult(),
                wd: self.optimizer.hyper().wd * p.wd_mult(),
                rescale,
                clip: self.optimizer.hyper().clip_gradient,
                t: self.num_update,
            };
            match &grad {
                Grad::Dense(g) => self.optimizer.step(&data, g, states, &args)?,
                Grad::RowSparse(rs) => {
                    self.optimizer
                        .step_rows(&data, &rs.indices, &rs.values, states, &args)?
                }
            }
            // A written gradient is consumed by the step; accumulated ones stay until
            // the user calls zero_grad, as with Gluon's grad_req='add'.
            if p.grad_req() == GradReq::Write {
                p.zero_grad();
            }
        }
        Ok(())
    }

    /// Saves optimizer state (per-parameter state tensors and the update count).
    pub fn save_states(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut tensors = Vec::new();
        let state_names = self.optimizer.state_names();
        for ((name, _), states) in self.params.iter().zip(&self.states) {
            for (state, s) in state_names.iter().zip(states.iter().flatten()) {
                tensors.push((format!("{name}.{state}"), s.clone()));
            }
        }
        let mut meta = io::Metadata::new();
        meta.insert("num_update".into(), self.num_update.to_string());
        meta.insert("rule".into(), self.optimizer.name().into());
        meta.insert("lr".into(), self.optimizer.hyper().lr.to_string());
        io::save_tensors(path.as_ref(), &tensors, Some(meta))
    }

    /// Restores state written by [`Trainer::save_states`] for the same parameters and rule.
    pub fn load_states(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (tensors, meta) = io::load_tensors(path)?;
        let bad = |msg: String| Error::Format {
            path: path.to_path_buf(),
            msg,
        };
        let rule = meta.get("rule").cloned().unwrap_or_default();
        if rule != self.optimizer.name() {
            return Err(bad(format!(
                "trainer state is for optimizer '{rule}', this trainer uses '{}'",
                self.optimizer.name()
            )));
        }
        let num_update: u64 = meta
            .get("num_update")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("missing num_update in trainer state".into()))?;
        let n = self.optimizer.num_states();
        let state_names = self.optimizer.state_names();
        let mut states = vec![None; self.params.len()];
        for (i, (name, p)) in self.params.iter().enumerate() {
            // By name; files written before states were named say `state{k}`.
            let found: Vec<&Tensor> = state_names
                .iter()
                .enumerate()
                .filter_map(|(k, state)| {
                    [format!("{name}.{state}"), format!("{name}.state{k}")]
                        .iter()
                        .find_map(|key| tensors.iter().find(|(nm, _)| nm == key))
                        .map(|(_, t)| t)
                })
                .collect();
            if found.is_empty() {
                continue;
            }
            if found.len() != n {
                return Err(bad(format!(
                    "parameter '{name}' has {} of {n} states",
                    found.len()
                )));
            }
            let data = p.data()?;
            let mut s = Vec::with_capacity(n);
            for t in found {
                if t.shape() != data.shape() {
                    return Err(bad(format!(
                        "state of '{name}' has shape {:?}, parameter {:?}",
                        t.shape(),
                        data.shape()
                    )));
                }
                s.push(t.to_device(data.device())?);
            }
            states[i] = Some(s);
        }
        self.states = states;
        self.num_update = num_update;
        Ok(())
    }
}
