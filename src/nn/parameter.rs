//! `Parameter`: a named, trainable tensor with its gradient slot, and `ParameterDict`.

use super::init::Initializer;
use super::sharded::{self, Sharding};
use crate::autograd::{Grad, GradReq, GradSlot};
use crate::device::Device;
use crate::distributed::Communicator;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use std::sync::{Arc, RwLock};

/// How a parameter's gradient is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradStype {
    /// A dense gradient of the parameter's shape.
    Default,
    /// Only the rows a batch touched (embedding tables with `sparse_grad`).
    RowSparse,
}

struct Inner {
    name: String,
    shape: RwLock<Vec<usize>>,
    dtype: DType,
    data: RwLock<Option<Tensor>>,
    slot: Arc<GradSlot>,
    init: Option<Initializer>,
    /// Initializer, device and seed remembered for a deferred shape.
    deferred: RwLock<Option<(Initializer, Device, u64)>>,
    grad_stype: GradStype,
    lr_mult: RwLock<f32>,
    wd_mult: RwLock<f32>,
    /// For a table split over data-parallel ranks ([`Parameter::shard`]).
    sharding: RwLock<Option<Arc<Sharding>>>,
}

/// A trainable tensor. Clones share the same values and gradient.
///
/// A dimension of size 0 in the shape is unknown until the first forward pass
/// (deferred initialisation, as Gluon's `in_units=0`).
#[derive(Clone)]
pub struct Parameter(Arc<Inner>);

impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parameter({}, shape={:?})", self.0.name, self.shape())
    }
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Parameter {
    /// A parameter of `shape`. `init` overrides the initializer given to `initialize`
    /// (as Gluon's `bias_initializer='zeros'`).
    pub fn new(name: &str, shape: &[usize], init: Option<Initializer>) -> Parameter {
        Self::with_options(name, shape, init, DType::F32, GradStype::Default)
    }

    /// A parameter with an explicit dtype and gradient storage type.
    pub fn with_options(
        name: &str,
        shape: &[usize],
        init: Option<Initializer>,
        dtype: DType,
        grad_stype: GradStype,
    ) -> Parameter {
        Parameter(Arc::new(Inner {
            name: name.to_string(),
            shape: RwLock::new(shape.to_vec()),
            dtype,
            data: RwLock::new(None),
            slot: Arc::new(GradSlot::new(GradReq::Write)),
            init,
            deferred: RwLock::new(None),
            grad_stype,
            lr_mult: RwLock::new(1.0),
            wd_mult: RwLock::new(1.0),
            sharding: RwLock::new(None),
        }))
    }

    /// The local name given at creation (`weight`, `bias`, ...).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The shape (with 0 for a dimension not yet inferred).
    pub fn shape(&self) -> Vec<usize> {
        read(&self.0.shape)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The gradient storage type.
    pub fn grad_stype(&self) -> GradStype {
        self.0.grad_stype
    }

    /// Whether values exist (initialised or loaded).
    pub fn is_initialized(&self) -> bool {
        self.0
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The values as a tensor connected to this parameter's gradient.
    pub fn data(&self) -> Result<Tensor> {
        read(&self.0.data).ok_or_else(|| {
            Error::Parameter(format!(
                "parameter '{}' (shape {:?}) is not initialised: call initialize() first",
                self.0.name,
                self.shape()
            ))
        })
    }

    /// The device holding the values.
    pub fn device(&self) -> Result<Device> {
        Ok(self.data()?.device())
    }

    /// Initialises the values (a no-op if already initialised). Deferred shapes wait for
    /// [`Parameter::finish_deferred_init`]; they remember `init` and `device`.
    pub fn initialize(&self, init: &Initializer, device: Device, seed: u64) -> Result<()> {
        if self.is_initialized() {
            return Ok(());
        }
        let shape = self.shape();
        if shape.contains(&0) {
            *self.0.deferred.write().unwrap_or_else(|e| e.into_inner()) =
                Some((init.clone(), device, seed));
            return Ok(());
        }
        let init = self.0.init.as_ref().unwrap_or(init);
        let values = init.generate(&shape, seed)?;
        let t = Tensor::from_vec(values, &shape)?
            .to_dtype(self.0.dtype)?
            .to_device(device)?;
        self.set_data_tensor(t);
        Ok(())
    }

    /// Fills in unknown (0) dimensions from the first input and initialises with the
    /// initializer and device remembered by `initialize`.
    pub fn finish_deferred_init(&self, shape: &[usize]) -> Result<()> {
        if self.is_initialized() {
            return Ok(());
        }
        let old = self.shape();
        let ok = old.len() == shape.len() && old.iter().zip(shape).all(|(&o, &n)| o == 0 || o == n);
        if !ok {
            return Err(Error::ShapeMismatch {
                op: "deferred initialisation",
                lhs: old,
                rhs: shape.to_vec(),
            });
        }
        *self.0.shape.write().unwrap_or_else(|e| e.into_inner()) = shape.to_vec();
        let pending = self
            .0
            .deferred
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match pending {
            Some((init, device, seed)) => self.initialize(&init, device, seed),
            None => Err(Error::Parameter(format!(
                "parameter '{}' is not initialised: call initialize() before the first forward",
                self.0.name
            ))),
        }
    }

    /// Forgets the values (and the gradient), so the next `initialize` draws new ones.
    fn clear_data(&self) {
        *self.0.data.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.zero_grad();
    }

    fn set_data_tensor(&self, t: Tensor) {
        let leaf = t.detach().with_grad_slot(self.0.slot.clone());
        *self.0.data.write().unwrap_or_else(|e| e.into_inner()) = Some(leaf);
    }

    /// Replaces the values (shape must match; the device becomes the tensor's if the
    /// parameter was uninitialised, otherwise the values are copied to the parameter's device).
    pub fn set_data(&self, values: &Tensor) -> Result<()> {
        let shape = self.shape();
        let known = shape
            .iter()
            .zip(values.shape())
            .all(|(&a, &b)| a == 0 || a == b);
        if shape.len() != values.rank() || !known {
            return Err(Error::ShapeMismatch {
                op: "set_data",
                lhs: shape,
                rhs: values.shape().to_vec(),
            });
        }
        match read(&self.0.data) {
            Some(cur) => cur.assign(&values.to_device(cur.device())?),
            None => {
                *self.0.shape.write().unwrap_or_else(|e| e.into_inner()) = values.shape().to_vec();
                self.set_data_tensor(values.copy()?.to_dtype(self.0.dtype)?);
                Ok(())
            }
        }
    }

    /// Moves the values to `device` (gradients are cleared).
    pub fn reset_device(&self, device: Device) -> Result<()> {
        if let Some(cur) = read(&self.0.data) {
            if cur.device() != device {
                self.set_data_tensor(cur.to_device(device)?);
                self.zero_grad();
            }
        }
        Ok(())
    }

    /// Splits this `[rows, dim]` table over `comm`'s ranks, in place: this rank keeps
    /// rows `g` with `g % ranks == rank` (about `rows / ranks`; its optimizer state
    /// follows), and an [`Embedding`](crate::nn::Embedding) over it fetches other rows
    /// from their owners (see [`crate::nn::sharded`]). A data-parallel
    /// [`Trainer`](crate::optim::Trainer) neither broadcasts it nor sums its gradient over
    /// the ranks; it completes the gradient (a collective) before each update. Call it on
    /// every rank, after initialising (all ranks alike) and before training; only
    /// `Embedding` reads a sharded table.
    pub fn shard(&self, comm: Arc<dyn Communicator>) -> Result<()> {
        if self.is_sharded() {
            return Err(Error::InvalidArgument(format!(
                "parameter {} is sharded already",
                self.0.name
            )));
        }
        let data = self.data()?;
        if data.rank() != 2 {
            return Err(Error::InvalidArgument(format!(
                "only a [rows, dim] table can be sharded; parameter {} has shape {:?}",
                self.0.name,
                data.shape()
            )));
        }
        let rows = data.shape()[0];
        let part = sharded::local_part(&data, comm.rank(), comm.size())?;
        self.replace(part);
        *self.0.sharding.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::new(Sharding::new(rows, comm)));
        Ok(())
    }

    /// Puts a sharded table back together on every rank (a collective): afterwards it is
    /// the whole `[rows, dim]` table again, e.g. to evaluate or save it. A no-op for a
    /// parameter that is not sharded.
    pub fn gather(&self) -> Result<()> {
        let Some(s) = self.sharding() else {
            return Ok(());
        };
        let whole = sharded::whole(&self.data()?, &s)?;
        self.replace(whole);
        *self.0.sharding.write().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    /// New values of another shape (sharding), gradient cleared.
    fn replace(&self, t: Tensor) {
        *self.0.shape.write().unwrap_or_else(|e| e.into_inner()) = t.shape().to_vec();
        self.set_data_tensor(t);
        self.zero_grad();
    }

    /// True for this rank's part of a table split over ranks ([`Parameter::shard`]).
    pub fn is_sharded(&self) -> bool {
        self.sharding().is_some()
    }

    pub(crate) fn sharding(&self) -> Option<Arc<Sharding>> {
        read(&self.0.sharding)
    }

    /// Completes a sharded table's gradient from the other ranks (a collective; a no-op
    /// for other parameters, and when done already this step).
    pub fn settle_grad(&self) -> Result<()> {
        match self.sharding() {
            Some(s) => sharded::settle(self, &s),
            None => Ok(()),
        }
    }

    /// The gradient from the last backward, if any.
    pub fn grad(&self) -> Option<Grad> {
        self.0.slot.get()
    }

    /// Replaces the stored gradient (used by gradient clipping and tests).
    pub fn set_grad(&self, g: Option<Grad>) {
        self.0.slot.set(g)
    }

    /// Clears the gradient (an absent gradient counts as zero).
    pub fn zero_grad(&self) {
        self.0.slot.clear()
    }

    /// The gradient request.
    pub fn grad_req(&self) -> GradReq {
        self.0.slot.req()
    }

    /// Sets the gradient request (`Null` freezes the parameter).
    pub fn set_grad_req(&self, req: GradReq) {
        self.0.slot.set_req(req)
    }

    /// Learning-rate multiplier (Gluon's `lr_mult`).
    pub fn lr_mult(&self) -> f32 {
        read(&self.0.lr_mult)
    }

    /// Sets the learning-rate multiplier.
    pub fn set_lr_mult(&self, m: f32) {
        *self.0.lr_mult.write().unwrap_or_else(|e| e.into_inner()) = m;
    }

    /// Weight-decay multiplier (Gluon's `wd_mult`).
    pub fn wd_mult(&self) -> f32 {
        read(&self.0.wd_mult)
    }

    /// Sets the weight-decay multiplier.
    pub fn set_wd_mult(&self, m: f32) {
        *self.0.wd_mult.write().unwrap_or_else(|e| e.into_inner()) = m;
    }

    /// This parameter with `grad_req = null` (never trained).
    pub fn frozen(self) -> Parameter {
        self.set_grad_req(GradReq::Null);
        self
    }

    /// Whether two handles refer to the same parameter.
    pub fn ptr_eq(&self, other: &Parameter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Parameters in a fixed order under their hierarchical names (`dense0.weight`).
#[derive(Clone, Debug, Default)]
pub struct ParameterDict {
    items: Vec<(String, Parameter)>,
}

impl ParameterDict {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter under `name`; a parameter already present (shared) is skipped.
    pub fn insert(&mut self, name: String, p: Parameter) {
        if !self.items.iter().any(|(_, q)| q.ptr_eq(&p)) {
            self.items.push((name, p));
        }
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// `(name, parameter)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Parameter)> {
        self.items.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// The names in order.
    pub fn names(&self) -> Vec<String> {
        self.items.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The parameters whose names contain `pattern` (a plain substring, e.g. "weight").
    pub fn select(&self, pattern: &str) -> ParameterDict {
        ParameterDict {
            items: self
                .items
                .iter()
                .filter(|(n, _)| n.contains(pattern))
                .cloned()
                .collect(),
        }
    }

    /// Initialises every uninitialised parameter, each from its own seed of the global
    /// random stream (see [`crate::rng::seed`]). Returns the names of the parameters that
    /// already had values and were left as they are.
    pub fn initialize(&self, init: &Initializer, device: Device) -> Result<Vec<String>> {
        let mut skipped = Vec::new();
        for (name, p) in &self.items {
            // Every parameter draws its seed, so which ones were initialised before does
            // not shift the others' values.
            let seed = crate::rng::next_seed();
            if p.is_initialized() {
                skipped.push(name.clone());
            }
            p.initialize(init, device, seed)?;
        }
        Ok(skipped)
    }

    /// Draws new values for every parameter, initialised or not (Gluon's
    /// `force_reinit=True`), on `device`.
    pub fn force_reinit(&self, init: &Initializer, device: Device) -> Result<()> {
        for (_, p) in &self.items {
            p.clear_data();
            p.initialize(init, device, crate::rng::next_seed())?;
        }
        Ok(())
    }

    /// Clears every gradient.
    pub fn zero_grad(&self) {
        self.items.iter().for_each(|(_, p)| p.zero_grad());
    }

    /// Sets every parameter's gradient request.
    pub fn set_grad_req(&self, req: GradReq) {
        self.items.iter().for_each(|(_, p)| p.set_grad_req(req));
    }

    /// Moves every parameter to `device`.
    pub fn reset_device(&self, device: Device) -> Result<()> {
        self.items
            .iter()
            .try_for_each(|(_, p)| p.reset_device(device))
    }

    /// Total number of scalar values.
    pub fn num_values(&self) -> usize {
        self.items
            .iter()
            .map(|(_, p)| p.shape().iter().product::<usize>())
            .sum()
    }
}
