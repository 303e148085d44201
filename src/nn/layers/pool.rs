//! Pooling layers: `MaxPool1D/2D`, `AvgPool1D/2D` and the global poolings.

use super::check_rank;
use crate::error::Result;
use crate::nn::{Block, Forward};
use crate::tensor::{Pool2dParams, Tensor};

/// Which reduction a pooling layer applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduce {
    Max,
    Avg { count_include_pad: bool },
}

fn pool(x: &Tensor, p: &Pool2dParams, r: Reduce) -> Result<Tensor> {
    match r {
        Reduce::Max => x.max_pool2d(p),
        Reduce::Avg { count_include_pad } => x.avg_pool2d(p, count_include_pad),
    }
}

/// Pools a `NCW` input as a height-1 image.
fn pool1d(x: &Tensor, p: &Pool2dParams, r: Reduce, layer: &'static str) -> Result<Tensor> {
    check_rank(x, 3, layer, "NCW [batch, channels, width]")?;
    let (n, c, w) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let y = pool(&x.reshape(&[n, c, 1, w])?, p, r)?;
    let ow = y.shape()[3];
    y.reshape(&[n, c, ow])
}

macro_rules! pool2d_layer {
    ($(#[$doc:meta])* $name:ident, $reduce:expr) => {
        $(#[$doc])*
        #[derive(Block)]
        pub struct $name {
            #[block(skip)]
            params: Pool2dParams,
            #[block(skip)]
            reduce: Reduce,
        }

        impl $name {
            /// A `pool_size` window moved by its own size, no padding (Gluon's defaults).
            pub fn new(pool_size: [usize; 2]) -> $name {
                $name {
                    params: Pool2dParams::new(pool_size),
                    reduce: $reduce,
                }
            }

            /// Step between windows (default: the pool size).
            pub fn strides(mut self, strides: [usize; 2]) -> $name {
                self.params.strides = strides;
                self
            }

            /// Padding on each side (at most half the pool size).
            pub fn padding(mut self, padding: [usize; 2]) -> $name {
                self.params.padding = padding;
                self
            }

            /// Round the output size up instead of down.
            pub fn ceil_mode(mut self, ceil_mode: bool) -> $name {
                self.params.ceil_mode = ceil_mode;
                self
            }
        }

        impl Forward for $name {
            type Input = Tensor;
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                check_rank(x, 4, stringify!($name), "NCHW [batch, channels, height, width]")?;
                pool(x, &self.params, self.reduce)
            }
        }
    };
}

macro_rules! pool1d_layer {
    ($(#[$doc:meta])* $name:ident, $reduce:expr) => {
        $(#[$doc])*
        #[derive(Block)]
        pub struct $name {
            #[block(skip)]
            params: Pool2dParams,
            #[block(skip)]
            reduce: Reduce,
        }

        impl $name {
            /// A `pool_size` window moved by its own size, no padding (Gluon's defaults).
            pub fn new(pool_size: usize) -> $name {
                $name {
                    params: Pool2dParams::new([1, pool_size]),
                    reduce: $reduce,
                }
            }

            /// Step between windows (default: the pool size).
            pub fn strides(mut self, strides: usize) -> $name {
                self.params.strides = [1, strides];
                self
            }

            /// Padding on each side (at most half the pool size).
            pub fn padding(mut self, padding: usize) -> $name {
                self.params.padding = [0, padding];
                self
            }

            /// Round the output size up instead of down.
            pub fn ceil_mode(mut self, ceil_mode: bool) -> $name {
                self.params.ceil_mode = ceil_mode;
                self
            }
        }

        impl Forward for $name {
            type Input = Tensor;
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                pool1d(x, &self.params, self.reduce, stringify!($name))
            }
        }
    };
}

pool2d_layer!(
    /// 2-D max pooling (Gluon's `MaxPool2D`, `NCHW`): each window's largest value.
    MaxPool2D,
    Reduce::Max
);
pool2d_layer!(
    /// 2-D average pooling (Gluon's `AvgPool2D`, `NCHW`); padding counts in the divisor
    /// unless [`count_include_pad(false)`](Self::count_include_pad).
    AvgPool2D,
    Reduce::Avg {
        count_include_pad: true
    }
);
pool1d_layer!(
    /// 1-D max pooling (Gluon's `MaxPool1D`, `NCW`).
    MaxPool1D,
    Reduce::Max
);
pool1d_layer!(
    /// 1-D average pooling (Gluon's `AvgPool1D`, `NCW`); padding counts in the divisor
    /// unless [`count_include_pad(false)`](Self::count_include_pad).
    AvgPool1D,
    Reduce::Avg {
        count_include_pad: true
    }
);

macro_rules! count_include_pad {
    ($name:ident) => {
        impl $name {
            /// Whether padding positions count in the divisor (default true, as Gluon).
            pub fn count_include_pad(mut self, include: bool) -> $name {
                self.reduce = Reduce::Avg {
                    count_include_pad: include,
                };
                self
            }
        }
    };
}
count_include_pad!(AvgPool2D);
count_include_pad!(AvgPool1D);

/// The mean of each channel of an `NCHW` input: `[n, c, 1, 1]` (Gluon's
/// `GlobalAvgPool2D`).
#[derive(Block)]
pub struct GlobalAvgPool2D;

impl Forward for GlobalAvgPool2D {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(
            x,
            4,
            "GlobalAvgPool2D",
            "NCHW [batch, channels, height, width]",
        )?;
        x.mean_axes(&[2, 3], true)
    }
}

/// The maximum of each channel of an `NCHW` input: `[n, c, 1, 1]` (Gluon's
/// `GlobalMaxPool2D`).
#[derive(Block)]
pub struct GlobalMaxPool2D;

impl Forward for GlobalMaxPool2D {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(
            x,
            4,
            "GlobalMaxPool2D",
            "NCHW [batch, channels, height, width]",
        )?;
        // A pooling window over the whole image: the gradient goes to the first maximum,
        // as MaxPool2D's (max_axis would send it to every tied position).
        x.max_pool2d(&Pool2dParams::new([x.shape()[2], x.shape()[3]]))
    }
}
