//! Tensor storage per device, and the dispatch of each primitive to its backend.
//!
//! Every primitive has a CPU implementation (`cpu.rs`, the reference) and a CUDA one
//! (`crate::cuda`). Ops in `ops.rs` only talk to `Storage`, never to a backend directly, so
//! adding a backend means adding one arm here.

use super::cpu;
use super::pool;
use super::primitives::{BinaryOp, ReduceOp, UnaryOp};
use super::shape::Layout;
use crate::device::Device;
use crate::error::{Error, Result};
use half::{bf16, f16};

/// Element types a tensor can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: all values and gradients.
    F32,
    /// 64-bit signed integer: indices and labels.
    I64,
    /// IEEE half: compact embedding tables.
    F16,
    /// bfloat16: compact embedding tables.
    BF16,
}

impl DType {
    /// The name used in error messages and parameter files.
    pub fn as_str(&self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Host-side values.
#[derive(Clone, Debug)]
pub(crate) enum CpuStorage {
    F32(Vec<f32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        // The next op output of the same length reuses the memory (see `pool`).
        if let CpuStorage::F32(v) = self {
            super::pool::recycle(std::mem::take(v));
        }
    }
}

/// Values on one device.
pub(crate) enum Storage {
    Cpu(CpuStorage),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaStorage),
}

fn dtype_err(op: &'static str, expected: &str, got: DType) -> Error {
    Error::DTypeMismatch {
        op,
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

fn device_err(op: &'static str, a: Device, b: Device) -> Error {
    Error::DeviceMismatch {
        op,
        lhs: a.to_string(),
        rhs: b.to_string(),
    }
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
        }
    }

    pub fn f32(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            o => Err(dtype_err(op, "f32", o.dtype())),
        }
    }

    pub fn f32_mut(&mut self, op: &'static str) -> Result<&mut Vec<f32>> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            o => Err(dtype_err(op, "f32", o.dtype())),
        }
    }

    pub fn i64(&self, op: &'static str) -> Result<&[i64]> {
        match self {
            CpuStorage::I64(v) => Ok(v),
            o => Err(dtype_err(op, "i64", o.dtype())),
        }
    }

    /// A copy of the values as f32.
    fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            CpuStorage::F32(v) => v.clone(),
            CpuStorage::I64(v) => v.iter().map(|&x| x as f32).collect(),
            CpuStorage::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// The values as f32, moved out when they already are f32.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn into_f32_vec(mut self) -> Vec<f32> {
        match &mut self {
            CpuStorage::F32(v) => std::mem::take(v),
            other => other.to_f32_vec(),
        }
    }

    fn to_dtype(&self, dtype: DType) -> Result<CpuStorage> {
        let as_f32 = self.to_f32_vec();
        Ok(match dtype {
            DType::F32 => CpuStorage::F32(as_f32),
            DType::F16 => CpuStorage::F16(as_f32.iter().map(|&x| f16::from_f32(x)).collect()),
            DType::BF16 => CpuStorage::BF16(as_f32.iter().map(|&x| bf16::from_f32(x)).collect()),
            DType::I64 => match self {
                CpuStorage::I64(v) => CpuStorage::I64(v.clone()),
                o => {
                    return Err(dtype_err(
                        "to_dtype",
                        "i64 source for an i64 cast",
                        o.dtype(),
                    ))
                }
            },
        })
    }
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => c.dtype(),
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Device::Cuda(c.ordinal()),
        }
    }

    pub fn full(value: f32, n: usize, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuStorage::F32(pool::filled(n, value)))),
            #[cfg(feature = "cuda")]
            Device::Cuda(o) => Ok(Storage::Cuda(crate::cuda::CudaStorage::full(o, value, n)?)),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(no_cuda()),
        }
    }

    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        match self {
            Storage::Cpu(c) => Ok(c.to_f32_vec()),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(c.to_cpu()?.into_f32_vec()),
        }
    }

    pub fn to_vec_i64(&self) -> Result<Vec<i64>> {
        match self {
            Storage::Cpu(c) => Ok(c.i64("to_vec_i64")?.to_vec()),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(c.to_cpu()?.i64("to_vec_i64")?.to_vec()),
        }
    }

    pub fn to_device(&self, device: Device) -> Result<Storage> {
        match (self, device) {
            (Storage::Cpu(c), Device::Cpu) => Ok(Storage::Cpu(c.clone())),
            #[cfg(feature = "cuda")]
            (Storage::Cpu(c), Device::Cuda(o)) => {
                Ok(Storage::Cuda(crate::cuda::CudaStorage::from_cpu(o, c)?))
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(c), Device::Cpu) => Ok(Storage::Cpu(c.to_cpu()?)),
            #[cfg(feature = "cuda")]
            (Storage::Cuda(c), Device::Cuda(o)) => Ok(Storage::Cuda(
                crate::cuda::CudaStorage::from_cpu(o, &c.to_cpu()?)?,
            )),
            #[cfg(not(feature = "cuda"))]
            (Storage::Cpu(_), Device::Cuda(_)) => Err(no_cuda()),
        }
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.to_dtype(dtype)?)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(Storage::Cuda(c.to_dtype(dtype)?)),
        }
    }

    pub fn deep_clone(&self) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(c.clone())),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(Storage::Cuda(c.deep_clone()?)),
        }
    }

    pub fn unary(&self, op: UnaryOp) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(CpuStorage::F32(cpu::unary(
                op,
                c.f32("unary")?,
            )))),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(Storage::Cuda(c.unary(op)?)),
        }
    }

    pub fn binary(&self, la: &Layout, rhs: &Storage, lb: &Layout, op: BinaryOp) -> Result<Storage> {
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => Ok(Storage::Cpu(CpuStorage::F32(cpu::binary(
                op,
                a.f32("binary")?,
                la,
                b.f32("binary")?,
                lb,
            )))),
            #[cfg(feature = "cuda")]
            (Storage::Cuda(a), Storage::Cuda(b)) => Ok(Storage::Cuda(a.binary(la, b, lb, op)?)),
            #[cfg(feature = "cuda")]
            (a, b) => Err(device_err("binary", a.device(), b.device())),
        }
    }

    pub fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(CpuStorage::F32(cpu::reduce(
                op,
                c.f32("reduce")?,
                outer,
                len,
                inner,
            )))),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(Storage::Cuda(c.reduce(op, outer, len, inner)?)),
        }
    }

    pub fn argmax(&self, outer: usize, len: usize, inner: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(CpuStorage::I64(cpu::argmax(
                c.f32("argmax")?,
                outer,
                len,
                inner,
            )))),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(Storage::Cuda(c.argmax(outer, len, inner)?)),
        }
    }

    /// `batch` products `op(a)·op(b)` of `(m × k)` and `(k × n)` matrices, where a
    /// transposed operand is stored `(k × m)` / `(n × k)`.
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
            (Storage::Cpu(a), Storage::Cpu(b)) => Ok(Storage::Cpu(CpuStorage::F32(cpu::matmul(
                a.f32("matmul")?,
                b.f32("matmul")?,
                (batch, m, k, n),
                trans_a,
                trans_b,
            )))),
            #[cfg(feature = "cuda")]
            (Storage::Cuda(a), Storage::Cuda(b)) => Ok(Storage::Cuda(
                a.matmul(b, batch, m, k, n, trans_a, trans_b)?,
            )),
            #[cfg(feature = "cuda")]
            (a, b) => Err(device_err("matmul", a.device(), b.device())),
        }
    }

    /// Materialises a strided view as a contiguous storage (f32 or i64).
    pub fn strided_copy(&self, layout: &Layout) -> Result<Storage> {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => {
                let out = pool::scratch(layout.elem_count());
                Ok(Storage::Cpu(CpuStorage::F32(cpu::strided_copy(
                    v, layout, out,
                ))))
            }
            Storage::Cpu(CpuStorage::I64(v)) => {
                let out = vec![0; layout.elem_count()];
                Ok(Storage::Cpu(CpuStorage::I64(cpu::strided_copy(
                    v, layout, out,
                ))))
            }
            Storage::Cpu(o) => Err(dtype_err("strided_copy", "f32 or i64", o.dtype())),
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(Storage::Cuda(c.strided_copy(layout)?)),
        }
    }

    /// Concatenates contiguous parts, each viewed as `(outer, part_len · inner)`.
    pub fn concat(parts: &[&Storage], outer: usize, widths: &[usize]) -> Result<Storage> {
        let device = parts[0].device();
        for p in parts {
            if p.device() != device {
                return Err(device_err("concat", device, p.device()));
            }
        }
        match parts[0] {
            Storage::Cpu(_) => {
                let total: usize = widths.iter().sum();
                // Every column block of every row is copied below.
                let mut out = pool::scratch(outer * total);
                let mut col = 0;
                for (p, &w) in parts.iter().zip(widths) {
                    let src = match p {
                        Storage::Cpu(c) => c.f32("concat")?,
                        #[cfg(feature = "cuda")]
                        _ => unreachable!("devices checked above"),
                    };
                    for o in 0..outer {
                        out[o * total + col..o * total + col + w]
                            .copy_from_slice(&src[o * w..(o + 1) * w]);
                    }
                    col += w;
                }
                Ok(Storage::Cpu(CpuStorage::F32(out)))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let cuda: Vec<&crate::cuda::CudaStorage> = parts
                    .iter()
                    .filter_map(|p| match p {
                        Storage::Cuda(c) => Some(c),
                        _ => None,
                    })
                    .collect();
                Ok(Storage::Cuda(crate::cuda::CudaStorage::concat(
                    &cuda, outer, widths,
                )?))
            }
        }
    }

    /// Row gather from a `[rows, dim]` table (f32/f16/bf16) with `i64` indices → f32.
    pub fn gather_rows(&self, rows: usize, dim: usize, idx: &Storage) -> Result<Storage> {
        match (self, idx) {
            (Storage::Cpu(t), Storage::Cpu(i)) => {
                let i = i.i64("embedding indices")?;
                cpu::check_indices(i, rows, "embedding table rows")?;
                let out = match t {
                    CpuStorage::F32(v) => cpu::gather_rows(v, dim, i, |x| x),
                    CpuStorage::F16(v) => cpu::gather_rows(v, dim, i, |x| x.to_f32()),
                    CpuStorage::BF16(v) => cpu::gather_rows(v, dim, i, |x| x.to_f32()),
                    CpuStorage::I64(_) => {
                        return Err(dtype_err("take", "f32, f16 or bf16 table", DType::I64))
                    }
                };
                Ok(Storage::Cpu(CpuStorage::F32(out)))
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(t), Storage::Cuda(i)) => Ok(Storage::Cuda(t.gather_rows(rows, dim, i)?)),
            #[cfg(feature = "cuda")]
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
                cpu::check_indices(i.i64("coalesce")?, table_rows, "embedding table rows")?;
                let (u, s) = cpu::coalesce_rows(i.i64("coalesce")?, r.f32("coalesce")?, dim);
                Ok((
                    Storage::Cpu(CpuStorage::I64(u)),
                    Storage::Cpu(CpuStorage::F32(s)),
                ))
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(i), Storage::Cuda(r)) => {
                let (u, s) = crate::cuda::CudaStorage::coalesce_rows(i, r, dim, table_rows)?;
                Ok((Storage::Cuda(u), Storage::Cuda(s)))
            }
            #[cfg(feature = "cuda")]
            (a, b) => Err(device_err("coalesce", a.device(), b.device())),
        }
    }

    /// `self[idx[i]] += rows[i]` in place on a `[_, dim]` f32 storage; negative indices skip.
    pub fn index_add_rows(&mut self, dim: usize, idx: &Storage, rows: &Storage) -> Result<()> {
        match (self, idx, rows) {
            (Storage::Cpu(d), Storage::Cpu(i), Storage::Cpu(r)) => {
                cpu::index_add_rows(
                    d.f32_mut("index_add")?,
                    dim,
                    i.i64("index_add")?,
                    r.f32("index_add")?,
                );
                Ok(())
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(d), Storage::Cuda(i), Storage::Cuda(r)) => d.index_add_rows(dim, i, r),
            #[cfg(feature = "cuda")]
            (d, i, _) => Err(device_err("index_add", d.device(), i.device())),
        }
    }

    /// An inverted-dropout mask: `1/(1-p)` where `uniform_hash(seed, i) >= p`, else 0.
    pub fn dropout_mask(n: usize, p: f32, seed: u64, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(CpuStorage::F32(cpu::dropout_mask(n, p, seed)))),
            #[cfg(feature = "cuda")]
            Device::Cuda(o) => Ok(Storage::Cuda(crate::cuda::CudaStorage::dropout_mask(
                o, n, p, seed,
            )?)),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(no_cuda()),
        }
    }

    /// One-hot rows `[n, classes]` for `i64` labels.
    pub fn one_hot(&self, classes: usize) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => {
                let labels = c.i64("one_hot")?;
                cpu::check_indices(labels, classes, "class labels")?;
                let mut out = pool::filled(labels.len() * classes, 0.0);
                for (r, &l) in labels.iter().enumerate() {
                    out[r * classes + l as usize] = 1.0;
                }
                Ok(Storage::Cpu(CpuStorage::F32(out)))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => Ok(Storage::Cuda(c.one_hot(classes)?)),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn no_cuda() -> Error {
    Error::Cuda("boson was built without the `cuda` feature".to_string())
}

impl Storage {
    /// The f32 values of CPU storage, to change; an error naming `op` on another device
    /// or dtype.
    pub(crate) fn cpu_f32_mut(&mut self, op: &'static str) -> Result<&mut [f32]> {
        match self {
            Storage::Cpu(c) => Ok(c.f32_mut(op)?.as_mut_slice()),
            #[cfg(feature = "cuda")]
            other => Err(device_err(op, Device::Cpu, other.device())),
        }
    }

    /// The f32 values of CPU storage.
    pub(crate) fn cpu_f32(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            Storage::Cpu(c) => c.f32(op),
            #[cfg(feature = "cuda")]
            other => Err(device_err(op, Device::Cpu, other.device())),
        }
    }

    /// The i64 values of CPU storage.
    pub(crate) fn cpu_i64(&self, op: &'static str) -> Result<&[i64]> {
        match self {
            Storage::Cpu(c) => c.i64(op),
            #[cfg(feature = "cuda")]
            other => Err(device_err(op, Device::Cpu, other.device())),
        }
    }
}
