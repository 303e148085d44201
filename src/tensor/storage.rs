//! Tensor storage per device, and the dispatch of each primitive to its backend.
//!
//! Every primitive has a CPU implementation (`cpu_backend.rs`, the reference) and a CUDA
//! one (`crate::cuda`, or a stub without the `cuda` feature), both behind
//! [`BackendStorage`]. Ops in `ops.rs` only talk to `Storage`, never to a backend
//! directly. Inputs on different kinds of device are an error here; inputs on different
//! GPUs are the CUDA backend's to refuse.

use super::backend::BackendStorage;
use super::binary::BinaryOp;
pub(crate) use super::cpu_backend::CpuStorage;
#[cfg(not(feature = "cuda"))]
pub(crate) use super::cuda_stub::CudaStorage;
use super::dtype::DType;
use super::primitives::ReduceOp;
use super::primitives::{PoolKind, Window2d};
use super::shape::Layout;
use super::unary::UnaryOp;
#[cfg(feature = "cuda")]
pub(crate) use crate::cuda::CudaStorage;
use crate::device::Device;
use crate::error::{Error, Result};

/// The device constructors that ask the CUDA backend (at the seam, so that `device`
/// below needs nothing from it).
impl Device {
    /// `Device::Cuda(ordinal)` when a CUDA driver, NVRTC and that device are present,
    /// otherwise `Device::Cpu`. Never panics.
    pub fn cuda_if_available(ordinal: usize) -> Device {
        if Self::cuda_is_available(ordinal) {
            Device::Cuda(ordinal)
        } else {
            Device::Cpu
        }
    }

    /// Whether `Device::Cuda(ordinal)` can be used on this machine.
    pub fn cuda_is_available(ordinal: usize) -> bool {
        Self::new_cuda(ordinal).is_ok()
    }

    /// `Device::Cuda(ordinal)` if it can be used here, or an
    /// [`Error::Cuda`] saying why not: no driver library, no NVRTC, no
    /// device with that ordinal, or a build without the `cuda` feature. Never panics.
    pub fn new_cuda(ordinal: usize) -> Result<Device> {
        CudaStorage::check_device(ordinal).map(|_| Device::Cuda(ordinal))
    }
}

/// Values on one device.
pub(crate) enum Storage {
    Cpu(CpuStorage),
    Cuda(CudaStorage),
}

fn device_err(op: &'static str, a: Device, b: Device) -> Error {
    Error::DeviceMismatch {
        op,
        lhs: a.to_string(),
        rhs: b.to_string(),
    }
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
            Storage::Cuda(c) => c.dtype(),
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(c) => c.device(),
            Storage::Cuda(c) => c.device(),
        }
    }

    /// The number of elements (on CUDA, including any padding rows).
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(c) => c.len(),
            Storage::Cuda(c) => c.len(),
        }
    }

    pub fn full(value: f32, n: usize, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuStorage::full(value, n))),
            Device::Cuda(o) => Ok(Storage::Cuda(CudaStorage::full(o, value, n)?)),
        }
    }

    /// The values on the host.
    fn to_cpu(&self) -> Result<CpuStorage> {
        match self {
            Storage::Cpu(c) => Ok(c.clone()),
            Storage::Cuda(c) => c.to_cpu(),
        }
    }

    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        match self {
            Storage::Cpu(c) => Ok(c.to_f32_vec()),
            Storage::Cuda(c) => Ok(c.to_cpu()?.into_f32_vec()),
        }
    }

    pub fn to_vec_i64(&self) -> Result<Vec<i64>> {
        match self {
            Storage::Cpu(c) => Ok(c.i64("to_vec_i64")?.to_vec()),
            Storage::Cuda(c) => Ok(c.to_cpu()?.i64("to_vec_i64")?.to_vec()),
        }
    }

    pub fn to_device(&self, device: Device) -> Result<Storage> {
        match (self, device) {
            (Storage::Cpu(c), Device::Cpu) => Ok(Storage::Cpu(c.clone())),
            (Storage::Cpu(c), Device::Cuda(o)) => Ok(Storage::Cuda(CudaStorage::from_cpu(o, c)?)),
            (Storage::Cuda(c), Device::Cpu) => Ok(Storage::Cpu(c.to_cpu()?)),
            // Between GPUs through the host: rare, and never on a training step.
            (Storage::Cuda(_), Device::Cuda(o)) => {
                Ok(Storage::Cuda(CudaStorage::from_cpu(o, &self.to_cpu()?)?))
            }
        }
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.to_dtype(dtype)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.to_dtype(dtype)?)),
        }
    }

    pub fn deep_clone(&self) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.deep_clone()?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.deep_clone()?)),
        }
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.unary(op)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.unary(op)?)),
        }
    }

    pub fn binary(&self, la: &Layout, rhs: &Storage, lb: &Layout, op: BinaryOp) -> Result<Storage> {
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => Ok(Storage::Cpu(a.binary(la, b, lb, op)?)),
            (Storage::Cuda(a), Storage::Cuda(b)) => Ok(Storage::Cuda(a.binary(la, b, lb, op)?)),
            (a, b) => Err(device_err("binary", a.device(), b.device())),
        }
    }

    pub fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.reduce(op, outer, len, inner)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.reduce(op, outer, len, inner)?)),
        }
    }

    pub fn argmax(&self, outer: usize, len: usize, inner: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.argmax(outer, len, inner)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.argmax(outer, len, inner)?)),
        }
    }

    /// See [`BackendStorage::fill_at`].
    pub fn fill_at(&self, positions: &Storage, value: f32) -> Result<Storage> {
        match (self, positions) {
            (Storage::Cpu(x), Storage::Cpu(p)) => Ok(Storage::Cpu(x.fill_at(p, value)?)),
            (Storage::Cuda(x), Storage::Cuda(p)) => Ok(Storage::Cuda(x.fill_at(p, value)?)),
            (a, b) => Err(device_err("fill_at", a.device(), b.device())),
        }
    }

    /// See [`BackendStorage::softmax`].
    pub fn softmax(&self, len: usize, log: bool) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.softmax(len, log)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.softmax(len, log)?)),
        }
    }

    /// See [`BackendStorage::softmax_grad`] (`self` is the output `y`).
    pub fn softmax_grad(&self, dy: &Storage, len: usize, log: bool) -> Result<Storage> {
        match (self, dy) {
            (Storage::Cpu(y), Storage::Cpu(g)) => Ok(Storage::Cpu(y.softmax_grad(g, len, log)?)),
            (Storage::Cuda(y), Storage::Cuda(g)) => Ok(Storage::Cuda(y.softmax_grad(g, len, log)?)),
            (a, b) => Err(device_err("softmax_grad", a.device(), b.device())),
        }
    }

    /// See [`BackendStorage::matmul`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        rhs: &Storage,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<Storage> {
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => {
                Ok(Storage::Cpu(a.matmul(b, batch, m, k, n, trans_a, trans_b)?))
            }
            (Storage::Cuda(a), Storage::Cuda(b)) => Ok(Storage::Cuda(
                a.matmul(b, batch, m, k, n, trans_a, trans_b)?,
            )),
            (a, b) => Err(device_err("matmul", a.device(), b.device())),
        }
    }

    /// Materialises a strided view as a contiguous storage (f32 or i64).
    pub fn strided_copy(&self, layout: &Layout) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.strided_copy(layout)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.strided_copy(layout)?)),
        }
    }

    /// Concatenates contiguous parts, each viewed as `(outer, part_len · inner)`.
    pub fn concat(parts: &[&Storage], outer: usize, widths: &[usize]) -> Result<Storage> {
        let device = parts
            .first()
            .ok_or_else(|| Error::InvalidArgument("concat of nothing".into()))?
            .device();
        let mut cpu = Vec::new();
        let mut cuda = Vec::new();
        for p in parts {
            match p {
                Storage::Cpu(c) if device == Device::Cpu => cpu.push(c),
                Storage::Cuda(c) if p.device() == device => cuda.push(c),
                _ => return Err(device_err("concat", device, p.device())),
            }
        }
        if device == Device::Cpu {
            Ok(Storage::Cpu(CpuStorage::concat(&cpu, outer, widths)?))
        } else {
            Ok(Storage::Cuda(CudaStorage::concat(&cuda, outer, widths)?))
        }
    }

    /// Row gather from a `[rows, dim]` table (f32/f16/bf16) with `i64` indices → f32.
    pub fn gather_rows(&self, rows: usize, dim: usize, idx: &Storage) -> Result<Storage> {
        match (self, idx) {
            (Storage::Cpu(t), Storage::Cpu(i)) => Ok(Storage::Cpu(t.gather_rows(rows, dim, i)?)),
            (Storage::Cuda(t), Storage::Cuda(i)) => Ok(Storage::Cuda(t.gather_rows(rows, dim, i)?)),
            (a, b) => Err(device_err("take", a.device(), b.device())),
        }
    }

    /// Unique indices and summed rows (the row-sparse gradient of a gather).
    /// On CUDA the outputs may carry trailing `-1` padding rows (see `crate::cuda`).
    pub fn coalesce_rows(
        idx: &Storage,
        rows: &Storage,
        dim: usize,
        table_rows: usize,
    ) -> Result<(Storage, Storage)> {
        match (idx, rows) {
            (Storage::Cpu(i), Storage::Cpu(r)) => {
                let (u, s) = CpuStorage::coalesce_rows(i, r, dim, table_rows)?;
                Ok((Storage::Cpu(u), Storage::Cpu(s)))
            }
            (Storage::Cuda(i), Storage::Cuda(r)) => {
                let (u, s) = CudaStorage::coalesce_rows(i, r, dim, table_rows)?;
                Ok((Storage::Cuda(u), Storage::Cuda(s)))
            }
            (a, b) => Err(device_err("coalesce", a.device(), b.device())),
        }
    }

    /// `self[idx[i]] += rows[i]` in place on a `[_, dim]` f32 storage; negative indices skip.
    pub fn index_add_rows(&mut self, dim: usize, idx: &Storage, rows: &Storage) -> Result<()> {
        match (self, idx, rows) {
            (Storage::Cpu(d), Storage::Cpu(i), Storage::Cpu(r)) => d.index_add_rows(dim, i, r),
            (Storage::Cuda(d), Storage::Cuda(i), Storage::Cuda(r)) => d.index_add_rows(dim, i, r),
            (d, i, r) => {
                let other = if i.device() != d.device() { i } else { r };
                Err(device_err("index_add", d.device(), other.device()))
            }
        }
    }

    /// An inverted-dropout mask: `1/(1-p)` where `uniform_hash(seed, i) >= p`, else 0.
    pub fn dropout_mask(n: usize, p: f32, seed: u64, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuStorage::dropout_mask(n, p, seed))),
            Device::Cuda(o) => Ok(Storage::Cuda(CudaStorage::dropout_mask(o, n, p, seed)?)),
        }
    }

    /// One-hot rows `[n, classes]` for `i64` labels.
    pub fn one_hot(&self, classes: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.one_hot(classes)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.one_hot(classes)?)),
        }
    }

    /// `NCHW` receptive fields as `[n, c·kh·kw, oh·ow]` columns.
    pub fn im2col(&self, window: &Window2d) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.im2col(window)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.im2col(window)?)),
        }
    }

    /// Columns summed back into `NCHW` values.
    pub fn col2im(&self, window: &Window2d) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.col2im(window)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.col2im(window)?)),
        }
    }

    /// Pooled `NCHW` values.
    pub fn pool2d(&self, window: &Window2d, kind: PoolKind) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.pool2d(window, kind)?)),
            Storage::Cuda(c) => Ok(Storage::Cuda(c.pool2d(window, kind)?)),
        }
    }

    /// The input gradient of a pooling.
    pub fn pool2d_grad(
        x: &Storage,
        dy: &Storage,
        window: &Window2d,
        kind: PoolKind,
    ) -> Result<Storage> {
        match (x, dy) {
            (Storage::Cpu(a), Storage::Cpu(b)) => {
                Ok(Storage::Cpu(CpuStorage::pool2d_grad(a, b, window, kind)?))
            }
            (Storage::Cuda(a), Storage::Cuda(b)) => {
                Ok(Storage::Cuda(CudaStorage::pool2d_grad(a, b, window, kind)?))
            }
            (a, b) => Err(device_err("pool2d_grad", a.device(), b.device())),
        }
    }

    /// The f32 values of CPU storage, to change; an error naming `op` on another device
    /// or dtype.
    pub(crate) fn cpu_f32_mut(&mut self, op: &'static str) -> Result<&mut [f32]> {
        match self {
            Storage::Cpu(c) => Ok(c.f32_mut(op)?.as_mut_slice()),
            other => Err(device_err(op, Device::Cpu, other.device())),
        }
    }

    /// The f32 values of CPU storage.
    pub(crate) fn cpu_f32(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            Storage::Cpu(c) => c.f32(op),
            other => Err(device_err(op, Device::Cpu, other.device())),
        }
    }

    /// The i64 values of CPU storage.
    pub(crate) fn cpu_i64(&self, op: &'static str) -> Result<&[i64]> {
        match self {
            Storage::Cpu(c) => c.i64(op),
            other => Err(device_err(op, Device::Cpu, other.device())),
        }
    }
}
