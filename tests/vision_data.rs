//! `boson::data::vision`, used as a user would: MNIST-format files, image folders,
//! transforms, and seeded augmentation through the DataLoader.

#[path = "common/skip.rs"]
#[macro_use]
mod skip;

use std::io::Write;
use std::path::{Path, PathBuf};

use boson::data::vision::transforms::{
    CenterCrop, Compose, ImageTransform, Normalize, RandomCrop, RandomFlipLeftRight, Resize,
    ToTensor,
};
use boson::data::vision::{FashionMNIST, Flag, Image, ImageFolderDataset, MNIST};
use boson::data::{DataLoader, Dataset, SimpleDataset, Stack};
use boson::error::{Error, Result};
use boson::Tensor;
use flate2::write::GzEncoder;
use flate2::Compression;

// ---------------------------------------------------------------------------------------
// MNIST-format files

/// An IDX image file: magic 2051, count, rows, cols, then the pixels.
fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [2051, count, rows, cols] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    bytes
}

/// An IDX label file: magic 2049, count, then the labels.
fn idx_labels(count: u32, labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [2049, count] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Pixel `p` of image `i` in the generated files.
fn pixel(i: usize, p: usize) -> u8 {
    (i * 50 + p % 13) as u8
}

/// Three 28 x 28 images labelled 3, 1, 4.
fn three_images() -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..3)
        .flat_map(|i| (0..784).map(move |p| pixel(i, p)))
        .collect();
    (idx_images(3, 28, 28, &pixels), idx_labels(3, &[3, 1, 4]))
}

/// A folder with the training split raw and the test split gzipped.
fn mnist_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = three_images();
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    dir
}

#[test]
fn mnist_reads_raw_and_gzipped_idx_files() {
    let dir = mnist_folder();
    for train in [true, false] {
        let ds = MNIST::new(dir.path(), train).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.labels(), &[3, 1, 4]);
        let (image, label) = ds.get(1).unwrap();
        assert_eq!(label, 1);
        assert_eq!(image.shape(), [28, 28, 1]);
        let expected: Vec<u8> = (0..784).map(|p| pixel(1, p)).collect();
        assert_eq!(image.data(), &expected[..]);
        assert!(matches!(
            ds.get(3),
            Err(Error::IndexOutOfRange {
                index: 3,
                size: 3,
                ..
            })
        ));
    }
    let fashion = FashionMNIST::new(dir.path(), false).unwrap();
    assert_eq!(fashion.len(), 3);
    assert_eq!(fashion.get(2).unwrap().1, 4);
}

#[test]
fn a_gzipped_file_without_gz_in_its_name_is_read_by_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = three_images();
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), gzip(&images)).unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), labels).unwrap();
    assert_eq!(MNIST::new(dir.path(), true).unwrap().len(), 3);
}

/// The error of loading the training split of a folder holding `images` and `labels`.
fn train_error(images: &[u8], labels: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte.gz"), gzip(labels)).unwrap();
    let err = FashionMNIST::new(dir.path(), true).expect_err("bad files must not load");
    err.to_string()
}

#[test]
fn missing_files_are_named_with_the_fetch_script() {
    let dir = tempfile::tempdir().unwrap();
    let msg = FashionMNIST::new(dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("scripts/fetch-fashion-mnist.sh"), "{msg}");
    let msg = MNIST::new(dir.path().join("nowhere"), true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("scripts/fetch-fashion-mnist.sh"), "{msg}");
}

#[test]
fn a_wrong_magic_number_is_named_with_the_file() {
    let (images, labels) = three_images();
    // A label file where the images should be.
    let msg = train_error(&labels, &labels);
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("magic number 2049, expected 2051"), "{msg}");
    let msg = train_error(&images, &images);
    assert!(msg.contains("train-labels-idx1-ubyte.gz"), "{msg}");
    assert!(msg.contains("magic number 2051, expected 2049"), "{msg}");
    assert!(msg.contains("scripts/fetch-fashion-mnist.sh"), "{msg}");
}

#[test]
fn a_truncated_file_or_a_lying_header_is_an_error_not_an_allocation() {
    let (images, labels) = three_images();
    // Truncated: one image short.
    let msg = train_error(&images[..images.len() - 784], &labels);
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("header says 3 images of 28 x 28"), "{msg}");
    assert!(
        msg.contains(&format!("holds {} bytes", images.len() - 784)),
        "{msg}"
    );
    // A header claiming 2^32 - 1 images of (2^32 - 1)^2 pixels over the same bytes.
    let mut lying = images.clone();
    lying[4..16].copy_from_slice(&[0xff; 12]);
    let msg = train_error(&lying, &labels);
    assert!(
        msg.contains("header says 4294967295 images of 4294967295 x 4294967295"),
        "{msg}"
    );
    // Extra bytes after the data.
    let mut longer = images.clone();
    longer.push(0);
    assert!(train_error(&longer, &labels).contains("holds 2369 bytes"));
    // Shorter than a header, and zero-sized images.
    assert!(train_error(&images[..10], &labels).contains("less than the 16-byte header"));
    assert!(train_error(&idx_images(0, 0, 28, &[]), &idx_labels(0, &[])).contains("0 x 28"));
    // A label file with fewer labels than its header says.
    let msg = train_error(&images, &idx_labels(3, &[1, 2]));
    assert!(msg.contains("train-labels-idx1-ubyte.gz"), "{msg}");
    assert!(msg.contains("header says 3 labels"), "{msg}");
}

#[test]
fn image_and_label_counts_must_agree() {
    let (images, _) = three_images();
    let msg = train_error(&images, &idx_labels(2, &[1, 2]));
    assert!(msg.contains("holds 3 images but"), "{msg}");
    assert!(
        msg.contains("train-labels-idx1-ubyte.gz holds 2 labels"),
        "{msg}"
    );
}

#[test]
fn a_truncated_gzip_stream_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = three_images();
    let packed = gzip(&images);
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte.gz"),
        &packed[..packed.len() / 2],
    )
    .unwrap();
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), labels).unwrap();
    let msg = MNIST::new(dir.path(), false).unwrap_err().to_string();
    assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");
}

// ---------------------------------------------------------------------------------------
// ImageFolderDataset

fn save_rgb(path: &Path, width: u32, height: u32, rgb: [u8; 3]) {
    let data: Vec<u8> = (0..width * height).flat_map(|_| rgb).collect();
    image::RgbImage::from_raw(width, height, data)
        .unwrap()
        .save(path)
        .unwrap();
}

/// root/cat/{b.png, a.JPG, notes.txt, nested/}, root/ant/x.png, root/readme.md.
fn image_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for class in ["cat", "ant", "cat/nested"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    // PNG: a 3 x 2 image whose pixels differ, so the layout is checked.
    let pixels: Vec<u8> = (0..6u8).flat_map(|i| [i * 10, 200, 30]).collect();
    image::RgbImage::from_raw(3, 2, pixels)
        .unwrap()
        .save(root.join("cat/b.png"))
        .unwrap();
    let jpeg = image::RgbImage::from_raw(8, 4, [0u8, 0, 255].repeat(32)).unwrap();
    jpeg.save_with_format(root.join("cat/a.JPG"), image::ImageFormat::Jpeg)
        .unwrap();
    save_rgb(&root.join("ant/x.png"), 4, 4, [9, 9, 9]);
    save_rgb(&root.join("cat/nested/deep.png"), 1, 1, [1, 1, 1]);
    std::fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("readme.md"), "not a class").unwrap();
    dir
}

#[test]
fn image_folder_lists_classes_in_sorted_order_and_decodes_in_get() {
    let dir = image_folder();
    let ds = ImageFolderDataset::new(dir.path()).unwrap();
    assert_eq!(ds.synsets(), &["ant".to_string(), "cat".to_string()]);
    let files: Vec<(String, i64)> = ds
        .items()
        .iter()
        .map(|(p, l)| (p.file_name().unwrap().to_string_lossy().into_owned(), *l))
        .collect();
    let expected = [("x.png", 0), ("a.JPG", 1), ("b.png", 1)];
    assert_eq!(files, expected.map(|(f, l)| (f.to_string(), l)));

    let (gray, label) = ds.get(0).unwrap();
    assert_eq!((gray.shape(), label), ([4, 4, 3], 0));
    assert!(gray.data().iter().all(|&v| v == 9));

    let (jpeg, _) = ds.get(1).unwrap();
    assert_eq!(jpeg.shape(), [4, 8, 3]);
    let blue = jpeg.pixel(1, 3).unwrap();
    assert!(blue[0] < 10 && blue[1] < 10 && blue[2] > 245, "{blue:?}");

    let (png, label) = ds.get(2).unwrap();
    assert_eq!((png.shape(), label), ([2, 3, 3], 1));
    assert_eq!(png.pixel(1, 2), Some(&[50, 200, 30][..])); // pixel 5 of the row-major list
    assert!(matches!(ds.get(3), Err(Error::IndexOutOfRange { .. })));
}

#[test]
fn image_folder_gray_flag_uses_opencv_luma() {
    let dir = image_folder();
    let ds = ImageFolderDataset::new(dir.path())
        .unwrap()
        .flag(Flag::Gray);
    let (png, _) = ds.get(2).unwrap();
    assert_eq!(png.shape(), [2, 3, 1]);
    let luma = |r: f64, g: f64, b: f64| (0.299 * r + 0.587 * g + 0.114 * b).round() as u8;
    let expected: Vec<u8> = (0..6).map(|i| luma(i as f64 * 10.0, 200.0, 30.0)).collect();
    assert_eq!(png.data(), &expected[..]);
    // A gray pixel stays the same.
    assert!(ds.get(0).unwrap().0.data().iter().all(|&v| v == 9));
}

#[test]
fn image_folder_errors_name_the_file() {
    let dir = image_folder();
    let ds = ImageFolderDataset::new(dir.path()).unwrap().max_pixels(15);
    let msg = ds.get(0).unwrap_err().to_string();
    assert!(
        msg.contains("x.png") && msg.contains("4 x 4 = 16 pixels"),
        "{msg}"
    );
    assert!(msg.contains("limit of 15 pixels"), "{msg}");
    assert!(ds.get(2).is_ok(), "6 pixels are under the limit");

    std::fs::write(dir.path().join("ant/x.png"), b"not a png at all").unwrap();
    let msg = ds.get(0).unwrap_err().to_string();
    assert!(msg.contains("x.png"), "{msg}");

    let missing = dir.path().join("no-such-folder");
    let msg = ImageFolderDataset::new(&missing).unwrap_err().to_string();
    assert!(msg.contains("no-such-folder"), "{msg}");
}

// ---------------------------------------------------------------------------------------
// Transforms

fn gray(height: usize, width: usize, data: &[u8]) -> Image {
    Image::new(height, width, 1, data.to_vec()).unwrap()
}

#[test]
fn image_checks_its_sizes() {
    let msg = Image::new(2, 3, 3, vec![0; 17]).unwrap_err().to_string();
    assert!(msg.contains("2 x 3 x 3 needs 18 values, got 17"), "{msg}");
    assert!(Image::new(0, 3, 1, vec![]).is_err());
    assert!(Image::new(usize::MAX, 2, 1, vec![]).is_err());
}

#[test]
fn to_tensor_makes_chw_floats_in_0_1() {
    // 1 x 2 RGB: (0, 51, 102) and (153, 204, 255).
    let image = Image::new(1, 2, 3, vec![0, 51, 102, 153, 204, 255]).unwrap();
    let t = ToTensor.apply(image).unwrap();
    assert_eq!(t.shape(), &[3, 1, 2]);
    assert_eq!(t.to_vec_f32().unwrap(), vec![0.0, 0.6, 0.2, 0.8, 0.4, 1.0]);
}

#[test]
fn normalize_per_channel_and_for_all_channels() {
    let x = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], &[2, 1, 2]).unwrap();
    let all = Normalize::new(1.0, 2.0).apply(x.clone()).unwrap();
    assert_eq!(all.to_vec_f32().unwrap(), vec![-0.5, 0.0, 0.5, 1.0]);
    let each = Normalize::per_channel(vec![0.0, 2.0], vec![1.0, 0.5]);
    assert_eq!(
        each.apply(x.clone()).unwrap().to_vec_f32().unwrap(),
        vec![0.0, 1.0, 0.0, 2.0]
    );
    // A batch [N, C, H, W] normalises each sample's channels.
    let batch = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], &[2, 2, 1, 1]).unwrap();
    assert_eq!(
        each.apply(batch).unwrap().to_vec_f32().unwrap(),
        vec![0.0, -2.0, 2.0, 2.0]
    );

    let three = Normalize::per_channel(vec![0.5; 3], vec![0.25; 3]);
    let msg = three.apply(x.clone()).unwrap_err().to_string();
    assert!(
        msg.contains("3 mean values for a tensor of 2 channels"),
        "{msg}"
    );
    let msg = Normalize::new(0.0, 0.0)
        .apply(x.clone())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("std 0"), "{msg}");
    let flat = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
    assert!(Normalize::new(0.0, 1.0).apply(flat).is_err());
}

#[test]
fn random_flip_gives_the_image_or_its_mirror_with_both_seen() {
    let image = gray(2, 3, &[1, 2, 3, 4, 5, 6]);
    boson::rng::seed(11);
    let outs: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            RandomFlipLeftRight
                .apply(image.clone())
                .unwrap()
                .into_data()
        })
        .collect();
    let flipped = vec![3, 2, 1, 6, 5, 4];
    assert!(outs.iter().all(|o| *o == image.data() || *o == flipped));
    let count = outs.iter().filter(|o| **o == flipped).count();
    assert!((16..=48).contains(&count), "{count} of 64 flipped");
    // Outside a loader the thread's seed fixes the draws.
    boson::rng::seed(11);
    let again: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            RandomFlipLeftRight
                .apply(image.clone())
                .unwrap()
                .into_data()
        })
        .collect();
    assert_eq!(outs, again);
}

/// `image` framed by `pad` zeros on every side.
fn padded(image: &Image, pad: usize) -> Image {
    let [h, w, c] = image.shape();
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut data = vec![0u8; ph * pw * c];
    for y in 0..h {
        for x in 0..w {
            let dst = ((y + pad) * pw + x + pad) * c;
            data[dst..dst + c].copy_from_slice(image.pixel(y, x).unwrap());
        }
    }
    Image::new(ph, pw, c, data).unwrap()
}

/// Every `height` x `width` window of `image`.
fn windows(image: &Image, height: usize, width: usize) -> Vec<Vec<u8>> {
    let [h, w, _] = image.shape();
    let mut all = Vec::new();
    for top in 0..=h - height {
        for left in 0..=w - width {
            let mut window = Vec::new();
            for y in top..top + height {
                for x in left..left + width {
                    window.extend_from_slice(image.pixel(y, x).unwrap());
                }
            }
            all.push(window);
        }
    }
    all
}

#[test]
fn random_crop_takes_a_window_of_the_zero_padded_image() {
    let image = Image::new(3, 4, 2, (1..=24).collect()).unwrap();
    assert_eq!(RandomCrop::new(3, 4).apply(image.clone()).unwrap(), image);

    let crop = RandomCrop::new(3, 3).padding(2);
    let allowed = windows(&padded(&image, 2), 3, 3);
    boson::rng::seed(4);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let out = crop.apply(image.clone()).unwrap();
        assert_eq!(out.shape(), [3, 3, 2]);
        assert!(allowed.contains(&out.data().to_vec()));
        seen.insert(out.into_data());
    }
    assert!(seen.len() > 10, "only {} different crops", seen.len());

    let msg = RandomCrop::new(8, 3)
        .padding(2)
        .apply(image.clone())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot take 8 x 3 from a 3 x 4 image padded by 2 (7 x 8)"),
        "{msg}"
    );
    assert!(RandomCrop::new(0, 2).apply(image).is_err());
}

#[test]
fn center_crop_takes_the_middle_rounding_down() {
    let image = gray(3, 4, &(0..12).collect::<Vec<u8>>());
    assert_eq!(
        CenterCrop::new(1, 2).apply(image.clone()).unwrap().data(),
        &[5, 6]
    );
    // Offsets (3 - 2) / 2 = 0 and (4 - 1) / 2 = 1.
    assert_eq!(
        CenterCrop::new(2, 1).apply(image.clone()).unwrap().data(),
        &[1, 5]
    );
    let msg = CenterCrop::new(4, 4).apply(image).unwrap_err().to_string();
    assert!(
        msg.contains("cannot take 4 x 4 from a 3 x 4 image"),
        "{msg}"
    );
}

#[test]
fn resize_is_bilinear_with_centres_aligned() {
    // Upsampling 0, 255 by 2: the inner samples sit 1/4 and 3/4 of the way.
    let up = Resize::new(1, 4).apply(gray(1, 2, &[0, 255])).unwrap();
    assert_eq!(up.data(), &[0, 64, 191, 255]);
    // Halving averages 2 x 2 blocks.
    let four: Vec<u8> = vec![
        0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150,
    ];
    let half = Resize::new(2, 2).apply(gray(4, 4, &four)).unwrap();
    assert_eq!(half.data(), &[25, 45, 105, 125]);
    // Channels stay apart; the same size is the same image.
    let rgb = Image::new(1, 1, 3, vec![10, 20, 30]).unwrap();
    let big = Resize::new(2, 2).apply(rgb.clone()).unwrap();
    assert_eq!(big.data(), &[10, 20, 30].repeat(4)[..]);
    assert_eq!(Resize::new(1, 1).apply(rgb.clone()).unwrap(), rgb);
    // The shorter edge, as Gluon's keep_ratio: 30 x 20 → 15 x 10, 20 x 30 → 10 x 15.
    let tall = Image::new(30, 20, 1, vec![0; 600]).unwrap();
    assert_eq!(
        Resize::short_edge(10).apply(tall).unwrap().shape(),
        [15, 10, 1]
    );
    let wide = Image::new(20, 30, 1, vec![0; 600]).unwrap();
    assert_eq!(
        Resize::short_edge(10).apply(wide).unwrap().shape(),
        [10, 15, 1]
    );
    let msg = Resize::new(0, 3)
        .apply(rgb.clone())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Resize: size 0 x 3"), "{msg}");
    assert!(Resize::new(1 << 20, 1 << 20).apply(rgb).is_err());
}

#[test]
fn compose_chains_steps_and_closures() {
    let image = gray(3, 3, &[0, 0, 0, 0, 255, 51, 0, 0, 0]);
    let pipeline = Compose::new(CenterCrop::new(1, 2), ToTensor).then(Normalize::new(0.5, 0.5));
    let t = pipeline.apply(image.clone()).unwrap();
    assert_eq!(t.shape(), &[1, 1, 2]);
    assert_eq!(t.to_vec_f32().unwrap(), vec![-1.0, 1.0]); // row 1, columns 0 and 1

    let doubled = ToTensor.then(|t: Tensor| t.mul_scalar(2.0));
    assert_eq!(
        doubled
            .apply(gray(1, 1, &[51]))
            .unwrap()
            .to_vec_f32()
            .unwrap(),
        vec![0.4]
    );

    // An error from any step comes out of the chain.
    assert!(CenterCrop::new(5, 5).then(ToTensor).apply(image).is_err());
}

#[test]
fn stacking_image_tensors_gives_nchw_and_names_a_mismatch() {
    let a = Tensor::from_vec(vec![1.0, 2.0], &[1, 1, 2]).unwrap();
    let b = Tensor::from_vec(vec![3.0, 4.0], &[1, 1, 2]).unwrap();
    let batch = Tensor::stack(vec![a.clone(), b]).unwrap();
    assert_eq!(batch.shape(), &[2, 1, 1, 2]);
    assert_eq!(batch.to_vec_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);

    let other = Tensor::from_vec(vec![3.0, 4.0], &[1, 2, 1]).unwrap();
    let msg = Tensor::stack(vec![a.clone(), a, other])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("sample 0 is a tensor of shape [1, 1, 2] but sample 2 has shape [1, 2, 1]"),
        "{msg}"
    );

    let scalars = Tensor::stack(vec![Tensor::scalar(1.0), Tensor::scalar(2.0)]).unwrap();
    assert_eq!(scalars.shape(), &[2]);
    assert!(Tensor::stack(Vec::new()).is_err());
}

#[test]
fn a_loader_over_image_samples_yields_nchw_batches_and_labels() {
    let dir = mnist_folder();
    let ds = MNIST::new(dir.path(), true)
        .unwrap()
        .transform_first(ToTensor.then(Normalize::new(0.13, 0.31)).into_fn());
    let loader = DataLoader::builder(ds).batch_size(2).build().unwrap();
    let batches: Vec<(Tensor, Tensor)> = loader.iter().collect::<Result<_>>().unwrap();
    assert_eq!(batches[0].0.shape(), &[2, 1, 28, 28]);
    assert_eq!(batches[1].0.shape(), &[1, 1, 28, 28]);
    assert_eq!(batches[0].1.to_vec_i64().unwrap(), vec![3, 1]);
    let first = batches[0].0.to_vec_f32().unwrap()[0];
    assert!((first - (0.0 - 0.13) / 0.31).abs() < 1e-6);
}

// ---------------------------------------------------------------------------------------
// Seeded augmentation in the DataLoader

/// 24 different 6 x 6 RGB images through a random crop (padded) and flip.
fn augmented() -> impl Dataset<Item = (Tensor, i64)> + 'static {
    let samples: Vec<(Image, i64)> = (0..24)
        .map(|i| {
            let data = (0..108).map(|p| ((i * 7 + p * 3) % 256) as u8).collect();
            (Image::new(6, 6, 3, data).unwrap(), i as i64)
        })
        .collect();
    let augment = RandomCrop::new(6, 6)
        .padding(2)
        .then(RandomFlipLeftRight)
        .then(ToTensor);
    SimpleDataset::new(samples).transform_first(augment.into_fn())
}

/// Two epochs of a loader over `augmented()`, as (images, labels) values.
fn two_epochs(seed: u64, workers: usize, shuffle: bool) -> Vec<Vec<(Vec<f32>, Vec<i64>)>> {
    let loader = DataLoader::builder(augmented())
        .batch_size(5)
        .shuffle(shuffle)
        .seed(seed)
        .num_workers(workers)
        .build()
        .unwrap();
    (0..2)
        .map(|_| {
            loader
                .iter()
                .map(|b| {
                    let (x, y) = b?;
                    Ok((x.to_vec_f32()?, y.to_vec_i64()?))
                })
                .collect::<Result<Vec<_>>>()
                .unwrap()
        })
        .collect()
}

#[test]
fn augmentation_is_the_same_with_0_and_3_workers_and_new_each_epoch() {
    for shuffle in [false, true] {
        // (assert! rather than assert_eq!: the values are a few thousand floats)
        let caller = two_epochs(7, 0, shuffle);
        assert!(
            caller == two_epochs(7, 3, shuffle),
            "shuffle {shuffle}: 0 vs 3 workers"
        );
        assert!(
            caller == two_epochs(7, 2, shuffle),
            "shuffle {shuffle}: 0 vs 2 workers"
        );
        assert!(
            caller != two_epochs(8, 0, shuffle),
            "shuffle {shuffle}: seed 8 as seed 7"
        );
    }
    // Without shuffling both epochs hold the same samples in the same order, so any
    // difference is the augmentation's.
    let epochs = two_epochs(7, 3, false);
    assert_eq!(epochs[0].len(), 5);
    for (a, b) in epochs[0].iter().zip(&epochs[1]) {
        assert_eq!(a.1, b.1);
    }
    assert!(
        epochs[0] != epochs[1],
        "epoch 1 repeated epoch 0's crops and flips"
    );
}

// ---------------------------------------------------------------------------------------
// The real Fashion-MNIST files, when fetched

fn fashion_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

#[test]
fn fashion_mnist_files_hold_60000_and_10000_balanced_samples() {
    let root = fashion_mnist_dir();
    if !root.is_dir() {
        skip_note!("skipped: data/fashion-mnist not found (scripts/fetch-fashion-mnist.sh)");
        return;
    }
    for (train, size, per_class) in [(true, 60_000, 6_000), (false, 10_000, 1_000)] {
        let ds = FashionMNIST::new(&root, train).unwrap();
        assert_eq!(ds.len(), size);
        let mut counts = [0usize; 10];
        for &label in ds.labels() {
            counts[usize::from(label)] += 1;
        }
        assert_eq!(counts, [per_class; 10], "train {train}");
        let (image, _) = ds.get(size - 1).unwrap();
        assert_eq!(image.shape(), [28, 28, 1]);
        assert!(image.data().iter().any(|&v| v > 0), "a blank image");
    }
    let test = FashionMNIST::new(&root, false)
        .unwrap()
        .transform_first(ToTensor.then(Normalize::new(0.13, 0.31)).into_fn());
    let loader = DataLoader::builder(test)
        .batch_size(256)
        .num_workers(2)
        .build()
        .unwrap();
    let (x, y) = loader.iter().next().unwrap().unwrap();
    assert_eq!((x.shape(), y.shape()), (&[256, 1, 28, 28][..], &[256][..]));
}
