//! Adam (MXNet's `adam_update`: L2 weight decay added to the gradient) and AdamW
//! (decoupled weight decay).

use super::optimizer::{
    check_all, fused_steps, names, BuiltIn, Configurable, Hyper, Optimizer, StepArgs,
};
use crate::error::Result;
use crate::tensor::row_update::{DeviceKernel, RowKernel};

/// Adam's bias-corrected step size at step `t` (1-based), as MXNet's Python optimizer
/// computes it: `lr · sqrt(1 − β₂^t) / (1 − β₁^t)`, in f64, for the CPU and the CUDA
/// update alike.
pub fn adam_lr_t(lr: f32, beta1: f32, beta2: f32, t: u64) -> f32 {
    let t = t.max(1) as f64;
    let c1 = 1.0 - f64::from(beta1).powf(t);
    let c2 = 1.0 - f64::from(beta2).powf(t);
    (f64::from(lr) * c2.sqrt() / c1) as f32
}

/// Adam: `m = β₁m + (1 − β₁)g`, `v = β₂v + (1 − β₂)g²`, `w -= lr_t · m / (√v + ε)` with
/// `g = clip(rescale · grad + wd · w)` (MXNet's order: the decay term is clipped too); AdamW (`decoupled_wd`) instead subtracts `lr · wd · w` from
/// the weight directly.
#[derive(Clone, Debug)]
pub struct Adam {
    hyper: Hyper,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    decoupled_wd: bool,
}

impl Adam {
    /// Adam with Gluon's defaults (β₁ 0.9, β₂ 0.999, ε 1e-8).
    pub fn new(lr: f32) -> Adam {
        Adam {
            hyper: Hyper::new(lr),
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            decoupled_wd: false,
        }
    }

    /// AdamW: Adam with decoupled weight decay (default wd 0.01).
    pub fn adamw(lr: f32) -> Adam {
        let mut a = Adam::new(lr);
        a.decoupled_wd = true;
        a.hyper.wd = 0.01;
        a
    }

    /// Sets β₁ and β₂.
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Adam {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets ε.
    pub fn epsilon(mut self, epsilon: f32) -> Adam {
        self.epsilon = epsilon;
        self
    }

    fn kernels(&self, a: &StepArgs) -> (AdamRow, DeviceKernel) {
        let lr_t = adam_lr_t(a.lr, self.beta1, self.beta2, a.t);
        // AdamW decays the weight directly; Adam adds the decay to the gradient.
        let (wd_grad, wd_decay) = match self.decoupled_wd {
            true => (0.0, a.lr * a.wd),
            false => (a.wd, 0.0),
        };
        let row = AdamRow {
            lr_t,
            wd_grad,
            wd_decay,
            rescale: a.rescale,
            clip: a.clip_bound(),
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
        };
        let (kernel, wd) = match self.decoupled_wd {
            true => ("adamw_update_f32", wd_decay),
            false => ("adam_update_f32", wd_grad),
        };
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        let scalars = [lr_t, b1, b2, eps, wd, a.rescale, a.device_clip()];
        let device = DeviceKernel::new(kernel, scalars);
        (row, device)
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        if self.decoupled_wd {
            "adamw"
        } else {
            "adam"
        }
    }
    fn hyper(&self) -> &Hyper {
        &self.hyper
    }
    fn hyper_mut(&mut self) -> &mut Hyper {
        &mut self.hyper
    }
    fn num_states(&self) -> usize {
        2
    }
    fn state_names(&self) -> Vec<String> {
        names(&["mean", "var"])
    }
    fn validate(&self) -> Result<()> {
        self.hyper.validate(self.name())?;
        let rate = |v: f32| (0.0..1.0).contains(&v);
        let (b1, b2, e) = (self.beta1, self.beta2, self.epsilon);
        check_all(
            self.name(),
            &[
                ("beta1", b1, rate(b1), "in [0, 1)"),
                ("beta2", b2, rate(b2), "in [0, 1)"),
                ("epsilon", e, e.is_finite() && e > 0.0, "finite and > 0"),
            ],
        )
    }
    fused_steps!();
}

impl Configurable for Adam {
    fn set(&mut self, key: &str, value: f32) -> bool {
        match key {
            "beta1" => self.beta1 = value,
            "beta2" => self.beta2 = value,
            "epsilon" => self.epsilon = value,
            _ => return false,
        }
        true
    }
}

impl BuiltIn for Adam {
    fn device_kernel(&self, a: &StepArgs) -> DeviceKernel {
        self.kernels(a).1
    }
}

/// One row of Adam on the CPU.
#[derive(Clone, Copy)]
struct AdamRow {
    lr_t: f32,
    wd_grad: f32,
    wd_decay: f32,
    rescale: f32,
    clip: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
}

impl RowKernel for AdamRow {
    fn num_states(&self) -> usize {
        2
    }

    #[inline(always)]
    fn row(self, w: &mut [f32], [m, v, _]: [Option<&mut [f32]>; 3], g: &[f32]) {
        let AdamRow {
            lr_t,
            wd_grad,
            wd_decay,
            rescale,
            clip,
            beta1,
            beta2,
            epsilon,
        } = self;
        let (Some(m), Some(v)) = (m, v) else { return };
        for (((w, m), v), &g) in w.iter_mut().zip(m).zip(v).zip(g) {
            // MXNet's adam_update clips after adding the decay term.
            let g = StepArgs::clipped(clip, rescale * g + wd_grad * *w);
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *w -= lr_t * *m / (v.sqrt() + epsilon) + wd_decay * *w;
        }
    }
}
