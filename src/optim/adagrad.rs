//! AdaGrad (MXNet's definition).

use super::optimizer::{
    check_all, fused_steps, names, BuiltIn, Configurable, Hyper, Optimizer, StepArgs,
};
use crate::error::Result;
use crate::tensor::row_update::{DeviceKernel, RowKernel};

/// AdaGrad: `h += g²`, `w -= lr · (g / √(h + ε) + wd · w)`.
#[derive(Clone, Debug)]
pub struct AdaGrad {
    hyper: Hyper,
    epsilon: f32,
}

impl AdaGrad {
    /// AdaGrad with ε 1e-7 (Gluon's default).
    pub fn new(lr: f32) -> AdaGrad {
        AdaGrad {
            hyper: Hyper::new(lr),
            epsilon: 1e-7,
        }
    }

    /// Sets ε.
    pub fn epsilon(mut self, epsilon: f32) -> AdaGrad {
        self.epsilon = epsilon;
        self
    }

    fn kernels(&self, a: &StepArgs) -> (AdaGradRow, DeviceKernel) {
        let row = AdaGradRow {
            lr: a.lr,
            wd: a.wd,
            rescale: a.rescale,
            clip: a.clip_bound(),
            epsilon: self.epsilon,
        };
        let scalars = [a.lr, self.epsilon, a.wd, a.rescale, a.device_clip()];
        let device = DeviceKernel::new("adagrad_update_f32", scalars);
        (row, device)
    }
}

impl Optimizer for AdaGrad {
    fn name(&self) -> &'static str {
        "adagrad"
    }
    fn hyper(&self) -> &Hyper {
        &self.hyper
    }
    fn hyper_mut(&mut self) -> &mut Hyper {
        &mut self.hyper
    }
    fn num_states(&self) -> usize {
        1
    }
    fn state_names(&self) -> Vec<String> {
        names(&["history"])
    }
    fn validate(&self) -> Result<()> {
        self.hyper.validate(self.name())?;
        let e = self.epsilon;
        check_all(
            self.name(),
            &[("epsilon", e, e.is_finite() && e > 0.0, "finite and > 0")],
        )
    }
    fused_steps!();
}

impl Configurable for AdaGrad {
    fn set(&mut self, key: &str, value: f32) -> bool {
        match key {
            // Gluon names it `eps`.
            "epsilon" | "eps" => self.epsilon = value,
            _ => return false,
        }
        true
    }
}

impl BuiltIn for AdaGrad {
    fn device_kernel(&self, a: &StepArgs) -> DeviceKernel {
        self.kernels(a).1
    }
}

/// One row of AdaGrad on the CPU.
#[derive(Clone, Copy)]
struct AdaGradRow {
    lr: f32,
    wd: f32,
    rescale: f32,
    clip: f32,
    epsilon: f32,
}

impl RowKernel for AdaGradRow {
    fn num_states(&self) -> usize {
        1
    }

    #[inline(always)]
    fn row(self, w: &mut [f32], [h, ..]: [Option<&mut [f32]>; 3], g: &[f32]) {
        let AdaGradRow {
            lr,
            wd,
            rescale,
            clip,
            epsilon,
        } = self;
        let Some(h) = h else { return };
        for ((w, h), &g) in w.iter_mut().zip(h).zip(g) {
            let g = StepArgs::scaled_grad(rescale, clip, g);
            *h += g * g;
            *w -= lr * (g / (*h + epsilon).sqrt() + wd * *w);
        }
    }
}
