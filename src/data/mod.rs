//! Gluon's `gluon.data`: datasets, samplers, batchify and the [`DataLoader`]; image
//! datasets and transforms in [`vision`].
//!
//! ```
//! use boson::data::{ArrayDataset, DataLoader, Dataset};
//!
//! let users = vec![0i64, 1, 2, 0];
//! let items = vec![3i64, 4, 5, 6];
//! let ratings = vec![5.0f32, 3.0, 4.0, 1.0];
//! let ds = ArrayDataset::new((users, items, ratings))?;
//! let loader = DataLoader::builder(ds).batch_size(3).shuffle(true).seed(7).build()?;
//! let sizes: Vec<usize> = loader
//!     .iter()
//!     .map(|b| b.map(|(u, _, _)| u.shape()[0]))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(sizes, vec![3, 1]);
//! # Ok::<(), boson::error::Error>(())
//! ```

mod array;
mod batch_sampler;
mod batchify;
mod dataset;
mod filter_sampler;
mod loader;
mod sample_context;
mod sampler;
pub mod vision;

pub use array::{ArrayDataset, Columns, SimpleDataset};
pub use batch_sampler::{BatchSampler, LastBatch};
pub use batchify::{Batchify, Stack, StackBatchify};
pub use dataset::{Dataset, MapFirst, Slice, Subset, Transform, TransformFirst};
pub use filter_sampler::FilterSampler;
pub use loader::{DataLoader, DataLoaderBuilder, Epoch, DEFAULT_SEED};
pub use sample_context::sample_rng;
pub use sampler::{RandomSampler, Sampler, SequentialSampler};
