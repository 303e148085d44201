//! Update rules: the per-element math of each optimizer, applied to all rows of a
//! parameter or only to the rows of a row-sparse gradient (lazy update, as MXNet's
//! `lazy_update=True`: rows absent from the gradient keep their values and state).

use crate::error::{Error, Result};

/// An optimizer's update rule and its hyperparameters (learning rate and weight decay
/// live in [`StepArgs`]).
#[derive(Clone, Debug, PartialEq)]
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
    let (lr, wd) = (a.lr, a.wd);
    // The rescaled, clipped gradient element.
    let grad = |v: f32| {
        let v = a.rescale * v;
        match a.clip {
            Some(c) => v.clamp(-c, c),
            None => v,
        }
    };
    // The rule is matched once, outside the loops, so each inner loop is plain arithmetic.
    for (d, s) in pairs {
        let (lo, hi) = (d * dim, (d + 1) * dim);
        let gr = &g[s * dim..(s + 1) * dim];
        let w = &mut w[lo..hi];
        match *rule {
            Rule::Sgd { momentum: 0.0, .. } => {
                for (w, &g) in w.iter_mut().zip(gr) {
                    *w -= lr * (grad(g) + wd * *w);
                }
            }
            Rule::Sgd { momentum, nesterov } => {
                let m = &mut states[0][lo..hi];
                for ((w, m), &g) in w.iter_mut().zip(m).zip(gr) {
                    let g = grad(g) + wd * *w;
                    if nesterov {
                        *m = momentum * *m + g;
                        *w -= lr * (g + momentum * *m);
                    } else {
                        *m = momentum * *m - lr * g;
                        *w += *m;
                    }
                }
            }
            Rule::Adam {
                beta1,
                beta2,
                epsilon,
                decoupled_wd,
            } => {
                let t = a.t.max(1) as i32;
                let lr_t = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
                let (ms, vs) = states.split_at_mut(1);
                let (m, v) = (&mut ms[0][lo..hi], &mut vs[0][lo..hi]);
                for (((w, m), v), &g) in w.iter_mut().zip(m).zip(v).zip(gr) {
                    let g = if decoupled_wd {
                        grad(g)
                    } else {
                        grad(g) + wd * *w
                    };
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let decay = if decoupled_wd { lr * wd * *w } else { 0.0 };
                    *w -= lr_t * *m / (v.sqrt() + epsilon) + decay;
                }
            }
            Rule::AdaGrad { epsilon } => {
                let h = &mut states[0][lo..hi];
                for ((w, h), &g) in w.iter_mut().zip(h).zip(gr) {
                    let g = grad(g);
                    *h += g * g;
                    *w -= lr * (g / (*h + epsilon).sqrt() + wd * *w);
                }
            }
            Rule::RmsProp {
                gamma1,
                gamma2,
                epsilon,
                centered,
            } => {
                if centered {
                    let (ns, rest) = states.split_at_mut(1);
                    let (gas, ds) = rest.split_at_mut(1);
                    let (n, ga, dl) = (&mut ns[0][lo..hi], &mut gas[0][lo..hi], &mut ds[0][lo..hi]);
                    for ((((w, n), ga), dl), &g) in w.iter_mut().zip(n).zip(ga).zip(dl).zip(gr) {
                        let g = grad(g) + wd * *w;
                        *n = (1.0 - gamma1) * g * g + gamma1 * *n;
                        *ga = (1.0 - gamma1) * g + gamma1 * *ga;
                        *dl = gamma2 * *dl - lr * g / (*n - *ga * *ga + epsilon).sqrt();
                        *w += *dl;
                    }
                } else {
                    let n = &mut states[0][lo..hi];
                    for ((w, n), &g) in w.iter_mut().zip(n).zip(gr) {
                        let g = grad(g) + wd * *w;
                        *n = (1.0 - gamma1) * g * g + gamma1 * *n;
                        *w -= lr * g / (*n + epsilon).sqrt();
                    }
                }
            }
            Rule::Ftrl { lamda1, beta } => {
                let (zs, ns) = states.split_at_mut(1);
                let (z, n) = (&mut zs[0][lo..hi], &mut ns[0][lo..hi]);
                for (((w, z), n), &g) in w.iter_mut().zip(z).zip(n).zip(gr) {
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
        }
    }
    Ok(())
}
