//! The two networks of the vision example: Gluon crash course's LeNet and a small
//! residual network (BasicBlocks with BatchNorm, as Gluon's model zoo `resnet18_v1`
//! builds them, at a width and depth for 28 × 28 images on a CPU).

use boson::nn::{
    Activation, BatchNorm, Block, Conv2D, Dense, Flatten, Forward, GlobalAvgPool2D, MaxPool2D,
    Sequential,
};
use boson::{Result, Tensor};

/// Gluon's crash-course LeNet: two convolutions with max pooling, three dense layers.
pub fn lenet() -> Sequential {
    Sequential::new()
        .add(Conv2D::new(6, [5, 5]).activation(Activation::Relu))
        .add(MaxPool2D::new([2, 2]).strides([2, 2]))
        .add(Conv2D::new(16, [3, 3]).activation(Activation::Relu))
        .add(MaxPool2D::new([2, 2]).strides([2, 2]))
        .add(Flatten)
        .add(Dense::new(120).activation(Activation::Relu))
        .add(Dense::new(84).activation(Activation::Relu))
        .add(Dense::new(10))
}

/// Two 3 × 3 convolutions with BatchNorm and a shortcut (a 1 × 1 convolution when the
/// shape changes): Gluon's `BasicBlockV1`.
#[derive(Block)]
pub struct BasicBlock {
    pub body: Sequential,
    pub downsample: Option<Sequential>,
}

impl BasicBlock {
    /// `channels` outputs; `stride` 2 halves the height and width.
    pub fn new(channels: usize, stride: usize, downsample: bool) -> BasicBlock {
        let conv = |s: usize| {
            Conv2D::new(channels, [3, 3])
                .strides([s, s])
                .padding([1, 1])
                .use_bias(false)
        };
        BasicBlock {
            body: Sequential::new()
                .add(conv(stride))
                .add(BatchNorm::new(0))
                .add(Activation::Relu)
                .add(conv(1))
                .add(BatchNorm::new(0)),
            downsample: downsample.then(|| {
                Sequential::new()
                    .add(
                        Conv2D::new(channels, [1, 1])
                            .strides([stride, stride])
                            .use_bias(false),
                    )
                    .add(BatchNorm::new(0))
            }),
        }
    }
}

impl Forward for BasicBlock {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        self.body.forward(x)?.add(&shortcut)?.relu()
    }
}

/// A residual network for 28 × 28 images: a 3 × 3 stem, three stages of one BasicBlock
/// each (16, 32, 64 channels; the last two halve the resolution), global average pooling
/// and a dense classifier (a ResNet-8, sized for a CPU).
pub fn resnet() -> Sequential {
    let mut net = Sequential::new()
        .add(Conv2D::new(16, [3, 3]).padding([1, 1]).use_bias(false))
        .add(BatchNorm::new(0))
        .add(Activation::Relu);
    for (stage, channels) in [16, 32, 64].into_iter().enumerate() {
        let stride = if stage == 0 { 1 } else { 2 };
        net = net.add(BasicBlock::new(channels, stride, stage > 0));
    }
    net.add(GlobalAvgPool2D).add(Flatten).add(Dense::new(10))
}
