//! Classification losses: sigmoid and softmax cross-entropy, logistic, KL divergence.

use super::{label_like, Loss};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// Binary cross-entropy. From logits (default) it is computed stably as
/// `softplus(x) − x·y`; with `from_sigmoid` the input is a probability. `pos_weight`
/// (broadcast against the prediction, e.g. one per class) weighs the positive term, as
/// Gluon's `pos_weight` input does.
#[derive(Clone, Debug, Default)]
pub struct SigmoidBinaryCrossEntropyLoss {
    from_sigmoid: bool,
    pos_weight: Option<Tensor>,
    weight: Option<f32>,
}

impl SigmoidBinaryCrossEntropyLoss {
    weighted!();
    /// From logits.
    pub fn new() -> Self {
        Self::default()
    }
    /// Inputs are already probabilities.
    pub fn from_sigmoid(mut self, yes: bool) -> Self {
        self.from_sigmoid = yes;
        self
    }
    /// Weighs the positive (`label = 1`) term by `pos_weight` (broadcast against the
    /// prediction).
    pub fn pos_weight(mut self, pos_weight: Tensor) -> Self {
        self.pos_weight = Some(pos_weight);
        self
    }
}

impl Loss for SigmoidBinaryCrossEntropyLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let y = label_like(pred, label, "SigmoidBinaryCrossEntropyLoss")?;
        let pw = self.pos_weight.as_ref();
        if self.from_sigmoid {
            // −(pw·y·log(p+ε) + (1−y)·log(1−p+ε)), ε as Gluon uses.
            let eps = 1e-12;
            let mut a = y.mul(&pred.add_scalar(eps)?.log()?)?;
            if let Some(pw) = pw {
                a = a.mul(pw)?;
            }
            let b = y
                .affine(-1.0, 1.0)?
                .mul(&pred.affine(-1.0, 1.0 + eps)?.log()?)?;
            a.add(&b)?.neg()
        } else if let Some(pw) = pw {
            // x − x·y + (1 + (pw − 1)·y)·softplus(−x): the positive term weighed by pw.
            let log_weight = pw.add_scalar(-1.0)?.mul(&y)?.add_scalar(1.0)?;
            pred.sub(&pred.mul(&y)?)?
                .add(&log_weight.mul(&pred.neg()?.softrelu()?)?)
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
    axis: isize,
    sparse_label: bool,
    from_logits: bool,
    weight: Option<f32>,
}

impl Default for SoftmaxCrossEntropyLoss {
    fn default() -> Self {
        SoftmaxCrossEntropyLoss {
            axis: -1,
            sparse_label: true,
            from_logits: false,
            weight: None,
        }
    }
}

/// `axis` (negative: from the end) as an index into `shape`, or an error naming both.
fn resolve_axis(axis: isize, shape: &[usize], op: &'static str) -> Result<usize> {
    let rank = shape.len() as isize;
    let a = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&a) {
        return Err(Error::InvalidShape {
            op,
            msg: format!("axis {axis} is out of range for a prediction of shape {shape:?}"),
        });
    }
    Ok(a as usize)
}

/// `pred` with its `axis` moved last (the class axis of the softmax losses).
fn class_axis_last(pred: &Tensor, axis: usize) -> Result<Tensor> {
    let last = pred.rank() - 1;
    if axis == last {
        return Ok(pred.clone());
    }
    let order: Vec<usize> = (0..=last).filter(|&a| a != axis).chain([axis]).collect();
    pred.permute(&order)
}

impl SoftmaxCrossEntropyLoss {
    weighted!();
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
    /// The class axis (default −1, the last; Gluon's `axis`).
    pub fn axis(mut self, axis: isize) -> Self {
        self.axis = axis;
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
        let op = "SoftmaxCrossEntropyLoss";
        let class_axis = resolve_axis(self.axis, pred.shape(), op)?;
        // The loss is averaged over every non-batch axis, so with the class axis moved
        // last the result is the same.
        // A dense label has the prediction's shape: moved the same way.
        let label = &match self.sparse_label {
            true => label.clone(),
            false => class_axis_last(&label_like(pred, label, op)?, class_axis)?,
        };
        let pred = &class_axis_last(pred, class_axis)?;
        let axis = pred.rank() - 1;
        let logp = if self.from_logits {
            pred.clone()
        } else {
            pred.log_softmax(axis)?
        };
        let classes = pred.shape()[axis];
        if self.sparse_label {
            let idx = class_indices(label)?;
            let rows = pred.elem_count() / classes.max(1);
            if idx.elem_count() != rows {
                return Err(Error::ShapeMismatch {
                    op: "SoftmaxCrossEntropyLoss labels",
                    lhs: pred.shape().to_vec(),
                    rhs: label.shape().to_vec(),
                });
            }
            // Each row's label class alone: no one-hot matrix the size of the scores.
            let mut shape = pred.shape().to_vec();
            shape[axis] = 1;
            return logp
                .pick(&idx)?
                .clip(f32::MIN, f32::MAX)?
                .reshape(&shape)?
                .neg();
        }
        let target = label_like(pred, label, "SoftmaxCrossEntropyLoss")?;
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
    weighted!();
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
/// `from_logits=True`), summed over every non-batch axis as Gluon does (the other losses
/// average); with `from_logits(false)` a log-softmax along `axis` is applied first.
#[derive(Clone, Debug)]
pub struct KLDivLoss {
    from_logits: bool,
    axis: isize,
    weight: Option<f32>,
}

impl Default for KLDivLoss {
    fn default() -> Self {
        KLDivLoss {
            from_logits: true,
            axis: -1,
            weight: None,
        }
    }
}

impl KLDivLoss {
    weighted!();
    /// Inputs are log-probabilities.
    pub fn new() -> Self {
        Self::default()
    }
    /// Whether inputs are already log-probabilities.
    pub fn from_logits(mut self, yes: bool) -> Self {
        self.from_logits = yes;
        self
    }
    /// The axis of the log-softmax when not `from_logits` (default −1).
    pub fn axis(mut self, axis: isize) -> Self {
        self.axis = axis;
        self
    }
}

impl Loss for KLDivLoss {
    fn elementwise(&self, pred: &Tensor, label: &Tensor) -> Result<Tensor> {
        let logp = if self.from_logits {
            pred.clone()
        } else {
            pred.log_softmax(resolve_axis(self.axis, pred.shape(), "KLDivLoss")?)?
        };
        let y = label_like(pred, label, "KLDivLoss")?;
        y.mul(&y.add_scalar(1e-12)?.log()?.sub(&logp)?)
    }
    fn sums_over_sample(&self) -> bool {
        true
    }
    fn weight(&self) -> Option<f32> {
        self.weight
    }
    fn name(&self) -> &'static str {
        "kldivloss"
    }
}
