//! Evaluation metrics (Gluon's `mx.metric`): running values updated batch by batch.
//!
//! Every metric accumulates over [`Metric::update`] calls until [`Metric::reset`], and
//! [`Metric::get`] returns `(name, value)`; a metric that has seen nothing returns NaN,
//! as Gluon does. [`Metric::higher_is_better`] tells handlers which direction is an
//! improvement, so a monitor in `auto` mode minimises errors and losses and maximises
//! accuracy-like scores.
//!
//! ```
//! use boson::metric::{Metric, Rmse};
//! use boson::Tensor;
//! let mut rmse = Rmse::new();
//! let label = Tensor::from_vec(vec![1.0, 2.0], &[2])?;
//! let pred = Tensor::from_vec(vec![2.0, 4.0], &[2, 1])?;
//! rmse.update(&label, &pred)?;
//! let (name, value) = rmse.get();
//! assert_eq!(name, "rmse");
//! assert!((value - 2.5f32.sqrt()).abs() < 1e-6);
//! # Ok::<(), boson::Error>(())
//! ```

mod classification;
mod composite;
mod loss;
mod ranking;
mod regression;

pub use classification::{Accuracy, TopKAccuracy, F1};
pub use composite::CompositeMetric;
pub use loss::Loss;
pub use ranking::{HitRate, Mrr, Ndcg};
pub use regression::{Mae, Mse, PearsonCorrelation, Rmse};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A running evaluation metric.
pub trait Metric: Send {
    /// Adds one batch: `labels` (ground truth) and `preds` (model output).
    fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()>;

    /// The metric's name and its value over everything since the last reset
    /// (NaN when nothing was seen).
    fn get(&self) -> (String, f32);

    /// Forgets everything seen so far.
    fn reset(&mut self);

    /// The metric's name (`"rmse"`, or `"training rmse"` once an estimator prefixed it).
    fn name(&self) -> &str;

    /// Renames the metric (the estimator adds the `training ` / `validation ` prefixes).
    fn set_name(&mut self, name: String);

    /// True for scores where larger is better (accuracy, F1, NDCG); false for errors
    /// and losses. Handlers in `auto` mode use it to pick max or min.
    fn higher_is_better(&self) -> bool;

    /// A fresh copy with the same configuration and name and no accumulated values.
    fn clone_empty(&self) -> Box<dyn Metric>;

    /// Every `(name, value)` this metric reports: one pair, or one per member for a
    /// [`CompositeMetric`].
    fn get_all(&self) -> Vec<(String, f32)> {
        vec![self.get()]
    }

    /// True when this metric averages the loss rather than comparing predictions with
    /// labels: the estimator then passes the per-sample loss tensor as `preds`.
    fn wants_loss(&self) -> bool {
        false
    }

    /// True for a container of metrics ([`CompositeMetric`]), which cannot be monitored
    /// as one value.
    fn is_composite(&self) -> bool {
        false
    }

    /// The running sums behind [`get`](Metric::get) (e.g. `[Σ error², count]`), so that
    /// data-parallel ranks can add theirs up ([`set_sums`](Metric::set_sums)). `None` for
    /// a metric that cannot be combined so (a user's metric that does not say).
    fn sums(&self) -> Option<Vec<f64>> {
        None
    }

    /// Replaces the running sums with `sums`, laid out as [`sums`](Metric::sums) returns
    /// them; an error for another length.
    fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        Err(Error::InvalidArgument(format!(
            "metric {} cannot take summed values ({} given): implement Metric::sums and \
             set_sums to use it with data-parallel training",
            self.name(),
            sums.len()
        )))
    }
}

/// Copies `sums` into `fields`, or an error naming the metric when the lengths differ.
pub(crate) fn take_sums(name: &str, fields: &mut [&mut f64], sums: &[f64]) -> Result<()> {
    if sums.len() != fields.len() {
        return Err(Error::InvalidArgument(format!(
            "metric {name}: {} sums given, it keeps {}",
            sums.len(),
            fields.len()
        )));
    }
    for (f, &s) in fields.iter_mut().zip(sums) {
        **f = s;
    }
    Ok(())
}

/// `labels` and `preds` as two f32 vectors of the same length (any shapes with equal
/// element counts, e.g. `[N]` labels against `[N, 1]` predictions).
pub(crate) fn paired_values(
    op: &'static str,
    labels: &Tensor,
    preds: &Tensor,
) -> Result<(Vec<f32>, Vec<f32>)> {
    if labels.elem_count() != preds.elem_count() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: labels.shape().to_vec(),
            rhs: preds.shape().to_vec(),
        });
    }
    Ok((labels.to_vec_f32()?, preds.to_vec_f32()?))
}

/// `sum / count` or NaN for an empty count.
pub(crate) fn ratio(sum: f64, count: f64) -> f32 {
    if count == 0.0 {
        f32::NAN
    } else {
        (sum / count) as f32
    }
}
