//! boson: a Gluon-style deep learning library for Rust.
//!
//! What MXNet Gluon gave Python users, in Rust: [`data::Dataset`] and
//! [`data::DataLoader`], autograd-backed [`nn::Block`] layers, [`loss`]es,
//! [`optim::Optimizer`]s behind an [`optim::Trainer`], [`metric`]s, and the high-level
//! [`estimator::Estimator::fit`] loop with event handlers. Tensors live on the CPU
//! (vectorised loops + rayon) or on an NVIDIA GPU ([`Device::Cuda`], through cudarc with
//! hand-written kernels); embedding gradients are row-sparse, so a step costs
//! O(batch × dim) whatever the vocabulary size.
//!
//! A model is a struct of layers with `#[derive(Block)]` (parameters and state named after
//! the fields) and a [`nn::Forward`] impl whose input is whatever the model takes; a
//! training step is `record` → `backward` → `trainer.step`:
//!
//! ```
//! use boson::data::{ArrayDataset, DataLoader};
//! use boson::loss::{L2Loss, Loss};
//! use boson::nn::{Activation, Block, Dense, Dropout, Embedding, Forward, Initializer};
//! use boson::optim::{self, AdaGrad, Adam, Ftrl, Optimizer, RmsProp, Sgd, Trainer};
//! use boson::{autograd, Device, Result, Tensor};
//!
//! /// Matrix factorisation: user and item embeddings through a dense layer, then a dot product.
//! #[derive(Block)]
//! struct Mf {
//!     users: Embedding,
//!     items: Embedding,
//!     dense: Dense,
//!     dropout: Dropout,
//! }
//!
//! impl Forward for Mf {
//!     type Input = (Tensor, Tensor);
//!     fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
//!         let u = self.dropout.forward(&self.dense.forward(&self.users.forward(users)?)?)?;
//!         let i = self.dropout.forward(&self.dense.forward(&self.items.forward(items)?)?)?;
//!         (&u * &i)?.sum_axis(1, false)
//!     }
//! }
//!
//! boson::rng::seed(42);
//! let net = Mf {
//!     users: Embedding::new(100, 8),
//!     items: Embedding::new(50, 8),
//!     dense: Dense::new(8).activation(Activation::Relu),
//!     dropout: Dropout::new(0.1),
//! };
//! let device = Device::cuda_if_available(0);
//! net.initialize(&Initializer::xavier(3.0), device)?;
//! assert_eq!(net.collect_params().names(), ["users.weight", "items.weight", "dense.weight", "dense.bias"]);
//!
//! // 1000 (user, item, rating) triples; rating = 1 + (user + item) % 5.
//! let users: Vec<i64> = (0..1000).map(|k| k % 100).collect();
//! let items: Vec<i64> = (0..1000).map(|k| (k * 7) % 50).collect();
//! let ratings: Vec<f32> = users.iter().zip(&items).map(|(u, i)| 1.0 + ((u + i) % 5) as f32).collect();
//! let loader = DataLoader::builder(ArrayDataset::new((users, items, ratings))?)
//!     .batch_size(100)
//!     .shuffle(true)
//!     .build()?;
//!
//! let mut trainer = Trainer::new(net.collect_params(), Adam::new(0.01))?;
//! let loss_fn = L2Loss::new();
//! let mut epoch_loss = Vec::new();
//! for _epoch in 0..5 {
//!     let mut total = 0.0;
//!     for batch in loader.iter() {
//!         let (u, i, r) = batch?;
//!         let (u, i, r) = (u.to_device(device)?, i.to_device(device)?, r.to_device(device)?);
//!         let loss = autograd::record(|| loss_fn.forward(&net.forward(&(u, i))?, &r, None))?;
//!         loss.backward()?;
//!         trainer.step(100)?;
//!         total += loss.mean_all()?.to_scalar()?;
//!     }
//!     epoch_loss.push(total / 10.0);
//! }
//! assert!(epoch_loss[4] < epoch_loss[0]);
//! # Ok::<(), boson::Error>(())
//! ```
//!
//! The same loop with metrics, validation, checkpoints and early stopping is one
//! [`estimator::Estimator::fit`] call (see the [`estimator`] module), and
//! `examples/recommender.rs` is the whole worked example: prepare ratings, train,
//! evaluate, save, load and serve.

// `#[derive(Block)]` names the crate `::boson`; this makes that path work inside it too.
extern crate self as boson;

pub mod autograd;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod data;
pub mod device;
pub mod distributed;
pub mod error;
pub mod estimator;
pub mod io;
pub mod loss;
pub mod metric;
pub mod nn;
pub mod optim;
pub mod prelude;
pub mod ratings;
pub mod rng;
pub mod tensor;

pub use device::Device;
pub use error::{Error, Result};
pub use tensor::Tensor;
