//! `CpuStorage`: a tensor's values in host memory, and the CPU backend, the reference
//! every other backend is tested against. The loops themselves are in `cpu.rs`.

use super::backend::{dtype_err, BackendStorage};
use super::binary::BinaryOp;
use super::cpu;
use super::cpu_window;
use super::dtype::DType;
use super::pool;
use super::primitives::ReduceOp;
use super::primitives::{PoolKind, Window2d};
use super::shape::Layout;
use super::unary::UnaryOp;
use crate::device::Device;
use crate::error::Result;
use half::{bf16, f16};

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
            pool::recycle(std::mem::take(v));
        }
    }
}

impl CpuStorage {
    /// `n` copies of `value`.
    pub fn full(value: f32, n: usize) -> CpuStorage {
        CpuStorage::F32(pool::filled(n, value))
    }

    /// An inverted-dropout mask: `1/(1-p)` where `uniform_hash(seed, i) >= p`, else 0.
    pub fn dropout_mask(n: usize, p: f32, seed: u64) -> CpuStorage {
        CpuStorage::F32(cpu::dropout_mask(n, p, seed))
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
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            CpuStorage::F32(v) => v.clone(),
            CpuStorage::I64(v) => v.iter().map(|&x| x as f32).collect(),
            CpuStorage::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            CpuStorage::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// The values as f32, moved out when they already are f32.
    pub fn into_f32_vec(mut self) -> Vec<f32> {
        match &mut self {
            CpuStorage::F32(v) => std::mem::take(v),
            other => other.to_f32_vec(),
        }
    }
}

impl BackendStorage for CpuStorage {
    fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
        }
    }

    fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
        }
    }

    fn device(&self) -> Device {
        Device::Cpu
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

    fn deep_clone(&self) -> Result<CpuStorage> {
        Ok(self.clone())
    }

    fn unary(&self, op: UnaryOp) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(op.cpu(self.f32("unary")?)))
    }

    fn binary(&self, la: &Layout, rhs: &CpuStorage, lb: &Layout, op: BinaryOp) -> Result<Self> {
        Ok(CpuStorage::F32(op.cpu(
            self.f32("binary")?,
            la,
            rhs.f32("binary")?,
            lb,
        )))
    }

    fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Self> {
        Ok(CpuStorage::F32(cpu::reduce(
            op,
            self.f32("reduce")?,
            outer,
            len,
            inner,
        )))
    }

    fn argmax(&self, outer: usize, len: usize, inner: usize) -> Result<CpuStorage> {
        Ok(CpuStorage::I64(cpu::argmax(
            self.f32("argmax")?,
            outer,
            len,
            inner,
        )))
    }

    fn fill_at(&self, positions: &CpuStorage, value: f32) -> Result<CpuStorage> {
        let x = self.f32("fill_at")?;
        let mut y = pool::scratch(x.len());
        y.copy_from_slice(x);
        let positions = positions.i64("fill_at positions")?;
        cpu::check_indices(positions, y.len(), "fill_at position")?;
        for &p in positions {
            y[p as usize] = value;
        }
        Ok(CpuStorage::F32(y))
    }

    fn softmax(&self, len: usize, log: bool) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(cpu::softmax(
            self.f32("softmax")?,
            len,
            log,
        )))
    }

    fn softmax_grad(&self, dy: &CpuStorage, len: usize, log: bool) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(cpu::softmax_grad(
            self.f32("softmax_grad")?,
            dy.f32("softmax_grad")?,
            len,
            log,
        )))
    }

    fn matmul(
        &self,
        rhs: &CpuStorage,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(cpu::matmul(
            self.f32("matmul")?,
            rhs.f32("matmul")?,
            (batch, m, k, n),
            trans_a,
            trans_b,
        )))
    }

    fn strided_copy(&self, layout: &Layout) -> Result<CpuStorage> {
        match self {
            CpuStorage::F32(v) => {
                let out = pool::scratch(layout.elem_count());
                Ok(CpuStorage::F32(cpu::strided_copy(v, layout, out)))
            }
            CpuStorage::I64(v) => {
                let out = vec![0; layout.elem_count()];
                Ok(CpuStorage::I64(cpu::strided_copy(v, layout, out)))
            }
            o => Err(dtype_err("strided_copy", "f32 or i64", o.dtype())),
        }
    }

    fn concat(parts: &[&CpuStorage], outer: usize, widths: &[usize]) -> Result<CpuStorage> {
        let total: usize = widths.iter().sum();
        // Every column block of every row is copied below.
        let mut out = pool::scratch(outer * total);
        let mut col = 0;
        for (p, &w) in parts.iter().zip(widths) {
            let src = p.f32("concat")?;
            for o in 0..outer {
                out[o * total + col..o * total + col + w].copy_from_slice(&src[o * w..(o + 1) * w]);
            }
            col += w;
        }
        Ok(CpuStorage::F32(out))
    }

    fn gather_rows(&self, rows: usize, dim: usize, idx: &CpuStorage) -> Result<CpuStorage> {
        let i = idx.i64("embedding indices")?;
        cpu::check_indices(i, rows, "embedding table rows")?;
        let out = match self {
            CpuStorage::F32(v) => cpu::gather_rows(v, dim, i, |x| x),
            CpuStorage::F16(v) => cpu::gather_rows(v, dim, i, |x| x.to_f32()),
            CpuStorage::BF16(v) => cpu::gather_rows(v, dim, i, |x| x.to_f32()),
            CpuStorage::I64(_) => {
                return Err(dtype_err("take", "f32, f16 or bf16 table", DType::I64))
            }
        };
        Ok(CpuStorage::F32(out))
    }

    fn coalesce_rows(
        idx: &CpuStorage,
        rows: &CpuStorage,
        dim: usize,
        table_rows: usize,
    ) -> Result<(CpuStorage, CpuStorage)> {
        let i = idx.i64("coalesce")?;
        cpu::check_indices(i, table_rows, "embedding table rows")?;
        let (u, s) = cpu::coalesce_rows(i, rows.f32("coalesce")?, dim);
        Ok((CpuStorage::I64(u), CpuStorage::F32(s)))
    }

    fn index_add_rows(&mut self, dim: usize, idx: &CpuStorage, rows: &CpuStorage) -> Result<()> {
        cpu::index_add_rows(
            self.f32_mut("index_add")?,
            dim,
            idx.i64("index_add")?,
            rows.f32("index_add")?,
        );
        Ok(())
    }

    fn one_hot(&self, classes: usize) -> Result<CpuStorage> {
        let labels = self.i64("one_hot")?;
        cpu::check_indices(labels, classes, "class labels")?;
        let mut out = pool::filled(labels.len() * classes, 0.0);
        for (r, &l) in labels.iter().enumerate() {
            out[r * classes + l as usize] = 1.0;
        }
        Ok(CpuStorage::F32(out))
    }

    fn im2col(&self, window: &Window2d) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(cpu_window::im2col(
            self.f32("im2col")?,
            window,
        )))
    }

    fn col2im(&self, window: &Window2d) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(cpu_window::col2im(
            self.f32("col2im")?,
            window,
        )))
    }

    fn pool2d(&self, window: &Window2d, kind: PoolKind) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(cpu_window::pool2d(
            self.f32("pool2d")?,
            window,
            kind,
        )))
    }

    fn pool2d_grad(
        x: &CpuStorage,
        dy: &CpuStorage,
        window: &Window2d,
        kind: PoolKind,
    ) -> Result<CpuStorage> {
        Ok(CpuStorage::F32(cpu_window::pool2d_grad(
            x.f32("pool2d_grad")?,
            dy.f32("pool2d_grad")?,
            window,
            kind,
        )))
    }
}
