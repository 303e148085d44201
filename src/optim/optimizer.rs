//! The `Optimizer` trait: what a parameter update is, and the settings every optimizer
//! shares (learning rate and its schedule, weight decay, gradient clipping).

use super::scheduler::LrScheduler;
use crate::autograd::RowSparse;
use crate::error::{Error, Result};
use crate::tensor::row_update::DeviceKernel;
use crate::tensor::Tensor;
use std::sync::Arc;

/// Per-step values shared by every parameter, computed by the [`Trainer`](super::Trainer).
#[derive(Clone, Copy, Debug)]
pub struct StepArgs {
    /// learning rate (after the scheduler and the parameter's `lr_mult`)
    pub lr: f32,
    /// weight decay (after `wd_mult`)
    pub wd: f32,
    /// gradient scale, `1 / batch_size` (times any global-norm clipping factor)
    pub rescale: f32,
    /// per-element gradient clipping bound, if any
    pub clip: Option<f32>,
    /// 1-based update count (Adam's bias correction)
    pub t: u64,
}

impl StepArgs {
    /// The gradient as an update uses it: rescaled, then clipped to `[-clip, clip]`
    /// (written as two selects, not `clamp`, so that row loops vectorise; NaN stays NaN).
    #[inline(always)]
    pub fn scaled_grad(rescale: f32, clip: f32, v: f32) -> f32 {
        Self::clipped(clip, rescale * v)
    }

    /// `v` clipped to `[-clip, clip]` (for rules that clip after adding the decay term,
    /// as MXNet's Adam and RMSProp do).
    #[inline(always)]
    pub fn clipped(clip: f32, v: f32) -> f32 {
        if v < -clip {
            -clip
        } else if v > clip {
            clip
        } else {
            v
        }
    }

    /// The clipping bound for [`StepArgs::scaled_grad`] (infinite when there is none).
    pub fn clip_bound(&self) -> f32 {
        self.clip.unwrap_or(f32::INFINITY)
    }

    /// The clipping bound as the CUDA kernels take it (negative: none).
    pub fn device_clip(&self) -> f32 {
        self.clip.unwrap_or(-1.0)
    }
}

/// State names as [`Optimizer::state_names`] returns them.
pub(crate) fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The settings every optimizer has (Gluon's `Optimizer` base: `learning_rate`, `wd`,
/// `clip_gradient`, `lr_scheduler`).
#[derive(Clone)]
pub struct Hyper {
    /// Base learning rate.
    pub lr: f32,
    /// Weight decay (L2, or decoupled for AdamW).
    pub wd: f32,
    /// Per-element gradient clipping bound (`clip_gradient`), after rescaling.
    pub clip_gradient: Option<f32>,
    /// Optional schedule of the rate, starting from `lr`.
    pub scheduler: Option<Arc<dyn LrScheduler>>,
}

impl std::fmt::Debug for Hyper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lr={}, wd={}, clip_gradient={:?}, scheduler={}",
            self.lr,
            self.wd,
            self.clip_gradient,
            self.scheduler.is_some()
        )
    }
}

impl Hyper {
    /// Learning rate `lr`, no decay, clipping or schedule.
    pub fn new(lr: f32) -> Hyper {
        Hyper {
            lr,
            wd: 0.0,
            clip_gradient: None,
            scheduler: None,
        }
    }

    /// The learning rate for update number `t` (1-based).
    pub fn lr_at(&self, t: u64) -> f32 {
        match &self.scheduler {
            Some(s) => s.lr(self.lr, t),
            None => self.lr,
        }
    }

    /// A finite learning rate and weight decay >= 0, a clipping bound >= 0; the error
    /// names the optimizer and the value.
    pub fn validate(&self, optimizer: &str) -> Result<()> {
        let non_negative = |v: f32| v.is_finite() && v >= 0.0;
        if !non_negative(self.lr) {
            return Err(bad(optimizer, "learning rate", self.lr, "finite and >= 0"));
        }
        if !non_negative(self.wd) {
            return Err(bad(optimizer, "weight decay", self.wd, "finite and >= 0"));
        }
        if let Some(c) = self.clip_gradient.filter(|c| c.is_nan() || *c < 0.0) {
            return Err(bad(optimizer, "clip_gradient", c, "a bound >= 0"));
        }
        Ok(())
    }
}

/// The error for a hyperparameter out of range: `optimizer adam: beta1 must be in
/// [0, 1), got 1.5`.
pub fn bad(optimizer: &str, what: &str, value: f32, want: &str) -> Error {
    Error::InvalidArgument(format!(
        "optimizer {optimizer}: {what} must be {want}, got {value}"
    ))
}

/// Checks `(name, value, ok, requirement)` triples, erroring on the first that fails.
pub fn check_all(optimizer: &str, checks: &[(&str, f32, bool, &str)]) -> Result<()> {
    match checks.iter().find(|(_, _, ok, _)| !ok) {
        Some((what, value, _, want)) => Err(bad(optimizer, what, *value, want)),
        None => Ok(()),
    }
}

/// An optimizer (Gluon's `Optimizer`, candle's `Optimizer`): how one parameter changes
/// given its gradient. Implement it for your own type and pass it to
/// [`Trainer::new`](super::Trainer::new); the built-ins ([`Sgd`](super::Sgd),
/// [`Adam`](super::Adam), [`AdaGrad`](super::AdaGrad), [`RmsProp`](super::RmsProp),
/// [`Ftrl`](super::Ftrl)) are implementations like any other.
///
/// A new optimizer needs a name, its shared settings ([`Hyper`]), how many state tensors
/// it keeps per parameter (each the parameter's shape, zero at the start), and a dense
/// step, which can be written with tensor ops and then runs on every device. A row-sparse
/// gradient (an `Embedding` with `sparse_grad`) goes to [`Optimizer::step_rows`], which
/// by default densifies it; override it for a lazy update of the touched rows only, e.g.
/// with [`Tensor::update_rows`] (a vectorised CPU row loop, plus an optional fused CUDA
/// kernel), as the built-ins do.
///
/// ```
/// use boson::optim::{Hyper, Optimizer, StepArgs};
/// use boson::{Result, Tensor};
///
/// /// Sign SGD: every weight moves by `lr` against the sign of its gradient.
/// #[derive(Debug)]
/// struct SignSgd(Hyper);
///
/// impl Optimizer for SignSgd {
///     fn name(&self) -> &'static str { "signsgd" }
///     fn hyper(&self) -> &Hyper { &self.0 }
///     fn hyper_mut(&mut self) -> &mut Hyper { &mut self.0 }
///     fn step(&self, w: &Tensor, g: &Tensor, _states: &[Tensor], a: &StepArgs) -> Result<()> {
///         w.assign(&w.sub(&g.sign()?.mul_scalar(a.lr)?)?)
///     }
/// }
///
/// let w = Tensor::from_vec(vec![1.0, 1.0], &[2])?;
/// let g = Tensor::from_vec(vec![0.5, -3.0], &[2])?;
/// let args = StepArgs { lr: 0.25, wd: 0.0, rescale: 1.0, clip: None, t: 1 };
/// SignSgd(Hyper::new(0.25)).step(&w, &g, &[], &args)?;
/// assert_eq!(w.to_vec_f32()?, vec![0.75, 1.25]);
/// # Ok::<(), boson::Error>(())
/// ```
pub trait Optimizer: Send + Sync + std::fmt::Debug {
    /// The name (Gluon's spelling: `sgd`, `adam`, ...); checkpoints of the trainer's
    /// state record it.
    fn name(&self) -> &'static str;

    /// The shared settings.
    fn hyper(&self) -> &Hyper;

    /// The shared settings, to change.
    fn hyper_mut(&mut self) -> &mut Hyper;

    /// How many state tensors the optimizer keeps per parameter.
    fn num_states(&self) -> usize {
        0
    }

    /// The names of those state tensors, one per state (checkpoints store them as
    /// `{parameter}.{name}`): `momentum`, `mean` and `var`, ... for the built-ins;
    /// `state0`, `state1`, ... unless an optimizer names them.
    fn state_names(&self) -> Vec<String> {
        (0..self.num_states())
            .map(|k| format!("state{k}"))
            .collect()
    }

    /// Checks the hyperparameters; the error names the bad value.
    /// [`Trainer::new`](super::Trainer::new) calls it.
    fn validate(&self) -> Result<()> {
        self.hyper().validate(self.name())
    }

    /// Updates `weight` and its `states` in place from a dense `grad` (the weight's shape;
    /// a sum over the batch: scale it by `args.rescale`).
    fn step(
        &self,
        weight: &Tensor,
        grad: &Tensor,
        states: &[Tensor],
        args: &StepArgs,
    ) -> Result<()>;

    /// Updates from a row-sparse gradient: `grad` holds one row per entry of `rows` (i64,
    /// negative entries are padding). By default the gradient is densified and passed to
    /// [`Optimizer::step`], so every row is updated (MXNet's `lazy_update=False`).
    fn step_rows(
        &self,
        weight: &Tensor,
        rows: &Tensor,
        grad: &Tensor,
        states: &[Tensor],
        args: &StepArgs,
    ) -> Result<()> {
        let sparse = RowSparse {
            indices: rows.clone(),
            values: grad.clone(),
            shape: weight.shape().to_vec(),
        };
        self.step(weight, &sparse.to_dense()?, states, args)
    }

    /// Sets the weight decay.
    fn wd(mut self, wd: f32) -> Self
    where
        Self: Sized,
    {
        self.hyper_mut().wd = wd;
        self
    }

    /// Clips each gradient element to `[-c, c]` after rescaling.
    fn clip_gradient(mut self, c: f32) -> Self
    where
        Self: Sized,
    {
        self.hyper_mut().clip_gradient = Some(c);
        self
    }

    /// Uses a learning-rate schedule.
    fn scheduler(mut self, s: impl LrScheduler + 'static) -> Self
    where
        Self: Sized,
    {
        self.hyper_mut().scheduler = Some(Arc::new(s));
        self
    }

    /// The learning rate for update number `t` (1-based).
    fn lr_at(&self, t: u64) -> f32 {
        self.hyper().lr_at(t)
    }
}

impl Optimizer for Box<dyn Optimizer> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn hyper(&self) -> &Hyper {
        (**self).hyper()
    }
    fn hyper_mut(&mut self) -> &mut Hyper {
        (**self).hyper_mut()
    }
    fn num_states(&self) -> usize {
        (**self).num_states()
    }
    fn state_names(&self) -> Vec<String> {
        (**self).state_names()
    }
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn step(&self, w: &Tensor, g: &Tensor, states: &[Tensor], args: &StepArgs) -> Result<()> {
        (**self).step(w, g, states, args)
    }
    fn step_rows(
        &self,
        w: &Tensor,
        rows: &Tensor,
        g: &Tensor,
        states: &[Tensor],
        args: &StepArgs,
    ) -> Result<()> {
        (**self).step_rows(w, rows, g, states, args)
    }
}

/// An optimizer whose own hyperparameters can be set by name, so that
/// [`create`](super::create) can build it from Gluon-style `optimizer_params`; every
/// built-in is one, and a user type becomes one to join `create` through
/// [`register`](super::register). Only `set` is new: the shared keys (`learning_rate`,
/// `wd`, `clip_gradient`) go through [`Optimizer::hyper_mut`].
pub trait Configurable: Optimizer {
    /// Sets `key` to `value`; false when the optimizer has no such parameter (then
    /// [`create`](super::create) fails naming the key). The default knows no keys.
    fn set(&mut self, key: &str, value: f32) -> bool {
        let _ = (key, value);
        false
    }
}

/// The `step` and `step_rows` of a built-in optimizer: its `kernels(args)` (the CPU row
/// kernel and the CUDA kernel of one step) run through `Tensor::update_rows`, over every
/// row or over the gradient's rows.
macro_rules! fused_steps {
    () => {
        fn step(
            &self,
            w: &crate::tensor::Tensor,
            g: &crate::tensor::Tensor,
            states: &[crate::tensor::Tensor],
            a: &StepArgs,
        ) -> Result<()> {
            let (row, device) = self.kernels(a);
            w.update_rows(states, g, None, row, Some(&device))
        }
        fn step_rows(
            &self,
            w: &crate::tensor::Tensor,
            rows: &crate::tensor::Tensor,
            g: &crate::tensor::Tensor,
            states: &[crate::tensor::Tensor],
            a: &StepArgs,
        ) -> Result<()> {
            let (row, device) = self.kernels(a);
            w.update_rows(states, g, Some(rows), row, Some(&device))
        }
    };
}
pub(crate) use fused_steps;

/// A built-in optimizer: it runs as one of the fused CUDA kernels.
pub(crate) trait BuiltIn: Configurable {
    /// The CUDA kernel of a step with `args`.
    #[allow(dead_code)] // read by the kernel emulator's test
    fn device_kernel(&self, args: &StepArgs) -> DeviceKernel;
}
