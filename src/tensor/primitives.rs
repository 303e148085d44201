//! The element-wise and reduction primitives every backend implements, with the op codes
//! the CUDA kernels share. Ops (`ops.rs`) build on them; storage (`storage.rs`) dispatches
//! them to a backend.

/// Element-wise primitives of one input. Numeric codes are shared with `kernels/`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `e^x`
    Exp,
    /// natural log
    Log,
    /// square root
    Sqrt,
    /// `|x|`
    Abs,
    /// `x²`
    Square,
    /// `max(x, 0)`
    Relu,
    /// logistic sigmoid
    Sigmoid,
    /// hyperbolic tangent
    Tanh,
    /// `log(1 + e^x)` (Gluon's softrelu)
    Softplus,
    /// `1/x`
    Recip,
    /// −1, 0 or 1
    Sign,
    /// `a·x + b`
    Affine(f32, f32),
    /// `x^p`
    Powf(f32),
    /// `min(max(x, lo), hi)`
    Clip(f32, f32),
    /// 1 where `x > 0`, else 0
    StepPos,
}

impl UnaryOp {
    /// The CUDA kernel's op code (fixed by `kernels/elementwise.cu`: never renumber) and
    /// its two parameters.
    pub fn code(&self) -> (i32, f32, f32) {
        match *self {
            UnaryOp::Neg => (0, 0.0, 0.0),
            UnaryOp::Exp => (1, 0.0, 0.0),
            UnaryOp::Log => (2, 0.0, 0.0),
            UnaryOp::Sqrt => (3, 0.0, 0.0),
            UnaryOp::Abs => (4, 0.0, 0.0),
            UnaryOp::Square => (5, 0.0, 0.0),
            UnaryOp::Relu => (6, 0.0, 0.0),
            UnaryOp::Sigmoid => (7, 0.0, 0.0),
            UnaryOp::Tanh => (8, 0.0, 0.0),
            UnaryOp::Softplus => (9, 0.0, 0.0),
            UnaryOp::Recip => (10, 0.0, 0.0),
            UnaryOp::Sign => (11, 0.0, 0.0),
            UnaryOp::Affine(a, b) => (12, a, b),
            UnaryOp::Powf(p) => (13, p, 0.0),
            UnaryOp::Clip(lo, hi) => (14, lo, hi),
            UnaryOp::StepPos => (15, 0.0, 0.0),
        }
    }
}

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
