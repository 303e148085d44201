//! Optimizers, learning-rate schedules and the `Trainer`.
//!
//! ```
//! use boson::nn::{Block, Dense, Forward, Initializer};
//! use boson::optim::{Optimizer, Trainer};
//! use boson::loss::{L2Loss, Loss};
//! use boson::{autograd, Device, Tensor};
//!
//! let net = Dense::new(1).in_units(2);
//! net.initialize(&Initializer::Zero, Device::Cpu)?;
//! let mut trainer = Trainer::new(net.collect_params(), Optimizer::sgd(0.1).momentum(0.9))?;
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let y = Tensor::from_vec(vec![1.0, 2.0], &[2])?;
//! let loss = autograd::record(|| L2Loss::new().forward(&net.forward(&x)?, &y, None))?;
//! loss.backward()?;
//! trainer.step(2)?;
//! # Ok::<(), boson::Error>(())
//! ```

mod optimizer;
pub(crate) mod rule;
mod scheduler;
mod trainer;

pub use optimizer::Optimizer;
pub use rule::{Rule, StepArgs};
pub use scheduler::{
    CosineScheduler, FactorScheduler, LrScheduler, MultiFactorScheduler, PolyScheduler, Warmup,
};
pub use trainer::Trainer;
