//! [`ImageFolderDataset`]: one sub-folder of PNG and JPEG files per class, decoded in
//! `get`.

use std::fs;
use std::path::{Path, PathBuf};

use ::image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::image::{Image, MAX_IMAGE_PIXELS};
use crate::data::dataset::{out_of_range, Dataset};
use crate::error::{Error, Result};

/// The file extensions [`ImageFolderDataset`] reads, as Gluon's (any letter case).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// How [`ImageFolderDataset`] decodes, as Gluon's `flag` (0 gray, 1 color).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flag {
    /// One channel (flag 0): luma `0.299 R + 0.587 G + 0.114 B`, as OpenCV, which Gluon
    /// decodes with.
    Gray,
    /// Three channels, RGB (flag 1, the default); an alpha channel is dropped.
    #[default]
    Color,
}

/// Gluon's `ImageFolderDataset`: a folder with one sub-folder of images per class.
///
/// ```text
/// root/car/0001.png     → (image, 0)
/// root/car/0002.jpg     → (image, 0)
/// root/cat/cute.jpeg    → (image, 1)
/// ```
///
/// Class ids follow the sorted sub-folder names ([`synsets`](Self::synsets)); each
/// class's files are sorted by name. Only `.jpg`, `.jpeg` and `.png` files are
/// listed (the content decides the decoder); other files and entries are skipped, as in
/// Gluon. Files are decoded in [`get`](Dataset::get), into RGB by default
/// ([`Flag`]); an image of more than [`max_pixels`](Self::max_pixels) pixels (default
/// [`MAX_IMAGE_PIXELS`]) is an error naming the file and its size, found from its
/// header before decoding.
#[derive(Clone, Debug)]
pub struct ImageFolderDataset {
    root: PathBuf,
    synsets: Vec<String>,
    items: Vec<(PathBuf, i64)>,
    flag: Flag,
    max_pixels: usize,
}

impl ImageFolderDataset {
    /// Lists the classes and image files under `root` (decodes nothing yet).
    pub fn new(root: impl AsRef<Path>) -> Result<ImageFolderDataset> {
        let root = root.as_ref().to_path_buf();
        let mut synsets = Vec::new();
        for entry in list(&root)? {
            if entry.is_dir() {
                synsets.push(utf8_name(&entry)?);
            }
        }
        synsets.sort();
        let mut items = Vec::new();
        for (label, class) in synsets.iter().enumerate() {
            let mut files: Vec<PathBuf> = list(&root.join(class))?
                .into_iter()
                .filter(|path| path.is_file() && has_image_extension(path))
                .collect();
            files.sort();
            items.extend(files.into_iter().map(|path| (path, label as i64)));
        }
        Ok(ImageFolderDataset {
            root,
            synsets,
            items,
            flag: Flag::Color,
            max_pixels: MAX_IMAGE_PIXELS,
        })
    }

    /// Decode to gray or to RGB (Gluon's `flag`; default [`Flag::Color`]).
    pub fn flag(mut self, flag: Flag) -> Self {
        self.flag = flag;
        self
    }

    /// The most pixels (height × width) an image may have (default
    /// [`MAX_IMAGE_PIXELS`]).
    pub fn max_pixels(mut self, max_pixels: usize) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// The class names, sorted: class `i` is the sub-folder `synsets()[i]` (Gluon's
    /// `synsets`).
    pub fn synsets(&self) -> &[String] {
        &self.synsets
    }

    /// Every sample's file and class id, in sample order (Gluon's `items`).
    pub fn items(&self) -> &[(PathBuf, i64)] {
        &self.items
    }

    /// The folder the dataset was listed from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Decodes one file with this dataset's flag and size limit.
    fn decode(&self, path: &Path) -> Result<Image> {
        let image_error = |e: ::image::ImageError| Error::Format {
            path: path.to_path_buf(),
            msg: format!("could not decode the image: {e}"),
        };
        let mut reader = ImageReader::open(path)
            .and_then(ImageReader::with_guessed_format)
            .map_err(|e| Error::io(path, e))?;
        let mut limits = Limits::default();
        // Room for the largest allowed image at 8 bytes a pixel (16-bit RGBA).
        limits.max_alloc = Some((self.max_pixels as u64).saturating_mul(8).max(1 << 20));
        reader.limits(limits);
        let decoder = reader.into_decoder().map_err(image_error)?;
        let (width, height) = decoder.dimensions();
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels as u64 {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: format!(
                    "image of {width} x {height} = {pixels} pixels is larger than the limit \
                     of {} pixels (ImageFolderDataset::max_pixels)",
                    self.max_pixels
                ),
            });
        }
        let decoded = DynamicImage::from_decoder(decoder).map_err(image_error)?;
        let (channels, data) = match (self.flag, decoded) {
            (Flag::Color, decoded) => (3, decoded.into_rgb8().into_raw()),
            (Flag::Gray, DynamicImage::ImageLuma8(gray)) => (1, gray.into_raw()),
            (Flag::Gray, decoded) => (1, luma(&decoded.into_rgb8().into_raw())),
        };
        Image::new(height as usize, width as usize, channels, data)
    }
}

impl Dataset for ImageFolderDataset {
    type Item = (Image, i64);

    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize) -> Result<(Image, i64)> {
        let (path, label) = self
            .items
            .get(index)
            .ok_or_else(|| out_of_range("ImageFolderDataset", index, self.items.len()))?;
        Ok((self.decode(path)?, *label))
    }
}

/// The entries of a folder (errors name it).
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        paths.push(entry.map_err(|e| Error::io(dir, e))?.path());
    }
    Ok(paths)
}

/// A class folder's name, which must be UTF-8 to be a class name.
fn utf8_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::Data(format!(
                "class folder name is not UTF-8: {}",
                path.display()
            ))
        })
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

/// RGB to gray with OpenCV's fixed-point weights (0.299, 0.587, 0.114 in 14 bits, which
/// sum to 2^14, so a gray pixel stays the same).
fn luma(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            let y = 4899 * u32::from(p[0]) + 9617 * u32::from(p[1]) + 1868 * u32::from(p[2]);
            ((y + (1 << 13)) >> 14) as u8
        })
        .collect()
}
