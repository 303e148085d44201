//! SGD, with momentum (MXNet's `sgd_mom_update`) or Nesterov momentum (MXNet's `nag`).

use super::optimizer::{
    check_all, fused_steps, names, BuiltIn, Configurable, Hyper, Optimizer, StepArgs,
};
use crate::error::Result;
use crate::tensor::row_update::{DeviceKernel, RowKernel};

/// SGD: `w -= lr · (g + wd · w)`; with momentum `m = momentum · m − lr · (g + wd · w)`,
/// `w += m`; Nesterov (`nag`): `m = momentum · m + g'`, `w -= lr · (g' + momentum · m)`
/// with `g' = g + wd · w`.
#[derive(Clone, Debug)]
pub struct Sgd {
    hyper: Hyper,
    momentum: f32,
    nesterov: bool,
}

impl Sgd {
    /// Plain SGD (add `.momentum(m)` for momentum).
    pub fn new(lr: f32) -> Sgd {
        Sgd {
            hyper: Hyper::new(lr),
            momentum: 0.0,
            nesterov: false,
        }
    }

    /// Nesterov accelerated SGD (MXNet's `nag`) with momentum `m`.
    pub fn nag(lr: f32, momentum: f32) -> Sgd {
        Sgd {
            nesterov: true,
            ..Sgd::new(lr).momentum(momentum)
        }
    }

    /// Sets the momentum.
    pub fn momentum(mut self, m: f32) -> Sgd {
        self.momentum = m;
        self
    }

    fn kernels(&self, a: &StepArgs) -> (SgdRow, DeviceKernel) {
        let row = SgdRow {
            lr: a.lr,
            wd: a.wd,
            rescale: a.rescale,
            clip: a.clip_bound(),
            momentum: self.momentum,
            nesterov: self.nesterov && self.momentum != 0.0,
        };
        let kernel = match row.nesterov {
            true => "nag_update_f32",
            false => "sgd_update_f32",
        };
        let scalars = [a.lr, self.momentum, a.wd, a.rescale, a.device_clip()];
        let device = DeviceKernel::new(kernel, scalars);
        (row, device)
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        if self.nesterov {
            "nag"
        } else {
            "sgd"
        }
    }
    fn hyper(&self) -> &Hyper {
        &self.hyper
    }
    fn hyper_mut(&mut self) -> &mut Hyper {
        &mut self.hyper
    }
    fn num_states(&self) -> usize {
        usize::from(self.momentum != 0.0)
    }
    fn state_names(&self) -> Vec<String> {
        names(&["momentum"][..self.num_states()])
    }
    fn validate(&self) -> Result<()> {
        self.hyper.validate(self.name())?;
        let m = self.momentum;
        check_all(
            self.name(),
            &[("momentum", m, (0.0..1.0).contains(&m), "in [0, 1)")],
        )
    }
    fused_steps!();
}

impl Configurable for Sgd {
    fn set(&mut self, key: &str, value: f32) -> bool {
        match key {
            "momentum" => self.momentum = value,
            _ => return false,
        }
        true
    }
}

impl BuiltIn for Sgd {
    fn device_kernel(&self, a: &StepArgs) -> DeviceKernel {
        self.kernels(a).1
    }
}

/// One row of SGD on the CPU.
#[derive(Clone, Copy)]
struct SgdRow {
    lr: f32,
    wd: f32,
    rescale: f32,
    clip: f32,
    momentum: f32,
    nesterov: bool,
}

impl RowKernel for SgdRow {
    fn num_states(&self) -> usize {
        usize::from(self.momentum != 0.0)
    }

    #[inline(always)]
    fn row(self, w: &mut [f32], [m, ..]: [Option<&mut [f32]>; 3], g: &[f32]) {
        let SgdRow {
            lr,
            wd,
            rescale,
            clip,
            momentum,
            nesterov,
        } = self;
        let grad = |v: f32| StepArgs::scaled_grad(rescale, clip, v);
        match m {
            Some(m) if momentum != 0.0 => {
                if nesterov {
                    for ((w, m), &g) in w.iter_mut().zip(m).zip(g) {
                        let g = grad(g) + wd * *w;
                        *m = momentum * *m + g;
                        *w -= lr * (g + momentum * *m);
                    }
                } else {
                    for ((w, m), &g) in w.iter_mut().zip(m).zip(g) {
                        *m = momentum * *m - lr * (grad(g) + wd * *w);
                        *w += *m;
                    }
                }
            }
            _ => {
                for (w, &g) in w.iter_mut().zip(g) {
                    *w -= lr * (grad(g) + wd * *w);
                }
            }
        }
    }
}
