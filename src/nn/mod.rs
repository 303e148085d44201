//! Neural-network building blocks: `Block`, `Parameter`, initializers and layers.
//!
//! A custom block is a struct of other blocks plus a forward method; list the children in
//! `visit_params` to give their parameters hierarchical names:
//!
//! ```
//! use boson::nn::{Activation, Block, Dense, Initializer, Parameter};
//! use boson::{Device, Tensor, Result};
//!
//! struct TwoLayer { hidden: Dense, out: Dense }
//!
//! impl Block for TwoLayer {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         self.out.forward(&self.hidden.forward(x)?)
//!     }
//!     fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
//!         self.hidden.visit_params(&format!("{prefix}hidden."), f);
//!         self.out.visit_params(&format!("{prefix}out."), f);
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

pub use block::{Block, Sequential};
pub use init::{FactorType, Initializer, RndType};
pub use layers::{Activation, BatchNorm, Dense, Dropout, Embedding, Flatten, Lambda, LayerNorm};
pub use parameter::{GradStype, Parameter, ParameterDict};
pub use persist::LoadOptions;
