//! [`ToTensor`] (image to `[C, H, W]` floats in `[0, 1]`) and [`Normalize`].

use super::ImageTransform;
use crate::data::vision::Image;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Gluon's `ToTensor`: an HWC [`Image`] of `u8` to an f32 [`Tensor`] `[C, H, W]`, each
/// value divided by 255.
///
/// ```
/// use boson::data::vision::transforms::{ImageTransform, ToTensor};
/// use boson::data::vision::Image;
///
/// // One pixel, RGB (0, 51, 255) → three 1 x 1 planes.
/// let t = ToTensor.apply(Image::new(1, 1, 3, vec![0, 51, 255])?)?;
/// assert_eq!(t.shape(), &[3, 1, 1]);
/// assert_eq!(t.to_vec_f32()?, vec![0.0, 0.2, 1.0]);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ToTensor;

impl ImageTransform<Image> for ToTensor {
    type Output = Tensor;

    fn apply(&self, image: Image) -> Result<Tensor> {
        let [height, width, channels] = image.shape();
        let plane = height * width;
        let data = image.data();
        let mut values = vec![0.0f32; data.len()];
        for c in 0..channels {
            let out = &mut values[c * plane..(c + 1) * plane];
            for (p, value) in out.iter_mut().enumerate() {
                *value = f32::from(data[p * channels + c]) / 255.0;
            }
        }
        Tensor::from_vec(values, &[channels, height, width])
    }
}

/// Gluon's `Normalize(mean, std)`: `(x - mean[c]) / std[c]` for each channel `c` of an
/// f32 tensor `[C, H, W]` (or `[N, C, H, W]`). One value stands for every channel; a
/// list must have one value per channel. The result is a new CPU tensor.
///
/// ```
/// use boson::data::vision::transforms::{ImageTransform, Normalize};
/// use boson::Tensor;
///
/// let x = Tensor::from_vec(vec![1.0, 3.0], &[2, 1, 1])?;
/// let y = Normalize::per_channel(vec![1.0, 1.0], vec![1.0, 4.0]).apply(x)?;
/// assert_eq!(y.to_vec_f32()?, vec![0.0, 0.5]);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// The same mean and standard deviation for every channel.
    pub fn new(mean: f32, std: f32) -> Normalize {
        Normalize {
            mean: vec![mean],
            std: vec![std],
        }
    }

    /// One mean and one standard deviation per channel (or one value for all). The
    /// counts are checked against the tensor's channels in [`apply`](Self::apply).
    pub fn per_channel(mean: Vec<f32>, std: Vec<f32>) -> Normalize {
        Normalize { mean, std }
    }

    /// The value of `list` (`what`) for channel `c` of `channels`.
    fn pick(list: &[f32], what: &str, channels: usize) -> Result<Vec<f32>> {
        match list.len() {
            1 => Ok(vec![list[0]; channels]),
            n if n == channels => Ok(list.to_vec()),
            n => Err(Error::InvalidArgument(format!(
                "Normalize: {n} {what} values for a tensor of {channels} channels \
                 (give 1 or {channels})"
            ))),
        }
    }
}

impl ImageTransform<Tensor> for Normalize {
    type Output = Tensor;

    fn apply(&self, x: Tensor) -> Result<Tensor> {
        let shape = x.shape().to_vec();
        if shape.len() != 3 && shape.len() != 4 {
            return Err(Error::InvalidShape {
                op: "Normalize",
                msg: format!("expected [C, H, W] or [N, C, H, W], got {shape:?}"),
            });
        }
        let channels = shape[shape.len() - 3];
        let mean = Self::pick(&self.mean, "mean", channels)?;
        let std = Self::pick(&self.std, "std", channels)?;
        if let Some(bad) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "Normalize: std {bad} must be finite and not 0"
            )));
        }
        let plane = shape[shape.len() - 2] * shape[shape.len() - 1];
        let mut values = x.to_vec_f32()?;
        if plane > 0 {
            for (i, chunk) in values.chunks_mut(plane).enumerate() {
                let (m, s) = (mean[i % channels], std[i % channels]);
                for v in chunk {
                    *v = (*v - m) / s;
                }
            }
        }
        Tensor::from_vec(values, &shape)
    }
}
