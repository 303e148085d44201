//! Gradient values, gradient slots on leaves, and the recorded op graph: what a tensor
//! holds so that `autograd` (the layer above) can differentiate it. The gradient rules
//! and the backward walk are there, not here.

use super::{BinaryOp, Tensor, UnaryOp};
use crate::error::{Error, Result};
use std::sync::RwLock;

/// How backward treats a leaf's gradient (Gluon's `grad_req`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradReq {
    /// Overwrite the gradient on each backward (the default).
    Write,
    /// Add to the existing gradient (gradient accumulation); clear with `zero_grad`.
    Add,
    /// Compute no gradient for this leaf.
    Null,
}

/// A row-sparse gradient of a `[rows, dim]` table: the rows a batch touched and their
/// summed gradients. Indices are unique, and ascending except on the GPU after
/// [`set_deterministic(false)`](crate::device::set_deterministic) (then in no fixed
/// order); a negative index marks an unused padding row (the CUDA path keeps fixed
/// capacity to avoid a device→host sync).
#[derive(Clone, Debug)]
pub struct RowSparse {
    /// `i64 [k]` row ids.
    pub indices: Tensor,
    /// `f32 [k, dim]` gradient rows.
    pub values: Tensor,
    /// The dense shape `[rows, dim]`.
    pub shape: Vec<usize>,
}

impl RowSparse {
    /// The dense `[rows, dim]` equivalent.
    pub fn to_dense(&self) -> Result<Tensor> {
        let dense = Tensor::zeros(&self.shape, self.values.device())?;
        let dim = self.shape.get(1).copied().unwrap_or(1);
        dense
            .storage_mut()
            .index_add_rows(dim, &self.indices.storage(), &self.values.storage())?;
        Ok(dense)
    }

    /// Merges two row-sparse gradients of the same table (concatenate, then coalesce).
    /// Only needed when one table feeds a graph twice or gradients accumulate
    /// (`GradReq::Add`); the index lists are joined on the host (a round trip on the GPU).
    pub fn add(&self, other: &RowSparse) -> Result<RowSparse> {
        if self.shape != other.shape {
            return Err(Error::ShapeMismatch {
                op: "row_sparse add",
                lhs: self.shape.clone(),
                rhs: other.shape.clone(),
            });
        }
        let joined = [self.indices.to_vec_i64()?, other.indices.to_vec_i64()?].concat();
        let mut vals = Tensor::concat(&[&self.values, &other.values], 0)?;
        // GPU gradients end in -1 padding rows, which a scatter-add would reject as out
        // of range: keep only the real rows.
        let real: Vec<i64> = (0..joined.len() as i64)
            .filter(|&p| joined[p as usize] >= 0)
            .collect();
        let idx: Vec<i64> = if real.len() < joined.len() {
            let kept: Vec<i64> = real.iter().map(|&p| joined[p as usize]).collect();
            let len = real.len();
            let at = Tensor::from_vec_i64(real, &[len])?.to_device(vals.device())?;
            vals = vals.take(&at, false)?;
            kept
        } else {
            joined
        };
        let n = idx.len();
        let idx = Tensor::from_vec_i64(idx, &[n])?.to_device(self.indices.device())?;
        Tensor::coalesce_rows(&idx, &vals, self.shape.clone())
    }
}

/// A gradient: dense, or row-sparse for embedding tables.
#[derive(Clone, Debug)]
pub enum Grad {
    /// Same shape as the parameter.
    Dense(Tensor),
    /// Only the rows a batch touched.
    RowSparse(RowSparse),
}

impl Grad {
    /// The dense tensor (row-sparse gradients are scattered into zeros).
    pub fn to_dense(&self) -> Result<Tensor> {
        match self {
            Grad::Dense(t) => Ok(t.clone()),
            Grad::RowSparse(r) => r.to_dense(),
        }
    }

    /// `self + other`; stays row-sparse only when both are.
    pub fn add(&self, other: &Grad) -> Result<Grad> {
        Ok(match (self, other) {
            (Grad::RowSparse(a), Grad::RowSparse(b)) => Grad::RowSparse(a.add(b)?),
            (a, b) => Grad::Dense(a.to_dense()?.add(&b.to_dense()?)?),
        })
    }

    /// The same gradient multiplied by `s`.
    pub fn scale(&self, s: f32) -> Result<Grad> {
        Ok(match self {
            Grad::Dense(t) => Grad::Dense(t.mul_scalar(s)?),
            Grad::RowSparse(r) => Grad::RowSparse(RowSparse {
                indices: r.indices.clone(),
                values: r.values.mul_scalar(s)?,
                shape: r.shape.clone(),
            }),
        })
    }

    /// The tensor holding the gradient values (the dense tensor, or the sparse rows).
    pub fn values(&self) -> &Tensor {
        match self {
            Grad::Dense(t) => t,
            Grad::RowSparse(r) => &r.values,
        }
    }
}

/// Where backward leaves a leaf's gradient.
#[derive(Debug)]
pub struct GradSlot {
    req: RwLock<GradReq>,
    grad: RwLock<Option<Grad>>,
}

impl GradSlot {
    /// An empty slot with the given request.
    pub fn new(req: GradReq) -> GradSlot {
        GradSlot {
            req: RwLock::new(req),
            grad: RwLock::new(None),
        }
    }

    /// The current request.
    pub fn req(&self) -> GradReq {
        *self.req.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the request (dropping any stored gradient when it becomes `Null`).
    pub fn set_req(&self, req: GradReq) {
        *self.req.write().unwrap_or_else(|e| e.into_inner()) = req;
        if req == GradReq::Null {
            self.clear();
        }
    }

    /// The stored gradient, if backward produced one.
    pub fn get(&self) -> Option<Grad> {
        self.grad.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the stored gradient.
    pub fn set(&self, g: Option<Grad>) {
        *self.grad.write().unwrap_or_else(|e| e.into_inner()) = g;
    }

    /// Forgets the stored gradient (Gluon's `zero_grad`; an absent gradient reads as zero).
    pub fn clear(&self) {
        self.set(None);
    }

    /// Stores `g` according to the request: overwrite, accumulate, or ignore.
    pub(crate) fn receive(&self, g: Grad) -> Result<()> {
        match self.req() {
            GradReq::Null => Ok(()),
            GradReq::Write => {
                self.set(Some(g));
                Ok(())
            }
            GradReq::Add => {
                let new = match self.get() {
                    None => g,
                    Some(old) => old.add(&g)?,
                };
                self.set(Some(new));
                Ok(())
            }
        }
    }
}

/// How a recorded tensor was computed: its inputs and the primitive.
pub(crate) enum Op {
    Unary(Tensor, UnaryOp),
    Binary(Tensor, Tensor, BinaryOp),
    /// Sum over one axis, keeping it with size 1.
    SumAxis(Tensor),
    /// Max over one axis, keeping it with size 1.
    MaxAxis(Tensor),
    /// A copy with a constant at some (flat) positions.
    FillAt {
        input: Tensor,
        positions: Tensor,
    },
    /// Softmax (`log`: log-softmax) over the last axis.
    Softmax {
        input: Tensor,
        log: bool,
    },
    /// `op(a)·op(b)`, `op` transposing the last two axes when its flag is set.
    Matmul {
        a: Tensor,
        b: Tensor,
        trans_a: bool,
        trans_b: bool,
    },
    Reshape(Tensor),
    Permute(Tensor, Vec<usize>),
    Broadcast(Tensor),
    Concat(Vec<Tensor>, usize),
    Slice {
        input: Tensor,
        axis: usize,
        start: usize,
    },
    /// Row gather from a 2-D table; `sparse` makes the table's gradient row-sparse.
    Take {
        table: Tensor,
        indices: Tensor,
        sparse: bool,
    },
    /// A 2-D convolution (`window` is its geometry), with `relu`: followed by a ReLU.
    Conv2d {
        input: Tensor,
        weight: Tensor,
        bias: Option<Tensor>,
        relu: bool,
        window: super::Window2d,
        groups: usize,
    },
    /// A 2-D transposed convolution: the input gradient of the convolution `window`
    /// describes, whose output has the input's shape.
    ConvTranspose2d {
        input: Tensor,
        weight: Tensor,
        window: super::Window2d,
        groups: usize,
    },
    /// Max or average pooling of an `NCHW` input.
    Pool2d {
        input: Tensor,
        window: super::Window2d,
        kind: super::PoolKind,
    },
    /// An op defined outside the crate, differentiated by its own backward.
    Custom {
        op: std::sync::Arc<dyn super::custom_op::CustomOp>,
        inputs: Vec<Tensor>,
    },
}

impl Op {
    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Unary(a, _)
            | Op::SumAxis(a)
            | Op::MaxAxis(a)
            | Op::Reshape(a)
            | Op::Permute(a, _)
            | Op::Broadcast(a)
            | Op::Slice { input: a, .. }
            | Op::Softmax { input: a, .. }
            | Op::FillAt { input: a, .. }
            | Op::Pool2d { input: a, .. } => vec![a],
            Op::Binary(a, b, _)
            | Op::Matmul { a, b, .. }
            | Op::ConvTranspose2d {
                input: a,
                weight: b,
                ..
            } => vec![a, b],
            Op::Concat(parts, _) | Op::Custom { inputs: parts, .. } => parts.iter().collect(),
            Op::Take { table, .. } => vec![table],
            Op::Conv2d {
                input,
                weight,
                bias,
                ..
            } => [input, weight].into_iter().chain(bias).collect(),
        }
    }
}
