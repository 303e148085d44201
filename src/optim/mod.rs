//! Optimizers, learning-rate schedules and the `Trainer`.
//!
//! [`Optimizer`] is a trait: the built-ins ([`Sgd`] with momentum or Nesterov, [`Adam`] and
//! AdamW, [`AdaGrad`], [`RmsProp`], [`Ftrl`]) each live in a file of their own, and a user
//! type implementing it trains the same way.
//!
//! ```
//! use boson::nn::{Block, Dense, Forward, Initializer};
//! use boson::optim::{Optimizer, Sgd, Trainer};
//! use boson::loss::{L2Loss, Loss};
//! use boson::{autograd, Device, Tensor};
//!
//! let net = Dense::new(1).in_units(2);
//! net.initialize(&Initializer::Zero, Device::Cpu)?;
//! let mut trainer = Trainer::new(net.collect_params(), Sgd::new(0.1).momentum(0.9).wd(1e-4))?;
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let y = Tensor::from_vec(vec![1.0, 2.0], &[2])?;
//! let loss = autograd::record(|| L2Loss::new().forward(&net.forward(&x)?, &y, None))?;
//! loss.backward()?;
//! trainer.step(2)?;
//! # Ok::<(), boson::Error>(())
//! ```

mod adagrad;
mod adam;
mod ftrl;
#[cfg(test)]
mod kernel_emulation_tests;
mod optimizer;
mod registry;
mod rmsprop;
mod scheduler;
mod sgd;
mod trainer;

pub use adagrad::AdaGrad;
pub use adam::{adam_lr_t, Adam};
pub use ftrl::Ftrl;
pub use optimizer::{bad, check_all, Configurable, Hyper, Optimizer, StepArgs};
pub use registry::{create, register, BUILT_IN};
pub use rmsprop::RmsProp;
pub use scheduler::{
    CosineScheduler, FactorScheduler, LrScheduler, MultiFactorScheduler, PolyScheduler, Warmup,
};
pub use sgd::Sgd;
pub use trainer::Trainer;
