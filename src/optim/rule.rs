//! Update rules: the per-element math of each optimizer, applied to all rows of a
//! parameter or only to the rows of a row-sparse gradient (lazy update, as MXNet's
//! `lazy_update=True`: rows absent from the gradient keep their values and state).

use crate::error::{Error, Result};
use crate::tensor::{prefetch, vectorized, Kernel};

/// An optimizer's update rule and its hyperparameters (learning rate and weight decay
/// live in [`StepArgs`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// SGD; `momentum = 0` is plain SGD. Nesterov follows MXNet's `NAG`.
    Sgd {
        /// momentum factor
        momentum: f32,
        /// Nesterov accelerated gradient
        nesterov: bool,
    },
    /// Adam with L2 weight decay added to the gradient (MXNet's `adam_update`), or
    /// decoupled weight decay (AdamW) when `decoupled_wd`.
    Adam {
        /// first-moment decay
        beta1: f32,
        /// second-moment decay
        beta2: f32,
        /// denominator epsilon
        epsilon: f32,
        /// AdamW's decoupled decay
        decoupled_wd: bool,
    },
    /// AdaGrad (MXNet's definition).
    AdaGrad {
        /// epsilon inside the square root
        epsilon: f32,
    },
    /// RMSProp; `centered` is Graves' variant (MXNet's `rmspropalex`).
    RmsProp {
        /// decay of the squared-gradient average
        gamma1: f32,
        /// momentum of the centered variant
        gamma2: f32,
        /// epsilon inside the square root
        epsilon: f32,
        /// centered variant
        centered: bool,
    },
    /// FTRL-proximal (MXNet's `ftrl_update`).
    Ftrl {
        /// L1 strength
        lamda1: f32,
        /// beta in the per-coordinate learning rate
        beta: f32,
    },
}

impl Rule {
    /// How many state tensors (each the parameter's shape) the rule keeps.
    pub fn num_states(&self) -> usize {
        match self {
            Rule::Sgd { momentum, .. } => usize::from(*momentum != 0.0),
            Rule::Adam { .. } => 2,
            Rule::AdaGrad { .. } => 1,
            Rule::RmsProp { centered, .. } => {
                if *centered {
                    3
                } else {
                    1
                }
            }
            Rule::Ftrl { .. } => 2,
        }
    }

    /// The rule's name as Gluon spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Sgd { nesterov: true, .. } => "nag",
            Rule::Sgd { .. } => "sgd",
            Rule::Adam {
                decoupled_wd: true, ..
            } => "adamw",
            Rule::Adam { .. } => "adam",
            Rule::AdaGrad { .. } => "adagrad",
            Rule::RmsProp { .. } => "rmsprop",
            Rule::Ftrl { .. } => "ftrl",
        }
    }
}

/// Per-step values shared by every parameter.
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

/// Applies `rule` to `w` (rows of `dim` values) and its `states`, in place.
/// `rows = None` updates every row with `g` of `w`'s size; otherwise `g` holds one row per
/// entry of `rows` and negative entries are padding to skip.
pub(crate) fn apply(
    rule: &Rule,
    a: &StepArgs,
    w: &mut [f32],
    states: &mut [&mut [f32]],
    g: &[f32],
    rows: Option<&[i64]>,
    dim: usize,
) -> Result<()> {
    let n_rows = w.len() / dim.max(1);
    // (destination row in w, source row in g) pairs, checked before anything changes.
    let pairs: Vec<(usize, usize)> = match rows {
        None => {
            if g.len() != w.len() {
                return Err(Error::ShapeMismatch {
                    op: "optimizer update",
                    lhs: vec![w.len()],
                    rhs: vec![g.len()],
                });
            }
            (0..n_rows).map(|r| (r, r)).collect()
        }
        Some(rows) => {
            if g.len() != rows.len() * dim {
                return Err(Error::ShapeMismatch {
                    op: "row-sparse gradient values vs rows",
                    lhs: vec![g.len()],
                    rhs: vec![rows.len(), dim],
                });
            }
            let mut pairs = Vec::with_capacity(rows.len());
            for (src, &r) in rows.iter().enumerate() {
                if r < 0 {
                    continue;
                }
                if r as usize >= n_rows {
                    return Err(Error::IndexOutOfRange {
                        what: "row-sparse gradient rows".into(),
                        index: r,
                        size: n_rows,
                    });
                }
                pairs.push((r as usize, src));
            }
            pairs
        }
    };
    if states.len() < rule.num_states() {
        return Err(Error::InvalidArgument(format!(
            "{} needs {} state tensors, got {}",
            rule.name(),
            rule.num_states(),
            states.len()
        )));
    }
    if let Some(bad) = states.iter().find(|s| s.len() != w.len()) {
        return Err(Error::ShapeMismatch {
            op: "optimizer state vs parameter",
            lhs: vec![bad.len()],
            rhs: vec![w.len()],
        });
    }
    let update = RowUpdate::new(rule, a);
    vectorized(Sweep {
        pairs: &pairs,
        dim,
        w,
        states,
        g,
        update,
    });
    Ok(())
}

/// One rule with this step's values, applied a row at a time.
#[derive(Clone, Copy)]
struct RowUpdate {
    rule: Rule,
    lr: f32,
    wd: f32,
    rescale: f32,
    /// Per-element gradient bound (`Trainer::step` checked it is >= 0); none is ±inf.
    clip: f32,
    /// Adam's bias-corrected step size.
    lr_t: f32,
}

impl RowUpdate {
    fn new(rule: &Rule, a: &StepArgs) -> RowUpdate {
        let lr_t = match *rule {
            Rule::Adam { beta1, beta2, .. } => {
                let t = a.t.max(1) as i32;
                a.lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t))
            }
            _ => a.lr,
        };
        RowUpdate {
            rule: *rule,
            lr: a.lr,
            wd: a.wd,
            rescale: a.rescale,
            clip: a.clip.unwrap_or(f32::INFINITY),
            lr_t,
        }
    }

    /// Updates weight row `w` with gradient row `g`; `s0..s2` are the rule's state rows
    /// (`None` past the rule's count). The rule is matched once per row, so each loop
    /// below is plain arithmetic over the row.
    #[inline(always)]
    fn row(self, w: &mut [f32], [s0, s1, s2]: [Option<&mut [f32]>; 3], g: &[f32]) {
        let RowUpdate {
            lr,
            wd,
            rescale,
            clip,
            lr_t,
            ..
        } = self;
        // The rescaled, clipped gradient element. Written as two selects (not `clamp`,
        // whose bounds assertion in the loop stops vectorisation); NaN stays NaN.
        let grad = |v: f32| {
            let v = rescale * v;
            if v < -clip {
                -clip
            } else if v > clip {
                clip
            } else {
                v
            }
        };
        match (self.rule, s0, s1, s2) {
            (Rule::Sgd { momentum: 0.0, .. }, ..) => {
                for (w, &g) in w.iter_mut().zip(g) {
                    *w -= lr * (grad(g) + wd * *w);
                }
            }
            (
                Rule::Sgd {
                    momentum,
                    nesterov: false,
                },
                Some(m),
                ..,
            ) => {
                for ((w, m), &g) in w.iter_mut().zip(m).zip(g) {
                    *m = momentum * *m - lr * (grad(g) + wd * *w);
                    *w += *m;
                }
            }
            (
                Rule::Sgd {
                    momentum,
                    nesterov: true,
                },
                Some(m),
                ..,
            ) => {
                for ((w, m), &g) in w.iter_mut().zip(m).zip(g) {
                    let g = grad(g) + wd * *w;
                    *m = momentum * *m + g;
                    *w -= lr * (g + momentum * *m);
                }
            }
            (
                Rule::Adam {
                    beta1,
                    beta2,
                    epsilon,
                    decoupled_wd,
                },
                Some(m),
                Some(v),
                _,
            ) => {
                // AdamW decays the weight directly; Adam adds the decay to the gradient.
                let (wd_grad, wd_decay) = if decoupled_wd {
                    (0.0, lr * wd)
                } else {
                    (wd, 0.0)
                };
                for (((w, m), v), &g) in w.iter_mut().zip(m).zip(v).zip(g) {
                    let g = grad(g) + wd_grad * *w;
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *w -= lr_t * *m / (v.sqrt() + epsilon) + wd_decay * *w;
                }
            }
            (Rule::AdaGrad { epsilon }, Some(h), ..) => {
                for ((w, h), &g) in w.iter_mut().zip(h).zip(g) {
                    let g = grad(g);
                    *h += g * g;
                    *w -= lr * (g / (*h + epsilon).sqrt() + wd * *w);
                }
            }
            (
                Rule::RmsProp {
                    gamma1,
                    gamma2,
                    epsilon,
                    centered: true,
                },
                Some(n),
                Some(ga),
                Some(dl),
            ) => {
                let it = w.iter_mut().zip(n).zip(ga).zip(dl);
                for ((((w, n), ga), dl), &g) in it.zip(g) {
                    let g = grad(g) + wd * *w;
                    *n = (1.0 - gamma1) * g * g + gamma1 * *n;
                    *ga = (1.0 - gamma1) * g + gamma1 * *ga;
                    *dl = gamma2 * *dl - lr * g / (*n - *ga * *ga + epsilon).sqrt();
                    *w += *dl;
                }
            }
            (
                Rule::RmsProp {
                    gamma1,
                    epsilon,
                    centered: false,
                    ..
                },
                Some(n),
                ..,
            ) => {
                for ((w, n), &g) in w.iter_mut().zip(n).zip(g) {
                    let g = grad(g) + wd * *w;
                    *n = (1.0 - gamma1) * g * g + gamma1 * *n;
                    *w -= lr * g / (*n + epsilon).sqrt();
                }
            }
            (Rule::Ftrl { lamda1, beta }, Some(z), Some(n), _) => {
                for (((w, z), n), &g) in w.iter_mut().zip(z).zip(n).zip(g) {
                    let g = grad(g);
                    *z += g - ((*n + g * g).sqrt() - n.sqrt()) * *w / lr;
                    *n += g * g;
                    *w = if z.abs() > lamda1 {
                        (z.signum() * lamda1 - *z) / ((beta + n.sqrt()) / lr + wd)
                    } else {
                        0.0
                    };
                }
            }
            // `apply` checked the state count against the rule, so no rule lacks a row.
            _ => {}
        }
    }
}

/// The lazy (or dense) update of every (destination row, gradient row) pair: the loop
/// `vectorized` compiles for the CPU's widest vectors.
struct Sweep<'a, 's> {
    pairs: &'a [(usize, usize)],
    dim: usize,
    w: &'a mut [f32],
    states: &'a mut [&'s mut [f32]],
    g: &'a [f32],
    update: RowUpdate,
}

impl Kernel for Sweep<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Sweep {
            pairs,
            dim,
            w,
            states,
            g,
            update,
        } = self;
        for (k, &(d, s)) in pairs.iter().enumerate() {
            // Lazy updates touch scattered rows of large tables: fetch a few rows ahead
            // so the loads overlap instead of waiting on each row in turn.
            if let Some(&(ahead, _)) = pairs.get(k + PREFETCH_AHEAD) {
                let r = ahead * dim..(ahead + 1) * dim;
                prefetch(&w[r.clone()]);
                for st in states.iter() {
                    prefetch(&st[r.clone()]);
                }
            }
            let (lo, hi) = (d * dim, (d + 1) * dim);
            let mut st = states.iter_mut();
            let rows = std::array::from_fn(|_| st.next().map(|x| &mut x[lo..hi]));
            update.row(&mut w[lo..hi], rows, &g[s * dim..(s + 1) * dim]);
        }
    }
}

/// How many rows ahead of the update the rows' cache lines are requested.
const PREFETCH_AHEAD: usize = 8;
