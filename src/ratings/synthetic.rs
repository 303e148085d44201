//! A deterministic synthetic rating generator in the Amazon Customer Reviews layout:
//! the recommender example's built-in data, with a known answer (a planted low-rank
//! model) so that training can be checked against the global-mean baseline.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::Xoshiro256PlusPlus;
use rand::RngExt;

use crate::error::{Error, Result};
use crate::ratings::dates::{civil_from_days, days_from_civil, SECONDS_PER_DAY};
use crate::ratings::reader::AMAZON_COLUMNS;
use crate::ratings::table::Ratings;
use crate::rng::generator;

/// Parameters of the synthetic data.
///
/// Users and items are drawn with Zipf-like popularity (weight of the k-th most popular
/// is `1 / (k + 1)^popularity_exponent`), and a user keeps a drawn item with a
/// probability that grows with how well it fits the user's taste (`taste_choice`: people
/// rate what they chose to watch or buy, so which items a user rates says something about
/// them, as in real data); a rating is
/// `global_mean + user_bias + item_bias + <user_factors, item_factors> − shift + noise`
/// (`shift` takes off the mean affinity that choosing by taste adds), rounded
/// and clamped to 1..=5. The user and item effects explain most of the variance, so a
/// matrix-factorisation model clearly beats predicting the global mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Number of distinct users that can appear.
    pub n_users: usize,
    /// Number of distinct items that can appear.
    pub n_items: usize,
    /// Number of ratings (lines).
    pub n_ratings: usize,
    /// Rank of the planted factor model.
    pub rank: usize,
    /// Everything is a function of this seed.
    pub seed: u64,
    /// Zipf exponent of user and item popularity.
    pub popularity_exponent: f64,
    /// Standard deviation of the rating noise (before rounding).
    pub noise_std: f32,
    /// How strongly taste steers which items a user rates: the chance that a rating of
    /// user `u` is of item `i` is proportional to the item's popularity times
    /// `exp(taste_choice · <p_u, q_i> / 0.8)` (0.8 is the spread of the dot product). 0
    /// makes the choice independent of taste.
    pub taste_choice: f32,
}

impl Default for SyntheticConfig {
    /// 5 000 users, 2 000 items, 200 000 ratings, rank 8, seed 42, taste choice 2.
    fn default() -> Self {
        SyntheticConfig {
            n_users: 5_000,
            n_items: 2_000,
            n_ratings: 200_000,
            rank: 8,
            seed: 42,
            popularity_exponent: 0.8,
            noise_std: 0.4,
            taste_choice: 2.0,
        }
    }
}

const GLOBAL_MEAN: f32 = 3.6;
const USER_BIAS_STD: f32 = 0.35;
const ITEM_BIAS_STD: f32 = 0.45;
/// Standard deviation of the factor dot product.
const INTERACTION_STD: f32 = 0.8;
/// Reviews run from 2005-01-01 over this many days (to mid-2015, like the real files).
const FIRST_DAY: (i64, u32, u32) = (2005, 1, 1);
const SPAN_DAYS: i64 = 3_850;

const HEADLINES: [&str; 5] = [
    "One Star",
    "Two Stars",
    "Three Stars",
    "Four Stars",
    "Five Stars",
];

/// The Amazon `customer_id` of synthetic user `u`.
pub fn synthetic_user_id(u: usize) -> String {
    (10_000_000 + u).to_string()
}

/// The Amazon `product_id` (ASIN-like) of synthetic item `i`.
pub fn synthetic_item_id(i: usize) -> String {
    format!("B{i:09}")
}

/// One generated rating.
struct Record {
    user: usize,
    item: usize,
    stars: u8,
    day: i64,
}

/// The planted model plus the record stream.
struct Generator {
    config: SyntheticConfig,
    user_cdf: Vec<f64>,
    item_cdf: Vec<f64>,
    user_bias: Vec<f32>,
    item_bias: Vec<f32>,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    rng: Xoshiro256PlusPlus,
    /// Per user, the largest `taste_choice / 0.8 · <p_u, q_i>` (computed on first use).
    best_fit: Vec<Option<f32>>,
    first_day: i64,
    next: usize,
}

fn normal(rng: &mut Xoshiro256PlusPlus) -> f32 {
    // Box-Muller; 1 - u keeps the log argument in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn zipf_cdf(n: usize, exponent: f64) -> Vec<f64> {
    let mut total = 0.0;
    (0..n)
        .map(|k| {
            total += 1.0 / ((k + 1) as f64).powf(exponent);
            total
        })
        .collect()
}

fn draw(cdf: &[f64], rng: &mut Xoshiro256PlusPlus) -> usize {
    let total = cdf.last().copied().unwrap_or(0.0);
    let x = rng.random::<f64>() * total;
    cdf.partition_point(|&c| c <= x).min(cdf.len() - 1)
}

impl Generator {
    fn new(config: &SyntheticConfig) -> Result<Self> {
        if config.n_users == 0 || config.n_items == 0 {
            return Err(Error::InvalidArgument(
                "synthetic data needs n_users > 0 and n_items > 0".into(),
            ));
        }
        for (what, n) in [("n_users", config.n_users), ("n_items", config.n_items)] {
            if u32::try_from(n).is_err() {
                return Err(Error::InvalidArgument(format!(
                    "synthetic data: {what} must be at most {} (indices are u32), got {n}",
                    u32::MAX
                )));
            }
            // Per user or item: its factors, bias, popularity and id, about rank + 16 floats.
            let per = config.rank.saturating_add(16);
            crate::tensor::check_alloc(n.saturating_mul(per), 4, || {
                format!("synthetic data for {n} {}", &what[2..])
            })?;
        }
        // Per rating: user and item indices, the value and a timestamp.
        crate::tensor::check_alloc(config.n_ratings, 20, || {
            format!("synthetic data of {} ratings", config.n_ratings)
        })?;
        if !(config.popularity_exponent.is_finite()
            && config.noise_std.is_finite()
            && config.taste_choice.is_finite())
        {
            return Err(Error::InvalidArgument(format!(
                "popularity_exponent, noise_std and taste_choice must be finite, got {}, {} and {}",
                config.popularity_exponent, config.noise_std, config.taste_choice
            )));
        }
        let mut rng = generator(config.seed, 1);
        // Each factor ~ N(0, s) gives a dot product of variance rank * s^4.
        let factor_std = if config.rank == 0 {
            0.0
        } else {
            (INTERACTION_STD.powi(2) / config.rank as f32).powf(0.25)
        };
        let mut draw_normals =
            |n: usize, std: f32| -> Vec<f32> { (0..n).map(|_| std * normal(&mut rng)).collect() };
        let user_bias = draw_normals(config.n_users, USER_BIAS_STD);
        let item_bias = draw_normals(config.n_items, ITEM_BIAS_STD);
        let user_factors = draw_normals(config.n_users * config.rank, factor_std);
        let item_factors = draw_normals(config.n_items * config.rank, factor_std);
        Ok(Generator {
            config: *config,
            user_cdf: zipf_cdf(config.n_users, config.popularity_exponent),
            item_cdf: zipf_cdf(config.n_items, config.popularity_exponent),
            user_bias,
            item_bias,
            user_factors,
            item_factors,
            rng: generator(config.seed, 2),
            best_fit: vec![None; config.n_users],
            first_day: days_from_civil(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2),
            next: 0,
        })
    }
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let k = self.next;
        if k >= self.config.n_ratings {
            return None;
        }
        self.next += 1;
        let rank = self.config.rank;
        let user = draw(&self.user_cdf, &mut self.rng);
        let p = &self.user_factors[user * rank..(user + 1) * rank];
        let fit = |item: usize| -> f32 {
            let q = &self.item_factors[item * rank..(item + 1) * rank];
            p.iter().zip(q).map(|(a, b)| a * b).sum()
        };
        // Popularity proposes, taste accepts with exp(strength · (dot − best)), where
        // `best` is the user's largest strength · dot over the catalogue (so every chance
        // is at most 1, and the accepted items follow popularity × exp(strength · dot)).
        let strength = self.config.taste_choice / INTERACTION_STD;
        let (item, dot) = if strength == 0.0 {
            let item = draw(&self.item_cdf, &mut self.rng);
            (item, fit(item))
        } else {
            let best = match self.best_fit[user] {
                Some(b) => b,
                None => {
                    let b = (0..self.config.n_items)
                        .map(|i| strength * fit(i))
                        .fold(f32::NEG_INFINITY, f32::max);
                    self.best_fit[user] = Some(b);
                    b
                }
            };
            loop {
                let item = draw(&self.item_cdf, &mut self.rng);
                let dot = fit(item);
                if self.rng.random::<f32>() < (strength * dot - best).exp() {
                    break (item, dot);
                }
            }
        };
        let noise = self.config.noise_std * normal(&mut self.rng);
        // Choosing by taste shifts the chosen items' mean affinity up by about
        // taste_choice standard deviations (an exponential tilt of a normal shifts its
        // mean, not its spread); taking the shift off keeps ratings centred on the global
        // mean instead of piling up at 5 stars.
        let shift = self.config.taste_choice * INTERACTION_STD;
        let value = GLOBAL_MEAN + self.user_bias[user] + self.item_bias[item] + dot - shift + noise;
        let stars = value.round().clamp(1.0, 5.0) as u8;
        // Dates never decrease down the file, so "latest" by date matches file order.
        let day = self.first_day + (k as i64 * SPAN_DAYS) / self.config.n_ratings as i64;
        Some(Record {
            user,
            item,
            stars,
            day,
        })
    }
}

/// Generates the ratings in memory; equal to reading the file
/// [`write_synthetic_amazon_tsv`] writes for the same config.
///
/// ```
/// use boson::ratings::{generate_ratings, SyntheticConfig};
///
/// let config = SyntheticConfig { n_users: 50, n_items: 20, n_ratings: 1_000, ..Default::default() };
/// let r = generate_ratings(&config)?;
/// assert_eq!(r.len(), 1_000);
/// assert!(r.ratings().iter().all(|&x| (1.0..=5.0).contains(&x)));
/// assert_eq!(r, generate_ratings(&config)?, "deterministic");
/// # Ok::<(), boson::error::Error>(())
/// ```
pub fn generate_ratings(config: &SyntheticConfig) -> Result<Ratings> {
    let generator = Generator::new(config)?;
    let user_ids: Vec<String> = (0..config.n_users).map(synthetic_user_id).collect();
    let item_ids: Vec<String> = (0..config.n_items).map(synthetic_item_id).collect();
    let mut ratings = Ratings::new(true);
    for r in generator {
        ratings.push(
            &user_ids[r.user],
            &item_ids[r.item],
            f32::from(r.stars),
            Some(r.day * SECONDS_PER_DAY),
        )?;
    }
    Ok(ratings)
}

/// Writes the synthetic ratings as an Amazon Customer Reviews TSV (header + 15
/// columns, marketplace `US`, category `Digital_Video_Download`), gzip-compressed when
/// `path` ends in `.gz`. The file is written under a temporary name and renamed, so an
/// interrupted run never leaves a partial file at `path`.
///
/// ```
/// use boson::ratings::{read_ratings, write_synthetic_amazon_tsv, DelimitedFormat, OnBadLine, SyntheticConfig};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("reviews.tsv.gz");
/// let config = SyntheticConfig { n_ratings: 500, ..Default::default() };
/// write_synthetic_amazon_tsv(&config, &path)?;
/// let (ratings, report) = read_ratings(&path, &DelimitedFormat::amazon_reviews(), OnBadLine::Fail)?;
/// assert_eq!((ratings.len(), report.total_skipped()), (500, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_synthetic_amazon_tsv(config: &SyntheticConfig, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let generator = Generator::new(config)?;
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".partial");
    let temp = Path::new(&temp_name);
    let file = File::create(temp).map_err(|e| Error::io(temp, e))?;
    let gzip = path.extension().is_some_and(|e| e == "gz");
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        writeln!(out, "{}", AMAZON_COLUMNS.join("\t"))?;
        for (k, r) in generator.enumerate() {
            let (y, m, d) = civil_from_days(r.day);
            let helpful = k % 3;
            writeln!(
                out,
                "US\t{}\tR{k:013}\t{}\t{}\tSynthetic Video {}\tDigital_Video_Download\t{}\t{helpful}\t{}\tN\tY\t{}\tsynthetic review\t{y:04}-{m:02}-{d:02}",
                10_000_000 + r.user,
                synthetic_item_id(r.item),
                100_000_000 + r.item,
                r.item,
                r.stars,
                helpful + k % 2,
                HEADLINES[usize::from(r.stars) - 1],
            )?;
        }
        Ok(())
    };
    let result = if gzip {
        let mut out = GzEncoder::new(BufWriter::with_capacity(1 << 20, file), Compression::fast());
        write(&mut out).and_then(|()| out.finish()?.flush())
    } else {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        write(&mut out).and_then(|()| out.flush())
    };
    result.map_err(|e| Error::io(temp, e))?;
    std::fs::rename(temp, path).map_err(|e| Error::io(path, e))
}
