//! Evaluate: RMSE/MAE, the two baselines, HitRate@10/NDCG@10 by full ranking, and top-k
//! recommendations.

use crate::model::RecModel;
use boson::metric::{HitRate, Metric, Ndcg};
use boson::ratings::{FactorScorer, FullRanking, RatingsDataset, SeenItems};
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

/// HitRate@10 and NDCG@10 with the library's metrics: each test user's held-out item
/// ranked against every item the user has not seen (`FullRanking`: full ranking, no
/// sampling; ties count against the model), one matrix product per block of users.
pub fn ranking<S: ?Sized + FactorScorer>(
    scorer: Arc<S>,
    seen: &Arc<SeenItems>,
    test: &RatingsDataset,
    device: Device,
) -> Result<Ranking> {
    let full = FullRanking::new(scorer, seen.clone());
    let item_factors = full.all_item_factors(device)?;
    let (users, items, _) = test.columns();
    let mut hits = HitRate::new(10)?;
    let mut ndcg = Ndcg::new(10)?;
    // Users in blocks keep the score matrix small (256 × items floats).
    const BLOCK: usize = 256;
    for (us, is) in users.chunks(BLOCK).zip(items.chunks(BLOCK)) {
        let u = Tensor::from_vec_i64(us.to_vec(), &[us.len()])?.to_device(device)?;
        let scores = full.scores_with(&u, &item_factors)?;
        let held_out = Tensor::from_vec(is.iter().map(|&i| i as f32).collect(), &[is.len()])?;
        hits.update(&held_out, &scores)?;
        ndcg.update(&held_out, &scores)?;
    }
    let candidates: usize = users
        .iter()
        .map(|&u| seen.num_items() - seen.of(u as usize).len())
        .sum();
    Ok(Ranking {
        hit_rate_at_10: f64::from(hits.get().1),
        ndcg_at_10: f64::from(ndcg.get().1),
        mean_candidates: candidates as f64 / users.len().max(1) as f64,
    })
}

/// ItemPop as a `FactorScorer`: every user scores each item by its count of train
/// ratings.
#[derive(boson::nn::Block)]
pub struct Popularity {
    #[block(skip)]
    counts: Tensor,
}

impl Popularity {
    pub fn new(train: &RatingsDataset, num_items: usize) -> Result<Popularity> {
        let counts = item_counts(train, num_items)
            .iter()
            .map(|&c| c as f32)
            .collect();
        Ok(Popularity {
            counts: Tensor::from_vec(counts, &[num_items, 1])?,
        })
    }
}

impl FactorScorer for Popularity {
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        Tensor::ones(&[users.elem_count(), 1], users.device())
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        let table = self.counts.to_device(items.device())?;
        table.take(items, false)
    }
}

/// How many ratings each item has in `train`.
pub fn item_counts(train: &RatingsDataset, num_items: usize) -> Vec<u32> {
    let mut counts = vec![0u32; num_items];
    for &i in &train.columns().1 {
        counts[i as usize] += 1;
    }
    counts
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
