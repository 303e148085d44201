//! `Tensor`: an n-dimensional array on a [`Device`], with an autograd graph edge.
//!
//! Tensors are immutable values that share their storage through an `Arc`; cloning one is
//! cheap. Every op returns a new tensor and, inside [`autograd::record`](crate::autograd::record),
//! remembers how it was made so that [`Tensor::backward`] can compute gradients.
//! Parameters are the one exception to immutability: an optimizer updates their storage in
//! place, which every clone of the parameter's tensor sees.
//!
//! ```
//! use boson::tensor::Tensor;
//! let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = a.matmul(&a)?.relu()?;
//! assert_eq!(b.to_vec_f32()?, vec![7.0, 10.0, 15.0, 22.0]);
//! # Ok::<(), boson::Error>(())
//! ```

pub(crate) mod backend;
mod binary;
mod cpu;
mod cpu_backend;
mod cpu_window;
mod cuda_kernel;
#[cfg(not(feature = "cuda"))]
mod cuda_stub;
pub(crate) mod custom_op;
mod display;
mod dtype;
pub(crate) mod grad;
mod limits;
mod max_pool_2x2;
mod operators;
mod ops;
pub(crate) mod pool;
mod primitives;
pub(crate) mod recording;
pub mod row_update;
pub(crate) mod shape;
mod simd;
mod small_gemm;
pub(crate) mod storage;
mod unary;
pub(crate) mod window;

pub use pool::{cached_bytes, release_cached_buffers};
pub(crate) use simd::{prefetch, vectorized, Kernel};

pub use binary::BinaryOp;
pub use cuda_kernel::{ElementwiseKernel, MAX_KERNEL_INPUTS, MAX_KERNEL_SCALARS};
pub use dtype::DType;
pub use limits::{check_alloc, max_tensor_bytes, set_max_tensor_bytes};
pub use primitives::ReduceOp;
pub(crate) use primitives::{PoolKind, Window2d};
pub use shape::{broadcast_shape, checked_elem_count};
pub use unary::{Domain, UnaryOp};
pub use window::{Conv2dParams, Pool2dParams};

use crate::device::Device;
use crate::error::{Error, Result};
use grad::{GradReq, GradSlot, Op};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use storage::{CpuStorage, Storage};

/// A unique id per tensor value, used by autograd to key gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(usize);

impl TensorId {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) storage: Arc<RwLock<Storage>>,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    /// How this tensor was computed, when recorded for autograd.
    pub(crate) op: Option<Op>,
    /// Where backward writes this tensor's gradient (parameters and `attach_grad` leaves).
    pub(crate) grad_slot: Option<Arc<GradSlot>>,
}

/// An n-dimensional array of `f32` (values) or `i64` (indices), or an `f16`/`bf16` table.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

impl Tensor {
    pub(crate) fn from_storage(storage: Storage, shape: Vec<usize>, op: Option<Op>) -> Tensor {
        let dtype = storage.dtype();
        let device = storage.device();
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage: Arc::new(RwLock::new(storage)),
            shape,
            dtype,
            device,
            op,
            grad_slot: None,
        }))
    }

    /// A new tensor sharing this one's storage under another shape (same element count).
    pub(crate) fn share_storage(&self, shape: Vec<usize>, op: Option<Op>) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            shape,
            dtype: self.0.dtype,
            device: self.0.device,
            op,
            grad_slot: None,
        }))
    }

    fn check_len(len: usize, shape: &[usize], op: &'static str) -> Result<()> {
        let n = checked_elem_count(shape)?;
        if n != len {
            return Err(Error::InvalidShape {
                op,
                msg: format!("{len} values do not fill shape {shape:?} ({n} elements)"),
            });
        }
        Ok(())
    }

    /// An `f32` tensor on the CPU from row-major values.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Self::check_len(data.len(), shape, "from_vec")?;
        Ok(Self::from_storage(
            Storage::Cpu(CpuStorage::F32(data)),
            shape.to_vec(),
            None,
        ))
    }

    /// An `i64` index tensor on the CPU (embedding inputs, class labels).
    pub fn from_vec_i64(data: Vec<i64>, shape: &[usize]) -> Result<Tensor> {
        Self::check_len(data.len(), shape, "from_vec_i64")?;
        Ok(Self::from_storage(
            Storage::Cpu(CpuStorage::I64(data)),
            shape.to_vec(),
            None,
        ))
    }

    /// An `f16` tensor on the CPU (half-precision embedding tables).
    pub fn from_vec_f16(data: Vec<half::f16>, shape: &[usize]) -> Result<Tensor> {
        Self::check_len(data.len(), shape, "from_vec_f16")?;
        Ok(Self::from_storage(
            Storage::Cpu(CpuStorage::F16(data)),
            shape.to_vec(),
            None,
        ))
    }

    /// A `bf16` tensor on the CPU (half-precision embedding tables).
    pub fn from_vec_bf16(data: Vec<half::bf16>, shape: &[usize]) -> Result<Tensor> {
        Self::check_len(data.len(), shape, "from_vec_bf16")?;
        Ok(Self::from_storage(
            Storage::Cpu(CpuStorage::BF16(data)),
            shape.to_vec(),
            None,
        ))
    }

    /// A 0-dimensional `f32` tensor.
    pub fn scalar(value: f32) -> Tensor {
        Self::from_storage(Storage::Cpu(CpuStorage::F32(vec![value])), vec![], None)
    }

    /// An `f32` tensor filled with `value` on `device`.
    pub fn full(value: f32, shape: &[usize], device: Device) -> Result<Tensor> {
        let n = checked_elem_count(shape)?;
        if device == Device::Cpu {
            check_alloc(n, 4, || format!("a tensor of shape {shape:?}"))?;
        }
        let storage = Storage::full(value, n, device)?;
        Ok(Self::from_storage(storage, shape.to_vec(), None))
    }

    /// Zeros of `shape` on `device`.
    pub fn zeros(shape: &[usize], device: Device) -> Result<Tensor> {
        Self::full(0.0, shape, device)
    }

    /// Ones of `shape` on `device`.
    pub fn ones(shape: &[usize], device: Device) -> Result<Tensor> {
        Self::full(1.0, shape, device)
    }

    /// Zeros whose memory is written now rather than mapped lazily. Optimizer state is
    /// touched at random rows every step; zero pages from the allocator would fault in one
    /// by one inside the training loop (about 1024 faults a step for a 10M-row table), so
    /// the trainer pays for them once here instead.
    pub(crate) fn zeros_prefaulted(shape: &[usize], device: Device) -> Result<Tensor> {
        if device != Device::Cpu {
            return Self::zeros(shape, device);
        }
        let n = checked_elem_count(shape)?;
        check_alloc(n, 4, || format!("a tensor of shape {shape:?}"))?;
        let mut v = pool::for_parameter(n);
        v.resize(n, 0.0);
        Self::from_vec(v, shape)
    }

    /// Zeros with this tensor's shape and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Self::zeros(self.shape(), self.device())
    }

    /// Ones with this tensor's shape and device.
    pub fn ones_like(&self) -> Result<Tensor> {
        Self::ones(self.shape(), self.device())
    }

    /// `0, 1, ..., n-1` as `f32`.
    pub fn arange(n: usize, device: Device) -> Result<Tensor> {
        Tensor::from_vec((0..n).map(|i| i as f32).collect(), &[n])?.to_device(device)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// The number of elements.
    pub fn elem_count(&self) -> usize {
        self.0.shape.iter().product()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The device holding the values.
    pub fn device(&self) -> Device {
        self.0.device
    }

    /// This tensor's autograd id.
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// The size of `axis`, with an error naming the axis when it does not exist.
    pub fn dim(&self, axis: usize) -> Result<usize> {
        self.shape()
            .get(axis)
            .copied()
            .ok_or_else(|| Error::InvalidShape {
                op: "dim",
                msg: format!("axis {axis} out of range for shape {:?}", self.shape()),
            })
    }

    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        // A poisoned lock only means another thread panicked mid-update; the values are
        // still plain numbers, so keep going rather than propagate the panic.
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies the values to a `Vec<f32>` (from any device; `f16`/`bf16` are widened).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.storage().to_vec_f32()
    }

    /// Copies an `i64` tensor's values to a `Vec<i64>`.
    pub fn to_vec_i64(&self) -> Result<Vec<i64>> {
        self.storage().to_vec_i64()
    }

    /// The single value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.elem_count() != 1 {
            return Err(Error::InvalidShape {
                op: "to_scalar",
                msg: format!("shape {:?} has more than one element", self.shape()),
            });
        }
        Ok(self.to_vec_f32()?[0])
    }

    /// A copy of this tensor on `device` (a cheap clone when it is already there).
    /// The copy is not connected to the autograd graph.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let storage = self.storage().to_device(device)?;
        Ok(Self::from_storage(storage, self.shape().to_vec(), None))
    }

    /// Converts to another element type (`f32` ↔ `f16`/`bf16`, `i64` → `f32`).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let storage = self.storage().to_dtype(dtype)?;
        Ok(Self::from_storage(storage, self.shape().to_vec(), None))
    }

    /// The same values, cut from the autograd graph (Gluon's `detach`).
    pub fn detach(&self) -> Tensor {
        self.share_storage(self.shape().to_vec(), None)
    }

    /// A deep copy with its own storage.
    pub fn copy(&self) -> Result<Tensor> {
        let storage = self.storage().deep_clone()?;
        Ok(Self::from_storage(storage, self.shape().to_vec(), None))
    }

    /// Makes this tensor a gradient leaf (Gluon's `attach_grad`): after `backward`,
    /// [`Tensor::grad`] returns the gradient with respect to it.
    pub fn attach_grad(&self) -> Tensor {
        let mut t = self.detach();
        if let Some(inner) = Arc::get_mut(&mut t.0) {
            inner.grad_slot = Some(Arc::new(GradSlot::new(GradReq::Write)));
        }
        t
    }

    /// The gradient written by the last `backward` for a leaf, as a dense tensor.
    pub fn grad(&self) -> Result<Option<Tensor>> {
        match &self.0.grad_slot {
            None => Ok(None),
            Some(slot) => match slot.get() {
                None => Ok(None),
                Some(g) => Ok(Some(g.to_dense()?)),
            },
        }
    }

    pub(crate) fn grad_slot(&self) -> Option<&Arc<GradSlot>> {
        self.0.grad_slot.as_ref()
    }

    pub(crate) fn with_grad_slot(&self, slot: Arc<GradSlot>) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            shape: self.0.shape.clone(),
            dtype: self.0.dtype,
            device: self.0.device,
            op: None,
            grad_slot: Some(slot),
        }))
    }

    /// Whether backward would reach this tensor (it was recorded or is a gradient leaf).
    pub(crate) fn tracks_grad(&self) -> bool {
        self.0.op.is_some()
            || self
                .0
                .grad_slot
                .as_ref()
                .is_some_and(|s| s.req() != GradReq::Null)
    }

    /// Overwrites this tensor's values in place with `src`'s (same shape, dtype and device).
    /// Used by optimizers and parameter loading; every clone sees the new values.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "assign",
                lhs: self.shape().to_vec(),
                rhs: src.shape().to_vec(),
            });
        }
        if src.device() != self.device() {
            return Err(Error::DeviceMismatch {
                op: "assign",
                lhs: self.device().to_string(),
                rhs: src.device().to_string(),
            });
        }
        if Arc::ptr_eq(&self.0.storage, &src.0.storage) {
            return Ok(());
        }
        let new = src.storage().to_dtype(self.dtype())?;
        *self.storage_mut() = new;
        Ok(())
    }

    /// `Σ x²` in f64 of a CPU tensor, read in place (no copy). Device tensors are reduced
    /// on the device by the caller (see `Trainer::grad_global_norm`).
    pub(crate) fn squared_norm(&self) -> Result<f64> {
        match &*self.storage() {
            Storage::Cpu(c) => Ok(cpu::squared_norm(c.f32("squared_norm")?)),
            Storage::Cuda(_) => Err(Error::DeviceMismatch {
                op: "squared_norm",
                lhs: "cpu".into(),
                rhs: self.device().to_string(),
            }),
        }
    }

    /// True when every value is finite (no NaN or ±inf).
    pub fn all_finite(&self) -> Result<bool> {
        Ok(self.to_vec_f32()?.iter().all(|v| v.is_finite()))
    }
}
