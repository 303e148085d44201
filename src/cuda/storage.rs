//! `CudaStorage`: a tensor's values on one GPU, and each tensor primitive's CUDA arm.
//!
//! Every method allocates its output on the device and queues kernels on the device's
//! stream; nothing comes back to the host except where noted (bounds checks read an
//! 8-byte error cell).

use super::device::CudaDevice;
use super::ops;
use crate::error::{Error, Result};
use crate::tensor::backend::{dtype_err, BackendStorage};
use crate::tensor::row_update::DeviceKernel;
use crate::tensor::shape::Layout;
use crate::tensor::storage::{CpuStorage, Storage};
use crate::tensor::{BinaryOp, PoolKind, ReduceOp, UnaryOp, Window2d};
use crate::tensor::{DType, ElementwiseKernel};
use cudarc::driver::CudaSlice;
use half::{bf16, f16};
use std::sync::Arc;

/// Device buffers of one element type.
pub(crate) enum CudaData {
    /// values
    F32(CudaSlice<f32>),
    /// indices
    I64(CudaSlice<i64>),
    /// half tables
    F16(CudaSlice<f16>),
    /// bfloat16 tables
    BF16(CudaSlice<bf16>),
}

/// A tensor's values on a CUDA device.
pub(crate) struct CudaStorage {
    dev: Arc<CudaDevice>,
    data: CudaData,
}

impl CudaStorage {
    fn new(dev: &Arc<CudaDevice>, data: CudaData) -> CudaStorage {
        CudaStorage {
            dev: dev.clone(),
            data,
        }
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.dev.ordinal()
    }

    fn f32(&self, op: &'static str) -> Result<&CudaSlice<f32>> {
        match &self.data {
            CudaData::F32(s) => Ok(s),
            _ => Err(dtype_err(op, "f32", self.dtype())),
        }
    }

    fn f32_mut(&mut self, op: &'static str) -> Result<&mut CudaSlice<f32>> {
        let dt = self.dtype();
        match &mut self.data {
            CudaData::F32(s) => Ok(s),
            _ => Err(dtype_err(op, "f32", dt)),
        }
    }

    fn i64(&self, op: &'static str) -> Result<&CudaSlice<i64>> {
        match &self.data {
            CudaData::I64(s) => Ok(s),
            _ => Err(dtype_err(op, "i64", self.dtype())),
        }
    }

    /// An output buffer for an op whose kernel writes every element (all callers here);
    /// not zeroed, which would cost a launch and a pass over the bytes.
    fn alloc_f32(&self, n: usize) -> Result<CudaSlice<f32>> {
        ops::alloc_uninit::<f32>(&self.dev, n)
    }

    fn wrap_f32(&self, s: CudaSlice<f32>) -> CudaStorage {
        CudaStorage::new(&self.dev, CudaData::F32(s))
    }

    fn same_device(&self, other: &CudaStorage, op: &'static str) -> Result<()> {
        if self.ordinal() != other.ordinal() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: format!("cuda:{}", self.ordinal()),
                rhs: format!("cuda:{}", other.ordinal()),
            });
        }
        Ok(())
    }

    /// `n` copies of `value` on device `ordinal`.
    pub fn full(ordinal: usize, value: f32, n: usize) -> Result<CudaStorage> {
        let dev = CudaDevice::get(ordinal)?;
        let mut s = ops::alloc_zeros::<f32>(&dev, n)?;
        if value != 0.0 {
            ops::fill(&dev, &mut s, value)?;
        }
        Ok(CudaStorage::new(&dev, CudaData::F32(s)))
    }

    /// Uploads host values.
    pub fn from_cpu(ordinal: usize, c: &CpuStorage) -> Result<CudaStorage> {
        let dev = CudaDevice::get(ordinal)?;
        let data = match c {
            CpuStorage::F32(v) => CudaData::F32(ops::htod(&dev, v)?),
            CpuStorage::I64(v) => CudaData::I64(ops::htod(&dev, v)?),
            CpuStorage::F16(v) => CudaData::F16(ops::htod(&dev, v)?),
            CpuStorage::BF16(v) => CudaData::BF16(ops::htod(&dev, v)?),
        };
        Ok(CudaStorage::new(&dev, data))
    }

    /// Whether device `ordinal` can be used: its driver, NVRTC and the device present
    /// (`Device::new_cuda`).
    pub fn check_device(ordinal: usize) -> Result<()> {
        CudaDevice::get(ordinal).map(|_| ())
    }

    /// An inverted-dropout mask identical to the CPU one for the same seed.
    pub fn dropout_mask(ordinal: usize, n: usize, p: f32, seed: u64) -> Result<CudaStorage> {
        let dev = CudaDevice::get(ordinal)?;
        let mut m = ops::alloc_uninit::<f32>(&dev, n)?;
        ops::dropout_mask(&dev, seed, p, &mut m)?;
        Ok(CudaStorage::new(&dev, CudaData::F32(m)))
    }

    /// Runs the user's element-wise `kernel` over `inputs` (see [`Tensor::map_kernel`]):
    /// a new buffer of their length.
    ///
    /// [`Tensor::map_kernel`]: crate::tensor::Tensor::map_kernel
    pub fn map_kernel(
        inputs: &[&CudaStorage],
        kernel: &ElementwiseKernel,
        scalars: &[f32; 4],
    ) -> Result<CudaStorage> {
        let Some(first) = inputs.first() else {
            return Err(Error::InvalidArgument(format!(
                "kernel {}: no inputs",
                kernel.name()
            )));
        };
        let mut xs = Vec::with_capacity(inputs.len());
        for x in inputs {
            first.same_device(x, "map_kernel")?;
            xs.push(x.f32("map_kernel")?);
        }
        let mut y = first.alloc_f32(first.len())?;
        ops::elementwise_kernel(&first.dev, kernel, &xs, &mut y, scalars)?;
        Ok(first.wrap_f32(y))
    }

    /// Runs the fused update `kernel` on `w` (see [`Tensor::update_rows`]). Row checks
    /// are deferred to the next read back, so a training step makes no round trip here.
    ///
    /// [`Tensor::update_rows`]: crate::tensor::Tensor::update_rows
    pub fn update_rows(
        kernel: &DeviceKernel,
        w: &mut CudaStorage,
        states: &mut [&mut Storage],
        g: &Storage,
        rows: Option<&Storage>,
        dim: usize,
    ) -> Result<()> {
        ops::deferring_index_checks(|| Self::update_rows_now(kernel, w, states, g, rows, dim))
    }

    fn update_rows_now(
        kernel: &DeviceKernel,
        w: &mut CudaStorage,
        states: &mut [&mut Storage],
        g: &Storage,
        rows: Option<&Storage>,
        dim: usize,
    ) -> Result<()> {
        fn cuda(s: &Storage, ordinal: usize) -> Result<&CudaStorage> {
            match s {
                Storage::Cuda(c) => Ok(c),
                Storage::Cpu(_) => Err(Error::DeviceMismatch {
                    op: "optimizer update",
                    lhs: format!("cuda:{ordinal}"),
                    rhs: "cpu".into(),
                }),
            }
        }
        let ordinal = w.ordinal();
        let g = cuda(g, ordinal)?.f32("gradient")?;
        let idx = match rows {
            Some(r) => Some(cuda(r, ordinal)?.i64("gradient rows")?),
            None => None,
        };
        let dev = w.dev.clone();
        let wv = w.f32_mut("optimizer update")?;
        let mut st: Vec<&mut CudaSlice<f32>> = Vec::with_capacity(states.len());
        for s in states.iter_mut() {
            match &mut **s {
                Storage::Cuda(c) => st.push(c.f32_mut("optimizer state")?),
                Storage::Cpu(_) => {
                    return Err(Error::DeviceMismatch {
                        op: "optimizer state",
                        lhs: format!("cuda:{}", dev.ordinal()),
                        rhs: "cpu".into(),
                    })
                }
            }
        }
        ops::row_update(&dev, kernel.name, wv, dim, g, idx, st, &kernel.scalars)
    }

    /// Downloads to the host (synchronises the stream).
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        Ok(match &self.data {
            CudaData::F32(s) => CpuStorage::F32(ops::dtoh(&self.dev, s)?),
            CudaData::I64(s) => CpuStorage::I64(ops::dtoh(&self.dev, s)?),
            CudaData::F16(s) => CpuStorage::F16(ops::dtoh(&self.dev, s)?),
            CudaData::BF16(s) => CpuStorage::BF16(ops::dtoh(&self.dev, s)?),
        })
    }
}

impl BackendStorage for CudaStorage {
    fn device(&self) -> crate::device::Device {
        crate::device::Device::Cuda(self.ordinal())
    }

    /// The element type.
    fn dtype(&self) -> DType {
        match self.data {
            CudaData::F32(_) => DType::F32,
            CudaData::I64(_) => DType::I64,
            CudaData::F16(_) => DType::F16,
            CudaData::BF16(_) => DType::BF16,
        }
    }

    /// Number of elements.
    fn len(&self) -> usize {
        match &self.data {
            CudaData::F32(s) => s.len(),
            CudaData::I64(s) => s.len(),
            CudaData::F16(s) => s.len(),
            CudaData::BF16(s) => s.len(),
        }
    }

    /// A copy in another element type (f32 ↔ f16/bf16, i64 → f32).
    fn to_dtype(&self, dtype: DType) -> Result<CudaStorage> {
        let n = self.len();
        let data = match (&self.data, dtype) {
            (CudaData::I64(s), DType::F32) => {
                let mut y = self.alloc_f32(n)?;
                ops::cast_i64_f32(&self.dev, s, &mut y)?;
                CudaData::F32(y)
            }
            (CudaData::F16(s), DType::F32) => {
                let mut y = self.alloc_f32(n)?;
                ops::half_to_f32(&self.dev, s, &mut y)?;
                CudaData::F32(y)
            }
            (CudaData::BF16(s), DType::F32) => {
                let mut y = self.alloc_f32(n)?;
                ops::half_to_f32(&self.dev, s, &mut y)?;
                CudaData::F32(y)
            }
            (CudaData::F32(s), DType::F16) => {
                let mut y = ops::alloc_uninit::<f16>(&self.dev, n)?;
                ops::f32_to_half(&self.dev, s, &mut y)?;
                CudaData::F16(y)
            }
            (CudaData::F32(s), DType::BF16) => {
                let mut y = ops::alloc_uninit::<bf16>(&self.dev, n)?;
                ops::f32_to_half(&self.dev, s, &mut y)?;
                CudaData::BF16(y)
            }
            (_, d) if d == self.dtype() => return self.deep_clone(),
            // Rare conversions (e.g. f16 → bf16) go through the host.
            _ => {
                let host = Storage::Cpu(self.to_cpu()?).to_dtype(dtype)?;
                match host {
                    Storage::Cpu(c) => return CudaStorage::from_cpu(self.ordinal(), &c),
                    Storage::Cuda(c) => return Ok(c),
                }
            }
        };
        Ok(CudaStorage::new(&self.dev, data))
    }

    /// A device-side copy.
    fn deep_clone(&self) -> Result<CudaStorage> {
        let data = match &self.data {
            CudaData::F32(s) => {
                let mut y = ops::alloc_uninit::<f32>(&self.dev, s.len())?;
                ops::copy(&self.dev, s, &mut y)?;
                CudaData::F32(y)
            }
            CudaData::I64(s) => {
                let mut y = ops::alloc_uninit::<i64>(&self.dev, s.len())?;
                ops::copy(&self.dev, s, &mut y)?;
                CudaData::I64(y)
            }
            CudaData::F16(s) => {
                let mut y = ops::alloc_uninit::<f16>(&self.dev, s.len())?;
                ops::copy(&self.dev, s, &mut y)?;
                CudaData::F16(y)
            }
            CudaData::BF16(s) => {
                let mut y = ops::alloc_uninit::<bf16>(&self.dev, s.len())?;
                ops::copy(&self.dev, s, &mut y)?;
                CudaData::BF16(y)
            }
        };
        Ok(CudaStorage::new(&self.dev, data))
    }

    /// Element-wise primitive.
    fn unary(&self, op: UnaryOp) -> Result<CudaStorage> {
        let x = self.f32("unary")?;
        let mut y = self.alloc_f32(x.len())?;
        ops::unary(&self.dev, op, x, &mut y)?;
        Ok(self.wrap_f32(y))
    }

    /// Broadcasting binary primitive over two strided views of one shape.
    fn binary(
        &self,
        la: &Layout,
        rhs: &CudaStorage,
        lb: &Layout,
        op: BinaryOp,
    ) -> Result<CudaStorage> {
        self.same_device(rhs, "binary")?;
        let (a, b) = (self.f32("binary")?, rhs.f32("binary")?);
        let (sa, sb) = (ops::strides_i64(&la.strides), ops::strides_i64(&lb.strides));
        let bc = ops::Broadcast {
            shape: &la.shape,
            a_strides: &sa,
            a_offset: la.offset,
            b_strides: &sb,
            b_offset: lb.offset,
        };
        let mut y = self.alloc_f32(la.elem_count())?;
        ops::binary(&self.dev, op, &bc, a, b, &mut y)?;
        Ok(self.wrap_f32(y))
    }

    /// Reduction over the middle axis of `(outer, len, inner)`.
    fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<CudaStorage> {
        let x = self.f32("reduce")?;
        let mut y = self.alloc_f32(outer * inner)?;
        ops::reduce(&self.dev, op, x, (outer, len, inner), &mut y)?;
        Ok(self.wrap_f32(y))
    }

    /// First maximum along the middle axis (i64 output).
    fn argmax(&self, outer: usize, len: usize, inner: usize) -> Result<CudaStorage> {
        let x = self.f32("argmax")?;
        let mut y = ops::alloc_uninit::<i64>(&self.dev, outer * inner)?;
        ops::argmax(&self.dev, x, (outer, len, inner), &mut y)?;
        Ok(CudaStorage::new(&self.dev, CudaData::I64(y)))
    }

    /// A copy with `value` at `positions`.
    fn fill_at(&self, positions: &CudaStorage, value: f32) -> Result<CudaStorage> {
        self.same_device(positions, "fill_at")?;
        let x = self.f32("fill_at")?;
        let mut y = ops::alloc_uninit::<f32>(&self.dev, x.len())?;
        ops::copy(&self.dev, x, &mut y)?;
        ops::fill_at(
            &self.dev,
            positions.i64("fill_at positions")?,
            value,
            &mut y,
        )?;
        Ok(self.wrap_f32(y))
    }

    /// Softmax or log-softmax of each `len`-long row.
    fn softmax(&self, len: usize, log: bool) -> Result<CudaStorage> {
        let x = self.f32("softmax")?;
        let mut y = self.alloc_f32(x.len())?;
        ops::softmax(&self.dev, x, (x.len() / len.max(1), len), log, &mut y)?;
        Ok(self.wrap_f32(y))
    }

    /// The input gradient of `softmax` from its output (`self`) and `dy`.
    fn softmax_grad(&self, dy: &CudaStorage, len: usize, log: bool) -> Result<CudaStorage> {
        let (y, g) = (self.f32("softmax_grad")?, dy.f32("softmax_grad")?);
        let mut dx = self.alloc_f32(y.len())?;
        ops::softmax_grad(&self.dev, y, g, (y.len() / len.max(1), len), log, &mut dx)?;
        Ok(self.wrap_f32(dx))
    }

    /// `batch` products `op(a)·op(b)` through cuBLAS (transposes are GEMM flags).
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        rhs: &CudaStorage,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<CudaStorage> {
        self.same_device(rhs, "matmul")?;
        let mut c = self.alloc_f32(batch * m * n)?;
        let sh = ops::MatmulShape {
            batch,
            m,
            n,
            k,
            trans_a,
            trans_b,
        };
        ops::matmul(
            &self.dev,
            &sh,
            self.f32("matmul")?,
            rhs.f32("matmul")?,
            &mut c,
        )?;
        Ok(self.wrap_f32(c))
    }

    /// Materialises a strided view contiguously.
    fn strided_copy(&self, l: &Layout) -> Result<CudaStorage> {
        let n = l.elem_count();
        let src_strides = ops::strides_i64(&l.strides);
        let dst_strides = ops::contiguous_strides(&l.shape);
        let plan = ops::StridedCopy {
            shape: &l.shape,
            src_strides: &src_strides,
            src_offset: l.offset,
            dst_strides: &dst_strides,
            dst_offset: 0,
        };
        let data = match &self.data {
            CudaData::F32(s) => {
                let mut y = self.alloc_f32(n)?;
                ops::strided_copy(&self.dev, &plan, s, &mut y)?;
                CudaData::F32(y)
            }
            CudaData::I64(s) => {
                let mut y = ops::alloc_uninit::<i64>(&self.dev, n)?;
                ops::strided_copy(&self.dev, &plan, s, &mut y)?;
                CudaData::I64(y)
            }
            _ => return Err(dtype_err("strided_copy", "f32 or i64", self.dtype())),
        };
        Ok(CudaStorage::new(&self.dev, data))
    }

    /// Concatenates parts viewed as `(outer, width)` along their second axis.
    fn concat(parts: &[&CudaStorage], outer: usize, widths: &[usize]) -> Result<CudaStorage> {
        let first = parts
            .first()
            .ok_or_else(|| Error::InvalidArgument("concat of nothing".into()))?;
        let total: usize = widths.iter().sum();
        let mut y = first.alloc_f32(outer * total)?;
        let mut col = 0;
        for (p, &w) in parts.iter().zip(widths) {
            first.same_device(p, "concat")?;
            let plan = ops::StridedCopy {
                shape: &[outer, w],
                src_strides: &[w as i64, 1],
                src_offset: 0,
                dst_strides: &[total as i64, 1],
                dst_offset: col,
            };
            ops::strided_copy(&first.dev, &plan, p.f32("concat")?, &mut y)?;
            col += w;
        }
        Ok(first.wrap_f32(y))
    }

    /// Embedding gather with device-side bounds checks.
    fn gather_rows(&self, rows: usize, dim: usize, idx: &CudaStorage) -> Result<CudaStorage> {
        self.same_device(idx, "take")?;
        let i = idx.i64("embedding indices")?;
        let mut y = self.alloc_f32(i.len() * dim)?;
        let _ = rows;
        match &self.data {
            CudaData::F32(t) => ops::gather(&self.dev, t, dim, i, &mut y)?,
            CudaData::F16(t) => ops::gather(&self.dev, t, dim, i, &mut y)?,
            CudaData::BF16(t) => ops::gather(&self.dev, t, dim, i, &mut y)?,
            CudaData::I64(_) => {
                return Err(dtype_err("take", "f32, f16 or bf16 table", DType::I64))
            }
        }
        Ok(self.wrap_f32(y))
    }

    /// Row-sparse scatter-add: unique indices (`-1` padded to `n`; ascending unless
    /// [`crate::device::set_deterministic`] chose the atomic kernel) and summed rows.
    fn coalesce_rows(
        idx: &CudaStorage,
        rows: &CudaStorage,
        dim: usize,
        table_rows: usize,
    ) -> Result<(CudaStorage, CudaStorage)> {
        idx.same_device(rows, "coalesce")?;
        let rs = ops::scatter_add(
            &idx.dev,
            ops::ScatterMode::current(),
            idx.i64("coalesce")?,
            rows.f32("coalesce")?,
            dim,
            table_rows,
        )?;
        Ok((
            CudaStorage::new(&idx.dev, CudaData::I64(rs.unique)),
            CudaStorage::new(&idx.dev, CudaData::F32(rs.summed)),
        ))
    }

    /// `self[idx[i]] += rows[i]`, skipping negative indices: an SGD step with rate −1.
    fn index_add_rows(&mut self, dim: usize, idx: &CudaStorage, rows: &CudaStorage) -> Result<()> {
        self.same_device(idx, "index_add")?;
        self.same_device(rows, "index_add")?;
        // sgd_update_f32's scalars: lr −1, momentum 0, wd 0, rescale 1, no clipping.
        let plain_add = [-1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0];
        let dev = self.dev.clone();
        let w = self.f32_mut("index_add")?;
        ops::row_update(
            &dev,
            "sgd_update_f32",
            w,
            dim,
            rows.f32("index_add")?,
            Some(idx.i64("index_add")?),
            Vec::new(),
            &plain_add,
        )
    }

    /// One-hot rows for i64 labels, bounds-checked.
    fn one_hot(&self, classes: usize) -> Result<CudaStorage> {
        let l = self.i64("one_hot")?;
        let mut y = self.alloc_f32(l.len() * classes)?;
        ops::one_hot(&self.dev, l, classes, &mut y)?;
        Ok(self.wrap_f32(y))
    }

    fn im2col(&self, window: &Window2d) -> Result<CudaStorage> {
        let x = self.f32("im2col")?;
        let mut cols = self.alloc_f32(window.cols_len())?;
        ops::im2col(&self.dev, window, x, &mut cols)?;
        Ok(self.wrap_f32(cols))
    }

    fn col2im(&self, window: &Window2d) -> Result<CudaStorage> {
        let cols = self.f32("col2im")?;
        let mut x = self.alloc_f32(window.input_len())?;
        ops::col2im(&self.dev, window, cols, &mut x)?;
        Ok(self.wrap_f32(x))
    }

    fn pool2d(&self, window: &Window2d, kind: PoolKind) -> Result<CudaStorage> {
        let x = self.f32("pool2d")?;
        let mut y = self.alloc_f32(window.output_len())?;
        ops::pool2d(&self.dev, window, kind, x, &mut y)?;
        Ok(self.wrap_f32(y))
    }

    fn pool2d_grad(
        x: &CudaStorage,
        dy: &CudaStorage,
        window: &Window2d,
        kind: PoolKind,
    ) -> Result<CudaStorage> {
        x.same_device(dy, "pool2d_grad")?;
        let mut dx = x.alloc_f32(window.input_len())?;
        ops::pool2d_grad(
            &x.dev,
            window,
            kind,
            x.f32("pool2d_grad")?,
            dy.f32("pool2d_grad")?,
            &mut dx,
        )?;
        Ok(x.wrap_f32(dx))
    }
}
