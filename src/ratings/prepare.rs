//! Preparing ratings for training: the long-tail filter and dense indexing.

use crate::data::ArrayDataset;
use crate::error::Result;
use crate::ratings::table::{IndexMap, ItemInfo, Ratings};

/// Drops rare users and items, as the SageMaker reference notebook does before
/// training (users with fewer than 5 ratings, items with fewer than 10).
///
/// With `until_stable: false` (the default, and what the reference does) the counts
/// are taken once on the input and both thresholds applied together, so a kept user
/// can end with fewer than `min_per_user` ratings after rare items go. With
/// `until_stable: true` the filter repeats until every kept user and item meets its
/// threshold.
///
/// ```
/// use boson::ratings::{LongTailFilter, Ratings};
///
/// let mut r = Ratings::new(false);
/// for u in ["a", "a", "b"] {
///     r.push(u, "x", 4.0, None)?;
/// }
/// let f = LongTailFilter { min_per_user: 2, min_per_item: 1, until_stable: false };
/// let kept = f.apply(&r);
/// assert_eq!(kept.len(), 2);
/// assert_eq!(kept.num_users(), 1);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongTailFilter {
    /// Keep users with at least this many ratings.
    pub min_per_user: usize,
    /// Keep items with at least this many ratings.
    pub min_per_item: usize,
    /// Repeat until nothing changes (see the type's documentation).
    pub until_stable: bool,
}

impl Default for LongTailFilter {
    /// 5 per user, 10 per item, one pass: the reference notebook's choice.
    fn default() -> Self {
        LongTailFilter {
            min_per_user: 5,
            min_per_item: 10,
            until_stable: false,
        }
    }
}

impl LongTailFilter {
    /// The kept rows in file order, users and items renumbered by first appearance.
    pub fn apply(&self, ratings: &Ratings) -> Ratings {
        let users = ratings.user_indices();
        let items = ratings.item_indices();
        let mut keep = vec![true; ratings.len()];
        loop {
            let mut per_user = vec![0usize; ratings.num_users()];
            let mut per_item = vec![0usize; ratings.num_items()];
            for row in (0..keep.len()).filter(|&r| keep[r]) {
                per_user[users[row] as usize] += 1;
                per_item[items[row] as usize] += 1;
            }
            let mut changed = false;
            for row in 0..keep.len() {
                if keep[row]
                    && (per_user[users[row] as usize] < self.min_per_user
                        || per_item[items[row] as usize] < self.min_per_item)
                {
                    keep[row] = false;
                    changed = true;
                }
            }
            if !self.until_stable || !changed {
                break;
            }
        }
        ratings.select(&keep)
    }
}

/// The training triples columns: (user index, item index, rating).
pub type RatingsDataset = ArrayDataset<(Vec<i64>, Vec<i64>, Vec<f32>)>;

/// Ratings with dense user and item indices (`0..users().len()`, `0..items().len()`)
/// and the maps back to the original ids.
///
/// ```
/// use boson::ratings::Ratings;
///
/// let mut r = Ratings::new(false);
/// r.push("alice", "book", 4.0, None)?;
/// r.push("bob", "book", 2.0, None)?;
/// let indexed = r.to_indexed();
/// assert_eq!(indexed.user_indices(), &[0, 1]);
/// assert_eq!(indexed.item_indices(), &[0, 0]);
/// assert_eq!(indexed.users().id_of(1), Some("bob"));
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedRatings {
    users: IndexMap,
    items: IndexMap,
    user: Vec<i64>,
    item: Vec<i64>,
    rating: Vec<f32>,
    timestamp: Option<Vec<i64>>,
    item_info: ItemInfo,
}

impl Ratings {
    /// Dense indices numbered by activity, as pandas' `value_counts()` orders them: the
    /// user (item) with the most ratings is 0; ties keep the order of first appearance.
    /// The reference notebook numbers users and items this way.
    ///
    /// ```
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(false);
    /// for (u, i) in [("rare", "x"), ("busy", "y"), ("busy", "x")] {
    ///     r.push(u, i, 4.0, None)?;
    /// }
    /// let indexed = r.to_indexed_by_activity();
    /// assert_eq!(indexed.users().ids(), ["busy", "rare"]);
    /// assert_eq!(indexed.items().ids(), ["x", "y"]);
    /// assert_eq!(indexed.user_indices(), [1, 0, 0]);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn to_indexed_by_activity(&self) -> IndexedRatings {
        // The new index of each old one: old indices by descending count, stable.
        let renumber = |old: &[u32], n: usize| -> Vec<i64> {
            let mut count = vec![0usize; n];
            for &o in old {
                count[o as usize] += 1;
            }
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&o| std::cmp::Reverse(count[o]));
            let mut new = vec![0i64; n];
            for (rank, &o) in order.iter().enumerate() {
                new[o] = rank as i64;
            }
            new
        };
        let reorder = |map: &IndexMap, new: &[i64]| {
            let mut ids = vec![""; map.len()];
            for (o, id) in map.ids().iter().enumerate() {
                ids[new[o] as usize] = id;
            }
            let mut out = IndexMap::new();
            for id in ids {
                out.insert(id);
            }
            out
        };
        let new_user = renumber(self.user_indices(), self.num_users());
        let new_item = renumber(self.item_indices(), self.num_items());
        let mut old_of_new = vec![0usize; new_item.len()];
        for (old, &new) in new_item.iter().enumerate() {
            old_of_new[new as usize] = old;
        }
        IndexedRatings {
            item_info: self.item_info().reordered(old_of_new.into_iter()),
            users: reorder(self.users(), &new_user),
            items: reorder(self.items(), &new_item),
            user: self
                .user_indices()
                .iter()
                .map(|&u| new_user[u as usize])
                .collect(),
            item: self
                .item_indices()
                .iter()
                .map(|&i| new_item[i as usize])
                .collect(),
            rating: self.ratings().to_vec(),
            timestamp: self.timestamps().map(<[i64]>::to_vec),
        }
    }

    /// Dense indices for users and items, numbered by first appearance.
    pub fn to_indexed(&self) -> IndexedRatings {
        IndexedRatings {
            users: self.users().clone(),
            items: self.items().clone(),
            user: self.user_indices().iter().map(|&u| i64::from(u)).collect(),
            item: self.item_indices().iter().map(|&i| i64::from(i)).collect(),
            rating: self.ratings().to_vec(),
            timestamp: self.timestamps().map(<[i64]>::to_vec),
            item_info: self.item_info().clone(),
        }
    }
}

impl IndexedRatings {
    /// The per-item text columns kept from the file, by item index.
    pub fn item_info(&self) -> &ItemInfo {
        &self.item_info
    }

    /// original user id <-> user index.
    pub fn users(&self) -> &IndexMap {
        &self.users
    }

    /// original item id <-> item index.
    pub fn items(&self) -> &IndexMap {
        &self.items
    }

    /// Each row's user index.
    pub fn user_indices(&self) -> &[i64] {
        &self.user
    }

    /// Each row's item index.
    pub fn item_indices(&self) -> &[i64] {
        &self.item
    }

    /// Each row's rating.
    pub fn ratings(&self) -> &[f32] {
        &self.rating
    }

    /// Each row's timestamp, if the source had them.
    pub fn timestamps(&self) -> Option<&[i64]> {
        self.timestamp.as_deref()
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rating.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rating.is_empty()
    }

    /// All rows as a dataset of `(user index, item index, rating)`.
    pub fn to_dataset(&self) -> Result<RatingsDataset> {
        ArrayDataset::new((self.user.clone(), self.item.clone(), self.rating.clone()))
    }

    /// The rows where `keep` is true, as a dataset, in file order.
    pub(crate) fn rows_where(&self, keep: &[bool], want: bool) -> Result<RatingsDataset> {
        let rows = || (0..self.len()).filter(|&r| keep[r] == want);
        ArrayDataset::new((
            rows().map(|r| self.user[r]).collect(),
            rows().map(|r| self.item[r]).collect(),
            rows().map(|r| self.rating[r]).collect(),
        ))
    }
}
