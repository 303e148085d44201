//! Rating data for recommenders (as Gluon ships `gluon.data.vision` for images):
//! readers for the Amazon Customer Reviews TSV and MovieLens files, the exploration
//! summary, the long-tail filter, dense indexing, train/test splits and a synthetic
//! generator.
//!
//! The pipeline of the SageMaker + Gluon reference notebook:
//!
//! ```
//! use boson::data::{DataLoader, Dataset};
//! use boson::ratings::{generate_ratings, LongTailFilter, SyntheticConfig};
//!
//! let config = SyntheticConfig { n_users: 200, n_items: 100, n_ratings: 5_000, ..Default::default() };
//! let ratings = generate_ratings(&config)?;      // or read_ratings(path, &format, ..)
//! println!("{}", ratings.summary());              // explore
//! let kept = LongTailFilter::default().apply(&ratings);
//! let indexed = kept.to_indexed();                // original id <-> dense index
//! let split = indexed.leave_last_out()?;          // each user's latest rating held out
//! let train = DataLoader::builder(split.train).batch_size(256).shuffle(true).build()?;
//! for batch in &train {
//!     let (users, items, stars) = batch?;         // i64 [B], i64 [B], f32 [B]
//!     assert_eq!(users.shape(), stars.shape());
//! }
//! # Ok::<(), boson::error::Error>(())
//! ```

mod dates;
mod evaluation;
mod full_ranking;
mod negatives;
mod prepare;
mod reader;
mod split;
mod summary;
mod synthetic;
mod table;

pub use evaluation::{evaluate_ranking, item_counts, ItemPop, RankingReport};
pub use full_ranking::{best_k, BlockScorer, FactorScorer, FullRanking, PairRanking, RankAll};
pub use negatives::{NegativeSampler, SeenItems};
pub use prepare::{IndexedRatings, LongTailFilter, RatingsDataset};
pub use reader::{
    read_ratings, read_ratings_from, read_ratings_stream, BadLine, BadLineReason, Column,
    DelimitedFormat, OnBadLine, ReadReport, TimestampKind, AMAZON_COLUMNS, DEFAULT_MAX_LINE_BYTES,
};
pub use split::{Split, ValidatedSplit};
pub use summary::{CountQuantiles, HistogramBin, Per, Summary};
pub use synthetic::{
    generate_ratings, synthetic_item_id, synthetic_user_id, write_synthetic_amazon_tsv,
    SyntheticConfig,
};
pub use table::{IndexMap, ItemInfo, RatingRecord, Ratings};
