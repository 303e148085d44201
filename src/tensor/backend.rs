//! The seam between tensors and devices. Each backend's storage implements
//! [`BackendStorage`], one method per primitive, and [`Storage`](super::storage::Storage)
//! dispatches every call to it: the CPU backend (`cpu_backend.rs`, the reference) and the
//! CUDA one (`crate::cuda`), or, when the `cuda` feature is off, a stub that can never
//! hold values (`cuda_stub.rs`). Adding a primitive means a method here and its
//! implementation in each backend; the compiler lists what is missing.
//!
//! Constructors that need a device (`full`, `dropout_mask`, uploads) are each backend's
//! own functions, since only the CUDA one takes a device ordinal.

use super::binary::BinaryOp;
use super::dtype::DType;
use super::primitives::ReduceOp;
use super::primitives::{PoolKind, Window2d};
use super::shape::Layout;
use super::unary::UnaryOp;
use crate::device::Device;
use crate::error::Result;

/// A tensor's values on one kind of device, and the primitives that run there. Inputs
/// are contiguous unless a [`Layout`] says otherwise; outputs are new contiguous storage.
pub(crate) trait BackendStorage: Sized {
    /// The element type.
    fn dtype(&self) -> DType;
    /// The number of elements.
    fn len(&self) -> usize;
    /// Where the values live.
    fn device(&self) -> Device;
    /// A copy in another element type (f32 ↔ f16/bf16, i64 → f32).
    fn to_dtype(&self, dtype: DType) -> Result<Self>;
    /// A copy on the same device.
    fn deep_clone(&self) -> Result<Self>;
    /// `op(x)` for each element (f32).
    fn unary(&self, op: UnaryOp) -> Result<Self>;
    /// `op(a, b)` over two strided views of one shape (broadcast dims have stride 0).
    fn binary(&self, la: &Layout, rhs: &Self, lb: &Layout, op: BinaryOp) -> Result<Self>;
    /// `op` over the middle axis of the values viewed as `(outer, len, inner)`.
    fn reduce(&self, op: ReduceOp, outer: usize, len: usize, inner: usize) -> Result<Self>;
    /// The first maximum's index along the middle axis of `(outer, len, inner)` (i64).
    fn argmax(&self, outer: usize, len: usize, inner: usize) -> Result<Self>;
    /// A copy with the elements at (flat, i64) `positions` set to `value` (f32).
    fn fill_at(&self, positions: &Self, value: f32) -> Result<Self>;
    /// Softmax (`log`: log-softmax) of each `len`-long row (f32, contiguous).
    fn softmax(&self, len: usize, log: bool) -> Result<Self>;
    /// The input gradient of [`softmax`](Self::softmax) from its output `y` (`self`) and
    /// the output's gradient `dy`.
    fn softmax_grad(&self, dy: &Self, len: usize, log: bool) -> Result<Self>;
    /// `batch` products `op(a)·op(b)` of `(m × k)` and `(k × n)` matrices, where a
    /// transposed operand is stored `(k × m)` / `(n × k)`.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        rhs: &Self,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<Self>;
    /// A strided view materialised contiguously (f32 or i64).
    fn strided_copy(&self, layout: &Layout) -> Result<Self>;
    /// Contiguous f32 parts, each viewed as `(outer, width)`, side by side.
    fn concat(parts: &[&Self], outer: usize, widths: &[usize]) -> Result<Self>;
    /// `out[r] = table[idx[r]]` as f32 from a `[rows, dim]` f32/f16/bf16 table; an index
    /// outside `[0, rows)` is an error naming it.
    fn gather_rows(&self, rows: usize, dim: usize, idx: &Self) -> Result<Self>;
    /// The unique indices and their summed `[_, dim]` rows (a gather's row-sparse
    /// gradient); the CUDA outputs may carry trailing `-1` padding rows.
    fn coalesce_rows(
        idx: &Self,
        rows: &Self,
        dim: usize,
        table_rows: usize,
    ) -> Result<(Self, Self)>;
    /// `self[idx[i]] += rows[i]` in place on `[_, dim]` f32 values; negative indices skip.
    fn index_add_rows(&mut self, dim: usize, idx: &Self, rows: &Self) -> Result<()>;
    /// One-hot rows `[n, classes]` for i64 labels; a label out of range is an error.
    fn one_hot(&self, classes: usize) -> Result<Self>;
    /// The receptive fields of `NCHW` f32 values as `[n, c·kh·kw, oh·ow]` columns.
    fn im2col(&self, window: &Window2d) -> Result<Self>;
    /// `[n, c·kh·kw, oh·ow]` columns summed back into `NCHW` values (im2col's adjoint).
    fn col2im(&self, window: &Window2d) -> Result<Self>;
    /// Pooled `[n, c, oh, ow]` values of `NCHW` f32 values.
    fn pool2d(&self, window: &Window2d, kind: PoolKind) -> Result<Self>;
    /// The gradient of `pool2d` with respect to its input `x`, given the output's `dy`.
    fn pool2d_grad(x: &Self, dy: &Self, window: &Window2d, kind: PoolKind) -> Result<Self>;
}

/// The error for a primitive given values of the wrong element type.
pub(crate) fn dtype_err(op: &'static str, expected: &str, got: DType) -> crate::error::Error {
    crate::error::Error::DTypeMismatch {
        op,
        expected: expected.to_string(),
        got: got.to_string(),
    }
}
