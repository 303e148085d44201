//! The element-wise ops of one input, each defined once: its name and code, its `Tensor`
//! method, its value on the CPU, its derivative, its CUDA C expression and the emulator's
//! double-precision reference. Everything else is generated from this table: the CPU
//! loops, the gradient rule, the `unary_op` switch of `kernels/elementwise.cu`
//! ([`UnaryOp::cuda_source`], spliced in where the kernel includes `unary_ops.cuh`) and
//! the emulator's reference table ([`UnaryOp::emulator_source`]).
//!
//! Adding an op is one entry below (and a finite-difference check in
//! `tests/gradients.rs`). Codes are the CUDA kernel's op numbers: never renumber, append.
//! An entry with `cuda: None` runs on the CPU only, and `tests/op_codes.rs` fails naming
//! it until it has its CUDA form.

use super::cpu::{erf_approx, map, normal_density};
use super::Tensor;
use crate::error::Result;

/// Where an op's inputs are tested: `Positive` for ops defined on `x > 0` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Any finite input.
    Any,
    /// Inputs in `(0, ∞)`.
    Positive,
}

macro_rules! unary_ops {
    ($(
        $(#[doc = $doc:literal])*
        $op:ident $(($($p:ident: f32 = $example:expr),*))? = $code:literal {
            $(method: $method:ident,)?
            domain: $domain:ident,
            cpu: |$x:ident| $cpu:expr,
            grad: |$g:ident, $gx:ident, $gy:ident| $grad:expr,
            cuda: $cuda:expr,
            reference: $reference:expr $(,)?
        }
    )*) => {
        /// Element-wise primitives of one input. Numeric codes are the CUDA kernel's.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum UnaryOp {
            $($(#[doc = $doc])* $op $(($(unary_ops!(@f32 $p)),*))?,)*
        }

        impl UnaryOp {
            /// Every op, with example parameters (for tests).
            pub fn examples() -> Vec<UnaryOp> {
                vec![$(UnaryOp::$op $(($($example),*))?),*]
            }

            /// The CUDA kernel's op code and the op's two parameters (0 when unused).
            pub fn code(&self) -> (i32, f32, f32) {
                match *self {
                    $(UnaryOp::$op $(($($p),*))? => {
                        let params: &[f32] = &[$($($p),*)?];
                        (
                            $code,
                            params.first().copied().unwrap_or(0.0),
                            params.get(1).copied().unwrap_or(0.0),
                        )
                    })*
                }
            }

            /// The variant's name (`Affine` for `Affine(2.0, 1.0)`).
            pub fn name(&self) -> &'static str {
                match self {
                    $(UnaryOp::$op { .. } => stringify!($op),)*
                }
            }

            /// The op's CUDA C expression in `x`, `p0` and `p1` (floats), if it has one.
            pub fn cuda_expr(&self) -> Option<&'static str> {
                match self {
                    $(UnaryOp::$op { .. } => $cuda,)*
                }
            }

            /// The emulator's C++ reference expression in `x`, `p0` and `p1` (doubles).
            pub fn reference_expr(&self) -> &'static str {
                match self {
                    $(UnaryOp::$op { .. } => $reference,)*
                }
            }

            /// Where the op is defined.
            pub fn domain(&self) -> Domain {
                match self {
                    $(UnaryOp::$op { .. } => Domain::$domain,)*
                }
            }

            /// The op on a slice, on the CPU (one monomorphised loop per op, so the
            /// arithmetic inlines and vectorises).
            pub(crate) fn cpu(self, x: &[f32]) -> Vec<f32> {
                match self {
                    $(UnaryOp::$op $(($($p),*))? => map(x, |$x: f32| $cpu),)*
                }
            }

            /// The input's gradient from the output's gradient `g`, the input `x` and the
            /// output `y`.
            pub(crate) fn grad(self, g: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor> {
                match self {
                    $(UnaryOp::$op $(($($p),*))? => {
                        let ($g, $gx, $gy) = (g, x, y);
                        let _ = ($gx, $gy $($(, $p)*)?);
                        $grad
                    })*
                }
            }
        }

        impl Tensor {
            $(unary_ops!(
                @method [$($doc)*] [$($($p),*)?] (UnaryOp::$op $(($($p),*))?) $($method)?
            );)*
        }
    };
    (@f32 $p:ident) => { f32 };
    // An op without a method of its own (its callers check something first).
    (@method [$($doc:literal)*] [$($p:ident),*] ($ctor:expr)) => {};
    (@method [$($doc:literal)*] [$($p:ident),*] ($ctor:expr) $method:ident) => {
        $(#[doc = $doc])*
        pub fn $method(&self, $($p: f32),*) -> Result<Tensor> {
            self.unary($ctor)
        }
    };
}

unary_ops! {
    /// `-x`
    Neg = 0 {
        method: neg,
        domain: Any,
        cpu: |x| -x,
        grad: |g, x, y| g.neg(),
        cuda: Some("-x"),
        reference: "-x",
    }
    /// `e^x`
    Exp = 1 {
        method: exp,
        domain: Any,
        cpu: |x| x.exp(),
        grad: |g, x, y| g.mul(y),
        cuda: Some("expf(x)"),
        reference: "std::exp(x)",
    }
    /// Natural logarithm.
    Log = 2 {
        method: log,
        domain: Positive,
        cpu: |x| x.ln(),
        grad: |g, x, y| g.div(x),
        cuda: Some("logf(x)"),
        reference: "std::log(x)",
    }
    /// Square root.
    Sqrt = 3 {
        method: sqrt,
        domain: Positive,
        cpu: |x| x.sqrt(),
        grad: |g, x, y| g.div(y)?.mul_scalar(0.5),
        cuda: Some("sqrtf(x)"),
        reference: "std::sqrt(x)",
    }
    /// Absolute value.
    Abs = 4 {
        method: abs,
        domain: Any,
        cpu: |x| x.abs(),
        grad: |g, x, y| g.mul(&x.sign()?),
        cuda: Some("fabsf(x)"),
        reference: "std::fabs(x)",
    }
    /// `x²`
    Square = 5 {
        method: square,
        domain: Any,
        cpu: |x| x * x,
        grad: |g, x, y| g.mul(x)?.mul_scalar(2.0),
        cuda: Some("x * x"),
        reference: "x * x",
    }
    /// `max(x, 0)`
    Relu = 6 {
        method: relu,
        domain: Any,
        cpu: |x| x.max(0.0),
        grad: |g, x, y| g.where_positive(x),
        cuda: Some("x > 0.0f ? x : 0.0f"),
        reference: "x > 0 ? x : 0",
    }
    /// Logistic sigmoid.
    Sigmoid = 7 {
        method: sigmoid,
        domain: Any,
        // Never the exponential of a large positive number.
        cpu: |x| if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) },
        grad: |g, x, y| g.mul(&y.mul(&y.affine(-1.0, 1.0)?)?),
        cuda: Some("(x >= 0.0f ? 1.0f : expf(x)) / (1.0f + expf(-fabsf(x)))"),
        reference: "1 / (1 + std::exp(-x))",
    }
    /// Hyperbolic tangent.
    Tanh = 8 {
        method: tanh,
        domain: Any,
        cpu: |x| x.tanh(),
        grad: |g, x, y| g.mul(&y.square()?.affine(-1.0, 1.0)?),
        cuda: Some("tanhf(x)"),
        reference: "std::tanh(x)",
    }
    /// `log(1 + e^x)`, computed stably (Gluon's `softrelu`).
    Softplus = 9 {
        method: softrelu,
        domain: Any,
        cpu: |x| x.max(0.0) + (-x.abs()).exp().ln_1p(),
        grad: |g, x, y| g.mul(&x.sigmoid()?),
        cuda: Some("fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)))"),
        reference: "std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x)))",
    }
    /// `1/x`
    Recip = 10 {
        method: recip,
        domain: Positive,
        cpu: |x| 1.0 / x,
        grad: |g, x, y| g.mul(&y.square()?)?.neg(),
        cuda: Some("1.0f / x"),
        reference: "1 / x",
    }
    /// −1, 0 or 1 (no gradient).
    Sign = 11 {
        method: sign,
        domain: Any,
        // Branch-free: signs of activations are coin flips to a branch predictor.
        cpu: |x| f32::from(u8::from(x > 0.0)) - f32::from(u8::from(x < 0.0)),
        grad: |g, x, y| g.zeros_like(),
        cuda: Some("(float)((x > 0.0f) - (x < 0.0f))"),
        reference: "(double)((x > 0) - (x < 0))",
    }
    /// `a·x + b`
    Affine(a: f32 = 0.7, b: f32 = -1.3) = 12 {
        method: affine,
        domain: Any,
        cpu: |x| a * x + b,
        grad: |g, x, y| g.mul_scalar(a),
        cuda: Some("p0 * x + p1"),
        // As the kernel computes it: one f32 product, then the add.
        reference: "(double)(float)(p0 * (float)x) + p1",
    }
    /// `x^p` for a scalar exponent.
    Powf(p: f32 = 1.7) = 13 {
        method: powf,
        domain: Positive,
        cpu: |x| x.powf(p),
        grad: |g, x, y| g.mul(&x.powf(p - 1.0)?)?.mul_scalar(p),
        cuda: Some("powf(x, p0)"),
        reference: "std::pow(x, p0)",
    }
    /// `min(max(x, lo), hi)`; the gradient is zero outside (`Tensor::clip` checks the
    /// bounds).
    Clip(lo: f32 = -2.5, hi: f32 = 3.5) = 14 {
        domain: Any,
        cpu: |x| x.max(lo).min(hi),
        grad: |g, x, y| g.mul(&x.ge_scalar(lo)?.mul(&x.le_scalar(hi)?)?),
        cuda: Some("fminf(fmaxf(x, p0), p1)"),
        reference: "std::min(std::max(x, p0), p1)",
    }
    /// 1 where `x > 0`, else 0 (no gradient).
    StepPos = 15 {
        method: step_pos,
        domain: Any,
        cpu: |x| f32::from(u8::from(x > 0.0)),
        grad: |g, x, y| g.zeros_like(),
        cuda: Some("x > 0.0f ? 1.0f : 0.0f"),
        reference: "x > 0 ? 1 : 0",
    }
    /// `x / (1 + |x|)`
    Softsign = 16 {
        method: softsign,
        domain: Any,
        cpu: |x| x / (1.0 + x.abs()),
        grad: |g, x, y| g.div(&x.abs()?.add_scalar(1.0)?.square()?),
        cuda: Some("x / (1.0f + fabsf(x))"),
        reference: "x / (1 + std::fabs(x))",
    }
    /// The Gauss error function.
    Erf = 17 {
        method: erf,
        domain: Any,
        cpu: |x| libm::erff(x),
        // 2/√π · e^(−x²)
        grad: |g, x, y| g.mul(&x.square()?.neg()?.exp()?.mul_scalar(std::f32::consts::FRAC_2_SQRT_PI)?),
        cuda: Some("erff(x)"),
        reference: "std::erf(x)",
    }
    /// GELU, exact: `x·Φ(x) = ½·x·(1 + erf(x/√2))` (PyTorch's default and MXNet's
    /// `gelu`; on the CPU `erf` within 6e-7, as PyTorch's vectorised CPU GELU).
    Gelu = 18 {
        method: gelu,
        domain: Any,
        cpu: |x| 0.5 * x * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2)),
        grad: |g, x, y| g.mul(&x.gelu_grad()?),
        cuda: Some("0.5f * x * (1.0f + erff(x * 0.70710678f))"),
        reference: "0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))",
    }
    /// GELU's derivative `Φ(x) + x·φ(x)`, φ the standard normal density: one pass for
    /// GELU's gradient.
    GeluGrad = 19 {
        method: gelu_grad,
        domain: Any,
        cpu: |x| 0.5 * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2)) + x * normal_density(x),
        // φ(x)·(2 − x²)
        grad: |g, x, y| {
            let x2 = x.square()?;
            g.mul(&x2.mul_scalar(-0.5)?.exp()?.mul(&x2.affine(-0.398_942_3, 2.0 * 0.398_942_3)?)?)
        },
        cuda: Some("0.5f * (1.0f + erff(x * 0.70710678f)) + 0.39894228f * x * expf(-0.5f * x * x)"),
        reference: "0.5 * (1 + std::erf(x / std::sqrt(2.0))) + 0.3989422804014327 * x * std::exp(-0.5 * x * x)",
    }
}

/// The `case CODE: return EXPR;  // Name` lines of a generated C switch, one per
/// `(code, expression, name)` (shared by the unary and binary ops' kernel and emulator
/// sources).
pub(super) fn case_lines<'a>(cases: impl IntoIterator<Item = (i32, &'a str, &'a str)>) -> String {
    cases
        .into_iter()
        .map(|(code, expr, name)| format!("    case {code}: return {expr};  // {name}\n"))
        .collect()
}

impl UnaryOp {
    /// The CUDA C of `unary_op(op, x, p0, p1)`, the switch over every op's code that
    /// `kernels/elementwise.cu` includes as `unary_ops.cuh`. An unknown code gives NaN.
    pub fn cuda_source() -> String {
        let mut s = String::from(
            "// Generated from src/tensor/unary.rs (UnaryOp): do not edit.\n\
             __device__ __forceinline__ float unary_op(int op, float x, float p0, float p1) {\n    \
             switch (op) {\n",
        );
        let ops = Self::examples();
        s += &case_lines(
            ops.iter()
                .filter_map(|op| Some((op.code().0, op.cuda_expr()?, op.name()))),
        );
        s += "    default: return __int_as_float(0x7fc00000);  // unknown op: NaN\n    }\n}\n";
        s
    }

    /// The emulator's C++ reference table: `unary_ref(op, x, p0, p1)` in double
    /// precision, and `UNARY_CASES` (each op's code, whether its inputs must be positive,
    /// and example parameters), for `tests/emu/elementwise_emu.cpp`.
    pub fn emulator_source() -> String {
        let ops = Self::examples();
        let mut s = String::from(
            "// Generated from src/tensor/unary.rs (UnaryOp): do not edit.\n\
             static double unary_ref(int op, double x, double p0, double p1) {\n    (void)p0; (void)p1;\n    switch (op) {\n",
        );
        s += &case_lines(
            ops.iter()
                .map(|op| (op.code().0, op.reference_expr(), op.name())),
        );
        s += "    }\n    return NAN;\n}\n\nstruct UnaryCase { int code; bool positive; float p0, p1; };\n";
        s += "static const UnaryCase UNARY_CASES[] = {\n";
        for op in &ops {
            let (code, p0, p1) = op.code();
            let positive = op.domain() == Domain::Positive;
            s += &format!(
                "    {{{code}, {positive}, {p0:?}f, {p1:?}f}},  // {}\n",
                op.name()
            );
        }
        let unknown = ops.iter().map(|o| o.code().0).max().unwrap_or(0) + 1;
        s += &format!("}};\nstatic const int UNARY_UNKNOWN_CODE = {unknown};\n");
        s
    }
}
