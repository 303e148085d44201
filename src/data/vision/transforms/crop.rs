//! [`RandomCrop`] (with optional zero padding) and [`CenterCrop`].

use rand::RngExt;

use super::ImageTransform;
use crate::data::sample_rng;
use crate::data::vision::image::check_size;
use crate::data::vision::Image;
use crate::error::{Error, Result};

/// A `height` × `width` region at a random place, as torchvision's
/// `RandomCrop(size, padding)` (Gluon's `RandomCrop`): the image is first framed by
/// `padding` rows and columns of zeros on every side, then every offset that fits is
/// equally likely (drawn from [`sample_rng`]). A crop larger than the padded image is
/// an error naming both sizes.
///
/// ```
/// use boson::data::vision::transforms::{ImageTransform, RandomCrop};
/// use boson::data::vision::Image;
///
/// // CIFAR's augmentation: pad 32 x 32 by 4, crop 32 x 32.
/// let image = Image::new(32, 32, 3, vec![7; 32 * 32 * 3])?;
/// let out = RandomCrop::new(32, 32).padding(4).apply(image)?;
/// assert_eq!(out.shape(), [32, 32, 3]);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomCrop {
    height: usize,
    width: usize,
    padding: usize,
}

impl RandomCrop {
    /// Crops `height` × `width`, without padding.
    pub fn new(height: usize, width: usize) -> RandomCrop {
        RandomCrop {
            height,
            width,
            padding: 0,
        }
    }

    /// Pads every side with `padding` zeros before cropping.
    pub fn padding(mut self, padding: usize) -> RandomCrop {
        self.padding = padding;
        self
    }
}

impl ImageTransform<Image> for RandomCrop {
    type Output = Image;

    fn apply(&self, image: Image) -> Result<Image> {
        check_size("RandomCrop", self.height, self.width)?;
        let pad = self.padding;
        let padded_h = image.height().saturating_add(pad.saturating_mul(2));
        let padded_w = image.width().saturating_add(pad.saturating_mul(2));
        if self.height > padded_h || self.width > padded_w {
            return Err(Error::InvalidArgument(format!(
                "RandomCrop: cannot take {} x {} from a {} x {} image padded by {pad} \
                 ({padded_h} x {padded_w})",
                self.height,
                self.width,
                image.height(),
                image.width()
            )));
        }
        let mut rng = sample_rng();
        let top = rng.random_range(0..=padded_h - self.height) as i64 - pad as i64;
        let left = rng.random_range(0..=padded_w - self.width) as i64 - pad as i64;
        crop(&image, top, left, self.height, self.width)
    }
}

/// The `height` × `width` region at the middle of the image (Gluon's `CenterCrop`;
/// offsets rounded down). A crop larger than the image is an error naming both sizes.
///
/// ```
/// use boson::data::vision::transforms::{CenterCrop, ImageTransform};
/// use boson::data::vision::Image;
///
/// let image = Image::new(2, 4, 1, vec![0, 1, 2, 3, 4, 5, 6, 7])?;
/// assert_eq!(CenterCrop::new(2, 2).apply(image)?.data(), &[1, 2, 5, 6]);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CenterCrop {
    height: usize,
    width: usize,
}

impl CenterCrop {
    /// Crops `height` × `width`.
    pub fn new(height: usize, width: usize) -> CenterCrop {
        CenterCrop { height, width }
    }
}

impl ImageTransform<Image> for CenterCrop {
    type Output = Image;

    fn apply(&self, image: Image) -> Result<Image> {
        check_size("CenterCrop", self.height, self.width)?;
        if self.height > image.height() || self.width > image.width() {
            return Err(Error::InvalidArgument(format!(
                "CenterCrop: cannot take {} x {} from a {} x {} image",
                self.height,
                self.width,
                image.height(),
                image.width()
            )));
        }
        let top = (image.height() - self.height) / 2;
        let left = (image.width() - self.width) / 2;
        crop(&image, top as i64, left as i64, self.height, self.width)
    }
}

/// The `height` × `width` region whose top-left pixel is at (`top`, `left`) of
/// `image`; the parts outside the image (negative or past the edge) are zeros.
fn crop(image: &Image, top: i64, left: i64, height: usize, width: usize) -> Result<Image> {
    let [in_h, in_w, channels] = image.shape();
    let mut data = vec![0u8; height * width * channels];
    // The columns that overlap the image, the same for every row.
    let x_start = left.max(0);
    let x_end = (left + width as i64).min(in_w as i64);
    if x_start < x_end {
        let (x_start, x_end) = (x_start as usize, x_end as usize);
        let out_x = (x_start as i64 - left) as usize;
        let row_len = (x_end - x_start) * channels;
        for out_y in 0..height {
            let y = top + out_y as i64;
            if y < 0 || y >= in_h as i64 {
                continue;
            }
            let src = (y as usize * in_w + x_start) * channels;
            let dst = (out_y * width + out_x) * channels;
            data[dst..dst + row_len].copy_from_slice(&image.data()[src..src + row_len]);
        }
    }
    Image::new(height, width, channels, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_fills_outside_the_image_with_zeros() {
        // 2 x 2 image 1 2 / 3 4, cropped 3 x 3 from (-1, 0).
        let image = Image::new(2, 2, 1, vec![1, 2, 3, 4]).unwrap();
        let out = crop(&image, -1, 0, 3, 3).unwrap();
        assert_eq!(out.data(), &[0, 0, 0, 1, 2, 0, 3, 4, 0]);
    }
}
