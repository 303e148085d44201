//! FTRL-proximal (MXNet's `ftrl_update`).

use super::optimizer::{
    check_all, fused_steps, names, BuiltIn, Configurable, Hyper, Optimizer, StepArgs,
};
use crate::error::Result;
use crate::tensor::row_update::{DeviceKernel, RowKernel};

/// FTRL-proximal: `z += g − (√(n + g²) − √n) · w / lr`, `n += g²`,
/// `w = (sign(z) · λ₁ − z) / ((β + √n) / lr + wd)` where `|z| > λ₁`, else 0.
#[derive(Clone, Debug)]
pub struct Ftrl {
    hyper: Hyper,
    lamda1: f32,
    beta: f32,
}

impl Ftrl {
    /// FTRL with λ₁ 0.01 and β 1.
    pub fn new(lr: f32) -> Ftrl {
        Ftrl {
            hyper: Hyper::new(lr),
            lamda1: 0.01,
            beta: 1.0,
        }
    }

    /// Sets the L1 strength λ₁ and β.
    pub fn lamda1_beta(mut self, lamda1: f32, beta: f32) -> Ftrl {
        self.lamda1 = lamda1;
        self.beta = beta;
        self
    }

    fn kernels(&self, a: &StepArgs) -> (FtrlRow, DeviceKernel) {
        let row = FtrlRow {
            lr: a.lr,
            wd: a.wd,
            rescale: a.rescale,
            clip: a.clip_bound(),
            lamda1: self.lamda1,
            beta: self.beta,
        };
        let scalars = [
            a.lr,
            self.lamda1,
            self.beta,
            a.wd,
            a.rescale,
            a.device_clip(),
        ];
        let device = DeviceKernel::new("ftrl_update_f32", scalars);
        (row, device)
    }
}

impl Optimizer for Ftrl {
    fn name(&self) -> &'static str {
        "ftrl"
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
        names(&["z", "n"])
    }
    fn validate(&self) -> Result<()> {
        self.hyper.validate(self.name())?;
        let non_negative = |v: f32| v.is_finite() && v >= 0.0;
        let (l, b) = (self.lamda1, self.beta);
        check_all(
            self.name(),
            &[
                ("lamda1", l, non_negative(l), "finite and >= 0"),
                ("beta", b, non_negative(b), "finite and >= 0"),
            ],
        )
    }
    fused_steps!();
}

impl Configurable for Ftrl {
    fn set(&mut self, key: &str, value: f32) -> bool {
        match key {
            "lamda1" => self.lamda1 = value,
            "beta" => self.beta = value,
            _ => return false,
        }
        true
    }
}

impl BuiltIn for Ftrl {
    fn device_kernel(&self, a: &StepArgs) -> DeviceKernel {
        self.kernels(a).1
    }
}

/// One row of FTRL on the CPU.
#[derive(Clone, Copy)]
struct FtrlRow {
    lr: f32,
    wd: f32,
    rescale: f32,
    clip: f32,
    lamda1: f32,
    beta: f32,
}

impl RowKernel for FtrlRow {
    fn num_states(&self) -> usize {
        2
    }

    #[inline(always)]
    fn row(self, w: &mut [f32], [z, n, _]: [Option<&mut [f32]>; 3], g: &[f32]) {
        let FtrlRow {
            lr,
            wd,
            rescale,
            clip,
            lamda1,
            beta,
        } = self;
        let (Some(z), Some(n)) = (z, n) else { return };
        for (((w, z), n), &g) in w.iter_mut().zip(z).zip(n).zip(g) {
            let g = StepArgs::scaled_grad(rescale, clip, g);
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
