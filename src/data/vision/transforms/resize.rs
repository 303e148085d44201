//! [`Resize`]: bilinear resampling to a fixed size or a fixed shorter edge.

use super::ImageTransform;
use crate::data::vision::image::check_size;
use crate::data::vision::Image;
use crate::error::Result;

/// Gluon's `Resize`: bilinear resampling with pixel centres aligned, as OpenCV's
/// `INTER_LINEAR`, which Gluon calls (values rounded to the nearest integer; OpenCV's
/// fixed-point arithmetic may differ by 1).
///
/// [`Resize::new`] gives an exact size; [`Resize::short_edge`] (Gluon's
/// `keep_ratio=True`) sets the shorter side and scales the other to keep the aspect
/// ratio, rounding down as Gluon does. A target of 0 pixels or more than
/// [`MAX_IMAGE_PIXELS`](crate::data::vision::MAX_IMAGE_PIXELS) is an error.
///
/// ```
/// use boson::data::vision::transforms::{ImageTransform, Resize};
/// use boson::data::vision::Image;
///
/// let image = Image::new(1, 2, 1, vec![0, 255])?;
/// assert_eq!(Resize::new(1, 4).apply(image)?.data(), &[0, 64, 191, 255]);
/// let wide = Image::new(20, 40, 3, vec![0; 20 * 40 * 3])?;
/// assert_eq!(Resize::short_edge(10).apply(wide)?.shape(), [10, 20, 3]);
/// # Ok::<(), boson::error::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize {
    target: Target,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Exact { height: usize, width: usize },
    ShortEdge(usize),
}

impl Resize {
    /// Resizes to `height` × `width`.
    pub fn new(height: usize, width: usize) -> Resize {
        Resize {
            target: Target::Exact { height, width },
        }
    }

    /// Resizes the shorter side to `size`, keeping the aspect ratio.
    pub fn short_edge(size: usize) -> Resize {
        Resize {
            target: Target::ShortEdge(size),
        }
    }

    /// The output size for an image of `height` × `width`.
    fn size_for(&self, height: usize, width: usize) -> (usize, usize) {
        match self.target {
            Target::Exact { height, width } => (height, width),
            // Gluon: h > w → (h * size / w, size), else (size, w * size / h), truncated.
            Target::ShortEdge(size) if height > width => {
                (height.saturating_mul(size) / width, size)
            }
            Target::ShortEdge(size) => (size, width.saturating_mul(size) / height),
        }
    }
}

impl ImageTransform<Image> for Resize {
    type Output = Image;

    fn apply(&self, image: Image) -> Result<Image> {
        let [in_h, in_w, channels] = image.shape();
        let (out_h, out_w) = self.size_for(in_h, in_w);
        check_size("Resize", out_h, out_w)?;
        if (out_h, out_w) == (in_h, in_w) {
            return Ok(image);
        }
        let rows = taps(out_h, in_h);
        let cols = taps(out_w, in_w);
        let src = image.data();
        let at = |y: usize, x: usize, c: usize| f32::from(src[(y * in_w + x) * channels + c]);
        let mut data = Vec::with_capacity(out_h * out_w * channels);
        for &(y0, y1, ty) in &rows {
            for &(x0, x1, tx) in &cols {
                for c in 0..channels {
                    let top = at(y0, x0, c) * (1.0 - tx) + at(y0, x1, c) * tx;
                    let bottom = at(y1, x0, c) * (1.0 - tx) + at(y1, x1, c) * tx;
                    let value = top * (1.0 - ty) + bottom * ty;
                    data.push(value.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Image::new(out_h, out_w, channels, data)
    }
}

/// For each of `out` positions, the two source positions it blends and the weight of
/// the second: centres aligned (`(d + 0.5) * in / out - 0.5`), clamped at the edges.
fn taps(out: usize, input: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f64 / out as f64;
    (0..out)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (f.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            (i0, i1, (f - i0 as f64) as f32)
        })
        .collect()
}
