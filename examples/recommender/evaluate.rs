//! Evaluate: RMSE/MAE, the two baselines, HitRate@10/NDCG@10 by full ranking, and top-k
//! recommendations.

use crate::model::RecModel;
use boson::metric::Metric;
use boson::ratings::{evaluate_ranking, FactorScorer, FullRanking, RatingsDataset, SeenItems};
use boson::{Device, Result, Tensor};
use std::sync::Arc;

/// A library metric ([`Rmse`](boson::metric::Rmse), [`Mae`](boson::metric::Mae)) of
/// predictions against the truth: the same definition the Estimator's validation uses.
pub fn score(mut metric: impl Metric, pred: &[f32], truth: &[f32]) -> Result<f64> {
    let (p, t) = (pred.len(), truth.len());
    let pred = Tensor::from_vec(pred.to_vec(), &[p])?;
    metric.update(&Tensor::from_vec(truth.to_vec(), &[t])?, &pred)?;
    Ok(f64::from(metric.get().1))
}

/// `mean + b_u + b_i`, fitted on train with shrinkage (the classic bias baseline).
pub struct BiasBaseline {
    pub mean: f32,
    pub user: Vec<f32>,
    pub item: Vec<f32>,
}

impl BiasBaseline {
    /// Alternating regularised means: `b_i = Σ(r − μ − b_u) / (n_i + λ)` then
    /// `b_u = Σ(r − μ − b_i) / (n_u + λ)`, a few rounds. λ shrinks rare users/items to 0.
    pub fn fit(train: &RatingsDataset, num_users: usize, num_items: usize, mean: f32) -> Self {
        const LAMBDA: f32 = 5.0;
        let (users, items, ratings) = train.columns();
        let mut bu = vec![0f32; num_users];
        let mut bi = vec![0f32; num_items];
        for _ in 0..5 {
            let mut sum = vec![0f32; num_items];
            let mut n = vec![0f32; num_items];
            for k in 0..ratings.len() {
                let (u, i) = (users[k] as usize, items[k] as usize);
                sum[i] += ratings[k] - mean - bu[u];
                n[i] += 1.0;
            }
            bi = sum.iter().zip(&n).map(|(s, n)| s / (n + LAMBDA)).collect();
            let mut sum = vec![0f32; num_users];
            let mut n = vec![0f32; num_users];
            for k in 0..ratings.len() {
                let (u, i) = (users[k] as usize, items[k] as usize);
                sum[u] += ratings[k] - mean - bi[i];
                n[u] += 1.0;
            }
            bu = sum.iter().zip(&n).map(|(s, n)| s / (n + LAMBDA)).collect();
        }
        BiasBaseline {
            mean,
            user: bu,
            item: bi,
        }
    }

    /// Predictions for each row of `data`.
    pub fn predict(&self, data: &RatingsDataset) -> Vec<f32> {
        let (users, items, _) = data.columns();
        users
            .iter()
            .zip(items)
            .map(|(&u, &i)| self.mean + self.user[u as usize] + self.item[i as usize])
            .collect()
    }
}

/// Ranking quality of the held-out items.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ranking {
    #[serde(deserialize_with = "crate::persist::nan_if_null")]
    pub hit_rate_at_10: f64,
    #[serde(deserialize_with = "crate::persist::nan_if_null")]
    pub ndcg_at_10: f64,
    /// Candidates per user on average (every item the user has not rated in train).
    pub mean_candidates: f64,
}

/// Each user's items in `sets`, as the library's `SeenItems` (masked in full ranking).
pub fn seen_items(
    sets: &[&RatingsDataset],
    num_users: usize,
    num_items: usize,
) -> Result<Arc<SeenItems>> {
    Ok(Arc::new(SeenItems::from_datasets(
        sets, num_users, num_items,
    )?))
}

/// HitRate@10 and NDCG@10 by the library's evaluator (`evaluate_ranking`): each test
/// user's held-out item ranked against every item the user has not seen (full ranking,
/// no sampling; ties count against the model), one matrix product per block of users.
pub fn ranking<S: ?Sized + FactorScorer>(
    scorer: Arc<S>,
    seen: &Arc<SeenItems>,
    test: &RatingsDataset,
    device: Device,
) -> Result<Ranking> {
    let (users, items, _) = test.columns();
    let full = FullRanking::new(scorer, seen.clone());
    let report = evaluate_ranking(&full, users, items, 10, device)?;
    Ok(Ranking {
        hit_rate_at_10: report.hit_rate,
        ndcg_at_10: report.ndcg,
        mean_candidates: report.mean_candidates,
    })
}

/// The `k` best-scoring items for each of `users`, best first (ties by item index),
/// leaving out what `exclude` lists (`FullRanking::top_k`: one matrix product per block
/// of 256 users over the whole catalogue).
pub fn top_k(
    model: &Arc<dyn RecModel>,
    users: &[i64],
    exclude: &Arc<SeenItems>,
    k: usize,
    device: Device,
) -> Result<Vec<Vec<(usize, f32)>>> {
    let u = Tensor::from_vec_i64(users.to_vec(), &[users.len()])?.to_device(device)?;
    FullRanking::new(model.clone(), exclude.clone()).top_k(&u, k)
}
