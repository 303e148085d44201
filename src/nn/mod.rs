//! Neural-network building blocks: `Block`, `Parameter`, initializers and layers.
//!
//! A custom block is a struct of other blocks with `#[derive(Block)]`, which names its
//! parameters after the fields, plus a [`Forward`] impl with the computation:
//!
//! ```
//! use boson::nn::{Activation, Block, Dense, Forward, Initializer};
//! use boson::{Device, Result, Tensor};
//!
//! #[derive(Block)]
//! struct TwoLayer { hidden: Dense, out: Dense }
//!
//! impl Forward for TwoLayer {
//!     type Input = Tensor;
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         self.out.forward(&self.hidden.forward(x)?)
//!     }
//! }
//!
//! let net = TwoLayer { hidden: Dense::new(8).activation(Activation::Relu), out: Dense::new(1) };
//! net.initialize(&Initializer::xavier(3.0), Device::Cpu)?;
//! let y = net.forward(&Tensor::ones(&[4, 3], Device::Cpu)?)?;
//! assert_eq!(y.shape(), &[4, 1]);
//! assert_eq!(net.collect_params().names(), ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]);
//! # Ok::<(), boson::Error>(())
//! ```

mod block;
mod init;
mod layers;
mod parameter;
mod persist;
pub mod sharded;

pub use block::{join_path, Block, Forward, Inputs, Layer, Model, Sequential, State, Visitor};
pub use init::{FactorType, Initializer, RndType};
pub use layers::{
    Activation, AttentionMask, AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Conv2DTranspose,
    Dense, Dropout, Embedding, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, Lambda, LayerNorm,
    MaxPool1D, MaxPool2D, MultiHeadAttention, PositionalEmbedding, RnnLayout,
    TransformerEncoderLayer, GRU, LSTM,
};
pub use parameter::{GradStype, Parameter, ParameterDict};
pub use persist::LoadOptions;
