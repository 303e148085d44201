//! Train/test splits of indexed ratings.

use rand::seq::index::sample;

use crate::data::rng_for;
use crate::error::{Error, Result};
use crate::ratings::prepare::{IndexedRatings, RatingsDataset};

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
        let users = self.users().len();
        let mut latest: Vec<Option<usize>> = vec![None; users];
        let mut count = vec![0usize; users];
        for (row, &u) in self.user_indices().iter().enumerate() {
            let u =
                usize::try_from(u).map_err(|_| Error::Data(format!("negative user index {u}")))?;
            count[u] += 1;
            let later = match (latest[u], self.timestamps()) {
                (None, _) => true,
                (Some(best), Some(times)) => times[row] >= times[best],
                (Some(_), None) => true,
            };
            if later {
                latest[u] = Some(row);
            }
        }
        let mut test = vec![false; self.len()];
        for (u, best) in latest.iter().enumerate() {
            if let (Some(row), true) = (best, count[u] >= 2) {
                test[*row] = true;
            }
        }
        Ok(Split {
            train: self.rows_where(&test, false)?,
            test: self.rows_where(&test, true)?,
        })
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
        for row in sample(&mut rng_for(seed, 0), n, test_rows) {
            test[row] = true;
        }
        Ok(Split {
            train: self.rows_where(&test, false)?,
            test: self.rows_where(&test, true)?,
        })
    }
}
