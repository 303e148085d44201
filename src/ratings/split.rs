//! Train/test splits of indexed ratings.

use rand::seq::index::sample;

use crate::error::{Error, Result};
use crate::ratings::prepare::{IndexedRatings, RatingsDataset};
use crate::rng::generator;

/// A train/validation/test split ([`IndexedRatings::leave_last_two_out`]); every side
/// keeps the file order and shares the index maps.
#[derive(Clone, Debug)]
pub struct ValidatedSplit {
    /// Training triples.
    pub train: RatingsDataset,
    /// Each user's second-latest rating, for choosing epochs and settings.
    pub validation: RatingsDataset,
    /// Each user's latest rating, for the final numbers only.
    pub test: RatingsDataset,
}

/// A train/test split; both sides keep the file order and share the index maps of the
/// [`IndexedRatings`] they came from, so every test user and item is known.
#[derive(Clone, Debug)]
pub struct Split {
    /// Training triples.
    pub train: RatingsDataset,
    /// Held-out triples.
    pub test: RatingsDataset,
}

impl IndexedRatings {
    /// Holds out each user's latest rating: the largest timestamp when there are
    /// timestamps (ties go to the later line), else the user's last line. A user with a
    /// single rating keeps it in training (holding it out would leave the user untrained).
    ///
    /// ```
    /// use boson::data::Dataset;
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(true);
    /// r.push("a", "new", 5.0, Some(200))?;
    /// r.push("a", "old", 1.0, Some(100))?;
    /// r.push("b", "old", 3.0, Some(100))?;
    /// let split = r.to_indexed().leave_last_out()?;
    /// assert_eq!(split.test.len(), 1);
    /// assert_eq!(split.test.get(0)?, (0, 0, 5.0)); // user "a", item "new"
    /// assert_eq!(split.train.len(), 2);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn leave_last_out(&self) -> Result<Split> {
        let [latest, _] = self.latest_two()?;
        Ok(Split {
            train: self.rows_where(&latest, false)?,
            test: self.rows_where(&latest, true)?,
        })
    }

    /// Holds out each user's latest rating for testing and the one before it for
    /// validation (choosing epochs and settings without looking at the test split), with
    /// the order of [`leave_last_out`](Self::leave_last_out). A user keeps at least one
    /// rating in training: with two ratings only the test one is held out.
    ///
    /// ```
    /// use boson::data::Dataset;
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(true);
    /// for (item, day) in [("x", 3), ("y", 1), ("z", 2)] {
    ///     r.push("a", item, 4.0, Some(day))?;
    /// }
    /// let split = r.to_indexed().leave_last_two_out()?;
    /// assert_eq!(split.test.get(0)?.1, 0); // "x", the latest
    /// assert_eq!(split.validation.get(0)?.1, 2); // "z", the one before
    /// assert_eq!(split.train.len(), 1);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn leave_last_two_out(&self) -> Result<ValidatedSplit> {
        let [latest, second] = self.latest_two()?;
        let held = |r: usize| latest[r] || second[r];
        let kept: Vec<bool> = (0..self.len()).map(held).collect();
        Ok(ValidatedSplit {
            train: self.rows_where(&kept, false)?,
            validation: self.rows_where(&second, true)?,
            test: self.rows_where(&latest, true)?,
        })
    }

    /// The row numbers of each side of [`leave_last_two_out`](Self::leave_last_two_out),
    /// in the same order as its datasets: `[train, validation, test]`. For carrying a
    /// per-row value (such as [`recent_mean`](Self::recent_mean)) into the splits.
    pub fn leave_last_two_out_rows(&self) -> Result<[Vec<usize>; 3]> {
        let [latest, second] = self.latest_two()?;
        let pick = |f: &dyn Fn(usize) -> bool| (0..self.len()).filter(|&r| f(r)).collect();
        Ok([
            pick(&|r| !latest[r] && !second[r]),
            pick(&|r| second[r]),
            pick(&|r| latest[r]),
        ])
    }

    /// For each row, the mean of the same user's `k` ratings just before it (in time
    /// where there are timestamps, ties to the earlier line; else in line order): how
    /// the user has been rating lately, known before the rating itself. NaN for a user's
    /// first rating.
    ///
    /// ```
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(true);
    /// for (stars, day) in [(5.0, 3), (1.0, 1), (3.0, 2)] {
    ///     r.push("a", &format!("i{day}"), stars, Some(day))?;
    /// }
    /// let recent = r.to_indexed().recent_mean(2);
    /// assert!(recent[1].is_nan()); // day 1: nothing before it
    /// assert_eq!(recent[2], 1.0); // day 2: day 1's rating
    /// assert_eq!(recent[0], 2.0); // day 3: the mean of days 1 and 2
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn recent_mean(&self, k: usize) -> Vec<f32> {
        let ratings = self.ratings();
        self.before_each_row(k, |r| ratings[r])
            .into_iter()
            .map(|w| match w.is_empty() {
                true => f32::NAN,
                false => w.iter().sum::<f32>() / w.len() as f32,
            })
            .collect()
    }

    /// For every row, the items of the same user's up to `k` previous ratings, oldest
    /// first (same order as [`IndexedRatings::recent_mean`]): a sequential recommender's
    /// history input.
    ///
    /// ```
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(true);
    /// for day in [3, 1, 2] {
    ///     r.push("a", &format!("i{day}"), 4.0, Some(day))?;
    /// }
    /// let indexed = r.to_indexed(); // items numbered by first appearance: i3 0, i1 1, i2 2
    /// let history = indexed.recent_items(2);
    /// assert_eq!(history[1], Vec::<i64>::new()); // day 1
    /// assert_eq!(history[0], vec![1, 2]); // day 3: days 1 and 2
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn recent_items(&self, k: usize) -> Vec<Vec<i64>> {
        let items = self.item_indices();
        self.before_each_row(k, |r| items[r])
    }

    /// Each user's items among `rows`, in time order (the order of
    /// [`recent_items`](Self::recent_items)), indexed by user: a sequential recommender's
    /// training sequences when `rows` is the train side of a split. Rows outside the table
    /// are an error naming them.
    ///
    /// ```
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(true);
    /// for (user, day) in [("a", 3), ("a", 1), ("b", 5), ("a", 2)] {
    ///     r.push(user, &format!("i{day}"), 4.0, Some(day))?;
    /// }
    /// let indexed = r.to_indexed(); // items i3 0, i1 1, i5 2, i2 3
    /// let sequences = indexed.sequences(&[0, 1, 2, 3])?;
    /// assert_eq!(sequences, vec![vec![1, 3, 0], vec![2]]);
    /// assert_eq!(indexed.sequences(&[1, 3])?[0], vec![1, 3]);
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn sequences(&self, rows: &[usize]) -> Result<Vec<Vec<i64>>> {
        if let Some(bad) = rows.iter().find(|&&r| r >= self.len()) {
            return Err(Error::InvalidArgument(format!(
                "sequences: row {bad} is outside the {} rows",
                self.len()
            )));
        }
        let (users, items) = (self.user_indices(), self.item_indices());
        let mut order = rows.to_vec();
        match self.timestamps() {
            Some(t) => order.sort_by_key(|&r| (users[r], t[r], r)),
            None => order.sort_by_key(|&r| (users[r], r)),
        }
        let mut out = vec![Vec::new(); self.users().len()];
        for r in order {
            out[users[r] as usize].push(items[r]);
        }
        Ok(out)
    }

    /// `value(r)` of the up to `k` rows of the same user just before each row, in time
    /// order (by timestamp where there are timestamps, ties to the earlier line, else by
    /// line), oldest first.
    fn before_each_row<T: Copy>(&self, k: usize, value: impl Fn(usize) -> T) -> Vec<Vec<T>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        let users = self.user_indices();
        match self.timestamps() {
            Some(t) => order.sort_by_key(|&r| (users[r], t[r], r)),
            None => order.sort_by_key(|&r| (users[r], r)),
        }
        let mut out = vec![Vec::new(); self.len()];
        let mut window: std::collections::VecDeque<T> = std::collections::VecDeque::new();
        let mut current = None;
        for &row in &order {
            if current != Some(users[row]) {
                current = Some(users[row]);
                window.clear();
            }
            out[row] = window.iter().copied().collect();
            window.push_back(value(row));
            if window.len() > k {
                window.pop_front();
            }
        }
        out
    }

    /// Marks each user's latest row (users with 2+ ratings) and the one before it (users
    /// with 3+): by timestamp where there are timestamps, ties to the later line, else by
    /// line.
    fn latest_two(&self) -> Result<[Vec<bool>; 2]> {
        let users = self.users().len();
        let mut top: Vec<[Option<usize>; 2]> = vec![[None, None]; users];
        let mut count = vec![0usize; users];
        let later = |a: usize, b: usize| match self.timestamps() {
            Some(t) => t[a] >= t[b],
            None => true,
        };
        for (row, &u) in self.user_indices().iter().enumerate() {
            let u =
                usize::try_from(u).map_err(|_| Error::Data(format!("negative user index {u}")))?;
            count[u] += 1;
            let [first, second] = &mut top[u];
            match *first {
                Some(f) if !later(row, f) => {
                    if second.is_none_or(|s| later(row, s)) {
                        *second = Some(row);
                    }
                }
                _ => {
                    *second = *first;
                    *first = Some(row);
                }
            }
        }
        let mut marks = [vec![false; self.len()], vec![false; self.len()]];
        for (u, [first, second]) in top.iter().enumerate() {
            if let (Some(row), true) = (first, count[u] >= 2) {
                marks[0][*row] = true;
            }
            if let (Some(row), true) = (second, count[u] >= 3) {
                marks[1][*row] = true;
            }
        }
        Ok(marks)
    }

    /// Puts `round(test_fraction * len)` rows, chosen uniformly from `seed`, in test.
    ///
    /// ```
    /// use boson::data::Dataset;
    /// use boson::ratings::Ratings;
    ///
    /// let mut r = Ratings::new(false);
    /// for i in 0..10 {
    ///     r.push(&format!("u{}", i % 3), &format!("i{i}"), 3.0, None)?;
    /// }
    /// let split = r.to_indexed().random_split(0.2, 7)?;
    /// assert_eq!((split.train.len(), split.test.len()), (8, 2));
    /// assert!(r.to_indexed().random_split(1.5, 7).is_err());
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn random_split(&self, test_fraction: f64, seed: u64) -> Result<Split> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(Error::InvalidArgument(format!(
                "test_fraction must be in [0, 1], got {test_fraction}"
            )));
        }
        let n = self.len();
        let test_rows = ((test_fraction * n as f64).round() as usize).min(n);
        let mut test = vec![false; n];
        for row in sample(&mut generator(seed, 0), n, test_rows) {
            test[row] = true;
        }
        Ok(Split {
            train: self.rows_where(&test, false)?,
            test: self.rows_where(&test, true)?,
        })
    }
}
