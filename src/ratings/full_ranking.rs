//! Full-catalogue scoring: every item for a block of users with one matrix product, the
//! users' seen items masked out. It is how ranking models are evaluated (HitRate@k and
//! NDCG@k over every unseen item, no sampled candidates) and how top-k lists are made.

use crate::autograd;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Block, Forward};
use crate::ratings::negatives::SeenItems;
use crate::tensor::Tensor;
use std::sync::Arc;

/// A model whose score for (user, item) is a dot product of factor rows plus a constant
/// (matrix factorisation, two-tower models): `score(u, i) = <user_factors(u),
/// item_factors(i)> + offset`.
pub trait FactorScorer: Block {
    /// `[n, d]` factor rows of `users` (i64 `[n]`).
    fn user_factors(&self, users: &Tensor) -> Result<Tensor>;
    /// `[n, d]` factor rows of `items` (i64 `[n]`).
    fn item_factors(&self, items: &Tensor) -> Result<Tensor>;
    /// The constant added to every score.
    fn offset(&self) -> f32 {
        0.0
    }
}

/// Scores every item of the catalogue for each user of a batch, `[users, num_items]`,
/// with `-inf` for the items `seen` lists (never recommended, not candidates): one GEMM
/// per batch. As a [`Model`](crate::nn::Model) taking the users, it is the validation
/// network of a ranking run: with the held-out item index as label, the library's
/// [`HitRate`](crate::metric::HitRate) and [`Ndcg`](crate::metric::Ndcg) then rank each
/// held-out item against every unseen item.
///
/// ```
/// use boson::ratings::{FactorScorer, FullRanking, SeenItems};
/// use boson::nn::{Block, Forward};
/// use boson::{Result, Tensor};
/// use std::sync::Arc;
///
/// // Item i scores i for every user.
/// #[derive(Block)]
/// struct ByIndex;
/// impl FactorScorer for ByIndex {
///     fn user_factors(&self, u: &Tensor) -> Result<Tensor> { Tensor::ones(&[u.elem_count(), 1], u.device()) }
///     fn item_factors(&self, i: &Tensor) -> Result<Tensor> { i.to_dtype(boson::tensor::DType::F32)?.reshape(&[i.elem_count(), 1]) }
/// }
/// let seen = Arc::new(SeenItems::new(3, vec![vec![2]])?);
/// let ranking = FullRanking::new(Arc::new(ByIndex), seen);
/// let scores = ranking.forward(&Tensor::from_vec_i64(vec![0], &[1])?)?;
/// assert_eq!(scores.to_vec_f32()?, vec![0.0, 1.0, f32::NEG_INFINITY]);
/// # Ok::<(), boson::Error>(())
/// ```
#[derive(Block)]
pub struct FullRanking<S: ?Sized + FactorScorer> {
    scorer: Arc<S>,
    #[block(skip)]
    seen: Arc<SeenItems>,
}

impl<S: ?Sized + FactorScorer> FullRanking<S> {
    /// Ranks with `scorer` over `seen.num_items()` items, masking `seen`.
    pub fn new(scorer: Arc<S>, seen: Arc<SeenItems>) -> FullRanking<S> {
        FullRanking { scorer, seen }
    }

    /// The masked items.
    pub fn seen(&self) -> &SeenItems {
        &self.seen
    }

    /// `[users, num_items]` scores with `item_factors` precomputed (see
    /// [`FullRanking::all_item_factors`]), so several blocks of users share them.
    pub fn scores_with(&self, users: &Tensor, item_factors: &Tensor) -> Result<Tensor> {
        let ids = user_ids(&self.seen, users, "FullRanking")?;
        let scores = autograd::pause(|| {
            self.scorer
                .user_factors(users)?
                .matmul_t(item_factors, false, true)?
                .add_scalar(self.scorer.offset())
        })?;
        mask_seen_on_device(&self.seen, &ids, scores)
    }

    /// For each of `users`, the `k` best unseen items with their scores, best first
    /// (ties by item index): the catalogue's factor rows once, then one GEMM per block of
    /// 256 users (so the score matrix stays small).
    pub fn top_k(&self, users: &Tensor, k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        self.top_k_with(users, &self.all_item_factors(users.device())?, k)
    }

    /// [`FullRanking::top_k`] with the catalogue's factor rows given
    /// ([`FullRanking::all_item_factors`]), for a caller that ranks many times with an
    /// unchanging model, such as a server.
    pub fn top_k_with(
        &self,
        users: &Tensor,
        item_factors: &Tensor,
        k: usize,
    ) -> Result<Vec<Vec<(usize, f32)>>> {
        let device = users.device();
        let n = self.seen.num_items().max(1);
        let ids = users.to_vec_i64()?;
        let mut out = Vec::with_capacity(ids.len());
        for block in ids.chunks(256) {
            let u = Tensor::from_vec_i64(block.to_vec(), &[block.len()])?.to_device(device)?;
            let scores = self.scores_with(&u, item_factors)?.to_vec_f32()?;
            out.extend(scores.chunks(n).map(|row| best_k(row, k)));
        }
        Ok(out)
    }

    /// The `[num_items, d]` factor rows of the whole catalogue, on `device`.
    pub fn all_item_factors(&self, device: crate::device::Device) -> Result<Tensor> {
        let n = self.seen.num_items();
        let items = Tensor::from_vec_i64((0..n as i64).collect(), &[n])?.to_device(device)?;
        autograd::pause(|| self.scorer.item_factors(&items))
    }
}

impl<S: ?Sized + FactorScorer> RankAll for FullRanking<S> {
    fn seen(&self) -> &SeenItems {
        &self.seen
    }
    fn block_scorer<'a>(&'a self, device: Device) -> Result<BlockScorer<'a>> {
        let item_factors = self.all_item_factors(device)?;
        Ok(Box::new(move |users| {
            self.scores_with(users, &item_factors)
        }))
    }
}

impl<S: ?Sized + FactorScorer> Forward for FullRanking<S> {
    /// The users, i64 `[B]`.
    type Input = Tensor;

    fn forward(&self, users: &Tensor) -> Result<Tensor> {
        let item_factors = self.all_item_factors(users.device())?;
        self.scores_with(users, &item_factors)
    }
}

/// Scores `[users, num_items]` for one block of users.
pub type BlockScorer<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;

/// Whatever scores the whole catalogue for a block of users with the items they have
/// seen at `-inf`: [`FullRanking`] (dot-product models, one GEMM a block) and
/// [`PairRanking`] (any model of (user, item) pairs). What
/// [`evaluate_ranking`](super::evaluate_ranking) ranks with.
pub trait RankAll {
    /// The masked items, and with them the catalogue's size.
    fn seen(&self) -> &SeenItems;
    /// A function from a block of users (i64 `[u]`) to their scores `[u, num_items]` on
    /// `device`, with what every block shares computed once.
    fn block_scorer<'a>(&'a self, device: Device) -> Result<BlockScorer<'a>>;
}

/// Ranks with a model of (user, item) pairs (`Forward<Input = (users, items)>` returning
/// one score per pair: NeuMF, a pair MLP, any rating model): each block of users is
/// scored against every item as `users × items` pairs, at most `max_pairs` per forward
/// pass, and the items a user has seen get `-inf`. Slower than [`FullRanking`]'s one
/// GEMM, but it ranks any model.
#[derive(Block)]
pub struct PairRanking<M: ?Sized + Forward<Input = (Tensor, Tensor)>> {
    model: Arc<M>,
    #[block(skip)]
    seen: Arc<SeenItems>,
    #[block(skip)]
    max_pairs: usize,
}

impl<M: ?Sized + Forward<Input = (Tensor, Tensor)>> PairRanking<M> {
    /// Ranks with `model` over `seen.num_items()` items, masking `seen`; at most 2²⁰
    /// pairs per forward pass.
    pub fn new(model: Arc<M>, seen: Arc<SeenItems>) -> PairRanking<M> {
        PairRanking {
            model,
            seen,
            max_pairs: 1 << 20,
        }
    }

    /// The most pairs one forward pass scores (at least one user's row of items).
    pub fn max_pairs(mut self, n: usize) -> PairRanking<M> {
        self.max_pairs = n;
        self
    }

    /// `[users, num_items]` scores, seen items at `-inf`.
    pub fn scores(&self, users: &Tensor) -> Result<Tensor> {
        let ids = user_ids(&self.seen, users, "PairRanking")?;
        let n = self.seen.num_items();
        let device = users.device();
        let per_pass = (self.max_pairs / n.max(1)).max(1);
        let mut values = Vec::with_capacity(ids.len() * n);
        for block in ids.chunks(per_pass) {
            let u: Vec<i64> = block
                .iter()
                .flat_map(|&u| std::iter::repeat_n(u, n))
                .collect();
            let i: Vec<i64> = (0..block.len()).flat_map(|_| 0..n as i64).collect();
            let pairs = (
                Tensor::from_vec_i64(u, &[block.len() * n])?.to_device(device)?,
                Tensor::from_vec_i64(i, &[block.len() * n])?.to_device(device)?,
            );
            let scores = autograd::pause(|| self.model.forward(&pairs))?;
            if scores.elem_count() != block.len() * n {
                return Err(Error::ShapeMismatch {
                    op: "PairRanking: the model's scores vs one per (user, item) pair",
                    lhs: scores.shape().to_vec(),
                    rhs: vec![block.len() * n],
                });
            }
            values.extend(scores.to_vec_f32()?);
        }
        mask_seen(&self.seen, &ids, &mut values);
        Tensor::from_vec(values, &[ids.len(), n])?.to_device(device)
    }
}

impl<M: ?Sized + Forward<Input = (Tensor, Tensor)>> RankAll for PairRanking<M> {
    fn seen(&self) -> &SeenItems {
        &self.seen
    }
    fn block_scorer<'a>(&'a self, _: Device) -> Result<BlockScorer<'a>> {
        Ok(Box::new(move |users| self.scores(users)))
    }
}

impl<M: ?Sized + Forward<Input = (Tensor, Tensor)>> Forward for PairRanking<M> {
    /// The users, i64 `[B]`.
    type Input = Tensor;

    fn forward(&self, users: &Tensor) -> Result<Tensor> {
        self.scores(users)
    }
}

/// The ids of `users`, each checked against the users `seen` knows.
fn user_ids(seen: &SeenItems, users: &Tensor, op: &str) -> Result<Vec<i64>> {
    let ids = users.to_vec_i64()?;
    if let Some(&bad) = ids
        .iter()
        .find(|&&u| u < 0 || u as usize >= seen.num_users())
    {
        return Err(Error::IndexOutOfRange {
            what: format!("{op}: user (number of users in SeenItems)"),
            index: bad,
            size: seen.num_users(),
        });
    }
    Ok(ids)
}

/// `scores` (`[ids.len(), num_items]`, on any device) with each user's seen items at
/// `-inf`, where the scores are (`Tensor::fill_at`): only the seen items' positions
/// travel to the device, never the scores to the host and back.
fn mask_seen_on_device(seen: &SeenItems, ids: &[i64], scores: Tensor) -> Result<Tensor> {
    let n = seen.num_items() as i64;
    let positions: Vec<i64> = (0..)
        .zip(ids)
        .flat_map(|(row, &u)| {
            seen.of(u as usize)
                .iter()
                .map(move |&i| row * n + i64::from(i))
        })
        .collect();
    if positions.is_empty() {
        return Ok(scores);
    }
    let k = positions.len();
    let positions = Tensor::from_vec_i64(positions, &[k])?.to_device(scores.device())?;
    scores.fill_at(&positions, f32::NEG_INFINITY)
}

/// Sets each user's seen items to `-inf` in `scores` (row-major `[ids.len(), num_items]`).
fn mask_seen(seen: &SeenItems, ids: &[i64], scores: &mut [f32]) {
    for (row, &u) in scores.chunks_mut(seen.num_items().max(1)).zip(ids) {
        for &i in seen.of(u as usize) {
            row[i as usize] = f32::NEG_INFINITY;
        }
    }
}

/// The `k` largest scores of `row`, best first, ties by index; `-inf` (a seen item) is
/// never among them, and NaN (a broken model) ranks first, so a caller sees it. Holds at
/// most `k` candidates at a time (a bounded heap), whatever the row's length.
pub fn best_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    use std::collections::BinaryHeap;
    /// Ordered so that the heap's top is the worst kept candidate: lower score, then
    /// higher index.
    #[derive(PartialEq)]
    struct Worst(f32, usize);
    impl Eq for Worst {}
    impl Ord for Worst {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
        }
    }
    impl PartialOrd for Worst {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    let k = k.min(row.len());
    if k == 0 {
        return Vec::new();
    }
    let mut heap = BinaryHeap::with_capacity(k + 1);
    for (i, &s) in row.iter().enumerate() {
        if s == f32::NEG_INFINITY {
            continue;
        }
        let candidate = Worst(s, i);
        if heap.len() < k {
            heap.push(candidate);
        } else if heap.peek().is_some_and(|worst| candidate < *worst) {
            heap.pop();
            heap.push(candidate);
        }
    }
    // Ascending by "worst" order is best first.
    heap.into_sorted_vec()
        .into_iter()
        .map(|Worst(s, i)| (i, s))
        .collect()
}
