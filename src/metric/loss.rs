//! The `Loss` metric: the running mean of loss values.

use super::{ratio, take_sums, Metric};
use crate::error::Result;
use crate::tensor::Tensor;

/// The mean of every loss value passed in (Gluon's `metric.Loss`). `update` ignores
/// `labels` and averages the elements of `preds`, which is the per-sample loss tensor.
#[derive(Clone, Debug)]
pub struct Loss {
    name: String,
    sum: f64,
    count: f64,
}

impl Loss {
    /// A metric named `name` (the estimator uses the loss's name, e.g. `l2loss`).
    pub fn new(name: impl Into<String>) -> Self {
        Loss {
            name: name.into(),
            sum: 0.0,
            count: 0.0,
        }
    }
}

impl Default for Loss {
    /// A metric named `loss`.
    fn default() -> Self {
        Self::new("loss")
    }
}

impl Metric for Loss {
    fn update(&mut self, _labels: &Tensor, preds: &Tensor) -> Result<()> {
        let v = preds.to_vec_f32()?;
        self.sum += v.iter().map(|&x| x as f64).sum::<f64>();
        self.count += v.len() as f64;
        Ok(())
    }
    fn get(&self) -> (String, f32) {
        (self.name.clone(), ratio(self.sum, self.count))
    }
    fn reset(&mut self) {
        self.sum = 0.0;
        self.count = 0.0;
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn higher_is_better(&self) -> bool {
        false
    }
    fn clone_empty(&self) -> Box<dyn Metric> {
        Box::new(Loss::new(self.name.clone()))
    }
    fn wants_loss(&self) -> bool {
        true
    }
    fn sums(&self) -> Option<Vec<f64>> {
        Some(vec![self.sum, self.count])
    }
    fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        take_sums(&self.name, &mut [&mut self.sum, &mut self.count], sums)
    }
}
