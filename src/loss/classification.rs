//! Classification losses: sigmoid and softmax cross-entropy, logistic, KL divergence.

use super::{label_like, Loss};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// Binary cross-entropy. From logits (default) it is computed stably as
/// `softplus(x) − x·y`; with `from_sigmoid` the input is a probability.
#[derive(Clone, Debug, Default)]
pub struct SigmoidBinaryCrossEntropyLoss {
    from_sigmoid: bool,
    weight: Option<f32>,
}

impl SigmoidBinaryCrossEntropyLoss {
    /// From logits.
    pub fn new() -> Self {
        Self::default()
    }
    /// Inputs are already probabilities.
    pub fn from_sigmoid(mut self, yes: bool) -> Self {
        self.from_sigmoid = yes;
        self
    }
}

impl Loss for SigmoidBinaryCrossEntropyLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let y = label_like(pred, label, "SigmoidBinaryCrossEntropyLoss")?;
        if self.from_sigmoid {
            // −(y·log(p+ε) + (1−y)·log(1−p+ε)), ε as Gluon uses.
            let eps = 1e-12;
            let a = y.mul(&pred.add_scalar(eps)?.log()?)?;
            let b = y
                .affine(-1.0, 1.0)?
                .mul(&pred.affine(-1.0, 1.0 + eps)?.log()?)?;
            a.add(&b)?.neg()
        } else {
            pred.softrelu()?.sub(&pred.mul(&y)?)
        }
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "sigmoidbinarycrossentropyloss"
    }
}

/// Softmax cross-entropy over the last axis with sparse (class index) labels, or dense
/// label distributions with `sparse_label(false)`.
#[derive(Clone, Debug)]
pub struct SoftmaxCrossEntropyLoss {
    sparse_label: bool,
    from_logits: bool,
    weight: Option<f32>,
}

impl Default for SoftmaxCrossEntropyLoss {
    fn default() -> Self {
        SoftmaxCrossEntropyLoss {
            sparse_label: true,
            from_logits: false,
            weight: None,
        }
    }
}

impl SoftmaxCrossEntropyLoss {
    /// Sparse labels, raw scores.
    pub fn new() -> Self {
        Self::default()
    }
    /// Labels are class indices (true) or distributions (false).
    pub fn sparse_label(mut self, yes: bool) -> Self {
        self.sparse_label = yes;
        self
    }
    /// Inputs are already log-probabilities.
    pub fn from_logits(mut self, yes: bool) -> Self {
        self.from_logits = yes;
        self
    }
}

/// Class indices as an `i64 [n]` tensor on `pred`'s device (f32 labels are converted).
pub(crate) fn class_indices(label: &Tensor) -> Result<Tensor> {
    match label.dtype() {
        DType::I64 => label.reshape(&[label.elem_count()]),
        DType::F32 => {
            let v = label.to_vec_f32()?;
            let idx: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            if let Some((&bad, _)) = v.iter().zip(&idx).find(|(&x, &i)| x != i as f32) {
                return Err(Error::InvalidArgument(format!(
                    "class label {bad} is not an integer"
                )));
            }
            Tensor::from_vec_i64(idx, &[v.len()])?.to_device(label.device())
        }
        d => Err(Error::DTypeMismatch {
            op: "class labels",
            expected: "i64 or f32".into(),
            got: d.to_string(),
        }),
    }
}

impl Loss for SoftmaxCrossEntropyLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let axis = pred
            .rank()
            .checked_sub(1)
            .ok_or_else(|| Error::InvalidShape {
                op: "SoftmaxCrossEntropyLoss",
                msg: "prediction must be at least 1-D".into(),
            })?;
        let logp = if self.from_logits {
            pred.clone()
        } else {
            pred.log_softmax(axis)?
        };
        let classes = pred.shape()[axis];
        let target = if self.sparse_label {
            let idx = class_indices(label)?;
            let rows = pred.elem_count() / classes.max(1);
            if idx.elem_count() != rows {
                return Err(Error::ShapeMismatch {
                    op: "SoftmaxCrossEntropyLoss labels",
                    lhs: pred.shape().to_vec(),
                    rhs: label.shape().to_vec(),
                });
            }
            Tensor::one_hot(&idx, classes)?.reshape(pred.shape())?
        } else {
            label_like(pred, label, "SoftmaxCrossEntropyLoss")?
        };
        // A masked class (logit −inf, e.g. an item a user has seen) has log-probability
        // −inf and target 0; clamped to the lowest finite value it adds 0, not NaN.
        logp.clip(f32::MIN, f32::MAX)?
            .mul(&target)?
            .sum_axis(axis, true)?
            .neg()
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "softmaxcrossentropyloss"
    }
}

/// How `LogisticLoss` reads labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelFormat {
    /// Labels are −1 or 1.
    Signed,
    /// Labels are 0 or 1.
    Binary,
}

/// `log(1 + exp(−pred·label))` for signed labels (Gluon's `LogisticLoss`).
#[derive(Clone, Debug)]
pub struct LogisticLoss {
    format: LabelFormat,
    weight: Option<f32>,
}

impl LogisticLoss {
    /// With the given label format.
    pub fn new(format: LabelFormat) -> Self {
        LogisticLoss {
            format,
            weight: None,
        }
    }
}

impl Loss for LogisticLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let mut y = label_like(pred, label, "LogisticLoss")?;
        if self.format == LabelFormat::Binary {
            y = y.affine(2.0, -1.0)?;
        }
        pred.mul(&y)?.neg()?.softrelu()
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "logisticloss"
    }
}

/// `label · (log label − pred)` with `pred` as log-probabilities (Gluon's `KLDivLoss`,
/// `from_logits=True`); with `from_logits(false)` a log-softmax is applied first.
#[derive(Clone, Debug)]
pub struct KLDivLoss {
    from_logits: bool,
    weight: Option<f32>,
}

impl Default for KLDivLoss {
    fn default() -> Self {
        KLDivLoss {
            from_logits: true,
            weight: None,
        }
    }
}

impl KLDivLoss {
    /// Inputs are log-probabilities.
    pub fn new() -> Self {
        Self::default()
    }
    /// Whether inputs are already log-probabilities.
    pub fn from_logits(mut self, yes: bool) -> Self {
        self.from_logits = yes;
        self
    }
}

impl Loss for KLDivLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let logp = if self.from_logits {
            pred.clone()
        } else {
            pred.log_softmax(pred.rank().saturating_sub(1))?
        };
        let y = label_like(pred, label, "KLDivLoss")?;
        y.mul(&y.add_scalar(1e-12)?.log()?.sub(&logp)?)
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "kldivloss"
    }
}
