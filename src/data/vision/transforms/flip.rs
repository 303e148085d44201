//! [`RandomFlipLeftRight`]: mirrors half of the images.

use rand::RngExt;

use super::ImageTransform;
use crate::data::sample_rng;
use crate::data::vision::Image;
use crate::error::Result;

/// Gluon's `RandomFlipLeftRight`: mirrors the image left to right with probability 1/2,
/// drawn from [`sample_rng`].
///
/// ```
/// use boson::data::vision::transforms::{ImageTransform, RandomFlipLeftRight};
/// use boson::data::vision::Image;
///
/// let image = Image::new(1, 2, 1, vec![1, 2])?;
/// let out = RandomFlipLeftRight.apply(image)?;
/// assert!(out.data() == [1, 2] || out.data() == [2, 1]);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomFlipLeftRight;

impl ImageTransform<Image> for RandomFlipLeftRight {
    type Output = Image;

    fn apply(&self, image: Image) -> Result<Image> {
        if sample_rng().random_bool(0.5) {
            flip_left_right(image)
        } else {
            Ok(image)
        }
    }
}

/// The mirror image: column `x` becomes column `width - 1 - x`.
fn flip_left_right(image: Image) -> Result<Image> {
    let [height, width, channels] = image.shape();
    let mut data = image.into_data();
    for row in data.chunks_exact_mut(width * channels) {
        for x in 0..width / 2 {
            let mirror = width - 1 - x;
            for c in 0..channels {
                row.swap(x * channels + c, mirror * channels + c);
            }
        }
    }
    Image::new(height, width, channels, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_mirrors_each_row_keeping_pixels_together() {
        let image = Image::new(2, 3, 2, (0..12).collect()).unwrap();
        let flipped = flip_left_right(image).unwrap();
        assert_eq!(flipped.data(), &[4, 5, 2, 3, 0, 1, 10, 11, 8, 9, 6, 7]);
    }
}
