//! Ranking metrics for recommenders: HitRate@k, NDCG@k and MRR@k (leave-one-out
//! evaluation).
//!
//! Input convention, shared by all three: for each test user, the model scores a list
//! of candidate items, one of which is the user's held-out (positive) item.
//!
//! * `preds`: `[users, candidates]` scores, larger = more relevant;
//! * `labels`: `[users]` (or `[users, 1]`), the column of the held-out item in each row
//!   (the usual layout puts it in column 0 followed by sampled negatives, so labels are
//!   all zeros).
//!
//! A candidate scored `-inf` is not a candidate: that is how
//! [`FullRanking`](crate::ratings::FullRanking) masks the items a user has already seen,
//! so `preds` can be a full-catalogue score matrix and `labels` the held-out item indices.
//!
//! The held-out item's rank is the number of other candidates scoring **at least** as
//! high as it: ties count against the model, so a model that scores everything equally
//! ranks last rather than first.

use super::{ratio, take_sums, Metric};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The 0-based rank of the held-out item of every row.
fn ranks(op: &'static str, labels: &Tensor, preds: &Tensor) -> Result<Vec<usize>> {
    let users = labels.elem_count();
    if preds.rank() != 2 || preds.shape()[0] != users || preds.shape()[1] == 0 {
        return Err(Error::ShapeMismatch {
            op,
            lhs: labels.shape().to_vec(),
            rhs: preds.shape().to_vec(),
        });
    }
    let candidates = preds.shape()[1];
    let scores = preds.to_vec_f32()?;
    let mut out = Vec::with_capacity(users);
    for (row, &pos) in scores.chunks(candidates).zip(&labels.to_vec_f32()?) {
        let pos_i = pos.round() as i64;
        if pos_i < 0 || pos_i as usize >= candidates {
            return Err(Error::IndexOutOfRange {
                what: format!("{op} held-out column (candidates)"),
                index: pos_i,
                size: candidates,
            });
        }
        let target = row[pos_i as usize];
        if !target.is_finite() {
            return Err(Error::NonFinite(format!(
                "{op}: held-out item score is {target}"
            )));
        }
        let ahead = row
            .iter()
            .enumerate()
            .filter(|&(i, &v)| i != pos_i as usize && v >= target)
            .count();
        out.push(ahead);
    }
    Ok(out)
}

macro_rules! ranking_metric {
    ($(#[$doc:meta])* $ty:ident, $prefix:literal, $op:literal, $gain:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty {
            name: String,
            k: usize,
            sum: f64,
            users: f64,
        }

        impl $ty {
            #[doc = concat!("A metric named `", $prefix, "@{k}`; `k` 0 is an error.")]
            pub fn new(k: usize) -> Result<Self> {
                if k == 0 {
                    return Err(Error::InvalidArgument(format!("{} needs k >= 1", $op)));
                }
                Ok($ty { name: format!("{}@{k}", $prefix), k, sum: 0.0, users: 0.0 })
            }

            /// The cut-off `k`.
            pub fn k(&self) -> usize {
                self.k
            }
        }

        impl Metric for $ty {
            fn update(&mut self, labels: &Tensor, preds: &Tensor) -> Result<()> {
                let gain: fn(usize) -> f64 = $gain;
                for rank in ranks($op, labels, preds)? {
                    if rank < self.k {
                        self.sum += gain(rank);
                    }
                    self.users += 1.0;
                }
                Ok(())
            }
            fn get(&self) -> (String, f32) {
                (self.name.clone(), ratio(self.sum, self.users))
            }
            fn reset(&mut self) {
                self.sum = 0.0;
                self.users = 0.0;
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
                Some(vec![self.sum, self.users])
            }
            fn set_sums(&mut self, sums: &[f64]) -> Result<()> {
                take_sums(&self.name, &mut [&mut self.sum, &mut self.users], sums)
            }
        }
    };
}

ranking_metric!(
    /// HitRate@k: the fraction of users whose held-out item ranks in the top `k` of its
    /// candidates (see the module docs of `boson::metric` for the input layout).
    HitRate, "hit_rate", "HitRate::update", |_| 1.0
);
ranking_metric!(
    /// NDCG@k with one relevant item per user: `1 / log2(rank + 2)` when the held-out
    /// item's 0-based rank is below `k`, else 0, averaged over users (see the
    /// module docs of `boson::metric` for the input layout).
    Ndcg, "ndcg", "Ndcg::update", |rank| 1.0 / ((rank + 2) as f64).log2()
);
ranking_metric!(
    /// MRR@k (mean reciprocal rank) with one relevant item per user: `1 / (rank + 1)` when
    /// the held-out item's 0-based rank is below `k`, else 0, averaged over users (see the
    /// module docs of `boson::metric` for the input layout).
    Mrr, "mrr", "Mrr::update", |rank| 1.0 / (rank + 1) as f64
);
