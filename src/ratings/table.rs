//! [`Ratings`]: rating records with their original string ids, in file order.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// A dense two-way map between original ids (strings) and indices `0..len`, numbered in
/// order of first appearance.
///
/// ```
/// use boson::ratings::IndexMap;
///
/// let mut users = IndexMap::new();
/// assert_eq!(users.insert("alice"), 0);
/// assert_eq!(users.insert("bob"), 1);
/// assert_eq!(users.insert("alice"), 0);
/// assert_eq!(users.index_of("bob"), Some(1));
/// assert_eq!(users.id_of(0), Some("alice"));
/// assert_eq!(users.index_of("carol"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexMap {
    ids: Vec<String>,
    lookup: HashMap<String, usize>,
}

impl IndexMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `id`, adding it at the end if it is new.
    pub fn insert(&mut self, id: &str) -> usize {
        if let Some(&index) = self.lookup.get(id) {
            return index;
        }
        let index = self.ids.len();
        self.ids.push(id.to_string());
        self.lookup.insert(id.to_string(), index);
        index
    }

    /// The index of `id`, if known.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.lookup.get(id).copied()
    }

    /// The id at `index`, if in range.
    pub fn id_of(&self, index: usize) -> Option<&str> {
        self.ids.get(index).map(String::as_str)
    }

    /// All ids, in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The number of distinct ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no id is known.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One rating, borrowed from a [`Ratings`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatingRecord<'a> {
    /// The original user id.
    pub user: &'a str,
    /// The original item id.
    pub item: &'a str,
    /// The rating.
    pub rating: f32,
    /// Seconds since 1970-01-01 UTC, when the source has a time column.
    pub timestamp: Option<i64>,
}

/// Rating records as read from a file: original string ids, f32 ratings, optional
/// timestamps (all rows have one or none do), in file order.
///
/// Ids are stored once each (interned in an [`IndexMap`] per side), so a million rows
/// over a hundred thousand users cost a hundred thousand strings, not a million.
///
/// ```
/// use boson::ratings::Ratings;
///
/// let mut r = Ratings::new(false);
/// r.push("u1", "i9", 4.0, None)?;
/// r.push("u2", "i9", 2.0, None)?;
/// assert_eq!(r.len(), 2);
/// assert_eq!(r.num_items(), 1);
/// assert_eq!(r.get(1).unwrap().user, "u2");
/// assert!(r.push("u3", "i1", 5.0, Some(1)).is_err(), "no timestamps in this table");
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ratings {
    users: IndexMap,
    items: IndexMap,
    user: Vec<u32>,
    item: Vec<u32>,
    rating: Vec<f32>,
    timestamp: Option<Vec<i64>>,
    item_info: ItemInfo,
}

/// Text columns kept per item from a rating file (such as the Amazon file's
/// `product_title`): for each item, the value on its first line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ItemInfo {
    columns: Vec<String>,
    /// `values[item][column]`.
    values: Vec<Vec<String>>,
}

impl ItemInfo {
    /// The kept columns' names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Item `item`'s value in `column`, if the column was kept.
    pub fn get(&self, column: &str, item: usize) -> Option<&str> {
        let c = self.columns.iter().position(|n| n == column)?;
        Some(self.values.get(item)?.get(c)?.as_str())
    }

    /// The same columns for `items`, in that order (`items[k]` is the old index of new
    /// item k).
    pub(crate) fn reordered(&self, items: impl Iterator<Item = usize>) -> ItemInfo {
        ItemInfo {
            columns: self.columns.clone(),
            values: match self.columns.is_empty() {
                true => Vec::new(),
                false => items.map(|i| self.values[i].clone()).collect(),
            },
        }
    }
}

impl Ratings {
    /// An empty table; `with_timestamps` says whether every row will carry a time.
    pub fn new(with_timestamps: bool) -> Self {
        Ratings {
            timestamp: with_timestamps.then(Vec::new),
            ..Self::default()
        }
    }

    /// An empty table that also keeps per-item text `columns` ([`Ratings::push_item_info`]).
    pub fn with_item_columns(with_timestamps: bool, columns: &[String]) -> Self {
        Ratings {
            item_info: ItemInfo {
                columns: columns.to_vec(),
                values: Vec::new(),
            },
            ..Self::new(with_timestamps)
        }
    }

    /// The per-item text columns.
    pub fn item_info(&self) -> &ItemInfo {
        &self.item_info
    }

    /// Records the item columns' `values` for the item of the last pushed rating, if that
    /// rating introduced the item (the first value seen is kept).
    pub fn push_item_info(&mut self, values: &[&str]) -> Result<()> {
        if self.item_info.columns.is_empty() {
            return Ok(());
        }
        if values.len() != self.item_info.columns.len() {
            return Err(Error::InvalidArgument(format!(
                "{} item column values for the columns {:?}",
                values.len(),
                self.item_info.columns
            )));
        }
        if self.item_info.values.len() < self.items.len() {
            self.item_info
                .values
                .push(values.iter().map(|v| v.to_string()).collect());
        }
        Ok(())
    }

    /// Appends a rating. A timestamp must be given exactly when the table has them.
    pub fn push(
        &mut self,
        user: &str,
        item: &str,
        rating: f32,
        timestamp: Option<i64>,
    ) -> Result<()> {
        match (&mut self.timestamp, timestamp) {
            (Some(times), Some(t)) => times.push(t),
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::InvalidArgument(
                    "Ratings::push: this table has timestamps, the row has none".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::InvalidArgument(
                    "Ratings::push: this table has no timestamps, the row has one".into(),
                ))
            }
        }
        let u = self.users.insert(user);
        let i = self.items.insert(item);
        // Indices are u32 to halve memory; 4 billion distinct ids is beyond any rating file.
        let (Ok(u), Ok(i)) = (u32::try_from(u), u32::try_from(i)) else {
            return Err(Error::Data("more than 2^32 distinct users or items".into()));
        };
        self.user.push(u);
        self.item.push(i);
        self.rating.push(rating);
        Ok(())
    }

    /// The number of ratings.
    pub fn len(&self) -> usize {
        self.rating.len()
    }

    /// True when there is no rating.
    pub fn is_empty(&self) -> bool {
        self.rating.is_empty()
    }

    /// The number of distinct users.
    pub fn num_users(&self) -> usize {
        self.users.len()
    }

    /// The number of distinct items.
    pub fn num_items(&self) -> usize {
        self.items.len()
    }

    /// Row `index`, if in range.
    pub fn get(&self, index: usize) -> Option<RatingRecord<'_>> {
        let rating = *self.rating.get(index)?;
        Some(RatingRecord {
            user: &self.users.ids()[self.user[index] as usize],
            item: &self.items.ids()[self.item[index] as usize],
            rating,
            timestamp: self.timestamp.as_ref().map(|t| t[index]),
        })
    }

    /// All rows in file order.
    pub fn iter(&self) -> impl Iterator<Item = RatingRecord<'_>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The ratings column.
    pub fn ratings(&self) -> &[f32] {
        &self.rating
    }

    /// The timestamps column, if the source had one.
    pub fn timestamps(&self) -> Option<&[i64]> {
        self.timestamp.as_deref()
    }

    /// Distinct users, numbered by first appearance; row `r`'s user is
    /// `user_indices()[r]` in this map.
    pub fn users(&self) -> &IndexMap {
        &self.users
    }

    /// Distinct items, numbered by first appearance.
    pub fn items(&self) -> &IndexMap {
        &self.items
    }

    /// Each row's user as an index into [`users`](Self::users).
    pub fn user_indices(&self) -> &[u32] {
        &self.user
    }

    /// Each row's item as an index into [`items`](Self::items).
    pub fn item_indices(&self) -> &[u32] {
        &self.item
    }

    /// One rating per (user, item) pair: the latest, by timestamp where the table has
    /// them (the later row on a tie), else the last in file order. Returns the table
    /// without the others and how many rows were dropped.
    ///
    /// ```
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(true);
    /// r.push("u", "i", 2.0, Some(20))?;
    /// r.push("u", "j", 3.0, Some(5))?;
    /// r.push("u", "i", 5.0, Some(10))?; // older than the first: dropped
    /// let (kept, dropped) = r.dedup_keep_latest();
    /// assert_eq!((kept.len(), dropped), (2, 1));
    /// assert_eq!(kept.ratings(), [2.0, 3.0]);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn dedup_keep_latest(&self) -> (Ratings, usize) {
        let mut latest: std::collections::HashMap<(u32, u32), usize> =
            std::collections::HashMap::with_capacity(self.len());
        for row in 0..self.len() {
            let key = (self.user[row], self.item[row]);
            let newer = |old: usize| match &self.timestamp {
                Some(t) => t[row] >= t[old],
                None => true,
            };
            match latest.get(&key) {
                Some(&old) if !newer(old) => {}
                _ => {
                    latest.insert(key, row);
                }
            }
        }
        let dropped = self.len() - latest.len();
        if dropped == 0 {
            return (self.clone(), 0);
        }
        let mut keep = vec![false; self.len()];
        for &row in latest.values() {
            keep[row] = true;
        }
        (self.select(&keep), dropped)
    }

    /// The rows where `keep` is true, in order, with users and items renumbered by first
    /// appearance among the kept rows (ids no kept row uses are gone).
    pub(crate) fn select(&self, keep: &[bool]) -> Ratings {
        let mut out = Ratings::new(self.timestamp.is_some());
        let mut user_map: Vec<Option<u32>> = vec![None; self.users.len()];
        let mut item_map: Vec<Option<u32>> = vec![None; self.items.len()];
        let mut kept_items = Vec::new();
        for row in (0..self.len()).filter(|&r| keep.get(r).copied().unwrap_or(false)) {
            let (u, i) = (self.user[row] as usize, self.item[row] as usize);
            let new_u =
                *user_map[u].get_or_insert_with(|| out.users.insert(&self.users.ids()[u]) as u32);
            let new_i = *item_map[i].get_or_insert_with(|| {
                kept_items.push(i);
                out.items.insert(&self.items.ids()[i]) as u32
            });
            out.user.push(new_u);
            out.item.push(new_i);
            out.rating.push(self.rating[row]);
            if let (Some(dst), Some(src)) = (&mut out.timestamp, &self.timestamp) {
                dst.push(src[row]);
            }
        }
        out.item_info = self.item_info.reordered(kept_items.into_iter());
        out
    }
}
