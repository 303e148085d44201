//! Regression losses: L2, L1, Huber.

use super::{label_like, Loss};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `½ (pred − label)²` (Gluon's `L2Loss`; note the ½).
#[derive(Clone, Debug, Default)]
pub struct L2Loss {
    weight: Option<f32>,
}

impl L2Loss {
    weighted!();
    /// Unweighted.
    pub fn new() -> Self {
        Self::default()
    }
    /// With a global weight.
    pub fn with_weight(weight: f32) -> Self {
        L2Loss {
            weight: Some(weight),
        }
    }
}

impl Loss for L2Loss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let label = label_like(pred, label, "L2Loss")?;
        pred.sub(&label)?.square()?.mul_scalar(0.5)
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "l2loss"
    }
}

/// `|pred − label|` (Gluon's `L1Loss`).
#[derive(Clone, Debug, Default)]
pub struct L1Loss {
    weight: Option<f32>,
}

impl L1Loss {
    weighted!();
    /// Unweighted.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Loss for L1Loss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let label = label_like(pred, label, "L1Loss")?;
        pred.sub(&label)?.abs()
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "l1loss"
    }
}

/// Smooth L1: `½ d²/ρ` for `|d| ≤ ρ`, else `|d| − ½ρ` (Gluon's `HuberLoss(rho=1)`).
#[derive(Clone, Debug)]
pub struct HuberLoss {
    rho: f32,
    weight: Option<f32>,
}

impl HuberLoss {
    weighted!();
    /// With threshold `rho > 0`.
    pub fn new(rho: f32) -> Result<Self> {
        if rho <= 0.0 || !rho.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "HuberLoss rho must be positive, got {rho}"
            )));
        }
        Ok(HuberLoss { rho, weight: None })
    }
}

impl Loss for HuberLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let label = label_like(pred, label, "HuberLoss")?;
        let d = pred.sub(&label)?.abs()?;
        let quad = d.square()?.mul_scalar(0.5 / self.rho)?;
        let lin = d.add_scalar(-0.5 * self.rho)?;
        let big = d.gt_scalar(self.rho)?;
        // big·lin + (1 − big)·quad
        big.mul(&lin)?.add(&big.affine(-1.0, 1.0)?.mul(&quad)?)
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "huberloss"
    }
}
