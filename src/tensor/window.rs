//! Sliding windows over `NCHW` images: convolution and pooling.
//!
//! A convolution is `im2col` (each output pixel's receptive field laid out as one column
//! of a `[C·kh·kw, OH·OW]` matrix per image) and a GEMM with the `[O, C·kh·kw]` weight
//! per image, which leaves the result in `NCHW` order. It is recorded as one op, whose
//! gradients are two more such products: `col2im(wᵀ·dy)` for the input (`col2im` is
//! `im2col`'s adjoint) and `Σ dy·colsᵀ` for the weight. A transposed convolution is the
//! input-gradient product run forward. Pooling is its own primitive with its own
//! gradient. 1-D layers are the 2-D ones with a height of 1.

use super::cpu_window;
use super::grad::Op;
use super::ops::record;
use super::primitives::{PoolKind, Window2d};
use super::recording::pause;
use super::storage::{CpuStorage, Storage};
use super::Tensor;
use crate::device::Device;
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
    /// Round the output size up instead of down (PyTorch's `ceil_mode`: a last window
    /// that would start in the right padding is dropped, where MXNet's
    /// `pooling_convention='full'` keeps it; see docs/gluon-differences.md).
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

fn shape_err(op: &'static str, msg: String) -> Error {
    Error::InvalidShape { op, msg }
}

/// The output extent of one axis, or `None` when the window does not fit.
fn out_extent(len: usize, pad: usize, span: usize, stride: usize, ceil: bool) -> Option<usize> {
    let padded = len.checked_add(pad.checked_mul(2)?)?;
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

/// Every buffer a window op allocates (its output, and a convolution's columns on the
/// GPU) within the allocation limit, and its element count without overflow.
fn check_sizes(op: &'static str, g: &Window2d, out_channels: usize) -> Result<()> {
    let count = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let output = count(&[g.n, out_channels, g.oh, g.ow]);
    let cols = count(&[g.n, g.c, g.kh, g.kw, g.oh, g.ow]);
    // A transposed convolution's output is the window's input side.
    let image = count(&[g.n, g.c, g.h, g.w]);
    let (Some(output), Some(cols), Some(image)) = (output, cols, image) else {
        return Err(Error::InvalidArgument(format!(
            "{op}: the output [{}, {out_channels}, {}, {}], the image [{}, {}, {}, {}] or the \
             {}×{} columns overflow the address space",
            g.n, g.oh, g.ow, g.n, g.c, g.h, g.w, g.kh, g.kw
        )));
    };
    let what = || format!("{op} output [{}, {out_channels}, {}, {}]", g.n, g.oh, g.ow);
    super::check_alloc(output, 4, what)?;
    super::check_alloc(image, 4, || {
        format!("{op} image [{}, {}, {}, {}]", g.n, g.c, g.h, g.w)
    })?;
    super::check_alloc(cols, 4, || {
        format!("{op} columns ({}×{} per output pixel)", g.c, g.kh * g.kw)
    })
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
    let span = |k: usize, d: usize| d.saturating_mul(k - 1).saturating_add(1);
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
                "the {sph}×{spw} (dilated) kernel does not fit the padded {}×{} input of \
                 shape {x:?} (padding {:?})",
                h.saturating_add(p.padding[0].saturating_mul(2)),
                w.saturating_add(p.padding[1].saturating_mul(2)),
                p.padding
            ),
        ));
    };
    Ok(window([n, c, h, w], kernel, p, [oh, ow]))
}

/// The geometry of a `kernel` window with `p`'s strides, padding and dilation over an
/// `NCHW` input of `shape`, giving `out = [oh, ow]`.
fn window(shape: [usize; 4], kernel: [usize; 2], p: &Conv2dParams, out: [usize; 2]) -> Window2d {
    let [n, c, h, w] = shape;
    Window2d {
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
        oh: out[0],
        ow: out[1],
    }
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
    if cg.checked_mul(groups) != Some(c) {
        return Err(shape_err(
            op,
            format!(
                "the weight {:?} expects {cg} × {groups} groups = {} input channels, the \
                 input has {c}",
                weight.shape(),
                cg.saturating_mul(groups)
            ),
        ));
    }
    Ok([o, cg, kh, kw])
}

impl Tensor {
    /// 2-D convolution of an `NCHW` input with an `[out_channels, in_channels / groups,
    /// kh, kw]` weight and an optional `[out_channels]` bias (Gluon's `Convolution`,
    /// PyTorch's `F.conv2d`): `[n, out_channels, oh, ow]`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        self.conv2d_op(weight, bias, p, false)
    }

    /// `conv2d(..).relu()` as one op (Gluon's `Conv2D(activation='relu')`): on the CPU
    /// the ReLU is applied in the convolution's output pass, and the input to the ReLU
    /// is never stored; its gradient is taken from the output. Same values and gradients
    /// as the two ops.
    pub fn conv2d_relu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &Conv2dParams,
    ) -> Result<Tensor> {
        self.conv2d_op(weight, bias, p, true)
    }

    fn conv2d_op(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &Conv2dParams,
        relu: bool,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d";
        let x = check_nchw(self, OP)?;
        self.same_device(weight, OP)?;
        let [o, _, kh, kw] = check_weight(OP, weight, x[1], p.groups)?;
        if let Some(b) = bias {
            self.same_device(b, OP)?;
            b.expect_f32(OP)?;
            if b.shape() != [o] {
                return Err(Error::ShapeMismatch {
                    op: "conv2d bias vs [out_channels]",
                    lhs: b.shape().to_vec(),
                    rhs: vec![o],
                });
            }
        }
        let g = conv_window(OP, x, [kh, kw], p)?;
        check_sizes(OP, &g, o)?;
        let y = conv_forward(self, weight, bias, relu, &g, p.groups)?;
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let rec = record(&inputs, || Op::Conv2d {
            input: self.clone(),
            weight: weight.clone(),
            bias: bias.cloned(),
            relu,
            window: g,
            groups: p.groups,
        });
        Ok(y.share_storage(vec![g.n, o, g.oh, g.ow], rec))
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
            let full = (len - 1)
                .checked_mul(p.strides[a])
                .and_then(|v| v.checked_add(p.dilation[a].checked_mul(k - 1)?))
                .and_then(|v| v.checked_add(output_padding[a] + 1))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "{OP}: strides {:?} and dilation {:?} overflow the output size",
                        p.strides, p.dilation
                    ))
                })?;
            full.checked_sub(p.padding[a].saturating_mul(2))
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
        // The convolution whose input gradient this is: its input is our output.
        let g = window([n, o, oh, ow], [kh, kw], p, [h, w]);
        check_sizes(OP, &g, c)?;
        let y = conv_grad_input(self, weight, &g, p.groups)?;
        let rec = record(&[self, weight], || Op::ConvTranspose2d {
            input: self.clone(),
            weight: weight.clone(),
            window: g,
            groups: p.groups,
        });
        Ok(y.share_storage(vec![n, o, oh, ow], rec))
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
            if p.padding[a].saturating_mul(2) > p.kernel[a] {
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
        let conv = Conv2dParams {
            strides: p.strides,
            padding: p.padding,
            ..Default::default()
        };
        let g = window([n, c, h, w], p.kernel, &conv, [oh, ow]);
        check_sizes(op, &Window2d { kh: 1, kw: 1, ..g }, c)?;
        let storage = self.storage().pool2d(&g, kind)?;
        let rec = record(&[self], || Op::Pool2d {
            input: self.clone(),
            window: g,
            kind,
        });
        Ok(Tensor::from_storage(storage, vec![n, c, oh, ow], rec))
    }

    /// The receptive fields of an `NCHW` input as columns: `[n, c·kh·kw, oh·ow]`.
    fn im2col(&self, g: &Window2d) -> Result<Tensor> {
        let storage = self.storage().im2col(g)?;
        Ok(Tensor::from_storage(
            storage,
            vec![g.n, g.col_rows(), g.col_width()],
            None,
        ))
    }

    /// Columns summed back into the `NCHW` image they were taken from (adjoint of
    /// [`im2col`](Self::im2col)).
    fn col2im(&self, g: &Window2d) -> Result<Tensor> {
        let storage = self.storage().col2im(g)?;
        Ok(Tensor::from_storage(
            storage,
            vec![g.n, g.c, g.h, g.w],
            None,
        ))
    }

    /// The gradient of a max or average pooling with respect to its input `self`.
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

/// A convolution's three products, each run on the CPU as one fused primitive per image
/// (columns in a per-thread buffer, `cpu_window.rs`) and elsewhere composed from the
/// `im2col` / `col2im` primitives and batched matmul (cuBLAS on a GPU). None records:
/// `conv2d` and `conv_transpose2d` record themselves, and their gradient rules call these.
///
/// `y[n, o, oh, ow]` from `x[n, c, h, w]` and `w[o, c / groups, kh, kw]`, then
/// `max(y, 0)` with `relu`.
pub(crate) fn conv_forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    relu: bool,
    g: &Window2d,
    groups: usize,
) -> Result<Tensor> {
    let o = w.shape()[0];
    if x.device() == Device::Cpu {
        let b = bias.map(|b| b.storage());
        let y = cpu_window::conv2d(
            x.storage().cpu_f32("conv2d")?,
            w.storage().cpu_f32("conv2d")?,
            b.as_ref().map(|b| b.cpu_f32("conv2d")).transpose()?,
            relu,
            g,
            o,
            groups,
        );
        return Ok(cpu_tensor(y, vec![g.n, o, g.oh, g.ow]));
    }
    let y = composed_forward(x, w, bias, g, groups)?;
    if relu {
        return pause(|| y.relu());
    }
    Ok(y)
}

/// The bias's gradient: `dy[n, o, oh, ow]` summed over all but the channel axis.
pub(crate) fn conv_grad_bias(dy: &Tensor) -> Result<Tensor> {
    if dy.device() == Device::Cpu {
        let o = dy.shape()[1];
        let db =
            cpu_window::channel_sums(dy.storage().cpu_f32("conv2d bias gradient")?, dy.shape());
        return Ok(cpu_tensor(db, vec![o]));
    }
    pause(|| dy.sum_axes(&[0, 2, 3], false))
}

/// `dx[n, c, h, w]` from `dy[n, o, oh, ow]` and `w` (a transposed convolution).
pub(crate) fn conv_grad_input(
    dy: &Tensor,
    w: &Tensor,
    g: &Window2d,
    groups: usize,
) -> Result<Tensor> {
    let o = w.shape()[0];
    if dy.device() == Device::Cpu {
        let dx = cpu_window::conv2d_grad_input(
            dy.storage().cpu_f32("conv2d gradient")?,
            w.storage().cpu_f32("conv2d gradient")?,
            g,
            o,
            groups,
        );
        return Ok(cpu_tensor(dx, vec![g.n, g.c, g.h, g.w]));
    }
    composed_grad_input(dy, w, g, groups)
}

/// `dw[o, c / groups, kh, kw]` from `x[n, c, h, w]` and `dy[n, o, oh, ow]`.
pub(crate) fn conv_grad_weight(
    x: &Tensor,
    dy: &Tensor,
    g: &Window2d,
    groups: usize,
    w_shape: &[usize],
) -> Result<Tensor> {
    let o = w_shape[0];
    if x.device() == Device::Cpu {
        let dw = cpu_window::conv2d_grad_weight(
            x.storage().cpu_f32("conv2d gradient")?,
            dy.storage().cpu_f32("conv2d gradient")?,
            g,
            o,
            groups,
        );
        return Ok(cpu_tensor(dw, w_shape.to_vec()));
    }
    composed_grad_weight(x, dy, g, groups, w_shape)
}

fn cpu_tensor(values: Vec<f32>, shape: Vec<usize>) -> Tensor {
    Tensor::from_storage(Storage::Cpu(CpuStorage::F32(values)), shape, None)
}

/// [`conv_forward`] as `w · im2col(x) + b` per image.
fn composed_forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &Window2d,
    groups: usize,
) -> Result<Tensor> {
    let o = w.shape()[0];
    pause(|| {
        let cols = x.im2col(g)?;
        let w = w.reshape(&[o, g.col_rows() / groups])?;
        let y = grouped_matmul(&w, &cols, groups, false)?.reshape(&[g.n, o, g.oh, g.ow])?;
        match bias {
            Some(b) => y.add(&b.reshape(&[1, o, 1, 1])?),
            None => Ok(y),
        }
    })
}

/// [`conv_grad_input`] as `col2im(wᵀ · dy)` per image.
fn composed_grad_input(dy: &Tensor, w: &Tensor, g: &Window2d, groups: usize) -> Result<Tensor> {
    let o = w.shape()[0];
    pause(|| {
        let dy = dy.reshape(&[g.n, o, g.oh * g.ow])?;
        let w = w.reshape(&[o, g.col_rows() / groups])?;
        grouped_matmul(&w, &dy, groups, true)?.col2im(g)
    })
}

/// [`conv_grad_weight`] as `Σ_images dy · im2col(x)ᵀ`, group by group.
fn composed_grad_weight(
    x: &Tensor,
    dy: &Tensor,
    g: &Window2d,
    groups: usize,
    w_shape: &[usize],
) -> Result<Tensor> {
    let o = w_shape[0];
    pause(|| {
        let cols = x.im2col(g)?;
        let dy = dy.reshape(&[g.n, o, g.oh * g.ow])?;
        let (og, rows) = (o / groups, g.col_rows() / groups);
        let parts = (0..groups)
            .map(|gi| {
                let dyg = dy.slice_axis(1, gi * og, (gi + 1) * og)?;
                let cg = cols.slice_axis(1, gi * rows, (gi + 1) * rows)?;
                dyg.matmul_t(&cg, false, true)?.sum_axis(0, false)
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        Tensor::concat(&refs, 0)?.reshape(w_shape)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|i| crate::rng::uniform_hash(seed, i as u64) * 2.0 - 1.0)
            .collect();
        Tensor::from_vec(v, shape).unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what} [{i}]: {x} vs {y}"
            );
        }
    }

    /// The CPU's fused products against the composition the GPU runs (im2col, batched
    /// matmul, col2im), on the CPU, for every geometry option.
    #[test]
    fn fused_cpu_products_match_the_composed_ones() {
        let cases = [
            ([2, 3, 9, 8], [4, 3, 3, 3], Conv2dParams::default()),
            (
                [3, 4, 11, 10],
                [6, 2, 3, 2],
                Conv2dParams {
                    strides: [2, 1],
                    padding: [1, 2],
                    dilation: [2, 1],
                    groups: 2,
                },
            ),
            ([17, 1, 28, 28], [6, 1, 5, 5], Conv2dParams::default()),
            ([2, 70, 6, 6], [8, 70, 1, 1], Conv2dParams::default()),
        ];
        for (k, (xs, ws, p)) in cases.into_iter().enumerate() {
            let (x, w) = (values(&xs, k as u64), values(&ws, 10 + k as u64));
            let g = conv_window("test", xs, [ws[2], ws[3]], &p).unwrap();
            let b = values(&[ws[0]], 30 + k as u64);
            let y = conv_forward(&x, &w, Some(&b), false, &g, p.groups).unwrap();
            let want = composed_forward(&x, &w, Some(&b), &g, p.groups).unwrap();
            close(&y, &want, "forward");
            let y_relu = conv_forward(&x, &w, Some(&b), true, &g, p.groups).unwrap();
            close(&y_relu, &want.relu().unwrap(), "forward with ReLU");
            let y_relu = conv_forward(&x, &w, None, true, &g, p.groups).unwrap();
            let want = composed_forward(&x, &w, None, &g, p.groups).unwrap();
            close(&y_relu, &want.relu().unwrap(), "forward with ReLU, no bias");
            let dy = values(y.shape(), 20 + k as u64);
            close(
                &conv_grad_input(&dy, &w, &g, p.groups).unwrap(),
                &composed_grad_input(&dy, &w, &g, p.groups).unwrap(),
                "input gradient",
            );
            close(
                &conv_grad_bias(&dy).unwrap(),
                &dy.sum_axes(&[0, 2, 3], false).unwrap(),
                "bias gradient",
            );
            close(
                &conv_grad_weight(&x, &dy, &g, p.groups, &ws).unwrap(),
                &composed_grad_weight(&x, &dy, &g, p.groups, &ws).unwrap(),
                "weight gradient",
            );
        }
    }
}
