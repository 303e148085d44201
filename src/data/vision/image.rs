//! [`Image`]: 8-bit pixels in height × width × channels order.

use crate::error::{Error, Result};

/// The most pixels (height × width) an image may have where boson makes or decodes one
/// (an [`ImageFolderDataset`](super::ImageFolderDataset) file, a
/// [`Resize`](super::transforms::Resize) target): 100 million, about 300 MB in RGB.
pub const MAX_IMAGE_PIXELS: usize = 100_000_000;

/// An image of `u8` pixels in HWC order (row by row, the channels of a pixel together),
/// as Gluon's image `NDArray`s: `data[(y * width + x) * channels + c]`.
///
/// ```
/// use boson::data::vision::Image;
///
/// let img = Image::new(1, 2, 3, vec![255, 0, 0, 0, 0, 255])?; // a red and a blue pixel
/// assert_eq!(img.pixel(0, 1), Some(&[0u8, 0, 255][..]));
/// assert_eq!(img.pixel(1, 0), None);
/// assert!(Image::new(2, 2, 1, vec![0; 3]).is_err());
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    height: usize,
    width: usize,
    channels: usize,
    data: Vec<u8>,
}

impl Image {
    /// An image from HWC pixels. Errors when a size is 0 or `data` does not hold
    /// exactly `height * width * channels` values; the message names the sizes.
    pub fn new(height: usize, width: usize, channels: usize, data: Vec<u8>) -> Result<Image> {
        if height == 0 || width == 0 || channels == 0 {
            return Err(Error::InvalidArgument(format!(
                "Image: height {height}, width {width} and channels {channels} must all be > 0"
            )));
        }
        let expected = height
            .checked_mul(width)
            .and_then(|n| n.checked_mul(channels));
        if expected != Some(data.len()) {
            return Err(Error::InvalidArgument(format!(
                "Image: {height} x {width} x {channels} needs {} values, got {}",
                expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(Image {
            height,
            width,
            channels,
            data,
        })
    }

    /// The number of rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The number of columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The values per pixel (1 gray, 3 RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// `[height, width, channels]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.height, self.width, self.channels]
    }

    /// The pixels, HWC.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Gives the pixels back.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The `channels` values of the pixel at row `y`, column `x`; `None` outside.
    pub fn pixel(&self, y: usize, x: usize) -> Option<&[u8]> {
        if y >= self.height || x >= self.width {
            return None;
        }
        let start = (y * self.width + x) * self.channels;
        Some(&self.data[start..start + self.channels])
    }
}

/// Checks an output size a transform was given: both sides > 0 and at most
/// [`MAX_IMAGE_PIXELS`] pixels (errors name `op` and the size).
pub(crate) fn check_size(op: &str, height: usize, width: usize) -> Result<()> {
    if height == 0 || width == 0 {
        return Err(Error::InvalidArgument(format!(
            "{op}: size {height} x {width} must be at least 1 x 1"
        )));
    }
    if height.saturating_mul(width) > MAX_IMAGE_PIXELS {
        return Err(Error::InvalidArgument(format!(
            "{op}: size {height} x {width} is more than MAX_IMAGE_PIXELS ({MAX_IMAGE_PIXELS}) pixels"
        )));
    }
    Ok(())
}
