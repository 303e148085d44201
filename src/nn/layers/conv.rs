//! `Conv1D`, `Conv2D` and `Conv2DTranspose`: convolutions over `NCW` / `NCHW` input.

use super::{check_rank, Activation};
use crate::error::{Error, Result};
use crate::nn::{Block, Forward, Initializer, Parameter};
use crate::tensor::{Conv2dParams, Tensor};

/// A 2-D convolution (Gluon's `Conv2D`, `NCHW` layout): `y = act(conv(x, W) + b)` with
/// `W: [channels, in_channels / groups, kh, kw]`. The input channel count is inferred at
/// the first forward pass unless [`in_channels`](Self::in_channels) fixes it.
///
/// ```
/// use boson::nn::{Activation, Conv2D, Forward, Initializer, Block};
/// use boson::{Device, Tensor};
///
/// let conv = Conv2D::new(6, [5, 5]).activation(Activation::Relu);
/// conv.initialize(&Initializer::xavier(3.0), Device::Cpu)?;
/// let y = conv.forward(&Tensor::zeros(&[2, 1, 28, 28], Device::Cpu)?)?;
/// assert_eq!(y.shape(), &[2, 6, 24, 24]);
/// # Ok::<(), boson::Error>(())
/// ```
#[derive(Block)]
pub struct Conv2D {
    /// `[channels, in_channels / groups, kh, kw]`
    pub weight: Parameter,
    /// `[channels]`, absent when `use_bias` is false.
    pub bias: Option<Parameter>,
    #[block(skip)]
    params: Conv2dParams,
    #[block(skip)]
    activation: Option<Activation>,
    #[block(skip)]
    channels: usize,
    #[block(skip)]
    in_channels: usize,
    #[block(skip)]
    kernel: [usize; 2],
}

impl Conv2D {
    /// `channels` output channels with a `kernel_size` window; stride 1, no padding,
    /// bias, no activation (Gluon's defaults).
    pub fn new(channels: usize, kernel_size: [usize; 2]) -> Conv2D {
        Conv2D {
            weight: Parameter::new(
                "weight",
                &[channels, 0, kernel_size[0], kernel_size[1]],
                None,
            ),
            bias: Some(Parameter::new("bias", &[channels], Some(Initializer::Zero))),
            params: Conv2dParams::default(),
            activation: None,
            channels,
            in_channels: 0,
            kernel: kernel_size,
        }
    }

    /// The weight for the current channel counts (`in_channels = 0`: inferred later).
    fn reshape_weight(mut self) -> Conv2D {
        let [kh, kw] = self.kernel;
        let cg = self.in_channels / self.params.groups.max(1);
        self.weight = Parameter::new("weight", &[self.channels, cg, kh, kw], None);
        self
    }

    /// Channel groups (must divide both channel counts).
    pub fn groups(mut self, groups: usize) -> Conv2D {
        self.params.groups = groups;
        self.reshape_weight()
    }

    /// Fixes the input channel count (no deferred initialisation).
    pub fn in_channels(mut self, in_channels: usize) -> Conv2D {
        self.in_channels = in_channels;
        self.reshape_weight()
    }
}

/// The builder methods `Conv1D` and `Conv2D` share: `$size` is a size in the layer's own
/// dimensions, `$to_2d` makes it the 2-D ops' `[height, width]` (a 1-D layer is a
/// height-1 image, with no padding above or below).
macro_rules! conv_builders {
    ($layer:ident, $size:ty, $to_2d:expr) => {
        impl $layer {
            /// Step between windows.
            pub fn strides(mut self, strides: $size) -> $layer {
                self.params.strides = $to_2d(strides, 1);
                self
            }

            /// Zeros added on each side of the input.
            pub fn padding(mut self, padding: $size) -> $layer {
                self.params.padding = $to_2d(padding, 0);
                self
            }

            /// Spacing between kernel taps.
            pub fn dilation(mut self, dilation: $size) -> $layer {
                self.params.dilation = $to_2d(dilation, 1);
                self
            }

            /// Applies an activation after the convolution.
            pub fn activation(mut self, act: Activation) -> $layer {
                self.activation = Some(act);
                self
            }

            /// Whether to add a bias (default true).
            pub fn use_bias(mut self, use_bias: bool) -> $layer {
                if !use_bias {
                    self.bias = None;
                }
                self
            }
        }
    };
}

conv_builders!(Conv2D, [usize; 2], |v: [usize; 2], _| v);
conv_builders!(Conv1D, usize, |v: usize, height: usize| [height, v]);

/// Checks the input's `c` channels split into `groups` and match a fixed
/// `in_channels` (0: inferred), before the weight's deferred shape is fixed from them.
fn check_channels(layer: &'static str, c: usize, in_channels: usize, groups: usize) -> Result<()> {
    if c == 0 || !c.is_multiple_of(groups) {
        return Err(Error::InvalidShape {
            op: layer,
            msg: format!("the input's {c} channels do not split into groups = {groups}"),
        });
    }
    if in_channels != 0 && in_channels != c {
        return Err(Error::InvalidShape {
            op: layer,
            msg: format!(
                "the input has {c} channels, the layer was built for in_channels = {in_channels}"
            ),
        });
    }
    Ok(())
}

/// Adds a `[channels]` bias over axis 1 and applies the activation.
fn finish(y: Tensor, bias: &Option<Parameter>, act: Option<Activation>) -> Result<Tensor> {
    let y = match bias {
        Some(b) => {
            let mut shape = vec![1; y.rank()];
            shape[1] = y.shape()[1];
            y.add(&b.data()?.reshape(&shape)?)?
        }
        None => y,
    };
    match act {
        Some(a) => a.apply(&y),
        None => Ok(y),
    }
}

impl Forward for Conv2D {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(x, 4, "Conv2D", "NCHW [batch, channels, height, width]")?;
        let groups = self.params.groups.max(1);
        let [kh, kw] = self.kernel;
        check_channels("Conv2D", x.shape()[1], self.in_channels, groups)?;
        self.weight
            .finish_deferred_init(&[self.channels, x.shape()[1] / groups, kh, kw])?;
        let bias = self.bias.as_ref().map(|b| b.data()).transpose()?;
        convolve(
            x,
            &self.weight.data()?,
            bias.as_ref(),
            &self.params,
            self.activation,
        )
    }
}

/// The convolution and its activation; a ReLU is fused into the convolution's op (one
/// pass over the output fewer, and its input never stored).
fn convolve(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv2dParams,
    act: Option<Activation>,
) -> Result<Tensor> {
    match act {
        Some(Activation::Relu) => x.conv2d_relu(w, bias, p),
        _ => finish(x.conv2d(w, bias, p)?, &None, act),
    }
}

/// A 1-D convolution (Gluon's `Conv1D`, `NCW` layout) with `W: [channels, in_channels /
/// groups, k]`: the 2-D convolution of a height-1 image.
#[derive(Block)]
pub struct Conv1D {
    /// `[channels, in_channels / groups, k]`
    pub weight: Parameter,
    /// `[channels]`, absent when `use_bias` is false.
    pub bias: Option<Parameter>,
    #[block(skip)]
    params: Conv2dParams,
    #[block(skip)]
    activation: Option<Activation>,
    #[block(skip)]
    channels: usize,
    #[block(skip)]
    in_channels: usize,
    #[block(skip)]
    kernel: usize,
}

impl Conv1D {
    /// `channels` output channels with a `kernel_size` window; stride 1, no padding.
    pub fn new(channels: usize, kernel_size: usize) -> Conv1D {
        Conv1D {
            weight: Parameter::new("weight", &[channels, 0, kernel_size], None),
            bias: Some(Parameter::new("bias", &[channels], Some(Initializer::Zero))),
            params: Conv2dParams::default(),
            activation: None,
            channels,
            in_channels: 0,
            kernel: kernel_size,
        }
    }

    /// The weight for the current channel counts (`in_channels = 0`: inferred later).
    fn reshape_weight(mut self) -> Conv1D {
        let cg = self.in_channels / self.params.groups.max(1);
        self.weight = Parameter::new("weight", &[self.channels, cg, self.kernel], None);
        self
    }

    /// Channel groups (must divide both channel counts).
    pub fn groups(mut self, groups: usize) -> Conv1D {
        self.params.groups = groups;
        self.reshape_weight()
    }

    /// Fixes the input channel count (no deferred initialisation).
    pub fn in_channels(mut self, in_channels: usize) -> Conv1D {
        self.in_channels = in_channels;
        self.reshape_weight()
    }
}

impl Forward for Conv1D {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(x, 3, "Conv1D", "NCW [batch, channels, width]")?;
        let (n, c, w) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let groups = self.params.groups.max(1);
        check_channels("Conv1D", c, self.in_channels, groups)?;
        self.weight
            .finish_deferred_init(&[self.channels, c / groups, self.kernel])?;
        let wt = self.weight.data()?;
        let ws = wt.shape().to_vec();
        let w4 = wt.reshape(&[ws[0], ws[1], 1, ws[2]])?;
        let bias = self.bias.as_ref().map(|b| b.data()).transpose()?;
        let x4 = x.reshape(&[n, c, 1, w])?;
        let y = convolve(&x4, &w4, bias.as_ref(), &self.params, self.activation)?;
        let (o, ow) = (y.shape()[1], y.shape()[3]);
        y.reshape(&[n, o, ow])
    }
}

/// A 2-D transposed convolution (Gluon's `Conv2DTranspose`, `NCHW` layout) with
/// `W: [in_channels, channels / groups, kh, kw]`: the gradient of a convolution with
/// respect to its input, which up-samples by the stride.
#[derive(Block)]
pub struct Conv2DTranspose {
    /// `[in_channels, channels / groups, kh, kw]`
    pub weight: Parameter,
    /// `[channels]`, absent when `use_bias` is false.
    pub bias: Option<Parameter>,
    #[block(skip)]
    params: Conv2dParams,
    #[block(skip)]
    output_padding: [usize; 2],
    #[block(skip)]
    activation: Option<Activation>,
    #[block(skip)]
    channels: usize,
    #[block(skip)]
    kernel: [usize; 2],
}

impl Conv2DTranspose {
    /// `channels` output channels with a `kernel_size` window; stride 1, no padding.
    pub fn new(channels: usize, kernel_size: [usize; 2]) -> Conv2DTranspose {
        Conv2DTranspose {
            weight: Parameter::new(
                "weight",
                &[0, channels, kernel_size[0], kernel_size[1]],
                None,
            ),
            bias: Some(Parameter::new("bias", &[channels], Some(Initializer::Zero))),
            params: Conv2dParams::default(),
            output_padding: [0, 0],
            activation: None,
            channels,
            kernel: kernel_size,
        }
    }

    /// Step between the input's pixels in the output (the up-sampling factor).
    pub fn strides(mut self, strides: [usize; 2]) -> Conv2DTranspose {
        self.params.strides = strides;
        self
    }

    /// Rows and columns removed from each side of the output.
    pub fn padding(mut self, padding: [usize; 2]) -> Conv2DTranspose {
        self.params.padding = padding;
        self
    }

    /// Extra rows and columns added at the end of the output (smaller than the stride or
    /// the dilation).
    pub fn output_padding(mut self, output_padding: [usize; 2]) -> Conv2DTranspose {
        self.output_padding = output_padding;
        self
    }

    /// Spacing between kernel taps.
    pub fn dilation(mut self, dilation: [usize; 2]) -> Conv2DTranspose {
        self.params.dilation = dilation;
        self
    }

    /// Channel groups (must divide both channel counts).
    pub fn groups(mut self, groups: usize) -> Conv2DTranspose {
        self.params.groups = groups;
        self.weight = Parameter::new(
            "weight",
            &[
                self.weight.shape()[0],
                self.channels / groups.max(1),
                self.kernel[0],
                self.kernel[1],
            ],
            None,
        );
        self
    }

    /// Fixes the input channel count (no deferred initialisation).
    pub fn in_channels(mut self, in_channels: usize) -> Conv2DTranspose {
        let s = self.weight.shape();
        self.weight = Parameter::new("weight", &[in_channels, s[1], s[2], s[3]], None);
        self
    }

    /// Applies an activation after the convolution.
    pub fn activation(mut self, act: Activation) -> Conv2DTranspose {
        self.activation = Some(act);
        self
    }

    /// Whether to add a bias (default true).
    pub fn use_bias(mut self, use_bias: bool) -> Conv2DTranspose {
        if !use_bias {
            self.bias = None;
        }
        self
    }
}

impl Forward for Conv2DTranspose {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(
            x,
            4,
            "Conv2DTranspose",
            "NCHW [batch, channels, height, width]",
        )?;
        let groups = self.params.groups.max(1);
        if !self.channels.is_multiple_of(groups)
            || x.shape()[1] == 0
            || !x.shape()[1].is_multiple_of(groups)
        {
            return Err(Error::InvalidShape {
                op: "Conv2DTranspose",
                msg: format!(
                    "{} output and {} input channels do not both split into groups = {groups}",
                    self.channels,
                    x.shape()[1]
                ),
            });
        }
        let s = self.weight.shape();
        self.weight
            .finish_deferred_init(&[x.shape()[1], s[1], s[2], s[3]])?;
        let y = x.conv_transpose2d(&self.weight.data()?, &self.params, self.output_padding)?;
        finish(y, &self.bias, self.activation)
    }
}
