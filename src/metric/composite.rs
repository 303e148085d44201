//! `CompositeMetric`: several metrics updated together.

use super::Metric;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Several metrics fed the same labels and predictions (Gluon's `CompositeEvalMetric`).
/// [`Metric::get_all`] lists every member; [`Metric::get`] gives the first member's value
/// under the composite's name (NaN when empty). A composite cannot be a monitored metric.
pub struct CompositeMetric {
    name: String,
    metrics: Vec<Box<dyn Metric>>,
}

impl CompositeMetric {
    /// An empty composite named `composite`.
    pub fn new() -> Self {
        CompositeMetric {
            name: "composite".into(),
            metrics: Vec::new(),
        }
    }

    /// Adds a member (builder style).
    pub fn with(mut self, metric: impl Metric + 'static) -> Self {
        self.metrics.push(Box::new(metric));
        self
    }

    /// Adds a member in place.
    pub fn add(&mut self, metric: Box<dyn Metric>) {
        self.metrics.push(metric);
    }

    /// The member at `index`.
    pub fn get_metric(&self, index: usize) -> Option<&dyn Metric> {
        self.metrics.get(index).map(|m| &**m)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.metrics.len()
    }

    /// True when there is no member.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }
}

impl Default for CompositeMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for CompositeMetric {
    fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()> {
        for m in &mut self.metrics {
            m.update(labels, preds)?;
        }
        Ok(())
    }
    fn get(&self) -> (String, f32) {
        let v = self.metrics.first().map_or(f32::NAN, |m| m.get().1);
        (self.name.clone(), v)
    }
    fn get_all(&self) -> Vec<(String, f32)> {
        self.metrics.iter().flat_map(|m| m.get_all()).collect()
    }
    fn reset(&mut self) {
        for m in &mut self.metrics {
            m.reset();
        }
    }
    fn name(&self) -> &str {
        &self.name
    }
    /// Renames the composite and prefixes its members the same way: a name ending in
    /// a space-separated prefix (`"training composite"`) gives members `"training …"`.
    fn set_name(&mut self, name: String) {
        let old_prefix = self.name.strip_suffix("composite").map(str::to_string);
        let new_prefix = name.strip_suffix("composite").map(str::to_string);
        if let (Some(old), Some(new)) = (old_prefix, new_prefix) {
            for m in &mut self.metrics {
                let base = m
                    .name()
                    .strip_prefix(old.as_str())
                    .unwrap_or(m.name())
                    .to_string();
                m.set_name(format!("{new}{base}"));
            }
        }
        self.name = name;
    }
    fn higher_is_better(&self) -> bool {
        self.metrics.first().is_some_and(|m| m.higher_is_better())
    }
    fn clone_empty(&self) -> Box<dyn Metric> {
        Box::new(CompositeMetric {
            name: self.name.clone(),
            metrics: self.metrics.iter().map(|m| m.clone_empty()).collect(),
        })
    }
    fn sums(&self) -> Option<Vec<f64>> {
        let mut all = Vec::new();
        for m in &self.metrics {
            all.extend(m.sums()?);
        }
        Some(all)
    }
    fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        let mut at = 0;
        for m in &mut self.metrics {
            let n = m.sums().map_or(0, |s| s.len());
            let part = sums.get(at..at + n).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "composite metric {}: {} sums given, fewer than its members keep",
                    self.name,
                    sums.len()
                ))
            })?;
            m.set_sums(part)?;
            at += n;
        }
        if at != sums.len() {
            return Err(Error::InvalidArgument(format!(
                "composite metric {}: {} sums given, its members keep {at}",
                self.name,
                sums.len()
            )));
        }
        Ok(())
    }
    fn is_composite(&self) -> bool {
        true
    }
}
