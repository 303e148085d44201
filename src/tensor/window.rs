//! Sliding windows over `NCHW` images: convolution and pooling.
//!
//! A convolution is `im2col` (each output pixel's receptive field laid out as one column
//! of a `[C·kh·kw, OH·OW]` matrix per image) and a batched GEMM with the `[O, C·kh·kw]`
//! weight, which leaves the result in `NCHW` order; its gradients follow from those ops
//! (`col2im` is `im2col`'s adjoint). A transposed convolution is the same pair run the other way. Pooling is its
//! own primitive with its own gradient. 1-D layers are the 2-D ones with a height of 1.

use super::ops::record;
use super::storage::Storage;
use super::Tensor;
use crate::autograd::Op;
use crate::error::{Error, Result};

/// Strides, padding, dilation and groups of a 2-D convolution (the arguments of Gluon's
/// `Conv2D` and PyTorch's `F.conv2d` beside the kernel, which the weight's shape gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between windows, `[height, width]`.
    pub strides: [usize; 2],
    /// Zeros added on each side, `[height, width]`.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, `[height, width]`.
    pub dilation: [usize; 2],
    /// Channel groups: group `g` of the outputs sees only group `g` of the inputs.
    pub groups: usize,
}

impl Default for Conv2dParams {
    /// Stride 1, no padding, no dilation, one group.
    fn default() -> Self {
        Conv2dParams {
            strides: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Window size, strides and padding of a 2-D pooling (Gluon's `MaxPool2D` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Window size, `[height, width]`.
    pub kernel: [usize; 2],
    /// Step between windows, `[height, width]`.
    pub strides: [usize; 2],
    /// Padding on each side, `[height, width]` (never part of a maximum).
    pub padding: [usize; 2],
    /// Round the output size up (MXNet's `pooling_convention='full'`) instead of down.
    pub ceil_mode: bool,
}

impl Pool2dParams {
    /// A `kernel` window moved by its own size, no padding (Gluon's defaults).
    pub fn new(kernel: [usize; 2]) -> Pool2dParams {
        Pool2dParams {
            kernel,
            strides: kernel,
            padding: [0, 0],
            ceil_mode: false,
        }
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

fn shape_err(op: &'static str, msg: String) -> Error {
    Error::InvalidShape { op, msg }
}

/// The output extent of one axis, or `None` when the window does not fit.
fn out_extent(len: usize, pad: usize, span: usize, stride: usize, ceil: bool) -> Option<usize> {
    let padded = len + 2 * pad;
    if span > padded {
        return None;
    }
    let steps = padded - span;
    Some(
        if ceil {
            steps.div_ceil(stride)
        } else {
            steps / stride
        } + 1,
    )
}

fn check_nchw(x: &Tensor, op: &'static str) -> Result<[usize; 4]> {
    x.expect_f32(op)?;
    match *x.shape() {
        [n, c, h, w] if h > 0 && w > 0 => Ok([n, c, h, w]),
        _ => Err(shape_err(
            op,
            format!(
                "input must be NCHW [batch, channels, height, width] with height and width \
                 at least 1, got {:?}",
                x.shape()
            ),
        )),
    }
}

fn check_positive(op: &'static str, what: &str, v: [usize; 2]) -> Result<()> {
    if v.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "{op}: {what} must be at least 1, got {v:?}"
        )));
    }
    Ok(())
}

/// The geometry of a convolution of an `[n, c, h, w]` input with a `kernel` window.
fn conv_window(
    op: &'static str,
    x: [usize; 4],
    kernel: [usize; 2],
    p: &Conv2dParams,
) -> Result<Window2d> {
    check_positive(op, "strides", p.strides)?;
    check_positive(op, "dilation", p.dilation)?;
    check_positive(op, "kernel size", kernel)?;
    let [n, c, h, w] = x;
    let span = |k: usize, d: usize| d * (k - 1) + 1;
    let (sph, spw) = (
        span(kernel[0], p.dilation[0]),
        span(kernel[1], p.dilation[1]),
    );
    let oh = out_extent(h, p.padding[0], sph, p.strides[0], false);
    let ow = out_extent(w, p.padding[1], spw, p.strides[1], false);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(shape_err(
            op,
            format!(
                "the {sph}×{spw} (dilated) kernel is larger than the padded {}×{} input \
                 of shape {x:?}",
                h + 2 * p.padding[0],
                w + 2 * p.padding[1]
            ),
        ));
    };
    Ok(Window2d {
        n,
        c,
        h,
        w,
        kh: kernel[0],
        kw: kernel[1],
        sh: p.strides[0],
        sw: p.strides[1],
        ph: p.padding[0],
        pw: p.padding[1],
        dh: p.dilation[0],
        dw: p.dilation[1],
        oh,
        ow,
    })
}

/// Checks a `[o, c / groups, kh, kw]` weight against `c` input channels.
fn check_weight(op: &'static str, weight: &Tensor, c: usize, groups: usize) -> Result<[usize; 4]> {
    weight.expect_f32(op)?;
    let &[o, cg, kh, kw] = weight.shape() else {
        return Err(shape_err(
            op,
            format!(
                "weight must be [out_channels, in_channels / groups, kh, kw], got {:?}",
                weight.shape()
            ),
        ));
    };
    if groups == 0 || !c.is_multiple_of(groups) || !o.is_multiple_of(groups) {
        return Err(Error::InvalidArgument(format!(
            "{op}: groups = {groups} must divide both the {c} input and the {o} output channels"
        )));
    }
    if cg * groups != c {
        return Err(Error::ShapeMismatch {
            op,
            lhs: vec![c],
            rhs: weight.shape().to_vec(),
        });
    }
    Ok([o, cg, kh, kw])
}

impl Tensor {
    /// 2-D convolution of an `NCHW` input with an `[out_channels, in_channels / groups,
    /// kh, kw]` weight (Gluon's `Convolution`, PyTorch's `F.conv2d`, no bias):
    /// `[n, out_channels, oh, ow]`.
    pub fn conv2d(&self, weight: &Tensor, p: &Conv2dParams) -> Result<Tensor> {
        const OP: &str = "conv2d";
        let x = check_nchw(self, OP)?;
        self.same_device(weight, OP)?;
        let [o, _, kh, kw] = check_weight(OP, weight, x[1], p.groups)?;
        let g = conv_window(OP, x, [kh, kw], p)?;
        let cols = self.im2col(&g)?;
        let w = weight.reshape(&[o, g.col_rows() / p.groups])?;
        grouped_matmul(&w, &cols, p.groups, false)?.reshape(&[g.n, o, g.oh, g.ow])
    }

    /// 2-D transposed convolution (the gradient of [`conv2d`](Self::conv2d) with respect
    /// to its input; Gluon's `Deconvolution`) of an `NCHW` input with an `[in_channels,
    /// out_channels / groups, kh, kw]` weight: `[n, out_channels, oh, ow]` where
    /// `oh = (h − 1)·stride − 2·pad + dilation·(kh − 1) + output_padding + 1`.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        p: &Conv2dParams,
        output_padding: [usize; 2],
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d";
        let [n, c, h, w] = check_nchw(self, OP)?;
        self.same_device(weight, OP)?;
        weight.expect_f32(OP)?;
        let &[wc, og, kh, kw] = weight.shape() else {
            return Err(shape_err(
                OP,
                format!(
                    "weight must be [in_channels, out_channels / groups, kh, kw], got {:?}",
                    weight.shape()
                ),
            ));
        };
        if wc != c {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: self.shape().to_vec(),
                rhs: weight.shape().to_vec(),
            });
        }
        check_positive(OP, "strides", p.strides)?;
        check_positive(OP, "dilation", p.dilation)?;
        check_positive(OP, "kernel size", [kh, kw])?;
        if p.groups == 0 || !c.is_multiple_of(p.groups) {
            return Err(Error::InvalidArgument(format!(
                "{OP}: groups = {} must divide the {c} input channels",
                p.groups
            )));
        }
        for a in 0..2 {
            if output_padding[a] >= p.strides[a].max(p.dilation[a]) {
                return Err(Error::InvalidArgument(format!(
                    "{OP}: output_padding {output_padding:?} must be smaller than the stride \
                     or the dilation ({:?}, {:?})",
                    p.strides, p.dilation
                )));
            }
        }
        // The output extent this input is the convolution result of.
        let extent = |len: usize, a: usize, k: usize| -> Result<usize> {
            ((len - 1) * p.strides[a] + p.dilation[a] * (k - 1) + output_padding[a] + 1)
                .checked_sub(2 * p.padding[a])
                .filter(|&e| e > 0)
                .ok_or_else(|| {
                    shape_err(
                        OP,
                        format!(
                            "padding {:?} leaves no output for input {:?}",
                            p.padding,
                            self.shape()
                        ),
                    )
                })
        };
        let (oh, ow) = (extent(h, 0, kh)?, extent(w, 1, kw)?);
        let o = og * p.groups;
        let g = Window2d {
            n,
            c: o,
            h: oh,
            w: ow,
            kh,
            kw,
            sh: p.strides[0],
            sw: p.strides[1],
            ph: p.padding[0],
            pw: p.padding[1],
            dh: p.dilation[0],
            dw: p.dilation[1],
            oh: h,
            ow: w,
        };
        // The forward convolution's output layout: [n, c, h·w].
        let x = self.reshape(&[n, c, h * w])?;
        let wt = weight.reshape(&[c, og * kh * kw])?;
        grouped_matmul(&wt, &x, p.groups, true)?.col2im(&g)
    }

    /// 2-D max pooling of an `NCHW` input (Gluon's `MaxPool2D`); padding never wins.
    pub fn max_pool2d(&self, p: &Pool2dParams) -> Result<Tensor> {
        self.pool2d(p, PoolKind::Max, "max_pool2d")
    }

    /// 2-D average pooling of an `NCHW` input (Gluon's `AvgPool2D`); with
    /// `count_include_pad` (Gluon's default) padding counts in the divisor.
    pub fn avg_pool2d(&self, p: &Pool2dParams, count_include_pad: bool) -> Result<Tensor> {
        self.pool2d(p, PoolKind::Avg { count_include_pad }, "avg_pool2d")
    }

    fn pool2d(&self, p: &Pool2dParams, kind: PoolKind, op: &'static str) -> Result<Tensor> {
        let [n, c, h, w] = check_nchw(self, op)?;
        check_positive(op, "pool size", p.kernel)?;
        check_positive(op, "strides", p.strides)?;
        for a in 0..2 {
            if 2 * p.padding[a] > p.kernel[a] {
                return Err(Error::InvalidArgument(format!(
                    "{op}: padding {:?} must be at most half the pool size {:?}",
                    p.padding, p.kernel
                )));
            }
        }
        let oh = out_extent(h, p.padding[0], p.kernel[0], p.strides[0], p.ceil_mode);
        let ow = out_extent(w, p.padding[1], p.kernel[1], p.strides[1], p.ceil_mode);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(shape_err(
                op,
                format!(
                    "pool size {:?} is larger than the padded input {:?}",
                    p.kernel,
                    self.shape()
                ),
            ));
        };
        // With ceil_mode the last window must still start inside the image or its left
        // padding (PyTorch's rule), so that no window is all padding.
        let fit = |o: usize, len: usize, a: usize| {
            if p.ceil_mode && (o - 1) * p.strides[a] >= len + p.padding[a] {
                o - 1
            } else {
                o
            }
        };
        let (oh, ow) = (fit(oh, h, 0), fit(ow, w, 1));
        let g = Window2d {
            n,
            c,
            h,
            w,
            kh: p.kernel[0],
            kw: p.kernel[1],
            sh: p.strides[0],
            sw: p.strides[1],
            ph: p.padding[0],
            pw: p.padding[1],
            dh: 1,
            dw: 1,
            oh,
            ow,
        };
        let storage = self.storage().pool2d(&g, kind)?;
        let rec = record(&[self], || Op::Pool2d {
            input: self.clone(),
            window: g,
            kind,
        });
        Ok(Tensor::from_storage(storage, vec![n, c, oh, ow], rec))
    }

    /// The receptive fields of an `NCHW` input as columns: `[n, c·kh·kw, oh·ow]`.
    pub(crate) fn im2col(&self, g: &Window2d) -> Result<Tensor> {
        let storage = self.storage().im2col(g)?;
        let rec = record(&[self], || Op::Im2col {
            input: self.clone(),
            window: *g,
        });
        Ok(Tensor::from_storage(
            storage,
            vec![g.n, g.col_rows(), g.col_width()],
            rec,
        ))
    }

    /// Columns summed back into the `NCHW` image they were taken from (adjoint of
    /// [`im2col`](Self::im2col)).
    pub(crate) fn col2im(&self, g: &Window2d) -> Result<Tensor> {
        let storage = self.storage().col2im(g)?;
        let rec = record(&[self], || Op::Col2im {
            cols: self.clone(),
            window: *g,
        });
        Ok(Tensor::from_storage(storage, vec![g.n, g.c, g.h, g.w], rec))
    }

    /// The gradient of [`pool2d`](Self::max_pool2d) with respect to its input `self`.
    pub(crate) fn pool2d_grad(
        &self,
        grad: &Tensor,
        g: &Window2d,
        kind: PoolKind,
    ) -> Result<Tensor> {
        let storage = Storage::pool2d_grad(&self.storage(), &grad.storage(), g, kind)?;
        Ok(Tensor::from_storage(storage, self.shape().to_vec(), None))
    }
}

/// `w · x[b]` for every image `b`, group by group: `w` is `[o, k]` (or `[k, o]` read
/// transposed when `trans_w`) per group, stacked along its first axis; `x` is
/// `[n, groups·k, cols]`; the result `[n, groups·o, cols]`.
fn grouped_matmul(w: &Tensor, x: &Tensor, groups: usize, trans_w: bool) -> Result<Tensor> {
    if groups == 1 {
        return w.matmul_t(x, trans_w, false);
    }
    let (wr, xr) = (w.shape()[0] / groups, x.shape()[1] / groups);
    let parts = (0..groups)
        .map(|gi| {
            let wg = w.slice_axis(0, gi * wr, (gi + 1) * wr)?;
            let xg = x.slice_axis(1, gi * xr, (gi + 1) * xr)?;
            wg.matmul_t(&xg, trans_w, false)
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Tensor> = parts.iter().collect();
    Tensor::concat(&refs, 1)
}
