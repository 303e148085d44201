//! The binary element-wise and reduction primitives every backend implements, with the op
//! codes the CUDA kernels share (the unary ones are defined in `unary.rs`). Ops (`ops.rs`)
//! build on them; storage (`storage.rs`) dispatches them to a backend.

/// Element-wise primitives of two broadcast inputs. Comparisons give 1.0 or 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a − b`
    Sub,
    /// `a · b`
    Mul,
    /// `a / b`
    Div,
    /// `max(a, b)`
    Maximum,
    /// `min(a, b)`
    Minimum,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a^b`
    Pow,
}

impl BinaryOp {
    /// The kernel op code (the variant's position: `kernels/elementwise.cu` uses it).
    pub fn code(&self) -> i32 {
        *self as i32
    }
}

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
