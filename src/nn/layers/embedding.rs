//! `Embedding`: a lookup table with row-sparse gradients and an optional per-lookup L2
//! penalty.

use crate::autograd::CustomOp;
use crate::error::{Error, Result};
use crate::nn::{Block, Forward, GradStype, Parameter};
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

/// A lookup table `[input_dim, output_dim]` mapping `i64` indices to rows. Its gradient is
/// row-sparse by default (`sparse_grad`), so a step costs O(batch × dim) whatever the
/// vocabulary size.
#[derive(Block)]
pub struct Embedding {
    /// `[input_dim, output_dim]`
    pub weight: Parameter,
    #[block(skip)]
    sparse_grad: bool,
    #[block(skip)]
    l2: Option<Arc<RowL2>>,
}

impl Embedding {
    /// A table of `input_dim` rows of `output_dim` values, sparse gradients, f32.
    pub fn new(input_dim: usize, output_dim: usize) -> Embedding {
        Self::with_options(input_dim, output_dim, true, DType::F32)
    }

    /// A table with explicit gradient type and dtype (`F16`/`BF16` tables are read as f32).
    pub fn with_options(
        input_dim: usize,
        output_dim: usize,
        sparse_grad: bool,
        dtype: DType,
    ) -> Embedding {
        let stype = if sparse_grad {
            GradStype::RowSparse
        } else {
            GradStype::Default
        };
        Embedding {
            weight: Parameter::with_options("weight", &[input_dim, output_dim], None, dtype, stype),
            sparse_grad,
            l2: None,
        }
    }

    /// Adds `strength / 2 · ‖row‖²` to the loss for every row looked up while training:
    /// a row looked up n times in an epoch is penalised n times, the per-rating
    /// regularisation of matrix factorisation by SGD (Koren et al.:
    /// `Σ_(u,i) (r − r̂)² + λ (‖p_u‖² + ‖q_i‖²)`). Its gradient, `strength · row` per
    /// lookup, lands on the looked-up rows only, so it is exact with row-sparse
    /// gradients and lazy updates, where an optimizer's weight decay shrinks a row once
    /// per step whatever its count in the batch, and never when it is absent. The
    /// penalty's value is not part of the reported loss; predictions are unchanged. An
    /// error for a negative or non-finite strength.
    pub fn l2(mut self, strength: f32) -> Result<Embedding> {
        check_strength(strength)?;
        self.l2 = Some(Arc::new(RowL2::PerLookup(strength)));
        Ok(self)
    }

    /// The full-batch L2 penalty `strength / 2 · Σ_rows ‖row‖²` (once per row per epoch,
    /// as ridge regression or ALS weighs it, however often the row is used), spread over
    /// the lookups: row r is penalised `strength / lookups_per_epoch[r]` per lookup, so
    /// rows seen rarely are shrunk harder relative to their data than rows seen often.
    /// With a loss averaged over each batch, the expected step is the gradient of
    /// `(Σ losses + strength / 2 · Σ ‖row‖²) / N` for N samples an epoch. As with
    /// [`Embedding::l2`], only looked-up rows get a gradient. An error when
    /// `lookups_per_epoch` does not have one count per row, or for a bad strength.
    pub fn l2_full_batch(
        mut self,
        strength: f32,
        lookups_per_epoch: &[usize],
    ) -> Result<Embedding> {
        check_strength(strength)?;
        let rows = self.weight.shape()[0];
        if lookups_per_epoch.len() != rows {
            return Err(Error::InvalidArgument(format!(
                "Embedding::l2_full_batch: {} lookup counts for a table of {rows} rows (one per row)",
                lookups_per_epoch.len()
            )));
        }
        // A row never looked up gets no gradient, so its strength is never used.
        let per_row = lookups_per_epoch
            .iter()
            .map(|&n| strength / n.max(1) as f32)
            .collect();
        self.l2 = Some(Arc::new(RowL2::PerRow(per_row)));
        Ok(self)
    }
}

fn check_strength(strength: f32) -> Result<()> {
    if !(strength.is_finite() && strength >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "Embedding L2 penalty: the strength must be finite and >= 0, got {strength}"
        )));
    }
    Ok(())
}

/// The identity on the looked-up rows whose backward adds `s · row` for each lookup: the
/// gradient of `s / 2 · ‖row‖²` added to the loss, `s` the same for every lookup or the
/// looked-up row's own.
enum RowL2 {
    PerLookup(f32),
    PerRow(Vec<f32>),
}

impl CustomOp for RowL2 {
    fn name(&self) -> &str {
        "embedding l2"
    }
    /// Inputs: the looked-up rows `[n, dim]` and their indices `[n]`.
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor> {
        Ok(inputs[0].clone())
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let rows = &inputs[0];
        let penalty = match self {
            RowL2::PerLookup(s) => rows.mul_scalar(*s)?,
            RowL2::PerRow(per_row) => {
                // The strengths of the n lookups, gathered on the host (n values).
                let indices = inputs[1].to_vec_i64()?;
                let s = indices
                    .iter()
                    .map(|&i| per_row.get(i as usize).copied().unwrap_or(0.0))
                    .collect();
                let s = Tensor::from_vec(s, &[indices.len(), 1])?.to_device(rows.device())?;
                rows.mul(&s)?
            }
        };
        Ok(vec![Some(grad.add(&penalty)?), None])
    }
}

impl Forward for Embedding {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = match self.weight.sharding() {
            // A table split over ranks: the rows come from their owners.
            Some(s) => crate::nn::sharded::forward(&self.weight, &s, x)?,
            None => self.weight.data()?.take(x, self.sparse_grad)?,
        };
        match &self.l2 {
            Some(l2) if crate::autograd::is_recording() => {
                let x = x.reshape(&[x.elem_count()])?;
                let flat =
                    rows.reshape(&[x.elem_count(), rows.elem_count() / x.elem_count().max(1)])?;
                crate::autograd::apply(l2.clone(), &[&flat, &x])?.reshape(rows.shape())
            }
            _ => Ok(rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Initializer;
    use crate::Device;

    const INDICES: [i64; 5] = [1, 4, 1, 1, 0];

    /// How the L2 penalty reaches the loss in [`table_grad`].
    enum Penalty {
        None,
        PerLookup(f32),
        FullBatch(f32, [usize; 5]),
        /// `Σ_lookups strengths[row] / 2 · ‖row‖²` written into the loss with tensor ops.
        Written([f32; 5]),
    }

    /// The gradient of `Σ rows · c (+ penalty)` for [`INDICES`] over a 5 × 3 table.
    fn table_grad(sparse: bool, penalty: Penalty) -> Vec<f32> {
        let table = Embedding::with_options(5, 3, sparse, DType::F32);
        let table = match &penalty {
            Penalty::PerLookup(s) => table.l2(*s).unwrap(),
            Penalty::FullBatch(s, counts) => table.l2_full_batch(*s, counts).unwrap(),
            Penalty::None | Penalty::Written(_) => table,
        };
        crate::rng::seed(7);
        table
            .initialize(&Initializer::Normal(0.5), Device::Cpu)
            .unwrap();
        let indices = Tensor::from_vec_i64(INDICES.to_vec(), &[5]).unwrap();
        let c = Tensor::from_vec((0..15).map(|k| k as f32 * 0.1 - 0.7).collect(), &[5, 3]).unwrap();
        let loss = crate::autograd::record(|| {
            let rows = table.forward(&indices)?;
            let fit = rows.mul(&c)?.sum_all()?;
            match &penalty {
                Penalty::Written(per_row) => {
                    let s: Vec<f32> = INDICES.iter().map(|&i| per_row[i as usize] / 2.0).collect();
                    let s = Tensor::from_vec(s, &[5, 1])?;
                    fit.add(&rows.square()?.mul(&s)?.sum_all()?)
                }
                _ => Ok(fit),
            }
        })
        .unwrap();
        loss.backward().unwrap();
        table
            .weight
            .grad()
            .unwrap()
            .to_dense()
            .unwrap()
            .to_vec_f32()
            .unwrap()
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-5, "{what}, element {k}: {x} vs {y}");
        }
    }

    #[test]
    fn l2_adds_the_penalty_gradient_once_per_lookup() {
        for sparse in [true, false] {
            let by_layer = table_grad(sparse, Penalty::PerLookup(0.3));
            assert_close(
                &by_layer,
                &table_grad(sparse, Penalty::Written([0.3; 5])),
                "per lookup",
            );
            // Row 1 was looked up three times, so the penalty changed its gradient; rows 2
            // and 3 were never looked up and have none.
            let plain = table_grad(sparse, Penalty::None);
            assert!((3..6).any(|k| (by_layer[k] - plain[k]).abs() > 1e-3));
            assert!(by_layer[6..12].iter().all(|&g| g == 0.0));
        }
    }

    #[test]
    fn l2_full_batch_divides_the_strength_by_each_rows_lookups() {
        let counts = [2, 3, 0, 7, 1];
        for sparse in [true, false] {
            let by_layer = table_grad(sparse, Penalty::FullBatch(0.6, counts));
            // Row 2 was never counted: its strength would be 0.6 (it is never looked up).
            let per_row = [0.3, 0.2, 0.6, 0.6 / 7.0, 0.6];
            assert_close(
                &by_layer,
                &table_grad(sparse, Penalty::Written(per_row)),
                "full batch",
            );
        }
    }

    #[test]
    fn l2_rejects_bad_strengths_and_counts() {
        for bad in [-0.1, f32::NAN, f32::INFINITY] {
            let err = Embedding::new(3, 2).l2(bad).err().unwrap().to_string();
            assert!(
                err.contains("strength") && err.contains(&bad.to_string()),
                "{err}"
            );
            let err = Embedding::new(3, 2)
                .l2_full_batch(bad, &[1, 1, 1])
                .err()
                .unwrap();
            assert!(err.to_string().contains("strength"), "{err}");
        }
        let err = Embedding::new(3, 2)
            .l2_full_batch(1.0, &[1, 1])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("2 lookup counts") && err.contains("3 rows"),
            "{err}"
        );
    }

    #[test]
    fn l2_leaves_predictions_unchanged() {
        let table = Embedding::new(4, 2).l2(1.0).unwrap();
        table
            .initialize(&Initializer::Normal(0.5), Device::Cpu)
            .unwrap();
        // A [2, 2] batch of indices: the rows come back [2, 2, 2].
        let x = Tensor::from_vec_i64(vec![3, 0, 1, 1], &[2, 2]).unwrap();
        let recorded = crate::autograd::record(|| table.forward(&x)).unwrap();
        let plain = table.weight.data().unwrap().take(&x, false).unwrap();
        assert_eq!(recorded.shape(), plain.shape());
        assert_eq!(recorded.to_vec_f32().unwrap(), plain.to_vec_f32().unwrap());
    }
}
