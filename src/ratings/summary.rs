//! The exploration step: how many users, items and ratings, how ratings spread, and how
//! many ratings a typical user or item has.

use std::fmt;

use crate::ratings::table::Ratings;

/// Up to this many distinct rating values get one histogram row each; more are binned.
const MAX_EXACT_VALUES: usize = 20;
/// Bins used when the ratings take more distinct values than that.
const BINS: usize = 10;

/// One histogram row: ratings in `low..=high` (`low == high` for an exact value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistogramBin {
    /// Lowest rating in the bin.
    pub low: f32,
    /// Highest rating in the bin.
    pub high: f32,
    /// How many ratings fall in it.
    pub count: usize,
}

/// Quantiles of "ratings per user" (or per item), nearest-rank on the sorted counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CountQuantiles {
    /// Fewest ratings.
    pub min: usize,
    /// 25th percentile.
    pub p25: usize,
    /// Median.
    pub median: usize,
    /// 75th percentile.
    pub p75: usize,
    /// 90th percentile.
    pub p90: usize,
    /// 99th percentile.
    pub p99: usize,
    /// Most ratings.
    pub max: usize,
    /// Mean.
    pub mean: f64,
}

impl CountQuantiles {
    /// Quantiles of `counts` (all zero when empty).
    pub fn from_counts(mut counts: Vec<usize>) -> Self {
        if counts.is_empty() {
            return Self::default();
        }
        counts.sort_unstable();
        let at = |q: f64| counts[(q * (counts.len() - 1) as f64).round() as usize];
        CountQuantiles {
            min: counts[0],
            p25: at(0.25),
            median: at(0.5),
            p75: at(0.75),
            p90: at(0.9),
            p99: at(0.99),
            max: counts[counts.len() - 1],
            mean: counts.iter().sum::<usize>() as f64 / counts.len() as f64,
        }
    }
}

/// The exploration summary of a [`Ratings`] table; `Display` prints it as a table.
///
/// ```
/// use boson::ratings::Ratings;
///
/// let mut r = Ratings::new(false);
/// for (u, i, x) in [("a", "x", 5.0), ("a", "y", 3.0), ("b", "x", 5.0)] {
///     r.push(u, i, x, None)?;
/// }
/// let s = r.summary();
/// assert_eq!((s.users, s.items, s.ratings), (2, 2, 3));
/// assert_eq!(s.per_user.max, 2);
/// assert!(s.to_string().contains("ratings per user"));
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Distinct users.
    pub users: usize,
    /// Distinct items.
    pub items: usize,
    /// Ratings.
    pub ratings: usize,
    /// Mean rating (0 when empty).
    pub mean_rating: f64,
    /// Rating histogram, ascending.
    pub histogram: Vec<HistogramBin>,
    /// Ratings per user.
    pub per_user: CountQuantiles,
    /// Ratings per item.
    pub per_item: CountQuantiles,
    /// Ratings per user and per item, sorted (for [`Summary::quantiles`]).
    counts: [Vec<usize>; 2],
}

/// Whose rating counts [`Summary::quantiles`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    /// Ratings per user.
    User,
    /// Ratings per item.
    Item,
}

impl Summary {
    /// The ratings of every user (or item), ascending.
    pub fn counts(&self, per: Per) -> &[usize] {
        &self.counts[per as usize]
    }

    /// Quantiles of the ratings per user (or per item) at each of `qs` (in [0, 1]),
    /// interpolated linearly between the sorted counts as pandas'
    /// `value_counts().quantile(qs)` does, so the notebook's numbers can be reproduced.
    ///
    /// ```
    /// use boson::ratings::{Per, Ratings};
    ///
    /// let mut r = Ratings::new(false);
    /// for (u, i) in [("a", "x"), ("a", "y"), ("a", "z"), ("b", "x")] {
    ///     r.push(u, i, 4.0, None)?;
    /// }
    /// let q = r.summary().quantiles(Per::User, &[0.0, 0.5, 1.0])?;
    /// assert_eq!(q, [1.0, 2.0, 3.0]);
    /// assert!(r.summary().quantiles(Per::Item, &[1.5]).is_err());
    /// # Ok::<(), boson::error::Error>(())
    /// ```
    pub fn quantiles(&self, per: Per, qs: &[f64]) -> crate::error::Result<Vec<f64>> {
        let counts = &self.counts[per as usize];
        qs.iter()
            .map(|&q| {
                if !(0.0..=1.0).contains(&q) {
                    return Err(crate::error::Error::InvalidArgument(format!(
                        "quantile {q} is not in [0, 1]"
                    )));
                }
                let Some(last) = counts.len().checked_sub(1) else {
                    return Ok(0.0);
                };
                let pos = q * last as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                let (a, b) = (counts[lo] as f64, counts[hi] as f64);
                Ok(a + (b - a) * (pos - lo as f64))
            })
            .collect()
    }
}

impl Ratings {
    /// Counts, rating histogram and per-user / per-item count quantiles.
    pub fn summary(&self) -> Summary {
        let mut per_user = vec![0usize; self.num_users()];
        for &u in self.user_indices() {
            per_user[u as usize] += 1;
        }
        let mut per_item = vec![0usize; self.num_items()];
        for &i in self.item_indices() {
            per_item[i as usize] += 1;
        }
        let values = self.ratings();
        let mean_rating = if values.is_empty() {
            0.0
        } else {
            values.iter().map(|&r| f64::from(r)).sum::<f64>() / values.len() as f64
        };
        Summary {
            users: self.num_users(),
            items: self.num_items(),
            ratings: self.len(),
            mean_rating,
            histogram: histogram(values),
            per_user: CountQuantiles::from_counts(per_user.clone()),
            per_item: CountQuantiles::from_counts(per_item.clone()),
            counts: [per_user, per_item].map(|mut c| {
                c.sort_unstable();
                c
            }),
        }
    }
}

fn histogram(values: &[f32]) -> Vec<HistogramBin> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let mut exact: Vec<HistogramBin> = Vec::new();
    for &v in &sorted {
        match exact.last_mut() {
            Some(bin) if bin.low == v => bin.count += 1,
            _ => {
                if exact.len() == MAX_EXACT_VALUES {
                    return binned(&sorted);
                }
                exact.push(HistogramBin {
                    low: v,
                    high: v,
                    count: 1,
                });
            }
        }
    }
    exact
}

fn binned(sorted: &[f32]) -> Vec<HistogramBin> {
    let (low, high) = (sorted[0], sorted[sorted.len() - 1]);
    let width = (high - low) / BINS as f32;
    let mut bins: Vec<HistogramBin> = (0..BINS)
        .map(|b| HistogramBin {
            low: low + width * b as f32,
            high: if b + 1 == BINS {
                high
            } else {
                low + width * (b + 1) as f32
            },
            count: 0,
        })
        .collect();
    for &v in sorted {
        let b = (((v - low) / width) as usize).min(BINS - 1);
        bins[b].count += 1;
    }
    bins
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ratings, {} users, {} items, mean rating {:.3}",
            self.ratings, self.users, self.items, self.mean_rating
        )?;
        writeln!(f, "rating          count   share")?;
        for bin in &self.histogram {
            let label = if bin.low == bin.high {
                format!("{}", bin.low)
            } else {
                format!("{:.2}-{:.2}", bin.low, bin.high)
            };
            let share = bin.count as f64 / self.ratings.max(1) as f64;
            let bar = "#".repeat((share * 40.0).round() as usize);
            writeln!(
                f,
                "{label:<11} {:>9} {:>6.1}%  {bar}",
                bin.count,
                share * 100.0
            )?;
        }
        writeln!(
            f,
            "{:<18} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8}",
            "", "min", "25%", "50%", "75%", "90%", "99%", "max", "mean"
        )?;
        for (name, q) in [
            ("ratings per user", &self.per_user),
            ("ratings per item", &self.per_item),
        ] {
            writeln!(
                f,
                "{name:<18} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8.2}",
                q.min, q.p25, q.median, q.p75, q.p90, q.p99, q.max, q.mean
            )?;
        }
        Ok(())
    }
}
