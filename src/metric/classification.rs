//! Classification metrics: accuracy, top-k accuracy and binary F1.

use super::{ratio, take_sums, Metric};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Labels as class ids and predictions as rows of class scores `[N, C]`, checked.
fn label_and_scores(
    op: &'static str,
    labels: &Tensor,
    preds: &Tensor,
) -> Result<(Vec<i64>, Vec<f32>, usize)> {
    let n = labels.elem_count();
    let p = preds.elem_count();
    if n == 0 || !p.is_multiple_of(n) {
        return Err(Error::ShapeMismatch {
            op,
            lhs: labels.shape().to_vec(),
            rhs: preds.shape().to_vec(),
        });
    }
    let classes = p / n;
    // Truncated toward zero, as MXNet's `astype('int32')` does.
    let labels: Vec<i64> = labels.to_vec_f32()?.iter().map(|&v| v as i64).collect();
    Ok((labels, preds.to_vec_f32()?, classes))
}

/// The predicted class of one row: the row itself truncated (as MXNet) when there is one
/// value per sample (predictions are already class ids), else the index of the largest
/// score.
fn predicted_class(row: &[f32]) -> i64 {
    if row.len() == 1 {
        return row[0] as i64;
    }
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as i64
}

/// Fraction of samples whose predicted class equals the label. Predictions are class
/// scores `[N, C]` (argmax is taken) or class ids with one value per label.
#[derive(Clone, Debug)]
pub struct Accuracy {
    name: String,
    correct: f64,
    total: f64,
}

impl Accuracy {
    /// A metric named `accuracy`.
    pub fn new() -> Self {
        Accuracy {
            name: "accuracy".into(),
            correct: 0.0,
            total: 0.0,
        }
    }
}

impl Default for Accuracy {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for Accuracy {
    fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()> {
        let (labels, scores, classes) = label_and_scores("Accuracy::update", labels, preds)?;
        for (label, row) in labels.iter().zip(scores.chunks(classes)) {
            self.correct += f64::from(u8::from(predicted_class(row) == *label));
            self.total += 1.0;
        }
        Ok(())
    }
    fn get(&self) -> (String, f32) {
        (self.name.clone(), ratio(self.correct, self.total))
    }
    fn reset(&mut self) {
        self.correct = 0.0;
        self.total = 0.0;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn clone_empty(&self) -> Box<dyn Metric> {
        Box::new(Accuracy {
            name: self.name.clone(),
            ..Self::new()
        })
    }
    fn sums(&self) -> Option<Vec<f64>> {
        Some(vec![self.correct, self.total])
    }
    fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        take_sums(&self.name, &mut [&mut self.correct, &mut self.total], sums)
    }
}

/// Fraction of samples whose label is among the `k` highest-scoring classes of
/// predictions `[N, C]`. Ties at the k-th score count against the label (a constant
/// model does not score 1).
#[derive(Clone, Debug)]
pub struct TopKAccuracy {
    name: String,
    k: usize,
    correct: f64,
    total: f64,
}

impl TopKAccuracy {
    /// A metric named `top_k_accuracy_{k}`; `k` 0 is an error.
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::InvalidArgument("TopKAccuracy needs k >= 1".into()));
        }
        Ok(TopKAccuracy {
            name: format!("top_k_accuracy_{k}"),
            k,
            correct: 0.0,
            total: 0.0,
        })
    }
}

impl Metric for TopKAccuracy {
    fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()> {
        let (labels, scores, classes) = label_and_scores("TopKAccuracy::update", labels, preds)?;
        for (&label, row) in labels.iter().zip(scores.chunks(classes)) {
            if label < 0 || label as usize >= classes {
                return Err(Error::IndexOutOfRange {
                    what: "TopKAccuracy label (classes)".into(),
                    index: label,
                    size: classes,
                });
            }
            let target = row[label as usize];
            let ahead = row
                .iter()
                .enumerate()
                .filter(|&(i, &v)| i != label as usize && v >= target)
                .count();
            self.correct += f64::from(u8::from(ahead < self.k));
            self.total += 1.0;
        }
        Ok(())
    }
    fn get(&self) -> (String, f32) {
        (self.name.clone(), ratio(self.correct, self.total))
    }
    fn reset(&mut self) {
        self.correct = 0.0;
        self.total = 0.0;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn clone_empty(&self) -> Box<dyn Metric> {
        let mut m = self.clone();
        m.reset();
        Box::new(m)
    }
    fn sums(&self) -> Option<Vec<f64>> {
        Some(vec![self.correct, self.total])
    }
    fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        take_sums(&self.name, &mut [&mut self.correct, &mut self.total], sums)
    }
}

/// Binary F1 score `2·P·R / (P + R)` from true/false positive and negative counts over
/// every sample seen (micro-averaged; Gluon's `average="macro"` averaged per-batch
/// scores, which depends on the batch size). Labels are 0 or 1. Predictions are either
/// `[N, 2]` class scores (argmax) or one probability per sample (positive when ≥ 0.5).
#[derive(Clone, Debug)]
pub struct F1 {
    name: String,
    tp: f64,
    fp: f64,
    fn_: f64,
    total: f64,
}

impl F1 {
    /// A metric named `f1`.
    pub fn new() -> Self {
        F1 {
            name: "f1".into(),
            tp: 0.0,
            fp: 0.0,
            fn_: 0.0,
            total: 0.0,
        }
    }
}

impl Default for F1 {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for F1 {
    fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()> {
        let (labels, scores, classes) = label_and_scores("F1::update", labels, preds)?;
        if classes > 2 {
            return Err(Error::InvalidArgument(format!(
                "F1 is binary: predictions have {classes} classes per sample"
            )));
        }
        for (&label, row) in labels.iter().zip(scores.chunks(classes)) {
            if label != 0 && label != 1 {
                return Err(Error::InvalidArgument(format!(
                    "F1 label must be 0 or 1, got {label}"
                )));
            }
            self.total += 1.0;
            let positive = if classes == 1 {
                row[0] >= 0.5
            } else {
                row[1] > row[0]
            };
            match (positive, label == 1) {
                (true, true) => self.tp += 1.0,
                (true, false) => self.fp += 1.0,
                (false, true) => self.fn_ += 1.0,
                (false, false) => {}
            }
        }
        Ok(())
    }
    fn get(&self) -> (String, f32) {
        let denom = 2.0 * self.tp + self.fp + self.fn_;
        // No positives predicted or present: F1 is 0 when samples were seen (as
        // scikit-learn's zero_division=0), NaN before any update.
        let v = if self.total == 0.0 {
            f32::NAN
        } else if denom == 0.0 {
            0.0
        } else {
            (2.0 * self.tp / denom) as f32
        };
        (self.name.clone(), v)
    }
    fn reset(&mut self) {
        self.tp = 0.0;
        self.fp = 0.0;
        self.fn_ = 0.0;
        self.total = 0.0;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn clone_empty(&self) -> Box<dyn Metric> {
        Box::new(F1 {
            name: self.name.clone(),
            ..Self::new()
        })
    }
    fn sums(&self) -> Option<Vec<f64>> {
        Some(vec![self.tp, self.fp, self.fn_, self.total])
    }
    fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        let s = self;
        let fields = &mut [&mut s.tp, &mut s.fp, &mut s.fn_, &mut s.total];
        take_sums(&s.name, fields, sums)
    }
}
