//! Gluon's `gluon.data.vision`: image datasets ([`MNIST`], [`FashionMNIST`],
//! [`ImageFolderDataset`]) whose samples are `(`[`Image`]`, label)`, and the
//! [`transforms`] that turn images into normalised tensors, with random augmentations
//! that are deterministic by the [`DataLoader`](crate::data::DataLoader)'s seed.
//!
//! ```
//! use boson::data::vision::transforms::{ImageTransform, Normalize, RandomFlipLeftRight, ToTensor};
//! use boson::data::vision::Image;
//! use boson::data::{DataLoader, Dataset, SimpleDataset};
//!
//! // Two 2 x 2 gray images with labels (FashionMNIST::new("data/fashion-mnist", true)?
//! // gives 60,000 such samples of 28 x 28).
//! let samples = vec![
//!     (Image::new(2, 2, 1, vec![0, 64, 128, 255])?, 3i64),
//!     (Image::new(2, 2, 1, vec![255, 0, 0, 255])?, 7),
//! ];
//! let augment = RandomFlipLeftRight.then(ToTensor).then(Normalize::new(0.13, 0.31));
//! let ds = SimpleDataset::new(samples).transform_first(augment.into_fn());
//! let loader = DataLoader::builder(ds).batch_size(2).seed(42).build()?;
//! for batch in &loader {
//!     let (images, labels) = batch?;
//!     assert_eq!(images.shape(), &[2, 1, 2, 2]); // N, C, H, W
//!     assert_eq!(labels.to_vec_i64()?, vec![3, 7]);
//! }
//! # Ok::<(), boson::error::Error>(())
//! ```

mod folder;
mod image;
mod mnist;
pub mod transforms;

pub use folder::{Flag, ImageFolderDataset, IMAGE_EXTENSIONS};
pub use image::{Image, MAX_IMAGE_PIXELS};
pub use mnist::{FashionMNIST, MAX_IDX_BYTES, MNIST};
