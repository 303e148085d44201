//! Optimizers by name, as Gluon's `Trainer(params, "sgd", {...})` takes them: the
//! built-ins' table and the ones [`register`]ed in this process. Its own file so that
//! optimizer.rs (the trait) does not depend on the optimizers that implement it.

use super::optimizer::{Configurable, Optimizer};
use super::{AdaGrad, Adam, Ftrl, RmsProp, Sgd};
use crate::error::{Error, Result};
use std::sync::Arc;

/// What [`register`] stores: a new optimizer from its learning rate.
type Factory = Arc<dyn Fn(f32) -> Box<dyn Configurable> + Send + Sync>;

/// The optimizers [`register`]ed in this process, by lowercase name.
fn registry() -> &'static std::sync::RwLock<std::collections::BTreeMap<String, Factory>> {
    static REGISTRY: std::sync::OnceLock<
        std::sync::RwLock<std::collections::BTreeMap<String, Factory>>,
    > = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The built-in optimizers' names, as [`create`] takes them.
pub const BUILT_IN: [&str; 7] = ["sgd", "nag", "adam", "adamw", "adagrad", "rmsprop", "ftrl"];

/// Makes [`create`] (and so `Trainer`s built by name) know `name`, as Gluon's
/// `@mx.optimizer.register` does: `factory` builds the optimizer from the learning rate,
/// and [`Configurable::set`] takes the rest of the parameters. The optimizer needs no
/// CUDA kernel: a `step` written with tensor ops runs on every device. Names are
/// case-insensitive; a built-in's name or one registered before is an error.
pub fn register(
    name: &str,
    factory: impl Fn(f32) -> Box<dyn Configurable> + Send + Sync + 'static,
) -> Result<()> {
    let key = name.to_ascii_lowercase();
    if key.is_empty() || BUILT_IN.contains(&key.as_str()) {
        return Err(Error::InvalidArgument(format!(
            "optim::register: '{name}' is {}: choose another name",
            if key.is_empty() {
                "empty"
            } else {
                "a built-in optimizer"
            }
        )));
    }
    let mut registry = registry().write().unwrap_or_else(|p| p.into_inner());
    if registry.contains_key(&key) {
        return Err(Error::InvalidArgument(format!(
            "optim::register: an optimizer named '{name}' is already registered"
        )));
    }
    registry.insert(key, Arc::new(factory));
    Ok(())
}

/// An optimizer by its Gluon name and `optimizer_params`, as
/// `gluon.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.9})`:
/// `optim::create("sgd", &[("learning_rate", 0.1), ("momentum", 0.9)])`.
///
/// Names: the [`BUILT_IN`] ones (`sgd`, `nag`, `adam`, `adamw`, `adagrad`, `rmsprop`,
/// `ftrl`) and those [`register`]ed. Keys: `learning_rate` (default 0.01, MXNet's), `wd`,
/// `clip_gradient`, and each optimizer's own (see its `set`). An unknown name, or a key
/// the optimizer does not have, is an error naming it.
pub fn create(name: &str, params: &[(&str, f32)]) -> Result<Box<dyn Optimizer>> {
    let lr = params
        .iter()
        .find(|(k, _)| *k == "learning_rate")
        .map_or(0.01, |(_, v)| *v);
    let key = name.to_ascii_lowercase();
    let mut opt: Box<dyn Configurable> = match key.as_str() {
        "sgd" => Box::new(Sgd::new(lr)),
        "nag" => Box::new(Sgd::nag(lr, 0.0)),
        "adam" => Box::new(Adam::new(lr)),
        "adamw" => Box::new(Adam::adamw(lr)),
        "adagrad" => Box::new(AdaGrad::new(lr)),
        "rmsprop" => Box::new(RmsProp::new(lr)),
        "ftrl" => Box::new(Ftrl::new(lr)),
        _ => {
            let registry = registry().read().unwrap_or_else(|p| p.into_inner());
            match registry.get(&key) {
                Some(factory) => factory(lr),
                None => {
                    let known: Vec<&str> = BUILT_IN
                        .iter()
                        .copied()
                        .chain(registry.keys().map(String::as_str))
                        .collect();
                    return Err(Error::InvalidArgument(format!(
                        "unknown optimizer '{name}': expected one of {} (optim::register adds one)",
                        known.join(", ")
                    )));
                }
            }
        }
    };
    for &(key, value) in params {
        let known = match key {
            "learning_rate" => true,
            "wd" => {
                opt.hyper_mut().wd = value;
                true
            }
            "clip_gradient" => {
                opt.hyper_mut().clip_gradient = Some(value);
                true
            }
            _ => opt.set(key, value),
        };
        if !known {
            return Err(Error::InvalidArgument(format!(
                "optimizer '{name}' has no parameter '{key}'"
            )));
        }
    }
    Ok(opt as Box<dyn Optimizer>)
}
