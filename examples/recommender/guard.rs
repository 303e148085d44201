//! The guard: whether a trained rating model is better than the bias baseline on the
//! validation ratings by more than chance, or the baseline should be deployed instead.
//!
//! The comparison is paired, rating by rating: d = (baseline error)² − (model error)². The
//! model is kept only when the mean of d (the drop in validation MSE) is above 1.645 of its
//! standard errors (a one-sided test at 5%). A model that wins by less than the noise of a
//! small validation split would, as often as not, lose on new ratings.

/// How many standard errors the model's validation MSE must drop below the baseline's.
pub const Z_REQUIRED: f64 = 1.645;

/// The comparison on the validation ratings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub model_rmse: f64,
    pub baseline_rmse: f64,
    /// The mean drop in squared error over its standard error (∞ for a drop without
    /// spread, NaN for a diverged model).
    pub z: f64,
}

impl Verdict {
    /// Compares `model` and `baseline` predictions with the `truth` ratings; `None` without
    /// ratings to compare on. Panics if the lengths differ (the caller's bug, not input).
    pub fn compare(model: &[f32], baseline: &[f32], truth: &[f32]) -> Option<Verdict> {
        assert!(model.len() == truth.len() && baseline.len() == truth.len());
        let n = truth.len();
        if n == 0 {
            return None;
        }
        let (mut model_se, mut baseline_se) = (0.0f64, 0.0f64);
        let d: Vec<f64> = (0..n)
            .map(|k| {
                let m = (f64::from(model[k]) - f64::from(truth[k])).powi(2);
                let b = (f64::from(baseline[k]) - f64::from(truth[k])).powi(2);
                model_se += m;
                baseline_se += b;
                b - m
            })
            .collect();
        let mean = d.iter().sum::<f64>() / n as f64;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        let se = (var / n as f64).sqrt();
        let z = if mean.is_nan() || se > 0.0 {
            mean / se
        } else if mean > 0.0 {
            f64::INFINITY
        } else if mean < 0.0 {
            f64::NEG_INFINITY
        } else {
            0.0
        };
        Some(Verdict {
            model_rmse: (model_se / n as f64).sqrt(),
            baseline_rmse: (baseline_se / n as f64).sqrt(),
            z,
        })
    }

    /// Whether the model beat the baseline by more than chance (a NaN z never does).
    pub fn model_wins(&self) -> bool {
        self.z > Z_REQUIRED
    }

    /// The verdict in words, for `model` (its name).
    pub fn describe(&self, model: &str) -> String {
        let (m, b, z) = (self.model_rmse, self.baseline_rmse, self.z);
        match self.model_wins() {
            true => format!(
                "{model}'s validation RMSE {m:.4} is below the bias baseline's {b:.4} \
                 (the drop in squared error is {z:.2} standard errors)"
            ),
            false => format!(
                "{model}'s validation RMSE {m:.4} is not below the bias baseline's {b:.4} by \
                 more than chance (the drop in squared error is {z:.2} standard errors; \
                 {Z_REQUIRED} needed)"
            ),
        }
    }
}
