//! Regression metrics: MSE, RMSE, MAE and Pearson correlation.

use super::{paired_values, ratio, take_sums, Metric};
use crate::error::Result;
use crate::tensor::Tensor;

/// Sums of a per-element error over every update: the shared state of MSE/RMSE/MAE.
#[derive(Clone, Debug, Default)]
struct ErrorSum {
    sum: f64,
    count: f64,
}

impl ErrorSum {
    fn add(
        &mut self,
        op: &'static str,
        labels: &Tensor,
        preds: &Tensor,
        f: fn(f64) -> f64,
    ) -> Result<()> {
        let (l, p) = paired_values(op, labels, preds)?;
        self.sum += l
            .iter()
            .zip(&p)
            .map(|(&l, &p)| f(p as f64 - l as f64))
            .sum::<f64>();
        self.count += l.len() as f64;
        Ok(())
    }
}

macro_rules! error_metric {
    ($(#[$doc:meta])* $ty:ident, $default:literal, $op:literal, $f:expr, $finish:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty {
            name: String,
            acc: ErrorSum,
        }

        impl $ty {
            #[doc = concat!("A metric named `", $default, "`.")]
            pub fn new() -> Self {
                $ty { name: $default.into(), acc: ErrorSum::default() }
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }

        impl Metric for $ty {
            fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()> {
                self.acc.add($op, labels, preds, $f)
            }
            fn get(&self) -> (String, f32) {
                let finish: fn(f32) -> f32 = $finish;
                (self.name.clone(), finish(ratio(self.acc.sum, self.acc.count)))
            }
            fn reset(&mut self) {
                self.acc = ErrorSum::default();
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
                Box::new($ty { name: self.name.clone(), acc: ErrorSum::default() })
            }
            fn sums(&self) -> Option<Vec<f64>> {
                Some(vec![self.acc.sum, self.acc.count])
            }
            fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
                take_sums(&self.name, &mut [&mut self.acc.sum, &mut self.acc.count], sums)
            }
        }
    };
}

error_metric!(
    /// Mean squared error over every element seen: `Σ (p − y)² / n`.
    Mse, "mse", "Mse::update", |d| d * d, |v| v
);
error_metric!(
    /// Root mean squared error: the square root of [`Mse`] over every element seen (not
    /// a mean of per-batch roots).
    Rmse, "rmse", "Rmse::update", |d| d * d, |v| v.sqrt()
);
error_metric!(
    /// Mean absolute error over every element seen: `Σ |p − y| / n`.
    Mae, "mae", "Mae::update", |d| d.abs(), |v| v
);

/// Pearson correlation coefficient between predictions and labels over every element
/// seen, computed from running sums so batches of any size combine exactly.
#[derive(Clone, Debug)]
pub struct PearsonCorrelation {
    name: String,
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
}

impl PearsonCorrelation {
    /// A metric named `pearsonr`.
    pub fn new() -> Self {
        PearsonCorrelation {
            name: "pearsonr".into(),
            n: 0.0,
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            syy: 0.0,
            sxy: 0.0,
        }
    }
}

impl Default for PearsonCorrelation {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for PearsonCorrelation {
    fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()> {
        let (l, p) = paired_values("PearsonCorrelation::update", labels, preds)?;
        for (&y, &x) in l.iter().zip(&p) {
            let (x, y) = (x as f64, y as f64);
            self.n += 1.0;
            self.sx += x;
            self.sy += y;
            self.sxx += x * x;
            self.syy += y * y;
            self.sxy += x * y;
        }
        Ok(())
    }
    fn get(&self) -> (String, f32) {
        let n = self.n;
        let cov = n * self.sxy - self.sx * self.sy;
        let vx = n * self.sxx - self.sx * self.sx;
        let vy = n * self.syy - self.sy * self.sy;
        // No data or a constant series: the correlation is undefined.
        let v = if n == 0.0 || vx <= 0.0 || vy <= 0.0 {
            f32::NAN
        } else {
            (cov / (vx.sqrt() * vy.sqrt())) as f32
        };
        (self.name.clone(), v)
    }
    fn reset(&mut self) {
        let name = std::mem::take(&mut self.name);
        *self = PearsonCorrelation {
            name,
            ..Self::new()
        };
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
        Box::new(PearsonCorrelation {
            name: self.name.clone(),
            ..Self::new()
        })
    }
    fn sums(&self) -> Option<Vec<f64>> {
        Some(vec![self.n, self.sx, self.sy, self.sxx, self.syy, self.sxy])
    }
    fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
        let s = self;
        let fields = &mut [
            &mut s.n, &mut s.sx, &mut s.sy, &mut s.sxx, &mut s.syy, &mut s.sxy,
        ];
        take_sums(&s.name, fields, sums)
    }
}
