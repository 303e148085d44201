//! RMSProp, plain or Graves' centered variant (MXNet's `rmspropalex`).

use super::optimizer::{
    check_all, fused_steps, names, BuiltIn, Configurable, Hyper, Optimizer, StepArgs,
};
use crate::error::Result;
use crate::tensor::row_update::{DeviceKernel, RowKernel};

/// RMSProp: `n = (1 − γ₁)g² + γ₁n`, `w -= lr · g / √(n + ε)`; centered: also
/// `ḡ = (1 − γ₁)g + γ₁ḡ`, `δ = γ₂δ − lr · g / √(n − ḡ² + ε)`, `w += δ`, with
/// `g = clip(rescale · grad + wd · w)` (MXNet's order: the decay term is clipped too).
#[derive(Clone, Debug)]
pub struct RmsProp {
    hyper: Hyper,
    gamma1: f32,
    gamma2: f32,
    epsilon: f32,
    centered: bool,
}

impl RmsProp {
    /// RMSProp with γ₁ 0.9, γ₂ 0.9, ε 1e-8, not centered.
    pub fn new(lr: f32) -> RmsProp {
        RmsProp {
            hyper: Hyper::new(lr),
            gamma1: 0.9,
            gamma2: 0.9,
            epsilon: 1e-8,
            centered: false,
        }
    }

    /// Makes it the centered variant (Graves' `rmspropalex`, MXNet's `centered=True`).
    pub fn centered(mut self, on: bool) -> RmsProp {
        self.centered = on;
        self
    }

    /// Sets γ₁ (squared-gradient decay) and γ₂ (the centered variant's momentum).
    pub fn gammas(mut self, gamma1: f32, gamma2: f32) -> RmsProp {
        self.gamma1 = gamma1;
        self.gamma2 = gamma2;
        self
    }

    fn kernels(&self, a: &StepArgs) -> (RmsPropRow, DeviceKernel) {
        let row = RmsPropRow {
            lr: a.lr,
            wd: a.wd,
            rescale: a.rescale,
            clip: a.clip_bound(),
            gamma1: self.gamma1,
            gamma2: self.gamma2,
            epsilon: self.epsilon,
            centered: self.centered,
        };
        let (lr, wd, rescale, clip) = (a.lr, a.wd, a.rescale, a.device_clip());
        let (g1, g2, eps) = (self.gamma1, self.gamma2, self.epsilon);
        let device = match self.centered {
            true => DeviceKernel::new(
                "rmsprop_centered_update_f32",
                [lr, g1, g2, eps, wd, rescale, clip],
            ),
            false => DeviceKernel::new("rmsprop_update_f32", [lr, g1, eps, wd, rescale, clip]),
        };
        (row, device)
    }
}

impl Optimizer for RmsProp {
    fn name(&self) -> &'static str {
        "rmsprop"
    }
    fn hyper(&self) -> &Hyper {
        &self.hyper
    }
    fn hyper_mut(&mut self) -> &mut Hyper {
        &mut self.hyper
    }
    fn num_states(&self) -> usize {
        if self.centered {
            3
        } else {
            1
        }
    }
    fn state_names(&self) -> Vec<String> {
        names(&["n", "g", "delta"][..self.num_states()])
    }
    fn validate(&self) -> Result<()> {
        self.hyper.validate(self.name())?;
        let rate = |v: f32| (0.0..1.0).contains(&v);
        let (g1, g2, e) = (self.gamma1, self.gamma2, self.epsilon);
        check_all(
            self.name(),
            &[
                ("gamma1", g1, rate(g1), "in [0, 1)"),
                ("gamma2", g2, rate(g2), "in [0, 1)"),
                ("epsilon", e, e.is_finite() && e > 0.0, "finite and > 0"),
            ],
        )
    }
    fused_steps!();
}

impl Configurable for RmsProp {
    fn set(&mut self, key: &str, value: f32) -> bool {
        match key {
            "gamma1" => self.gamma1 = value,
            "gamma2" => self.gamma2 = value,
            "epsilon" => self.epsilon = value,
            "centered" => self.centered = value != 0.0,
            _ => return false,
        }
        true
    }
}

impl BuiltIn for RmsProp {
    fn device_kernel(&self, a: &StepArgs) -> DeviceKernel {
        self.kernels(a).1
    }
}

/// One row of RMSProp on the CPU.
#[derive(Clone, Copy)]
struct RmsPropRow {
    lr: f32,
    wd: f32,
    rescale: f32,
    clip: f32,
    gamma1: f32,
    gamma2: f32,
    epsilon: f32,
    centered: bool,
}

impl RowKernel for RmsPropRow {
    fn num_states(&self) -> usize {
        if self.centered {
            3
        } else {
            1
        }
    }

    #[inline(always)]
    fn row(self, w: &mut [f32], states: [Option<&mut [f32]>; 3], g: &[f32]) {
        let RmsPropRow {
            lr,
            wd,
            rescale,
            clip,
            gamma1,
            gamma2,
            epsilon,
            centered,
        } = self;
        // MXNet's rmsprop updates clip after adding the decay term.
        let grad = |v: f32, w: f32| StepArgs::clipped(clip, rescale * v + wd * w);
        match (centered, states) {
            (true, [Some(n), Some(ga), Some(dl)]) => {
                let it = w.iter_mut().zip(n).zip(ga).zip(dl);
                for ((((w, n), ga), dl), &g) in it.zip(g) {
                    let g = grad(g, *w);
                    *n = (1.0 - gamma1) * g * g + gamma1 * *n;
                    *ga = (1.0 - gamma1) * g + gamma1 * *ga;
                    *dl = gamma2 * *dl - lr * g / (*n - *ga * *ga + epsilon).sqrt();
                    *w += *dl;
                }
            }
            (false, [Some(n), ..]) => {
                for ((w, n), &g) in w.iter_mut().zip(n).zip(g) {
                    let g = grad(g, *w);
                    *n = (1.0 - gamma1) * g * g + gamma1 * *n;
                    *w -= lr * g / (*n + epsilon).sqrt();
                }
            }
            // `update_rows` checked the state count, so no row lacks its states.
            _ => {}
        }
    }
}
