//! Test-time ranking evaluation, leave-one-out with full ranking: each test user's
//! held-out item is ranked against every item the user has not seen, and the report
//! gives HitRate@k, NDCG@k, MRR@k and catalogue coverage. [`ItemPop`], the reference
//! every ranking model should beat, is a [`FactorScorer`] like the models.

use super::full_ranking::{best_k, FactorScorer, RankAll};
use super::prepare::RatingsDataset;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::metric::{HitRate, Metric, Mrr, Ndcg};
use crate::tensor::Tensor;

/// Most popular: every user scores each item by its number of training interactions.
#[derive(crate::nn::Block)]
pub struct ItemPop {
    #[block(skip)]
    counts: Tensor,
}

impl ItemPop {
    /// From each item's count (`counts[i]` for item `i`).
    pub fn new(counts: &[u32]) -> Result<ItemPop> {
        let values = counts.iter().map(|&c| c as f32).collect();
        Ok(ItemPop {
            counts: Tensor::from_vec(values, &[counts.len(), 1])?,
        })
    }

    /// Counted from the item column of `train`, for a catalogue of `num_items`; an item
    /// index at or past `num_items` is an error naming it.
    pub fn from_dataset(train: &RatingsDataset, num_items: usize) -> Result<ItemPop> {
        ItemPop::new(&item_counts(train, num_items)?)
    }
}

impl FactorScorer for ItemPop {
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        Tensor::ones(&[users.elem_count(), 1], users.device())
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        self.counts.to_device(items.device())?.take(items, false)
    }
}

/// How many interactions each of `num_items` items has in `data`; an item index at or
/// past `num_items` is an error naming it.
pub fn item_counts(data: &RatingsDataset, num_items: usize) -> Result<Vec<u32>> {
    let mut counts = vec![0u32; num_items];
    for &i in &data.columns().1 {
        match usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
            Some(c) => *c += 1,
            None => {
                return Err(Error::IndexOutOfRange {
                    what: "item_counts: item (catalogue size)".into(),
                    index: i,
                    size: num_items,
                })
            }
        }
    }
    Ok(counts)
}

/// What [`evaluate_ranking`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankingReport {
    /// The cut-off of every @k figure.
    pub k: usize,
    /// Users evaluated.
    pub users: usize,
    /// The fraction of users whose held-out item ranks in their top `k`.
    pub hit_rate: f64,
    /// NDCG@k with one relevant item: `1 / log2(rank + 2)` inside the top `k`.
    pub ndcg: f64,
    /// MRR@k: `1 / (rank + 1)` inside the top `k`.
    pub mrr: f64,
    /// The fraction of the catalogue that appears in at least one user's top `k`.
    pub coverage: f64,
    /// Candidates per user on average (the items each user has not seen).
    pub mean_candidates: f64,
}

/// Ranks each `held_out[j]` item against every item `users[j]` has not seen
/// (`ranking`'s mask), in blocks of 256 users with what the blocks share computed once
/// ([`FullRanking`](super::FullRanking) for dot-product models,
/// [`PairRanking`](super::PairRanking) for any other); ties count against the model. An error when the lists differ in length, for
/// `k` 0, or for a user or item out of range.
pub fn evaluate_ranking<R: ?Sized + RankAll>(
    ranking: &R,
    users: &[i64],
    held_out: &[i64],
    k: usize,
    device: Device,
) -> Result<RankingReport> {
    if users.len() != held_out.len() {
        return Err(Error::InvalidArgument(format!(
            "evaluate_ranking: {} users but {} held-out items",
            users.len(),
            held_out.len()
        )));
    }
    let (mut hits, mut ndcg, mut mrr) = (HitRate::new(k)?, Ndcg::new(k)?, Mrr::new(k)?);
    let num_items = ranking.seen().num_items();
    let mut covered = vec![false; num_items];
    let score_block = ranking.block_scorer(device)?;
    for (us, is) in users.chunks(256).zip(held_out.chunks(256)) {
        if let Some(&bad) = is.iter().find(|&&i| i < 0 || i as usize >= num_items) {
            return Err(Error::IndexOutOfRange {
                what: "evaluate_ranking: held-out item (catalogue size)".into(),
                index: bad,
                size: num_items,
            });
        }
        let u = Tensor::from_vec_i64(us.to_vec(), &[us.len()])?.to_device(device)?;
        let scores = score_block(&u)?;
        let labels = Tensor::from_vec(is.iter().map(|&i| i as f32).collect(), &[is.len()])?;
        hits.update(&labels, &scores)?;
        ndcg.update(&labels, &scores)?;
        mrr.update(&labels, &scores)?;
        for row in scores.to_vec_f32()?.chunks(num_items.max(1)) {
            for (i, _) in best_k(row, k) {
                covered[i] = true;
            }
        }
    }
    let candidates: usize = users
        .iter()
        .map(|&u| num_items - ranking.seen().of(u as usize).len())
        .sum();
    let get = |m: &dyn Metric| f64::from(m.get().1);
    Ok(RankingReport {
        k,
        users: users.len(),
        hit_rate: get(&hits),
        ndcg: get(&ndcg),
        mrr: get(&mrr),
        coverage: covered.iter().filter(|&&c| c).count() as f64 / num_items.max(1) as f64,
        mean_candidates: candidates as f64 / users.len().max(1) as f64,
    })
}
