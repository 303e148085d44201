//! Margin and pairwise losses: hinge, cosine embedding, triplet.

use super::{apply_weighting, batch_mean, label_like, Loss};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `max(0, margin − pred·label)` with labels −1/1 (Gluon's `HingeLoss`, margin 1).
#[derive(Clone, Debug)]
pub struct HingeLoss {
    margin: f32,
    weight: Option<f32>,
}

impl Default for HingeLoss {
    fn default() -> Self {
        HingeLoss {
            margin: 1.0,
            weight: None,
        }
    }
}

impl HingeLoss {
    weighted!();
    /// Margin 1.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, m: f32) -> Self {
        self.margin = m;
        self
    }
}

impl Loss for HingeLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let y = label_like(pred, label, "HingeLoss")?;
        pred.mul(&y)?.affine(-1.0, self.margin)?.relu()
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "hingeloss"
    }
}

fn check_same(a: &Tensor, b: &Tensor, op: &'static str) -> Result<()> {
    if a.shape() != b.shape() || a.rank() < 2 {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
        });
    }
    Ok(())
}

/// For pairs of vectors and labels 1 (similar) / −1 (dissimilar; any other label adds 0):
/// `1 − cos` or `max(0, cos − margin)`, with `cos = a·b / max(‖a‖‖b‖, 1e-12)` (Gluon's
/// `CosineEmbeddingLoss`; Gluon returns `[batch, 1]`, boson `[batch]` as every loss).
#[derive(Clone, Debug, Default)]
pub struct CosineEmbeddingLoss {
    margin: f32,
    weight: Option<f32>,
}

impl CosineEmbeddingLoss {
    weighted!();
    /// Margin 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, m: f32) -> Self {
        self.margin = m;
        self
    }

    /// Per-sample loss for `[batch, dim]` inputs and `[batch]` labels.
    pub fn forward(
        &self,
        a: &Tensor,
        b: &Tensor,
        label: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<Tensor> {
        check_same(a, b, "CosineEmbeddingLoss")?;
        let last = a.rank() - 1;
        let dot = a.mul(b)?.sum_axis(last, false)?;
        // ‖x‖ (the 1e-24 keeps the gradient of a zero vector finite without changing
        // any other norm in f32).
        let norm = |x: &Tensor| x.square()?.sum_axis(last, false)?.add_scalar(1e-24)?.sqrt();
        let cos = dot.div(&norm(a)?.mul(&norm(b)?)?.clip(1e-12, f32::MAX)?)?;
        let y = label_like(&cos, label, "CosineEmbeddingLoss labels")?;
        let is = |v: f32| y.eq(&Tensor::full(v, &[], y.device())?);
        let sim = cos.affine(-1.0, 1.0)?;
        let dis = cos.add_scalar(-self.margin)?.relu()?;
        let l = is(1.0)?.mul(&sim)?.add(&is(-1.0)?.mul(&dis)?)?;
        batch_mean(apply_weighting(l, self.weight, sample_weight)?)
    }
}

/// `max(0, ‖a − p‖² − ‖a − n‖² + margin)` (Gluon's `TripletLoss`, margin 1).
#[derive(Clone, Debug)]
pub struct TripletLoss {
    margin: f32,
    weight: Option<f32>,
}

impl Default for TripletLoss {
    fn default() -> Self {
        TripletLoss {
            margin: 1.0,
            weight: None,
        }
    }
}

impl TripletLoss {
    weighted!();
    /// Margin 1.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the margin.
    pub fn margin(mut self, m: f32) -> Self {
        self.margin = m;
        self
    }

    /// Per-sample loss for anchor, positive and negative `[batch, ...]` inputs
    /// (`sample_weight` is boson's: Gluon's `TripletLoss` takes none).
    pub fn forward(
        &self,
        anchor: &Tensor,
        positive: &Tensor,
        negative: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<Tensor> {
        check_same(anchor, positive, "TripletLoss positive")?;
        check_same(anchor, negative, "TripletLoss negative")?;
        let axes: Vec<usize> = (1..anchor.rank()).collect();
        let dp = anchor.sub(positive)?.square()?.sum_axes(&axes, false)?;
        let dn = anchor.sub(negative)?.square()?.sum_axes(&axes, false)?;
        let l = dp.sub(&dn)?.add_scalar(self.margin)?.relu()?;
        apply_weighting(l, self.weight, sample_weight)
    }
}
