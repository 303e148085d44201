//! The parameters of the primitives every backend implements beside the element-wise
//! ones (defined in `unary.rs` and `binary.rs`): reductions, with the op codes the CUDA
//! kernels share, and the sliding-window geometry of convolution and pooling. Ops
//! (`ops.rs`, `window.rs`) build on them; storage (`storage.rs`) dispatches them to a
//! backend.

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

/// Which reduction a pooling window applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKind {
    /// The largest value; its gradient goes to the first position holding it.
    Max,
    /// The mean; with `count_include_pad` the divisor counts padding positions (Gluon's
    /// default), clipped to the padded image as MXNet does.
    Avg { count_include_pad: bool },
}

/// Everything a window primitive needs: the input's `NCHW` size, the window, and the
/// output size it gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Window2d {
    /// Rows of the `im2col` matrix: one per (channel, kernel row, kernel column).
    pub fn col_rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of each image's `im2col` matrix: one per output pixel.
    pub fn col_width(&self) -> usize {
        self.oh * self.ow
    }

    /// Elements of the batch's `im2col` matrices.
    pub fn cols_len(&self) -> usize {
        self.n * self.col_rows() * self.col_width()
    }

    /// Elements of the `NCHW` input.
    pub fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the pooled `NCHW` output.
    pub fn output_len(&self) -> usize {
        self.n * self.c * self.oh * self.ow
    }
}
