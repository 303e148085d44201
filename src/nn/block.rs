//! The `Block` trait and the `Sequential` container.

use super::init::Initializer;
use super::parameter::{Parameter, ParameterDict};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A layer or a model: a forward computation plus the parameters it owns.
///
/// A block built from other blocks lists its children in [`Block::visit_params`]
/// with a name prefix each, which gives hierarchical names such as `user_dense.weight`.
/// Training/predict behaviour (dropout, batch norm) follows
/// [`autograd::is_training`](crate::autograd::is_training).
pub trait Block: Send + Sync {
    /// The forward pass on one input.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// The forward pass on several inputs (e.g. users and items). The default accepts
    /// exactly one input and calls [`Block::forward`].
    fn forward_many(&self, xs: &[Tensor]) -> Result<Tensor> {
        match xs {
            [x] => self.forward(x),
            _ => Err(Error::InvalidArgument(format!(
                "{} takes one input, got {}",
                self.kind(),
                xs.len()
            ))),
        }
    }

    /// Calls `f(name, parameter)` for every parameter, names prefixed with `prefix`.
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter));

    /// Calls `f(name, layer)` for every [`Dropout`](super::Dropout) layer, names prefixed
    /// with `prefix` as in [`Block::visit_params`]. Checkpoints use it to save and restore
    /// each layer's mask counter, so a resumed run drops the same elements as an
    /// uninterrupted one. A block with children forwards it to them (the default visits
    /// nothing).
    fn visit_dropout(&self, prefix: &str, f: &mut dyn FnMut(String, &super::Dropout)) {
        let _ = (prefix, f);
    }

    /// A short lowercase type name used to name children in a `Sequential` (`dense`).
    fn kind(&self) -> &'static str {
        "block"
    }

    /// All parameters, in a stable order, under hierarchical names.
    fn collect_params(&self) -> ParameterDict {
        let mut dict = ParameterDict::new();
        self.visit_params("", &mut |name, p| dict.insert(name, p.clone()));
        dict
    }

    /// Initialises every parameter that has no values yet (Gluon's `initialize`).
    /// Parameters with their own initializer (biases: zeros) keep it.
    fn initialize(&self, init: &Initializer, device: Device) -> Result<()> {
        self.collect_params().initialize(init, device)
    }

    /// Saves the parameters to a safetensors file (Gluon's `save_parameters`).
    fn save_parameters(&self, path: &std::path::Path) -> Result<()> {
        self.collect_params().save(path)
    }

    /// Loads parameters saved by [`Block::save_parameters`], strictly: any missing, extra,
    /// misshaped or mistyped parameter is an error listing all of them.
    fn load_parameters(&self, path: &std::path::Path, device: Device) -> Result<()> {
        let opts = super::LoadOptions {
            device: Some(device),
            ..Default::default()
        };
        self.collect_params().load(path, opts)
    }
}

impl<B: Block + ?Sized> Block for Box<B> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn visit_dropout(&self, prefix: &str, f: &mut dyn FnMut(String, &super::Dropout)) {
        (**self).visit_dropout(prefix, f)
    }
    fn forward_many(&self, xs: &[Tensor]) -> Result<Tensor> {
        (**self).forward_many(xs)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        (**self).visit_params(prefix, f)
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

impl<B: Block + ?Sized> Block for std::sync::Arc<B> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn visit_dropout(&self, prefix: &str, f: &mut dyn FnMut(String, &super::Dropout)) {
        (**self).visit_dropout(prefix, f)
    }
    fn forward_many(&self, xs: &[Tensor]) -> Result<Tensor> {
        (**self).forward_many(xs)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        (**self).visit_params(prefix, f)
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

/// Blocks applied one after another. Children are named `{kind}{n}` per kind, as Gluon
/// 1.x does: `dense0`, `dense1`, `dropout0`.
#[derive(Default)]
pub struct Sequential {
    children: Vec<Box<dyn Block>>,
}

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a block (builder style, as Gluon's `net.add(...)`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, block: impl Block + 'static) -> Self {
        self.children.push(Box::new(block));
        self
    }

    /// Appends a block in place.
    pub fn push(&mut self, block: impl Block + 'static) {
        self.children.push(Box::new(block));
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Child names in order (`dense0`, `activation0`, ...).
    pub fn child_names(&self) -> Vec<String> {
        let mut counts = std::collections::HashMap::new();
        self.children
            .iter()
            .map(|c| {
                let n = counts.entry(c.kind()).or_insert(0usize);
                let name = format!("{}{}", c.kind(), n);
                *n += 1;
                name
            })
            .collect()
    }
}

impl Block for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for c in &self.children {
            h = c.forward(&h)?;
        }
        Ok(h)
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(String, &Parameter)) {
        for (c, name) in self.children.iter().zip(self.child_names()) {
            c.visit_params(&format!("{prefix}{name}."), f);
        }
    }

    fn visit_dropout(&self, prefix: &str, f: &mut dyn FnMut(String, &super::Dropout)) {
        for (c, name) in self.children.iter().zip(self.child_names()) {
            c.visit_dropout(&format!("{prefix}{name}."), f);
        }
    }

    fn kind(&self) -> &'static str {
        "sequential"
    }
}
