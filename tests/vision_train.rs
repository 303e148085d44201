//! The crash course's pipeline end to end on generated Fashion-MNIST-format files:
//! `FashionMNIST` → `ToTensor` + `Normalize` → `DataLoader` → the example's LeNet
//! (`examples/fashion_mnist/models.rs`) → `Estimator::fit` → accuracy, save and reload.
//! The images are easy (each class is a bright bar in its own place, plus noise), so a
//! working pipeline must learn them; a broken convolution, pooling or gradient cannot.

#[path = "../examples/fashion_mnist/models.rs"]
mod models;

use boson::data::vision::transforms::{ImageTransform, Normalize, ToTensor};
use boson::data::vision::FashionMNIST;
use boson::data::{DataLoader, Dataset};
use boson::estimator::{Estimator, FitUntil};
use boson::loss::SoftmaxCrossEntropyLoss;
use boson::metric::{Accuracy, Metric};
use boson::nn::{Block, Initializer, LoadOptions, Model};
use boson::optim::{Sgd, Trainer};
use boson::{autograd, rng, Device, Tensor};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Class `c`: a bright 4-pixel-wide vertical bar at column `2 + 2c`, on noise.
fn image(class: usize, seed: u64) -> Vec<u8> {
    (0..784)
        .map(|p| {
            let col = p % 28;
            let noise = (rng::uniform_hash(seed, p as u64) * 90.0) as u8;
            if col >= 2 + 2 * class && col < 6 + 2 * class {
                200 + noise / 2
            } else {
                noise
            }
        })
        .collect()
}

/// Writes the four gzip IDX files of `train` / `test` images per class into `dir`.
fn write_files(dir: &Path, train: usize, test: usize) {
    let write = |name: &str, bytes: Vec<u8>| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        std::fs::write(dir.join(name), gz.finish().unwrap()).unwrap();
    };
    for (split, per_class, offset) in [("train", train, 0u64), ("t10k", test, 1 << 20)] {
        let n = per_class * 10;
        let mut images: Vec<u8> = [2051u32, n as u32, 28, 28]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let mut labels: Vec<u8> = [2049u32, n as u32]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        for i in 0..n {
            images.extend(image(i % 10, offset + i as u64));
            labels.push((i % 10) as u8);
        }
        write(&format!("{split}-images-idx3-ubyte.gz"), images);
        write(&format!("{split}-labels-idx1-ubyte.gz"), labels);
    }
}

fn loader(dir: &Path, train: bool) -> DataLoader<impl Dataset<Item = (Tensor, i64)>> {
    let ds = FashionMNIST::new(dir, train)
        .unwrap()
        .transform_first(ToTensor.then(Normalize::new(0.13, 0.31)).into_fn());
    DataLoader::builder(ds)
        .batch_size(32)
        .shuffle(train)
        .seed(3)
        .num_workers(1)
        .build()
        .unwrap()
}

fn accuracy(
    net: &dyn Model,
    loader: &DataLoader<impl Dataset<Item = (Tensor, i64)> + 'static>,
) -> (f32, Vec<f32>) {
    let mut metric = Accuracy::new();
    let mut scores = Vec::new();
    for batch in loader {
        let (x, y) = batch.unwrap();
        let out = autograd::predict_mode(|| net.forward_tensors(&[x])).unwrap();
        metric.update(&y, &out).unwrap();
        scores.extend(out.to_vec_f32().unwrap());
    }
    (metric.get().1, scores)
}

#[test]
fn lenet_learns_generated_fashion_mnist_through_the_estimator_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 40, 10);
    let (train, test) = (loader(dir.path(), true), loader(dir.path(), false));
    rng::seed(11);
    let net = Arc::new(models::lenet());
    net.initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
    let model: Arc<dyn Model> = net.clone();
    // A first forward pass fixes the deferred shapes before the trainer collects them.
    let first = train.iter().next().unwrap().unwrap().0;
    autograd::predict_mode(|| model.forward_tensors(&[first])).unwrap();
    let (before, _) = accuracy(&*model, &test);
    let trainer = Trainer::new(net.collect_params(), Sgd::new(0.1)).unwrap();
    let mut est = Estimator::builder(model.clone(), SoftmaxCrossEntropyLoss::new())
        .trainer(trainer)
        .train_metric(Accuracy::new())
        .log_writer(std::io::sink())
        .build()
        .unwrap();
    est.fit(&train, None, FitUntil::Epochs(8), &mut []).unwrap();
    let (after, scores) = accuracy(&*model, &test);
    assert!(
        after >= 0.9,
        "test accuracy {after} after 8 epochs (before: {before})"
    );

    let file = dir.path().join("lenet.safetensors");
    net.collect_params().save(&file).unwrap();
    let reloaded = models::lenet();
    reloaded
        .initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
    let first = test.iter().next().unwrap().unwrap().0;
    autograd::predict_mode(|| reloaded.forward_tensors(&[first])).unwrap();
    reloaded
        .collect_params()
        .load(&file, LoadOptions::default())
        .unwrap();
    assert_eq!(
        accuracy(&reloaded, &test).1,
        scores,
        "reloaded scores differ"
    );
}

#[test]
fn the_examples_resnet_gives_ten_scores_and_a_gradient_to_every_parameter() {
    rng::seed(5);
    let net = models::resnet();
    net.initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
    let x = Tensor::from_vec(
        (0..4 * 784)
            .map(|i| rng::uniform_hash(9, i) - 0.5)
            .collect(),
        &[4, 1, 28, 28],
    )
    .unwrap();
    let y = autograd::record(|| net.forward_tensors(std::slice::from_ref(&x))).unwrap();
    assert_eq!(y.shape(), &[4, 10]);
    autograd::record(|| y.sum_all())
        .unwrap()
        .backward()
        .unwrap();
    let params = net.collect_params();
    for (name, p) in params.iter() {
        if name.contains("running") {
            continue; // BatchNorm's statistics are not trained
        }
        let g = p.grad().unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = g
            .to_dense()
            .unwrap()
            .square()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(norm > 0.0, "{name}'s gradient is zero");
    }
}
