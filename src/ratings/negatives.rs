//! Implicit feedback: which items each user has seen, and negatives sampled among the
//! others (for BPR and sampled-softmax training of ranking models).

use crate::data::Batchify;
use crate::error::{Error, Result};
use crate::ratings::prepare::RatingsDataset;
use crate::tensor::Tensor;
use rand::RngExt;
use std::sync::Arc;

/// Each user's seen items (sorted, deduplicated) in a catalogue of `num_items`: what a
/// ranking model must neither be trained to prefer as a negative nor recommend.
///
/// ```
/// use boson::ratings::SeenItems;
/// let seen = SeenItems::new(4, vec![vec![2, 0, 2], vec![]])?;
/// assert_eq!(seen.of(0), &[0, 2]);
/// assert!(seen.contains(0, 2) && !seen.contains(1, 2));
/// # Ok::<(), boson::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SeenItems {
    num_items: usize,
    per_user: Vec<Vec<u32>>,
}

impl SeenItems {
    /// From one item list per user; an item index `>= num_items` is an error naming it,
    /// and so is a catalogue of more than `u32::MAX` items (item indices are `u32`).
    pub fn new(num_items: usize, mut per_user: Vec<Vec<u32>>) -> Result<SeenItems> {
        if num_items > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "SeenItems: a catalogue of {num_items} items; item indices are u32, so at \
                 most {} items",
                u32::MAX
            )));
        }
        for (user, items) in per_user.iter_mut().enumerate() {
            if let Some(&bad) = items.iter().find(|&&i| i as usize >= num_items) {
                return Err(Error::IndexOutOfRange {
                    what: format!("SeenItems: item seen by user {user} (catalogue size)"),
                    index: i64::from(bad),
                    size: num_items,
                });
            }
            items.sort_unstable();
            items.dedup();
        }
        Ok(SeenItems {
            num_items,
            per_user,
        })
    }

    /// Every (user, item) pair of `sets` (e.g. train, or train + validation).
    pub fn from_datasets(
        sets: &[&RatingsDataset],
        num_users: usize,
        num_items: usize,
    ) -> Result<SeenItems> {
        let mut per_user = vec![Vec::new(); num_users];
        for set in sets {
            let (users, items, _) = set.columns();
            for (&u, &i) in users.iter().zip(items) {
                let row = usize::try_from(u)
                    .ok()
                    .and_then(|u| per_user.get_mut(u))
                    .ok_or_else(|| Error::IndexOutOfRange {
                        what: "SeenItems: user (number of users)".into(),
                        index: u,
                        size: num_users,
                    })?;
                let item = u32::try_from(i).map_err(|_| Error::IndexOutOfRange {
                    what: "SeenItems: item (catalogue size)".into(),
                    index: i,
                    size: num_items,
                })?;
                row.push(item);
            }
        }
        SeenItems::new(num_items, per_user)
    }

    /// The catalogue size.
    pub fn num_items(&self) -> usize {
        self.num_items
    }

    /// The number of users.
    pub fn num_users(&self) -> usize {
        self.per_user.len()
    }

    /// `user`'s seen items, sorted (empty for a user index out of range).
    pub fn of(&self, user: usize) -> &[u32] {
        self.per_user.get(user).map_or(&[], Vec::as_slice)
    }

    /// Whether `user` has seen `item`.
    pub fn contains(&self, user: usize, item: usize) -> bool {
        u32::try_from(item).is_ok_and(|i| self.of(user).binary_search(&i).is_ok())
    }

    /// Each user's seen items, sorted.
    pub fn lists(&self) -> &[Vec<u32>] {
        &self.per_user
    }
}

/// Draws, for each (user, positive item) of a batch, `negatives` items the user has not
/// seen, uniformly with replacement. The draws depend only on the seed and the batch's
/// pairs, so they are the same whatever the loader's worker count, a resumed run draws
/// what an uninterrupted one did, and each epoch (shuffled into different batches) gets
/// fresh negatives.
///
/// `negatives` is at least 1 and fewer than the catalogue's items: a user's negatives
/// are items they have not seen, and each user has seen at least their positive. Draws
/// are with replacement, so a user who has seen all but `k` items gets those `k` items,
/// repeated, as their `negatives` negatives (and never a seen item); a user who has seen
/// every item is an error naming the user.
///
/// As a [`Batchify`] of the rating rows `(user, item, rating)` it makes the batch
/// `(users [B], candidates [B, 1 + negatives], label [B])`: column 0 is the positive,
/// and the label (all zeros) is its column, as
/// [`SoftmaxCrossEntropyLoss`](crate::loss::SoftmaxCrossEntropyLoss),
/// [`BprLoss`](crate::loss::BprLoss) and the ranking metrics read it. The candidates of a
/// batch, `B × (1 + negatives)` indices of 8 bytes, are checked against the allocation
/// limit ([`check_alloc`](crate::tensor::check_alloc), see
/// [`set_max_tensor_bytes`](crate::tensor::set_max_tensor_bytes)) before they are
/// allocated; [`check_batch`](Self::check_batch) checks a batch size ahead of training.
///
/// ```
/// use boson::data::{ArrayDataset, DataLoader};
/// use boson::ratings::{NegativeSampler, SeenItems};
/// use std::sync::Arc;
///
/// let seen = Arc::new(SeenItems::new(10, vec![vec![0, 1], vec![5]])?);
/// let rows = ArrayDataset::new((vec![0i64, 1], vec![1i64, 5], vec![1.0f32, 1.0]))?;
/// let loader = DataLoader::builder(rows)
///     .batch_size(2)
///     .batchify(NegativeSampler::new(seen.clone(), 3, 7)?)
///     .build()?;
/// for batch in &loader {
///     let (users, candidates, label) = batch?;
///     assert_eq!(candidates.shape(), &[2, 4]);
///     let c = candidates.to_vec_i64()?;
///     assert!(c[1..4].iter().all(|&i| !seen.contains(0, i as usize)));
///     assert_eq!(label.to_vec_f32()?, vec![0.0, 0.0]);
/// }
/// // 10 negatives in a catalogue of 10 items: a user's negatives would include seen items.
/// assert!(NegativeSampler::new(seen, 10, 7).is_err());
/// # Ok::<(), boson::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NegativeSampler {
    seen: Arc<SeenItems>,
    negatives: usize,
    seed: u64,
}

impl NegativeSampler {
    /// `negatives` per positive, at least 1 and fewer than `seen`'s catalogue size
    /// (otherwise an error naming both).
    pub fn new(seen: Arc<SeenItems>, negatives: usize, seed: u64) -> Result<NegativeSampler> {
        let items = seen.num_items();
        if negatives == 0 {
            return Err(Error::InvalidArgument(
                "NegativeSampler needs at least 1 negative per positive, got 0".into(),
            ));
        }
        if negatives >= items {
            return Err(Error::InvalidArgument(format!(
                "NegativeSampler: {negatives} negatives per positive in a catalogue of \
                 {items} items; a user's negatives are items they have not rated, so use \
                 at least 1 and fewer than {items} (at most {})",
                items.saturating_sub(1)
            )));
        }
        Ok(NegativeSampler {
            seen,
            negatives,
            seed,
        })
    }

    /// Negatives per positive.
    pub fn negatives(&self) -> usize {
        self.negatives
    }

    /// The seen items negatives avoid.
    pub fn seen(&self) -> &SeenItems {
        &self.seen
    }

    /// Checks that a batch of `batch_size` positives, `batch_size × (1 + negatives)`
    /// candidate indices, fits the allocation limit
    /// ([`check_alloc`](crate::tensor::check_alloc)); the error names the batch size, the
    /// negatives and the limit. Sampling checks each batch the same way before allocating.
    pub fn check_batch(&self, batch_size: usize) -> Result<()> {
        self.checked_len(batch_size, 1 + self.negatives).map(drop)
    }

    /// `rows × width` indices, checked against the allocation limit.
    fn checked_len(&self, rows: usize, width: usize) -> Result<usize> {
        let what = || {
            format!(
                "NegativeSampler: a batch of {rows} positives × (1 + {} negatives)",
                self.negatives
            )
        };
        let len = rows.checked_mul(width).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: the number of candidates overflows usize; use a smaller batch or \
                 fewer negatives",
                what()
            ))
        })?;
        crate::tensor::check_alloc(len, std::mem::size_of::<i64>(), what)?;
        Ok(len)
    }

    /// `negatives` unseen items for each of `users`, row-major `[users.len() × negatives]`.
    /// `positives` (the batch's positive items, one per user) only seed the draw. A user
    /// out of range, or one who has seen every item, is an error naming the user.
    pub fn sample(&self, users: &[i64], positives: &[i64]) -> Result<Vec<i64>> {
        self.draw(users, positives, false)
    }

    /// `[users.len(), 1 + negatives]` item indices: each row the positive, then its
    /// negatives (the same negatives [`sample`](Self::sample) draws).
    pub fn candidates(&self, users: &[i64], positives: &[i64]) -> Result<Tensor> {
        let rows = self.draw(users, positives, true)?;
        Tensor::from_vec_i64(rows, &[users.len(), 1 + self.negatives])
    }

    /// Each user's negatives, after their positive when `with_positive`, in one vector
    /// whose size is checked before it is allocated.
    fn draw(&self, users: &[i64], positives: &[i64], with_positive: bool) -> Result<Vec<i64>> {
        if users.len() != positives.len() {
            return Err(Error::InvalidArgument(format!(
                "NegativeSampler: {} users but {} positive items",
                users.len(),
                positives.len()
            )));
        }
        let width = self.negatives + usize::from(with_positive);
        let len = self.checked_len(users.len(), width)?;
        let mut key = self.seed;
        for (&u, &i) in users.iter().zip(positives) {
            key = crate::rng::mix_seed(key, (u as u64) << 32 ^ i as u64);
        }
        let mut rng = crate::rng::generator(self.seed, key);
        let n = self.seen.num_items();
        let mut out = Vec::with_capacity(len);
        for (&u, &positive) in users.iter().zip(positives) {
            let seen = usize::try_from(u)
                .ok()
                .filter(|&u| u < self.seen.num_users())
                .map(|u| self.seen.of(u))
                .ok_or_else(|| Error::IndexOutOfRange {
                    what: "NegativeSampler: user (number of users in SeenItems)".into(),
                    index: u,
                    size: self.seen.num_users(),
                })?;
            if seen.len() >= n {
                return Err(Error::Data(format!(
                    "NegativeSampler: user {u} has seen all {n} items, so no negative can be \
                     drawn; drop such users before ranking training"
                )));
            }
            if with_positive {
                out.push(positive);
            }
            if seen.len() * 2 <= n {
                // At least half the catalogue is unseen: a redraw is rarer than not.
                for _ in 0..self.negatives {
                    let item = loop {
                        let i = rng.random_range(0..n) as u32;
                        if seen.binary_search(&i).is_err() {
                            break i;
                        }
                    };
                    out.push(i64::from(item));
                }
            } else {
                // Most of the catalogue is seen: draw among the unseen items, with
                // replacement (one unseen item is every negative).
                let unseen: Vec<u32> = (0..n as u32)
                    .filter(|i| seen.binary_search(i).is_err())
                    .collect();
                for _ in 0..self.negatives {
                    out.push(i64::from(unseen[rng.random_range(0..unseen.len())]));
                }
            }
        }
        Ok(out)
    }
}

impl Batchify<(i64, i64, f32)> for NegativeSampler {
    type Batch = (Tensor, Tensor, Tensor);

    fn batchify(&self, rows: Vec<(i64, i64, f32)>) -> Result<Self::Batch> {
        let users: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let positives: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let candidates = self.candidates(&users, &positives)?;
        let b = users.len();
        Ok((
            Tensor::from_vec_i64(users, &[b])?,
            candidates,
            Tensor::zeros(&[b], crate::device::Device::Cpu)?,
        ))
    }
}
