//! `Optimizer`: an update rule plus learning rate, weight decay, clipping and schedule.

use super::rule::Rule;
use super::scheduler::LrScheduler;
use std::sync::Arc;

/// An optimizer configuration, built like Gluon's `optimizer_params`:
/// `Optimizer::sgd(0.02).momentum(0.9).wd(1e-4)`.
#[derive(Clone)]
pub struct Optimizer {
    /// The update rule.
    pub rule: Rule,
    /// Base learning rate.
    pub lr: f32,
    /// Weight decay (L2, or decoupled for AdamW).
    pub wd: f32,
    /// Per-element gradient clipping bound (`clip_gradient`), after rescaling.
    pub clip_gradient: Option<f32>,
    /// Optional schedule overriding `lr` each update.
    pub scheduler: Option<Arc<dyn LrScheduler>>,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Optimizer({:?}, lr={}, wd={})",
            self.rule, self.lr, self.wd
        )
    }
}

impl Optimizer {
    fn with_rule(rule: Rule, lr: f32) -> Self {
        Optimizer {
            rule,
            lr,
            wd: 0.0,
            clip_gradient: None,
            scheduler: None,
        }
    }

    /// Plain SGD (add `.momentum(m)` for momentum).
    pub fn sgd(lr: f32) -> Self {
        Self::with_rule(
            Rule::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            lr,
        )
    }

    /// Nesterov accelerated SGD (MXNet's `nag`) with momentum `m`.
    pub fn nag(lr: f32, momentum: f32) -> Self {
        Self::with_rule(
            Rule::Sgd {
                momentum,
                nesterov: true,
            },
            lr,
        )
    }

    /// Adam with Gluon's defaults (β₁ 0.9, β₂ 0.999, ε 1e-8).
    pub fn adam(lr: f32) -> Self {
        Self::with_rule(
            Rule::Adam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                decoupled_wd: false,
            },
            lr,
        )
    }

    /// AdamW: Adam with decoupled weight decay (default wd 0.01).
    pub fn adamw(lr: f32) -> Self {
        let mut o = Self::with_rule(
            Rule::Adam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                decoupled_wd: true,
            },
            lr,
        );
        o.wd = 0.01;
        o
    }

    /// AdaGrad (ε 1e-7, Gluon's default).
    pub fn adagrad(lr: f32) -> Self {
        Self::with_rule(Rule::AdaGrad { epsilon: 1e-7 }, lr)
    }

    /// RMSProp (γ₁ 0.9, ε 1e-8, not centered).
    pub fn rmsprop(lr: f32) -> Self {
        Self::with_rule(
            Rule::RmsProp {
                gamma1: 0.9,
                gamma2: 0.9,
                epsilon: 1e-8,
                centered: false,
            },
            lr,
        )
    }

    /// FTRL-proximal (λ₁ 0.01, β 1).
    pub fn ftrl(lr: f32) -> Self {
        Self::with_rule(
            Rule::Ftrl {
                lamda1: 0.01,
                beta: 1.0,
            },
            lr,
        )
    }

    /// An optimizer by its Gluon name and `optimizer_params`, as
    /// `gluon.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.9})`:
    /// `Optimizer::create("sgd", &[("learning_rate", 0.1), ("momentum", 0.9)])`.
    ///
    /// Names: `sgd`, `nag`, `adam`, `adamw`, `adagrad`, `rmsprop`, `ftrl`. Keys:
    /// `learning_rate` (default 0.01, MXNet's), `wd`, `clip_gradient`, `momentum` (sgd,
    /// nag), `beta1`, `beta2`, `epsilon` (adam, adamw), `epsilon`, `gamma1`, `gamma2`,
    /// `centered` (1 or 0, rmsprop), `epsilon` (adagrad), `lamda1`, `beta` (ftrl). An
    /// unknown name, or a key the optimizer does not have, is an error listing the valid
    /// ones.
    pub fn create(name: &str, params: &[(&str, f32)]) -> crate::Result<Self> {
        let lr = params
            .iter()
            .find(|(k, _)| *k == "learning_rate")
            .map_or(0.01, |(_, v)| *v);
        let mut opt = match name.to_ascii_lowercase().as_str() {
            "sgd" => Self::sgd(lr),
            "nag" => Self::nag(lr, 0.0),
            "adam" => Self::adam(lr),
            "adamw" => Self::adamw(lr),
            "adagrad" => Self::adagrad(lr),
            "rmsprop" => Self::rmsprop(lr),
            "ftrl" => Self::ftrl(lr),
            _ => {
                return Err(crate::Error::InvalidArgument(format!(
                    "unknown optimizer '{name}': expected one of sgd, nag, adam, adamw, \
                     adagrad, rmsprop, ftrl"
                )))
            }
        };
        for &(key, value) in params {
            let known = match (key, &mut opt.rule) {
                ("learning_rate", _) => true,
                ("wd", _) => {
                    opt.wd = value;
                    true
                }
                ("clip_gradient", _) => {
                    opt.clip_gradient = Some(value);
                    true
                }
                ("momentum", Rule::Sgd { momentum, .. }) => set(momentum, value),
                ("beta1", Rule::Adam { beta1, .. }) => set(beta1, value),
                ("beta2", Rule::Adam { beta2, .. }) => set(beta2, value),
                ("epsilon", Rule::Adam { epsilon, .. })
                | ("epsilon", Rule::AdaGrad { epsilon })
                | ("epsilon", Rule::RmsProp { epsilon, .. }) => set(epsilon, value),
                ("gamma1", Rule::RmsProp { gamma1, .. }) => set(gamma1, value),
                ("gamma2", Rule::RmsProp { gamma2, .. }) => set(gamma2, value),
                ("centered", Rule::RmsProp { centered, .. }) => {
                    *centered = value != 0.0;
                    true
                }
                ("lamda1", Rule::Ftrl { lamda1, .. }) => set(lamda1, value),
                ("beta", Rule::Ftrl { beta, .. }) => set(beta, value),
                _ => false,
            };
            if !known {
                return Err(crate::Error::InvalidArgument(format!(
                    "optimizer '{name}' has no parameter '{key}'"
                )));
            }
        }
        Ok(opt)
    }

    /// Sets SGD momentum (ignored by other rules).
    pub fn momentum(mut self, m: f32) -> Self {
        if let Rule::Sgd { momentum, .. } = &mut self.rule {
            *momentum = m;
        }
        self
    }

    /// Makes RMSProp the centered variant (Graves' `rmspropalex`, MXNet's
    /// `centered=True`; ignored by other rules).
    pub fn centered(mut self, on: bool) -> Self {
        if let Rule::RmsProp { centered, .. } = &mut self.rule {
            *centered = on;
        }
        self
    }

    /// Sets weight decay.
    pub fn wd(mut self, wd: f32) -> Self {
        self.wd = wd;
        self
    }

    /// Clips each gradient element to `[-c, c]` after rescaling.
    pub fn clip_gradient(mut self, c: f32) -> Self {
        self.clip_gradient = Some(c);
        self
    }

    /// Uses a learning-rate schedule.
    pub fn scheduler(mut self, s: impl LrScheduler + 'static) -> Self {
        self.scheduler = Some(Arc::new(s));
        self
    }

    /// Checks the hyperparameters: a finite learning rate and weight decay >= 0, a
    /// clipping bound >= 0, momentum and decay rates in [0, 1), epsilons > 0. The error
    /// names the value. [`Trainer::new`](super::Trainer::new) calls it.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: &str, value: f32, want: &str| {
            Err(crate::Error::InvalidArgument(format!(
                "optimizer {}: {what} must be {want}, got {value}",
                self.rule.name()
            )))
        };
        let non_negative = |v: f32| v.is_finite() && v >= 0.0;
        let rate = |v: f32| (0.0..1.0).contains(&v);
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !non_negative(self.lr) {
            return bad("learning rate", self.lr, "finite and >= 0");
        }
        if !non_negative(self.wd) {
            return bad("weight decay", self.wd, "finite and >= 0");
        }
        if let Some(c) = self.clip_gradient.filter(|c| c.is_nan() || *c < 0.0) {
            return bad("clip_gradient", c, "a bound >= 0");
        }
        let checks: Vec<(&str, f32, bool, &str)> = match self.rule {
            Rule::Sgd { momentum, .. } => vec![("momentum", momentum, rate(momentum), "in [0, 1)")],
            Rule::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => vec![
                ("beta1", beta1, rate(beta1), "in [0, 1)"),
                ("beta2", beta2, rate(beta2), "in [0, 1)"),
                ("epsilon", epsilon, positive(epsilon), "finite and > 0"),
            ],
            Rule::AdaGrad { epsilon } => {
                vec![("epsilon", epsilon, positive(epsilon), "finite and > 0")]
            }
            Rule::RmsProp {
                gamma1,
                gamma2,
                epsilon,
                ..
            } => vec![
                ("gamma1", gamma1, rate(gamma1), "in [0, 1)"),
                ("gamma2", gamma2, rate(gamma2), "in [0, 1)"),
                ("epsilon", epsilon, positive(epsilon), "finite and > 0"),
            ],
            Rule::Ftrl { lamda1, beta } => vec![
                ("lamda1", lamda1, non_negative(lamda1), "finite and >= 0"),
                ("beta", beta, non_negative(beta), "finite and >= 0"),
            ],
        };
        match checks.into_iter().find(|(_, _, ok, _)| !ok) {
            Some((what, value, _, want)) => bad(what, value, want),
            None => Ok(()),
        }
    }

    /// The learning rate for update number `t` (1-based).
    pub fn lr_at(&self, t: u64) -> f32 {
        match &self.scheduler {
            Some(s) => s.lr(t),
            None => self.lr,
        }
    }
}

fn set(field: &mut f32, value: f32) -> bool {
    *field = value;
    true
}
