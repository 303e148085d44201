//! The reduction primitives every backend implements, with the op codes the CUDA kernels
//! share (the element-wise ones are defined in `unary.rs` and `binary.rs`). Ops (`ops.rs`)
//! build on them; storage (`storage.rs`) dispatches them to a backend.

/// Reductions over one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// maximum
    Max,
    /// minimum
    Min,
}

impl ReduceOp {
    /// The kernel op code (`kernels/reduce.cu`).
    pub fn code(&self) -> i32 {
        *self as i32
    }
}
