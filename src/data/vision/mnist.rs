//! [`MNIST`] and [`FashionMNIST`]: the four IDX files of either, raw or gzip, in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::image::Image;
use crate::data::dataset::{out_of_range, Dataset};
use crate::error::{Error, Result};

/// The largest IDX file (after gunzip) that [`MNIST`] and [`FashionMNIST`] read:
/// 256 MiB. MNIST's training images are 47 MB; a longer file is refused, whatever its
/// header claims, before it fills memory.
pub const MAX_IDX_BYTES: usize = 256 << 20;

/// The magic number of an IDX file of unsigned bytes in 3 dimensions (images).
const IMAGES_MAGIC: u32 = 2051;
/// The magic number of an IDX file of unsigned bytes in 1 dimension (labels).
const LABELS_MAGIC: u32 = 2049;

const MNIST_HINT: &str = "MNIST reads the four IDX files of the MNIST distribution \
    (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, \
    t10k-labels-idx1-ubyte, raw or .gz); scripts/fetch-fashion-mnist.sh DIR writes \
    Fashion-MNIST's, in the same format";
const FASHION_HINT: &str = "scripts/fetch-fashion-mnist.sh DIR writes the four \
    Fashion-MNIST IDX files into DIR (default data/fashion-mnist)";

/// Gluon's `gluon.data.vision.MNIST`: handwritten digits, 60,000 training and 10,000
/// test samples of `(Image, label)`, each image 28 × 28 × 1.
///
/// `root` holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each raw or gzip (the name
/// with `.gz`; the content decides). The headers are checked: magic numbers 2051 and
/// 2049, a file length equal to what the header says (at most [`MAX_IDX_BYTES`]), and
/// as many labels as images. Errors name the file and the bad value. Images take
/// their size from the header (28 × 28 in MNIST); labels are stored as they are.
#[derive(Clone, Debug)]
pub struct MNIST {
    images: Vec<u8>,
    labels: Vec<u8>,
    height: usize,
    width: usize,
}

impl MNIST {
    /// Reads the training files (`train`) or the test files (`t10k`) under `root`.
    pub fn new(root: impl AsRef<Path>, train: bool) -> Result<MNIST> {
        read_split(root.as_ref(), train, MNIST_HINT)
    }

    /// Every label, in sample order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}

impl Dataset for MNIST {
    type Item = (Image, i64);

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<(Image, i64)> {
        let label = *self
            .labels
            .get(index)
            .ok_or_else(|| out_of_range("MNIST", index, self.labels.len()))?;
        let size = self.height * self.width;
        let pixels = self.images[index * size..(index + 1) * size].to_vec();
        Ok((
            Image::new(self.height, self.width, 1, pixels)?,
            i64::from(label),
        ))
    }
}

/// Gluon's `gluon.data.vision.FashionMNIST`: Zalando's clothing images, in the files
/// and layout of [`MNIST`] (60,000 training and 10,000 test samples, 28 × 28 × 1,
/// labels 0 to 9). `scripts/fetch-fashion-mnist.sh` writes the files.
#[derive(Clone, Debug)]
pub struct FashionMNIST(MNIST);

impl FashionMNIST {
    /// Reads the training files (`train`) or the test files (`t10k`) under `root`.
    pub fn new(root: impl AsRef<Path>, train: bool) -> Result<FashionMNIST> {
        read_split(root.as_ref(), train, FASHION_HINT).map(FashionMNIST)
    }

    /// Every label, in sample order.
    pub fn labels(&self) -> &[u8] {
        self.0.labels()
    }
}

impl Dataset for FashionMNIST {
    type Item = (Image, i64);

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, index: usize) -> Result<(Image, i64)> {
        self.0.get(index)
    }
}

/// Reads and checks one split's image and label files.
fn read_split(root: &Path, train: bool, hint: &str) -> Result<MNIST> {
    let prefix = if train { "train" } else { "t10k" };
    let images_path = find(root, &format!("{prefix}-images-idx3-ubyte"), hint)?;
    let labels_path = find(root, &format!("{prefix}-labels-idx1-ubyte"), hint)?;

    let mut images = read_file(&images_path, hint)?;
    let (count, height, width) = image_header(&images_path, &images, hint)?;
    let mut labels = read_file(&labels_path, hint)?;
    let label_count = label_header(&labels_path, &labels, hint)?;
    if count != label_count {
        return Err(format_error(
            &images_path,
            format!(
                "holds {count} images but {} holds {label_count} labels",
                labels_path.display()
            ),
            hint,
        ));
    }
    images.drain(..16);
    labels.drain(..8);
    Ok(MNIST {
        images,
        labels,
        height,
        width,
    })
}

/// `root/name` if it is a file, else `root/name.gz`.
fn find(root: &Path, name: &str, hint: &str) -> Result<PathBuf> {
    let raw = root.join(name);
    let gz = root.join(format!("{name}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(Error::Data(format!(
            "{} not found (nor {}); {hint}",
            raw.display(),
            gz.display()
        )))
    }
}

/// The whole file, gunzipped when it starts with gzip's magic bytes; longer than
/// [`MAX_IDX_BYTES`] is an error. The buffer grows with what is read, never to a size a
/// header claims.
fn read_file(path: &Path, hint: &str) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let limit = MAX_IDX_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    let read = if gzip {
        MultiGzDecoder::new(reader)
            .take(limit)
            .read_to_end(&mut bytes)
    } else {
        reader.take(limit).read_to_end(&mut bytes)
    };
    read.map_err(|e| format_error(path, format!("could not be read: {e}"), hint))?;
    if bytes.len() > MAX_IDX_BYTES {
        return Err(format_error(
            path,
            format!("holds more than MAX_IDX_BYTES ({MAX_IDX_BYTES}) bytes"),
            hint,
        ));
    }
    Ok(bytes)
}

/// (count, rows, columns) from an image file's header, checked against its length.
fn image_header(path: &Path, bytes: &[u8], hint: &str) -> Result<(usize, usize, usize)> {
    check_magic(path, bytes, 16, IMAGES_MAGIC, "images", hint)?;
    let [count, rows, cols] = [4, 8, 12].map(|at| be_u32(bytes, at) as u64);
    if rows == 0 || cols == 0 {
        return Err(format_error(
            path,
            format!("header says images of {rows} x {cols} pixels"),
            hint,
        ));
    }
    // Three u32 factors fit in a u128; 16 + that is compared with the real length.
    let expected = 16 + u128::from(count) * u128::from(rows) * u128::from(cols);
    if expected != bytes.len() as u128 {
        return Err(format_error(
            path,
            format!(
                "header says {count} images of {rows} x {cols} ({expected} bytes with the \
                 header) but the file holds {} bytes (truncated or not an IDX image file)",
                bytes.len()
            ),
            hint,
        ));
    }
    Ok((count as usize, rows as usize, cols as usize))
}

/// The label count from a label file's header, checked against its length.
fn label_header(path: &Path, bytes: &[u8], hint: &str) -> Result<usize> {
    check_magic(path, bytes, 8, LABELS_MAGIC, "labels", hint)?;
    let count = be_u32(bytes, 4) as usize;
    if 8 + count != bytes.len() {
        return Err(format_error(
            path,
            format!(
                "header says {count} labels ({} bytes with the header) but the file holds \
                 {} bytes (truncated or not an IDX label file)",
                8 + count,
                bytes.len()
            ),
            hint,
        ));
    }
    Ok(count)
}

/// Checks that the file starts with `magic` and holds a whole header.
fn check_magic(
    path: &Path,
    bytes: &[u8],
    header: usize,
    magic: u32,
    what: &str,
    hint: &str,
) -> Result<()> {
    if bytes.len() >= 4 && be_u32(bytes, 0) != magic {
        return Err(format_error(
            path,
            format!(
                "magic number {}, expected {magic} (IDX {what})",
                be_u32(bytes, 0)
            ),
            hint,
        ));
    }
    if bytes.len() < header {
        return Err(format_error(
            path,
            format!(
                "holds {} bytes, less than the {header}-byte header of IDX {what}",
                bytes.len()
            ),
            hint,
        ));
    }
    Ok(())
}

/// The big-endian `u32` at `bytes[at..at + 4]` (the caller checked the length).
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn format_error(path: &Path, msg: String, hint: &str) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: format!("{msg}; {hint}"),
    }
}
