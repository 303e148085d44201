//! The names most programs use: `use boson::prelude::*;`.

pub use crate::autograd;
pub use crate::device::Device;
pub use crate::error::{Error, Result};
pub use crate::loss::Loss;
pub use crate::nn::{Block, Forward, Initializer, Model};
pub use crate::optim::{Adam, Optimizer, Sgd, Trainer};
pub use crate::tensor::Tensor;
