//! Evaluate: RMSE/MAE, the two baselines, HitRate@10/NDCG@10 by full ranking, and top-k
//! recommendations.

use crate::model::RecModel;
use boson::ratings::RatingsDataset;
use boson::{Device, Result, Tensor};

/// Root mean squared error.
pub fn rmse(pred: &[f32], truth: &[f32]) -> f64 {
    let se: f64 = pred
        .iter()
        .zip(truth)
        .map(|(&p, &t)| f64::from(p - t).powi(2))
        .sum();
    (se / truth.len().max(1) as f64).sqrt()
}

/// Mean absolute error.
pub fn mae(pred: &[f32], truth: &[f32]) -> f64 {
    let ae: f64 = pred
        .iter()
        .zip(truth)
        .map(|(&p, &t)| f64::from(p - t).abs())
        .sum();
    ae / truth.len().max(1) as f64
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

/// For each user, the items rated in any of `sets` (train, and validation when there is
/// one), sorted: what a user already knows, never recommended or counted as a candidate.
pub fn rated_items(sets: &[&RatingsDataset], num_users: usize) -> Vec<Vec<u32>> {
    let mut rated = vec![Vec::new(); num_users];
    for set in sets {
        let (users, items, _) = set.columns();
        for (&u, &i) in users.iter().zip(items) {
            rated[u as usize].push(i as u32);
        }
    }
    for r in &mut rated {
        r.sort_unstable();
        r.dedup();
    }
    rated
}

/// Scores of every item for each of `users`, `[users.len() × num_items]` row-major: the
/// factor rows' matrix product, which equals the model's prediction.
pub fn score_all_items(
    model: &dyn RecModel,
    users: &[i64],
    item_factors: &Tensor,
    device: Device,
) -> Result<Vec<f32>> {
    let u = Tensor::from_vec_i64(users.to_vec(), &[users.len()])?.to_device(device)?;
    let scores = model
        .user_factors(&u)?
        .matmul(&item_factors.transpose(0, 1)?)?;
    let offset = model.offset();
    Ok(scores
        .to_vec_f32()?
        .into_iter()
        .map(|s| s + offset)
        .collect())
}

/// The `[num_items, d]` factor rows of every item.
pub fn all_item_factors(model: &dyn RecModel, num_items: usize, device: Device) -> Result<Tensor> {
    let items: Vec<i64> = (0..num_items as i64).collect();
    model.item_factors(&Tensor::from_vec_i64(items, &[num_items])?.to_device(device)?)
}

/// HitRate@10 and NDCG@10: each test user's held-out item is ranked against every item the
/// user has not rated (`rated`: full ranking, no sampling). Rank = how many candidates
/// score strictly higher; a hit is rank < 10, its gain 1 / log2(rank + 2). `scores`
/// gives every item's score for a block of users, `[users × num_items]` row-major.
pub fn ranking(
    mut scores: impl FnMut(&[i64]) -> Result<Vec<f32>>,
    rated: &[Vec<u32>],
    test: &RatingsDataset,
    num_items: usize,
) -> Result<Ranking> {
    let (users, items, _) = test.columns();
    let (mut hits, mut ndcg, mut candidates) = (0f64, 0f64, 0f64);
    // Users in chunks keep the score matrix small (256 × items floats).
    const CHUNK: usize = 256;
    for (us, is) in users.chunks(CHUNK).zip(items.chunks(CHUNK)) {
        let scores = scores(us)?;
        for (row, (&u, &target)) in us.iter().zip(is).enumerate() {
            let s = &scores[row * num_items..(row + 1) * num_items];
            let seen = &rated[u as usize];
            let target_score = s[target as usize];
            let mut rank = 0usize;
            for (i, &si) in s.iter().enumerate() {
                if si > target_score
                    && i != target as usize
                    && seen.binary_search(&(i as u32)).is_err()
                {
                    rank += 1;
                }
            }
            candidates += (num_items - seen.len()) as f64;
            if rank < 10 {
                hits += 1.0;
                ndcg += 1.0 / ((rank + 2) as f64).log2();
            }
        }
    }
    let n = users.len().max(1) as f64;
    Ok(Ranking {
        hit_rate_at_10: hits / n,
        ndcg_at_10: ndcg / n,
        mean_candidates: candidates / n,
    })
}

/// A model's scores for [`ranking`]: one matrix product per block of users.
pub fn model_scores<'a>(
    model: &'a dyn RecModel,
    num_items: usize,
    device: Device,
) -> Result<impl FnMut(&[i64]) -> Result<Vec<f32>> + 'a> {
    let item_factors = all_item_factors(model, num_items, device)?;
    Ok(move |users: &[i64]| score_all_items(model, users, &item_factors, device))
}

/// ItemPop's scores for [`ranking`]: every user gets each item's count of train ratings.
pub fn popularity_scores(
    train: &RatingsDataset,
    num_items: usize,
) -> impl FnMut(&[i64]) -> Result<Vec<f32>> {
    let counts: Vec<f32> = item_counts(train, num_items)
        .into_iter()
        .map(|c| c as f32)
        .collect();
    move |users: &[i64]| Ok(counts.repeat(users.len()))
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
/// leaving out each user's `exclude[k]` (sorted): one matrix product per block of 256
/// users over the whole catalogue.
pub fn top_k(
    model: &dyn RecModel,
    users: &[i64],
    exclude: &[&[u32]],
    num_items: usize,
    k: usize,
    device: Device,
) -> Result<Vec<Vec<(usize, f32)>>> {
    let mut scores = model_scores(model, num_items, device)?;
    let mut out = Vec::with_capacity(users.len());
    for (block, excluded) in users.chunks(256).zip(exclude.chunks(256)) {
        let s = scores(block)?;
        for (row, seen) in s.chunks(num_items).zip(excluded) {
            out.push(best_k(row, seen, k));
        }
    }
    Ok(out)
}

/// The `k` largest of `scores` outside `exclude` (sorted), best first, ties by index.
pub fn best_k(scores: &[f32], exclude: &[u32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| exclude.binary_search(&(*i as u32)).is_err())
        .collect();
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if ranked.len() > k && k > 0 {
        ranked.select_nth_unstable_by(k - 1, order);
    }
    ranked.truncate(k);
    ranked.sort_by(order);
    ranked
}
