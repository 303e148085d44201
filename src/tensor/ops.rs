//! The op set. Each public op checks its arguments (returning an `Error` naming the bad
//! values), runs the primitive on the tensor's device, and records itself when autograd is
//! recording and an input needs a gradient.

use super::binary::BinaryOp;
use super::dtype::DType;
use super::grad::Op;
use super::primitives::ReduceOp;
use super::recording;
use super::shape::{broadcast_shape, Layout};
use super::storage::Storage;
use super::unary::UnaryOp;
use super::Tensor;
use crate::error::{Error, Result};

pub(super) fn record(inputs: &[&Tensor], op: impl FnOnce() -> Op) -> Option<Op> {
    if recording::is_recording() && inputs.iter().any(|t| t.tracks_grad()) {
        Some(op())
    } else {
        None
    }
}

fn check_axis(shape: &[usize], axis: usize, op: &'static str) -> Result<()> {
    if axis >= shape.len() {
        return Err(Error::InvalidShape {
            op,
            msg: format!("axis {axis} out of range for shape {shape:?}"),
        });
    }
    Ok(())
}

impl Tensor {
    pub(super) fn same_device(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if self.device() != other.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device().to_string(),
                rhs: other.device().to_string(),
            });
        }
        Ok(())
    }

    pub(super) fn expect_f32(&self, op: &'static str) -> Result<()> {
        if self.dtype() != DType::F32 {
            return Err(Error::DTypeMismatch {
                op,
                expected: "f32".into(),
                got: self.dtype().to_string(),
            });
        }
        Ok(())
    }

    /// Applies an element-wise primitive.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        self.expect_f32("unary")?;
        let storage = self.storage().unary(op)?;
        let rec = record(&[self], || Op::Unary(self.clone(), op));
        Ok(Tensor::from_storage(storage, self.shape().to_vec(), rec))
    }

    /// `x · s`
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    /// `x + s`
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0, s)
    }
    /// Clamps to `[lo, hi]`; the gradient is zero outside.
    pub fn clip(&self, lo: f32, hi: f32) -> Result<Tensor> {
        if lo > hi || lo.is_nan() || hi.is_nan() {
            return Err(Error::InvalidArgument(format!(
                "clip bounds must satisfy lo <= hi, got lo={lo}, hi={hi}"
            )));
        }
        self.unary(UnaryOp::Clip(lo, hi))
    }

    /// Applies a two-input primitive with NumPy broadcasting.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        self.same_device(rhs, "binary")?;
        self.expect_f32("binary")?;
        rhs.expect_f32("binary")?;
        let out_shape = broadcast_shape(self.shape(), rhs.shape())?;
        let la = Layout::broadcast_to(self.shape(), &out_shape);
        let lb = Layout::broadcast_to(rhs.shape(), &out_shape);
        let storage = self.storage().binary(&la, &rhs.storage(), &lb, op)?;
        let rec = record(&[self, rhs], || Op::Binary(self.clone(), rhs.clone(), op));
        Ok(Tensor::from_storage(storage, out_shape, rec))
    }

    fn scalar_like(&self, v: f32) -> Result<Tensor> {
        Tensor::full(v, &[], self.device())
    }
    /// 1.0 where `x >= s`.
    pub fn ge_scalar(&self, s: f32) -> Result<Tensor> {
        self.ge(&self.scalar_like(s)?)
    }
    /// 1.0 where `x <= s`.
    pub fn le_scalar(&self, s: f32) -> Result<Tensor> {
        self.le(&self.scalar_like(s)?)
    }
    /// 1.0 where `x > s`.
    pub fn gt_scalar(&self, s: f32) -> Result<Tensor> {
        self.gt(&self.scalar_like(s)?)
    }

    fn reduce_axis(&self, axis: usize, op: crate::tensor::ReduceOp) -> Result<Tensor> {
        check_axis(self.shape(), axis, "reduce")?;
        self.expect_f32("reduce")?;
        let s = self.shape();
        let (outer, len, inner) = (
            s[..axis].iter().product(),
            s[axis],
            s[axis + 1..].iter().product(),
        );
        if len == 0 {
            return Err(Error::InvalidShape {
                op: "reduce",
                msg: format!("cannot reduce over empty axis {axis} of shape {s:?}"),
            });
        }
        let storage = self.storage().reduce(op, outer, len, inner)?;
        let mut shape = s.to_vec();
        shape[axis] = 1;
        let rec = match op {
            ReduceOp::Sum => record(&[self], || Op::SumAxis(self.clone())),
            ReduceOp::Max | ReduceOp::Min => record(&[self], || Op::MaxAxis(self.clone())),
        };
        Ok(Tensor::from_storage(storage, shape, rec))
    }

    fn reduce_axes(&self, axes: &[usize], keepdim: bool, op: ReduceOp) -> Result<Tensor> {
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut t = self.clone();
        for &a in &sorted {
            t = t.reduce_axis(a, op)?;
        }
        if keepdim {
            Ok(t)
        } else {
            let shape: Vec<usize> = self
                .shape()
                .iter()
                .enumerate()
                .filter(|(i, _)| !sorted.contains(i))
                .map(|(_, &d)| d)
                .collect();
            t.reshape(&shape)
        }
    }

    /// Sum over `axis`, keeping it with size 1 when `keepdim`.
    pub fn sum_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(&[axis], keepdim, ReduceOp::Sum)
    }
    /// Sum over several axes.
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(axes, keepdim, ReduceOp::Sum)
    }
    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.reduce_axes(&axes, false, ReduceOp::Sum)
    }
    /// Mean over `axis`.
    pub fn mean_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        let n = self.dim(axis)? as f32;
        self.sum_axis(axis, keepdim)?.mul_scalar(1.0 / n)
    }
    /// Mean over several axes.
    pub fn mean_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let mut n = 1usize;
        for &a in axes {
            n *= self.dim(a)?;
        }
        self.sum_axes(axes, keepdim)?.mul_scalar(1.0 / n as f32)
    }
    /// Mean of all elements, as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.elem_count().max(1) as f32;
        self.sum_all()?.mul_scalar(1.0 / n)
    }
    /// Maximum over `axis` (the gradient flows to every maximal element).
    pub fn max_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(&[axis], keepdim, ReduceOp::Max)
    }
    /// Minimum over `axis`.
    pub fn min_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        self.reduce_axes(&[axis], keepdim, ReduceOp::Min)
    }
    /// Index of the first maximum along `axis` (`i64`, axis removed; no gradient).
    pub fn argmax(&self, axis: usize) -> Result<Tensor> {
        check_axis(self.shape(), axis, "argmax")?;
        self.expect_f32("argmax")?;
        let s = self.shape();
        if s[axis] == 0 {
            return Err(Error::InvalidShape {
                op: "argmax",
                msg: format!("empty axis {axis} in shape {s:?}"),
            });
        }
        let storage = self.storage().argmax(
            s[..axis].iter().product(),
            s[axis],
            s[axis + 1..].iter().product(),
        )?;
        let mut shape = s.to_vec();
        shape.remove(axis);
        Ok(Tensor::from_storage(storage, shape, None))
    }

    /// Matrix product: `[m,k]·[k,n]`, batched `[b,m,k]·[b,k,n]`, `[b,m,k]·[k,n]` or
    /// `[m,k]·[b,k,n]` (the 2-D operand is shared by every batch entry).
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul_t(rhs, false, false)
    }

    /// Matrix product with either operand transposed in its last two axes, without
    /// materialising the transpose (Gluon's `dot(a, b, transpose_a, transpose_b)`):
    /// `op(a)·op(b)` where `op(x)` is `xᵀ` when its flag is set.
    pub fn matmul_t(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        self.same_device(rhs, "matmul")?;
        self.expect_f32("matmul")?;
        rhs.expect_f32("matmul")?;
        let (a, b) = (self.shape(), rhs.shape());
        let mismatch = || Error::ShapeMismatch {
            op: "matmul",
            lhs: a.to_vec(),
            rhs: b.to_vec(),
        };
        match (a.len(), b.len()) {
            (2, 2) | (3, 3) => {}
            (3, 2) if !trans_a => {
                // Fold the batch into rows: one product, and the gradients follow.
                let (bs, m, k) = (a[0], a[1], a[2]);
                let n = if trans_b { b[0] } else { b[1] };
                return self
                    .reshape(&[bs * m, k])?
                    .matmul_t(rhs, false, trans_b)?
                    .reshape(&[bs, m, n]);
            }
            (3, 2) => {
                return self.transpose(1, 2)?.matmul_t(rhs, false, trans_b);
            }
            (2, 3) => {
                // One matrix for every batch entry (a convolution's weight): broadcast it,
                // and its gradient sums over the batch.
                let shared = self.broadcast_to(&[b[0], a[0], a[1]])?;
                return shared.matmul_t(rhs, trans_a, trans_b);
            }
            _ => return Err(mismatch()),
        }
        let r = a.len();
        let (m, k) = if trans_a {
            (a[r - 1], a[r - 2])
        } else {
            (a[r - 2], a[r - 1])
        };
        let (k2, n) = if trans_b {
            (b[r - 1], b[r - 2])
        } else {
            (b[r - 2], b[r - 1])
        };
        let batch = if r == 3 { a[0] } else { 1 };
        if k != k2 || (r == 3 && a[0] != b[0]) {
            return Err(mismatch());
        }
        let storage = self
            .storage()
            .matmul(&rhs.storage(), batch, m, k, n, trans_a, trans_b)?;
        let shape = if r == 3 {
            vec![batch, m, n]
        } else {
            vec![m, n]
        };
        let rec = record(&[self, rhs], || Op::Matmul {
            a: self.clone(),
            b: rhs.clone(),
            trans_a,
            trans_b,
        });
        Ok(Tensor::from_storage(storage, shape, rec))
    }

    /// The same values in a new shape with the same element count (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = super::checked_elem_count(shape)?;
        if n != self.elem_count() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let rec = record(&[self], || Op::Reshape(self.clone()));
        Ok(self.share_storage(shape.to_vec(), rec))
    }

    /// Collapses all axes from `axis` on into one (`[b, …] → [b, Π…]` for `axis = 1`).
    pub fn flatten_from(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(Error::InvalidShape {
                op: "flatten",
                msg: format!("axis {axis} out of range for shape {:?}", self.shape()),
            });
        }
        let mut shape = self.shape()[..axis].to_vec();
        shape.push(self.shape()[axis..].iter().product());
        self.reshape(&shape)
    }

    /// Inserts an axis of size 1 at `axis` (Gluon's `expand_dims`).
    pub fn expand_dims(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(Error::InvalidShape {
                op: "expand_dims",
                msg: format!("axis {axis} out of range for shape {:?}", self.shape()),
            });
        }
        let mut shape = self.shape().to_vec();
        shape.insert(axis, 1);
        self.reshape(&shape)
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        let valid = perm.len() == self.rank()
            && perm
                .iter()
                .all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(Error::InvalidShape {
                op: "permute",
                msg: format!(
                    "{perm:?} is not a permutation of the axes of {:?}",
                    self.shape()
                ),
            });
        }
        let layout = Layout::permuted(self.shape(), perm);
        let storage = self.storage().strided_copy(&layout)?;
        let rec = record(&[self], || Op::Permute(self.clone(), perm.to_vec()));
        Ok(Tensor::from_storage(storage, layout.shape, rec))
    }

    /// Swaps two axes.
    pub fn transpose(&self, a0: usize, a1: usize) -> Result<Tensor> {
        check_axis(self.shape(), a0, "transpose")?;
        check_axis(self.shape(), a1, "transpose")?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a0, a1);
        self.permute(&perm)
    }

    /// Materialises broadcasting to `shape` (NumPy rules).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let out = broadcast_shape(self.shape(), shape)?;
        if out != shape {
            return Err(Error::ShapeMismatch {
                op: "broadcast_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let layout = Layout::broadcast_to(self.shape(), shape);
        let storage = self.storage().strided_copy(&layout)?;
        let rec = record(&[self], || Op::Broadcast(self.clone()));
        Ok(Tensor::from_storage(storage, shape.to_vec(), rec))
    }

    /// Joins `f32` tensors along `axis`; all other axes must match.
    pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
        let first = parts.first().ok_or_else(|| {
            Error::InvalidArgument("concat needs at least one tensor".to_string())
        })?;
        check_axis(first.shape(), axis, "concat")?;
        for p in parts {
            p.expect_f32("concat")?;
            first.same_device(p, "concat")?;
            let ok = p.rank() == first.rank()
                && p.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !ok {
                return Err(Error::ShapeMismatch {
                    op: "concat",
                    lhs: first.shape().to_vec(),
                    rhs: p.shape().to_vec(),
                });
            }
        }
        let s = first.shape();
        let outer: usize = s[..axis].iter().product();
        let inner: usize = s[axis + 1..].iter().product();
        let widths: Vec<usize> = parts.iter().map(|p| p.shape()[axis] * inner).collect();
        let guards: Vec<_> = parts.iter().map(|p| p.storage()).collect();
        let refs: Vec<&Storage> = guards.iter().map(|g| &**g).collect();
        let storage = Storage::concat(&refs, outer, &widths)?;
        drop(guards);
        let mut shape = s.to_vec();
        shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        let rec = record(parts, || {
            Op::Concat(parts.iter().map(|&p| p.clone()).collect(), axis)
        });
        Ok(Tensor::from_storage(storage, shape, rec))
    }

    /// Elements `begin..end` along `axis` (Gluon's `slice_axis`).
    pub fn slice_axis(&self, axis: usize, begin: usize, end: usize) -> Result<Tensor> {
        check_axis(self.shape(), axis, "slice_axis")?;
        if begin > end || end > self.shape()[axis] {
            return Err(Error::InvalidShape {
                op: "slice_axis",
                msg: format!(
                    "range {begin}..{end} out of bounds for axis {axis} of {:?}",
                    self.shape()
                ),
            });
        }
        let mut layout = Layout::contiguous(self.shape());
        layout.offset = begin * layout.strides[axis];
        layout.shape[axis] = end - begin;
        let storage = self.storage().strided_copy(&layout)?;
        let rec = record(&[self], || Op::Slice {
            input: self.clone(),
            axis,
            start: begin,
        });
        Ok(Tensor::from_storage(storage, layout.shape, rec))
    }

    /// Row gather (Gluon's `take` on axis 0 / `Embedding`): for a `[rows, dim]` table and
    /// `i64` indices of shape `s`, returns `s + [dim]`. With `sparse_grad` the table's
    /// gradient is row-sparse. An index outside `0..rows` is an error naming it.
    pub fn take(&self, indices: &Tensor, sparse_grad: bool) -> Result<Tensor> {
        self.same_device(indices, "take")?;
        if self.rank() != 2 {
            return Err(Error::InvalidShape {
                op: "take",
                msg: format!("table must be 2-D, got {:?}", self.shape()),
            });
        }
        if indices.dtype() != DType::I64 {
            return Err(Error::DTypeMismatch {
                op: "take",
                expected: "i64 indices".into(),
                got: indices.dtype().to_string(),
            });
        }
        let (rows, dim) = (self.shape()[0], self.shape()[1]);
        let storage = self.storage().gather_rows(rows, dim, &indices.storage())?;
        let mut shape = indices.shape().to_vec();
        shape.push(dim);
        let rec = record(&[self], || Op::Take {
            table: self.clone(),
            indices: indices.clone(),
            sparse: sparse_grad,
        });
        Ok(Tensor::from_storage(storage, shape, rec))
    }

    /// Softmax along `axis` (stable: the maximum is subtracted first). One pass per row
    /// on the last axis; another axis is moved last and back.
    pub fn softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_along(axis, false)
    }

    /// Log-softmax along `axis` (stable), as [`softmax`](Self::softmax).
    pub fn log_softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_along(axis, true)
    }

    fn softmax_along(&self, axis: usize, log: bool) -> Result<Tensor> {
        check_axis(self.shape(), axis, "softmax")?;
        self.expect_f32("softmax")?;
        let last = self.rank() - 1;
        if axis != last {
            return self
                .transpose(axis, last)?
                .softmax_along(last, log)?
                .transpose(axis, last);
        }
        let storage = self.storage().softmax(self.shape()[last], log)?;
        let rec = record(&[self], || Op::Softmax {
            input: self.clone(),
            log,
        });
        Ok(Tensor::from_storage(storage, self.shape().to_vec(), rec))
    }

    /// The input gradient of a last-axis (log-)softmax whose output is `self`, given the
    /// output's gradient `dy`.
    pub(crate) fn softmax_grad(&self, dy: &Tensor, log: bool) -> Result<Tensor> {
        let len = self.shape().last().copied().unwrap_or(1);
        let storage = self.storage().softmax_grad(&dy.storage(), len, log)?;
        Ok(Tensor::from_storage(storage, self.shape().to_vec(), None))
    }

    /// Gluon's `pick(data, index, axis=-1)`: for `[.., C]` values and `i64` indices of
    /// the leading shape `[..]`, `out[r] = self[r, indices[r]]`, shaped like `indices`.
    /// The gradient goes back to the picked entries only. An index outside `0..C` is an
    /// error naming it.
    pub fn pick(&self, indices: &Tensor) -> Result<Tensor> {
        let c = self.shape().last().copied().unwrap_or(1);
        let n = self.elem_count() / c.max(1);
        if indices.dtype() != DType::I64 || indices.elem_count() != n {
            return Err(Error::InvalidShape {
                op: "pick",
                msg: format!(
                    "needs one i64 index per row of {:?}, got {} {:?}",
                    self.shape(),
                    indices.dtype(),
                    indices.shape()
                ),
            });
        }
        let idx = indices.to_vec_i64()?;
        super::cpu::check_indices(&idx, c, "pick (an index along the last axis)")?;
        let flat: Vec<i64> = (0..).zip(&idx).map(|(r, &i)| r * c as i64 + i).collect();
        let flat = Tensor::from_vec_i64(flat, indices.shape())?.to_device(self.device())?;
        self.reshape(&[n * c, 1])?
            .take(&flat, false)?
            .reshape(indices.shape())
    }

    /// A copy with the elements at `positions` (i64 indices into the flattened tensor,
    /// any shape) set to `value`: PyTorch's `x.flatten().index_fill(0, positions, value)`
    /// reshaped back, or `masked_fill` with the mask given by its positions (a mask the
    /// size of `self` is never built). The gradient passes to every other element; the
    /// filled ones get none. A position outside the tensor is an error naming it.
    pub fn fill_at(&self, positions: &Tensor, value: f32) -> Result<Tensor> {
        self.same_device(positions, "fill_at")?;
        self.expect_f32("fill_at")?;
        if positions.dtype() != DType::I64 {
            return Err(Error::DTypeMismatch {
                op: "fill_at",
                expected: "i64 positions".into(),
                got: positions.dtype().to_string(),
            });
        }
        let storage = self.storage().fill_at(&positions.storage(), value)?;
        let rec = record(&[self], || Op::FillAt {
            input: self.clone(),
            positions: positions.clone(),
        });
        Ok(Tensor::from_storage(storage, self.shape().to_vec(), rec))
    }

    /// `cond ? self : other` element by element (PyTorch's `torch.where(cond, self,
    /// other)`, Gluon's `where`): `cond` is nonzero for true and has the shape of `self`
    /// and `other`, which must agree. Gradients reach `self` where `cond` holds and
    /// `other` elsewhere; the values are copied, never multiplied (an infinity on the
    /// side not taken cannot leak in as NaN). `cond` is read on the host.
    pub fn where_(&self, cond: &Tensor, other: &Tensor) -> Result<Tensor> {
        for (what, t) in [("cond", cond), ("other", other)] {
            if t.shape() != self.shape() {
                return Err(Error::ShapeMismatch {
                    op: if what == "cond" {
                        "where (cond)"
                    } else {
                        "where (other)"
                    },
                    lhs: self.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                });
            }
        }
        let (taken, not_taken): (Vec<i64>, Vec<i64>) = {
            let c = cond.to_dtype(DType::F32)?.to_vec_f32()?;
            let (mut yes, mut no) = (Vec::new(), Vec::new());
            for (k, v) in (0..).zip(c) {
                if v != 0.0 {
                    yes.push(k)
                } else {
                    no.push(k)
                }
            }
            (yes, no)
        };
        let at = |p: Vec<i64>| -> Result<Tensor> {
            let n = p.len();
            Tensor::from_vec_i64(p, &[n])?.to_device(self.device())
        };
        // Each side with the other's positions zeroed, then added: x + 0 and 0 + y.
        self.fill_at(&at(not_taken)?, 0.0)?
            .add(&other.fill_at(&at(taken)?, 0.0)?)
    }

    /// The lower triangle of the last two axes (PyTorch's `tril(k)`): elements with
    /// column − row > `k` become 0 (`k = 0` keeps the diagonal, `-1` drops it). The
    /// gradient passes to the kept elements only.
    pub fn tril(&self, k: i64) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::InvalidShape {
                op: "tril",
                msg: format!("needs at least 2 axes, got {:?}", self.shape()),
            });
        }
        let (rows, cols) = (self.shape()[self.rank() - 2], self.shape()[self.rank() - 1]);
        let matrices = self.elem_count() / (rows * cols).max(1);
        let mut above = Vec::new();
        for m in 0..matrices {
            for r in 0..rows {
                for c in 0..cols {
                    if c as i64 - r as i64 > k {
                        above.push(((m * rows + r) * cols + c) as i64);
                    }
                }
            }
        }
        let n = above.len();
        self.fill_at(
            &Tensor::from_vec_i64(above, &[n])?.to_device(self.device())?,
            0.0,
        )
    }

    /// One-hot rows `[n, classes]` from `i64` labels of shape `[n]`.
    pub fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
        let n = labels.elem_count();
        let storage = labels.storage().one_hot(classes)?;
        Ok(Tensor::from_storage(storage, vec![n, classes], None))
    }

    /// Inverted dropout with rate `p`: each element is zeroed with probability `p` and the
    /// rest scaled by `1/(1-p)`. The mask depends only on `seed` (same on CPU and GPU).
    pub fn dropout(&self, p: f32, seed: u64) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::InvalidArgument(format!(
                "dropout rate must be in [0, 1), got {p}"
            )));
        }
        if p == 0.0 {
            return Ok(self.clone());
        }
        let mask = Storage::dropout_mask(self.elem_count(), p, seed, self.device())?;
        let mask = Tensor::from_storage(mask, self.shape().to_vec(), None);
        self.mul(&mask)
    }
}
