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
    /// From one item list per user; an item index `>= num_items` is an error naming it.
    pub fn new(num_items: usize, mut per_user: Vec<Vec<u32>>) -> Result<SeenItems> {
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
/// As a [`Batchify`] of the rating rows `(user, item, rating)` it makes the batch
/// `(users [B], candidates [B, 1 + negatives], label [B])`: column 0 is the positive,
/// and the label (all zeros) is its column, as
/// [`SoftmaxCrossEntropyLoss`](crate::loss::SoftmaxCrossEntropyLoss),
/// [`BprLoss`](crate::loss::BprLoss) and the ranking metrics read it.
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
/// # Ok::<(), boson::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NegativeSampler {
    seen: Arc<SeenItems>,
    negatives: usize,
    seed: u64,
}

impl NegativeSampler {
    /// `negatives` per positive (at least 1), drawn outside `seen`.
    pub fn new(seen: Arc<SeenItems>, negatives: usize, seed: u64) -> Result<NegativeSampler> {
        if negatives == 0 {
            return Err(Error::InvalidArgument(
                "NegativeSampler needs at least 1 negative per positive".into(),
            ));
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

    /// `negatives` unseen items for each of `users`, row-major `[users.len() × negatives]`.
    /// `positives` (the batch's positive items, one per user) only seed the draw. A user
    /// out of range, or one who has seen every item, is an error naming the user.
    pub fn sample(&self, users: &[i64], positives: &[i64]) -> Result<Vec<i64>> {
        if users.len() != positives.len() {
            return Err(Error::InvalidArgument(format!(
                "NegativeSampler: {} users but {} positive items",
                users.len(),
                positives.len()
            )));
        }
        let mut key = self.seed;
        for (&u, &i) in users.iter().zip(positives) {
            key = crate::rng::mix_seed(key, (u as u64) << 32 ^ i as u64);
        }
        let mut rng = crate::rng::generator(self.seed, key);
        let n = self.seen.num_items();
        let mut out = Vec::with_capacity(users.len() * self.negatives);
        for &u in users {
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

    /// `[users.len(), 1 + negatives]` item indices: each row the positive, then its
    /// negatives.
    pub fn candidates(&self, users: &[i64], positives: &[i64]) -> Result<Tensor> {
        let negatives = self.sample(users, positives)?;
        let width = 1 + self.negatives;
        let mut rows = Vec::with_capacity(users.len() * width);
        for (&pos, negs) in positives.iter().zip(negatives.chunks(self.negatives)) {
            rows.push(pos);
            rows.extend_from_slice(negs);
        }
        Tensor::from_vec_i64(rows, &[users.len(), width])
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
