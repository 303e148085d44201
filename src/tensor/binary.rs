//! The element-wise ops of two broadcast inputs, each defined once, as the unary ones are
//! (`unary.rs`): its name and code, its `Tensor` method, its value on the CPU, the
//! derivative with respect to each input (none for comparisons), its CUDA C expression
//! and the emulator's double-precision reference. The CPU loops, the gradient rule, the
//! `binary_op` switch of `kernels/elementwise.cu` ([`BinaryOp::cuda_source`], spliced in
//! where the kernel includes `binary_ops.cuh`) and the emulator's reference
//! ([`BinaryOp::emulator_source`]) are generated from this table.
//!
//! Adding an op is one entry below (and a finite-difference check in
//! `tests/gradients.rs`). Codes are the CUDA kernel's op numbers: never renumber, append.

use super::cpu::binary_with;
use super::shape::Layout;
use super::unary::case_lines;
use super::Tensor;
use crate::error::Result;

/// 1.0 or 0.0, branch-free (comparisons).
#[inline(always)]
fn flag(c: bool) -> f32 {
    f32::from(u8::from(c))
}

macro_rules! binary_ops {
    ($(
        $(#[doc = $doc:literal])*
        $op:ident = $code:literal {
            method: $method:ident,
            cpu: |$x:ident, $y:ident| $cpu:expr,
            grad: [$($grad:tt)*],
            cuda: $cuda:expr,
            reference: $reference:expr $(,)?
        }
    )*) => {
        /// Element-wise primitives of two broadcast inputs (comparisons give 1.0 or 0.0).
        /// Numeric codes are the CUDA kernel's.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum BinaryOp {
            $($(#[doc = $doc])* $op,)*
        }

        impl BinaryOp {
            /// Every op.
            pub const ALL: &'static [BinaryOp] = &[$(BinaryOp::$op),*];

            /// The CUDA kernel's op code.
            pub fn code(&self) -> i32 {
                match self {
                    $(BinaryOp::$op => $code,)*
                }
            }

            /// The variant's name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(BinaryOp::$op => stringify!($op),)*
                }
            }

            /// The op's CUDA C expression in `a` and `b` (floats), if it has one.
            pub fn cuda_expr(&self) -> Option<&'static str> {
                match self {
                    $(BinaryOp::$op => $cuda,)*
                }
            }

            /// The emulator's C++ reference expression in `a` and `b` (doubles).
            pub fn reference_expr(&self) -> &'static str {
                match self {
                    $(BinaryOp::$op => $reference,)*
                }
            }

            /// The op on one pair of values, on the CPU (the reference the CUDA launcher
            /// tests compare with).
            #[allow(dead_code)] // used by the CUDA launchers' tests
            pub(crate) fn apply(self, a: f32, b: f32) -> f32 {
                match self {
                    $(BinaryOp::$op => {
                        let ($x, $y) = (a, b);
                        $cpu
                    })*
                }
            }

            /// The op over two strided views with the same (broadcast) shape, on the CPU;
            /// the output is contiguous (one monomorphised loop per op).
            pub(crate) fn cpu(self, a: &[f32], la: &Layout, b: &[f32], lb: &Layout) -> Vec<f32> {
                match self {
                    $(BinaryOp::$op => binary_with(|$x: f32, $y: f32| $cpu, a, la, b, lb),)*
                }
            }

            /// The gradients with respect to `a` and `b` (before summing broadcast axes),
            /// from the output's gradient `g` and the output `out`; only for the inputs
            /// whose `need` flag is set, and none for an op without a derivative.
            pub(crate) fn grads(
                self,
                g: &Tensor,
                a: &Tensor,
                b: &Tensor,
                out: &Tensor,
                need: (bool, bool),
            ) -> Result<(Option<Tensor>, Option<Tensor>)> {
                match self {
                    $(BinaryOp::$op => binary_ops!(@grad [$($grad)*] g a b out need),)*
                }
            }
        }

        impl Tensor {
            $(
                $(#[doc = $doc])*
                pub fn $method(&self, rhs: &Tensor) -> Result<Tensor> {
                    self.binary(rhs, BinaryOp::$op)
                }
            )*
        }
    };
    // No derivative (comparisons): no gradient flows back.
    (@grad [] $g:ident $a:ident $b:ident $out:ident $need:ident) => {
        Ok((None, None))
    };
    (@grad [$gg:ident, $ga:ident, $gb:ident, $gy:ident => $da:expr, $db:expr]
        $g:ident $a:ident $b:ident $out:ident $need:ident) => {{
        let ($gg, $ga, $gb, $gy) = ($g, $a, $b, $out);
        let _ = ($gg, $ga, $gb, $gy);
        Ok((
            if $need.0 { Some($da?) } else { None },
            if $need.1 { Some($db?) } else { None },
        ))
    }};
}

binary_ops! {
    /// `a + b` (broadcasting)
    Add = 0 {
        method: add,
        cpu: |x, y| x + y,
        grad: [g, a, b, y => Ok::<_, crate::Error>(g.clone()), Ok::<_, crate::Error>(g.clone())],
        cuda: Some("a + b"),
        reference: "a + b",
    }
    /// `a − b` (broadcasting)
    Sub = 1 {
        method: sub,
        cpu: |x, y| x - y,
        grad: [g, a, b, y => Ok::<_, crate::Error>(g.clone()), g.neg()],
        cuda: Some("a - b"),
        reference: "a - b",
    }
    /// `a · b` (broadcasting)
    Mul = 2 {
        method: mul,
        cpu: |x, y| x * y,
        grad: [g, a, b, y => g.mul(b), g.mul(a)],
        cuda: Some("a * b"),
        reference: "a * b",
    }
    /// `a / b` (broadcasting)
    Div = 3 {
        method: div,
        cpu: |x, y| x / y,
        grad: [g, a, b, y => g.div(b), g.mul(y)?.div(b)?.neg()],
        cuda: Some("a / b"),
        reference: "a / b",
    }
    /// Element-wise maximum (broadcasting); the gradient goes to `a` where `a >= b`.
    Maximum = 4 {
        method: maximum,
        cpu: |x, y| x.max(y),
        grad: [g, a, b, y => g.mul(&a.ge(b)?), g.mul(&a.ge(b)?.affine(-1.0, 1.0)?)],
        cuda: Some("fmaxf(a, b)"),
        reference: "std::max(a, b)",
    }
    /// Element-wise minimum (broadcasting); the gradient goes to `a` where `a <= b`.
    Minimum = 5 {
        method: minimum,
        cpu: |x, y| x.min(y),
        grad: [g, a, b, y => g.mul(&a.le(b)?), g.mul(&a.le(b)?.affine(-1.0, 1.0)?)],
        cuda: Some("fminf(a, b)"),
        reference: "std::min(a, b)",
    }
    /// 1.0 where `a == b`.
    Eq = 6 {
        method: eq,
        cpu: |x, y| flag(x == y),
        grad: [],
        cuda: Some("a == b ? 1.0f : 0.0f"),
        reference: "(double)(a == b)",
    }
    /// 1.0 where `a != b`.
    Ne = 7 {
        method: ne,
        cpu: |x, y| flag(x != y),
        grad: [],
        cuda: Some("a != b ? 1.0f : 0.0f"),
        reference: "(double)(a != b)",
    }
    /// 1.0 where `a > b`.
    Gt = 8 {
        method: gt,
        cpu: |x, y| flag(x > y),
        grad: [],
        cuda: Some("a > b ? 1.0f : 0.0f"),
        reference: "(double)(a > b)",
    }
    /// 1.0 where `a >= b`.
    Ge = 9 {
        method: ge,
        cpu: |x, y| flag(x >= y),
        grad: [],
        cuda: Some("a >= b ? 1.0f : 0.0f"),
        reference: "(double)(a >= b)",
    }
    /// 1.0 where `a < b`.
    Lt = 10 {
        method: lt,
        cpu: |x, y| flag(x < y),
        grad: [],
        cuda: Some("a < b ? 1.0f : 0.0f"),
        reference: "(double)(a < b)",
    }
    /// 1.0 where `a <= b`.
    Le = 11 {
        method: le,
        cpu: |x, y| flag(x <= y),
        grad: [],
        cuda: Some("a <= b ? 1.0f : 0.0f"),
        reference: "(double)(a <= b)",
    }
    /// `a^b` (broadcasting): `d/da = b·out/a`, `d/db = out·ln a`.
    Pow = 12 {
        method: pow,
        cpu: |x, y| x.powf(y),
        grad: [g, a, b, y => g.mul(&y.mul(b)?.div(a)?), g.mul(&y.mul(&a.log()?)?)],
        cuda: Some("powf(a, b)"),
        reference: "std::pow(a, b)",
    }
    /// `a` where `b > 0`, else 0 (broadcasting): ReLU's gradient in one pass (`a` the
    /// output's gradient, `b` ReLU's input). A select, as PyTorch's `threshold_backward`:
    /// a NaN or infinite `a` where `b <= 0` gives 0. No gradient flows to `b` (a step).
    WherePositive = 13 {
        method: where_positive,
        cpu: |x, y| if y > 0.0 { x } else { 0.0 },
        grad: [g, a, b, y => g.where_positive(b), g.zeros_like()],
        cuda: Some("b > 0.0f ? a : 0.0f"),
        reference: "b > 0 ? a : 0.0",
    }
}

impl BinaryOp {
    /// The CUDA C of `binary_op(op, a, b)`, the switch over every op's code that
    /// `kernels/elementwise.cu` includes as `binary_ops.cuh`. An unknown code gives NaN.
    pub fn cuda_source() -> String {
        let mut s = String::from(
            "// Generated from src/tensor/binary.rs (BinaryOp): do not edit.\n\
             __device__ __forceinline__ float binary_op(int op, float a, float b) {\n    \
             switch (op) {\n",
        );
        s += &case_lines(
            Self::ALL
                .iter()
                .filter_map(|op| Some((op.code(), op.cuda_expr()?, op.name()))),
        );
        s += "    default: return __int_as_float(0x7fc00000);  // unknown op: NaN\n    }\n}\n";
        s
    }

    /// The emulator's C++ reference: `binary_ref(op, a, b)` in double precision and
    /// `BINARY_CODES`, for `tests/emu/elementwise_emu.cpp`.
    pub fn emulator_source() -> String {
        let mut s = String::from(
            "// Generated from src/tensor/binary.rs (BinaryOp): do not edit.\n\
             static double binary_ref(int op, double a, double b) {\n    switch (op) {\n",
        );
        s += &case_lines(
            Self::ALL
                .iter()
                .map(|op| (op.code(), op.reference_expr(), op.name())),
        );
        s += "    }\n    return NAN;\n}\n\nstatic const int BINARY_CODES[] = {";
        let codes: Vec<String> = Self::ALL.iter().map(|op| op.code().to_string()).collect();
        s += &codes.join(", ");
        s += "};\n";
        s
    }
}
