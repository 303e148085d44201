//! The command line (clap derive). `recommender [OPTIONS]` trains; `recommender serve`
//! answers requests from a saved model folder.

use crate::data::{default_synthetic, FileFormat, FileSource, PrepareOptions, Source};
use crate::model::{ModelKind, Task};
use crate::train::{FitOptions, OptKind, RankingLoss, TrainConfig};
use boson::{Device, Error, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The default `--reg-factors`: the best by validation RMSE on MovieLens 100K, a sparse
/// 20% sample of it and the built-in data (BENCHMARKS.md, "Regularisation").
pub const REG_FACTORS: f32 = 0.1;
/// The default `--reg-bias` (the same grid; the biases barely care).
pub const REG_BIAS: f32 = 0.01;

#[derive(Debug, Parser)]
#[command(
    name = "recommender",
    about = "The SageMaker + Gluon matrix-factorisation recommender with boson: explore, prepare, train, evaluate, save, load, serve.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a saved model folder over HTTP (SageMaker contract: GET /ping, POST /invocations).
    Serve(ServeArgs),
    /// Train as a SageMaker container: hyperparameters.json, the train channel, /opt/ml/model.
    Train(crate::sagemaker::ContainerArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The folder written by a training run (SageMaker's container sets /opt/ml/model).
    #[arg(long, env = "SM_MODEL_DIR", default_value = "recommender-model")]
    pub model_dir: PathBuf,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind (0.0.0.0 to accept connections from other machines, as the
    /// container does).
    #[arg(long, env = "BOSON_SERVE_HOST", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Requests scored or answered at once (taken once a body has arrived); one more is
    /// answered 503 at once.
    #[arg(long, env = "BOSON_MAX_IN_FLIGHT", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Requests sending their bodies at once; one more is answered 503 at once.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_reading: u32,
    /// Customers in one top-k request (more: 413).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_customers: u32,
    /// The largest k of a top-k request (larger: 400).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_k: u32,
    /// Pairs in one scoring request (more: 413).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pairs: u32,
    /// The largest answer in bytes (a larger one: 413).
    #[arg(long, default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_answer_bytes: u64,
    /// Seconds a client may leave its answer unread before the connection is closed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout: u64,
    /// No access log (by default one line per request on stdout: method, path, status,
    /// bytes, milliseconds).
    #[arg(long)]
    pub quiet: bool,
}

impl ServeArgs {
    /// The server's limits from the flags.
    pub fn limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            max_in_flight: self.max_in_flight as usize,
            max_reading: self.max_reading as usize,
            max_customers: self.max_customers as usize,
            max_k: self.max_k as usize,
            max_pairs: self.max_pairs as usize,
            max_answer_bytes: usize::try_from(self.max_answer_bytes).unwrap_or(usize::MAX),
            write_timeout: std::time::Duration::from_secs(self.write_timeout),
            access_log: !self.quiet,
            ..crate::serve::Limits::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    /// CUDA device 0 when present, else the CPU.
    Auto,
}

impl DeviceArg {
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Auto => Ok(Device::cuda_if_available(0)),
            DeviceArg::Cuda => Device::new_cuda(0)
                .map_err(|e| Error::InvalidArgument(format!("--device cuda ({e})"))),
        }
    }
}

#[derive(Clone, Debug, Args)]
pub struct TrainArgs {
    /// rating: predict star ratings (the notebook's task). ranking: rank the items a user
    /// will rate next, trained on implicit feedback with sampled negatives.
    #[arg(long, value_enum, default_value_t = Task::Rating)]
    pub task: Task,
    /// rating task: drift-mf (default: the best by validation on MovieLens 100K), biased-mf,
    /// mfblock (the notebook's network). ranking task: sasrec (default: the best by validation on
    /// MovieLens 100K and the built-in data), seq-mf, bpr-mf.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// Sampled negatives per positive (ranking task): at least 1 and fewer than the
    /// catalogue's items; --batch-size × (1 + negatives) must fit the allocation limit.
    #[arg(long, default_value_t = 100)]
    pub negatives: usize,
    /// The ranking task's loss: softmax (sampled softmax) or bpr.
    #[arg(long, value_enum, default_value_t = RankingLoss::Softmax)]
    pub ranking_loss: RankingLoss,
    /// A rating file (plain or gzip). Without it the built-in synthetic Amazon data is used.
    #[arg(long, conflicts_with = "anchor_tsv")]
    pub data: Option<PathBuf>,
    /// The layout of --data.
    #[arg(long, value_enum, default_value_t = FileFormat::AmazonTsv, requires = "data")]
    pub format: FileFormat,
    /// Validate on the test split, as the reference notebook does, instead of holding
    /// each user's second-latest rating out of train (the numbers are then optimistic).
    #[arg(long)]
    pub no_validation_split: bool,
    /// Keep every rating of a (user, item) pair rated more than once, as the reference
    /// notebook does (by default only the latest is kept).
    #[arg(long)]
    pub keep_repeated_pairs: bool,
    /// A per-item text column of --data to show beside recommended items [default:
    /// product_title for amazon-tsv].
    #[arg(long, value_name = "COLUMN", requires = "data")]
    pub title_column: Option<String>,
    /// The column of a --format csv file that orders each user's ratings in time (Unix
    /// seconds or YYYY-MM-DD) [default: the header's timestamp, time or date column;
    /// without one the file's line order decides which rating is the latest].
    #[arg(long, value_name = "COLUMN", requires = "data")]
    pub time_column: Option<String>,
    /// A live progress bar on stderr while reading and training: auto (when stderr is a
    /// terminal), always, never.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// How users and items are numbered: by first appearance, or by activity (most
    /// ratings first, as the notebook's value_counts() order).
    #[arg(long, value_enum, default_value_t = IndexOrder::FirstSeen)]
    pub index_order: IndexOrder,
    /// The valid ratings of --data, LOW,HIGH inclusive [default: the format's: 1,5, or
    /// 0.5,5 for MovieLens ratings.csv]; others are skipped and counted.
    #[arg(long, value_name = "LOW,HIGH", value_parser = parse_scale, requires = "data")]
    pub rating_scale: Option<(f32, f32)>,
    /// The anchors' TSV (user_id, item_id, rating; test = each user's last row); no long-tail filter by default.
    #[arg(long)]
    pub anchor_tsv: Option<PathBuf>,
    /// Drop users with fewer ratings [default: 5; 0 with --anchor-tsv].
    #[arg(long)]
    pub min_user_ratings: Option<usize>,
    /// Drop items with fewer ratings [default: 10; 0 with --anchor-tsv].
    #[arg(long)]
    pub min_item_ratings: Option<usize>,
    /// Built-in data size: users, items, ratings.
    #[arg(long, default_value_t = 20_000)]
    pub synthetic_users: usize,
    #[arg(long, default_value_t = 5_000)]
    pub synthetic_items: usize,
    #[arg(long, default_value_t = 500_000)]
    pub synthetic_ratings: usize,
    /// How strongly taste steers which items a synthetic user rates (0: not at all).
    #[arg(long)]
    pub synthetic_taste_choice: Option<f32>,
    #[arg(long, default_value_t = 64)]
    pub num_embeddings: usize,
    /// Optimizer [default: sgd for mfblock (the reference), adam for biased-mf].
    #[arg(long, value_enum)]
    pub opt: Option<OptKind>,
    /// Learning rate [default: 0.02 with sgd, 0.005 with adam; 0.002 for sasrec].
    #[arg(long)]
    pub lr: Option<f32>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Weight decay (the optimizer's: once per step for every row it updates).
    #[arg(long, default_value_t = 0.0)]
    pub wd: f32,
    /// biased-mf and drift-mf: L2 strength on the user and item factors, per rating (each
    /// rating adds λ/2 (|p_u|² + |q_i|²) to its loss).
    #[arg(long, value_name = "λ", default_value_t = REG_FACTORS)]
    pub reg_factors: f32,
    /// biased-mf and drift-mf: L2 strength on the user and item biases, per rating.
    #[arg(long, value_name = "λ", default_value_t = REG_BIAS)]
    pub reg_bias: f32,
    /// biased-mf and drift-mf: train a grid of --reg-factors ×½, ×1, ×2 and
    /// --num-embeddings ×½, ×1 and keep the best by validation RMSE.
    #[arg(long)]
    pub search: bool,
    /// Save the trained rating model even when it ends no better than the bias baseline
    /// on validation (by default the baseline is saved in its place).
    #[arg(long)]
    pub no_guard: bool,
    /// Epochs, at most: every model stops once validation stops improving
    /// (--early-stopping-patience) [default: 100 for mfblock, 30 for biased-mf and
    /// drift-mf, 20 for the ranking models].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Ratings per batch; sequence windows per batch for sasrec [default: 1024; 32 for
    /// sasrec].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// sasrec: how many of each user's latest items it reads.
    #[arg(long, default_value_t = crate::model::SEQ_LEN)]
    pub seq_len: usize,
    /// sasrec: transformer layers (3: the best of 2, 3 and 4 by validation on MovieLens
    /// 100K; SASRec used 2 on MovieLens-1M).
    #[arg(long, default_value_t = 3)]
    pub blocks: usize,
    /// sasrec: attention heads per layer (--num-embeddings must be a multiple).
    #[arg(long, default_value_t = 1)]
    pub heads: usize,
    /// Dropout on the user and item vectors (mfblock), or inside the transformer
    /// (sasrec) [default: 0.5; 0.3 for sasrec].
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Dense full-table embedding gradients and updates (Gluon's default
    /// `sparse_grad=False`) instead of row-sparse ones with lazy updates.
    #[arg(long)]
    pub dense_grads: bool,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Seeds data generation, initialisation, dropout and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the trained model folder is written.
    #[arg(long, default_value = "recommender-model")]
    pub model_dir: PathBuf,
    /// Skip HitRate/NDCG (full ranking costs users × items scores).
    #[arg(long)]
    pub no_ranking: bool,
    /// Train data parallel over MPI: start with `mpirun -np N`; each rank trains on its
    /// shard of every batch (--batch-size is per rank), rank 0 prints and saves. Needs a
    /// build with `--features mpi`.
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed: split each embedding table over the ranks while training
    /// (each rank holds 1/N of the rows and their optimizer state), model parallel.
    #[arg(long)]
    pub shard_embeddings: bool,
    /// Checkpoint every epoch into DIR (the newest 3, plus the best by validation RMSE).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in --checkpoint-dir (same data and flags).
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// Stop once the validation metric (RMSE; NDCG@10 for ranking) has not improved for
    /// N epochs.
    /// [default: 3; 10 for sasrec, whose validation NDCG climbs slowly and noisily]
    #[arg(long, value_name = "N")]
    pub early_stopping_patience: Option<usize>,
    /// Stop training once this many minutes have passed (each model's, with --search),
    /// keeping the best epoch completed by then: a budget for large data, where an epoch
    /// is long. Results then depend on the machine's speed.
    #[arg(long, value_name = "MINUTES")]
    pub max_train_minutes: Option<f64>,
    /// Halve the learning rate each time the validation metric has gone N epochs without
    /// improving (`ReduceLrOnPlateauHandler`; off by default).
    #[arg(long, value_name = "N")]
    pub lr_plateau_patience: Option<usize>,
    /// Validate, keep and serve an exponential moving average of the parameters, with
    /// this decay per step (`WeightAverageHandler`) [default: 0.995 for sasrec; off for
    /// the others].
    #[arg(long, value_name = "DECAY", conflicts_with = "no_weight_average")]
    pub weight_average: Option<f32>,
    /// Keep the trained parameters themselves, without the moving average.
    #[arg(long)]
    pub no_weight_average: bool,
}

impl TrainArgs {
    /// The model: `--model`, or the task's default; an error for a model of the other
    /// task.
    pub fn model_kind(&self) -> Result<ModelKind> {
        let kind = self.model.unwrap_or(match self.task {
            Task::Rating => ModelKind::DriftMf,
            Task::Ranking => ModelKind::Sasrec,
        });
        if kind.task() != self.task {
            let hint = match self.task {
                Task::Rating => "drift-mf, biased-mf or mfblock",
                Task::Ranking => "sasrec, seq-mf or bpr-mf",
            };
            return Err(Error::InvalidArgument(format!(
                "--model {} is a {:?} model, but the task is {:?}: use {hint}, or --task {}",
                kind.name(),
                kind.task(),
                self.task,
                if self.task == Task::Rating {
                    "ranking"
                } else {
                    "rating"
                }
            )));
        }
        Ok(kind)
    }

    /// Where the ratings come from.
    pub fn source(&self) -> Source {
        match (&self.data, &self.anchor_tsv) {
            (Some(path), _) => Source::File(FileSource {
                scale: self.rating_scale,
                // The Amazon file's titles are printed with the recommendations by default.
                title_column: self.title_column.clone().or(match self.format {
                    FileFormat::AmazonTsv => Some("product_title".into()),
                    _ => None,
                }),
                time_column: self.time_column.clone(),
                ..FileSource::new(path, self.format)
            }),
            (None, Some(path)) => Source::AnchorTsv(path.clone()),
            (None, None) => Source::Synthetic(boson::ratings::SyntheticConfig {
                n_users: self.synthetic_users,
                n_items: self.synthetic_items,
                n_ratings: self.synthetic_ratings,
                taste_choice: self
                    .synthetic_taste_choice
                    .unwrap_or(default_synthetic(self.seed).taste_choice),
                ..default_synthetic(self.seed)
            }),
        }
    }

    /// The long-tail thresholds (the reference's 5 and 10; none for the anchors' file,
    /// whose harnesses train on every row).
    pub fn thresholds(&self) -> (usize, usize) {
        let anchor = self.anchor_tsv.is_some();
        (
            self.min_user_ratings.unwrap_or(if anchor { 0 } else { 5 }),
            self.min_item_ratings.unwrap_or(if anchor { 0 } else { 10 }),
        )
    }

    /// How the ratings become splits.
    pub fn prepare_options(&self) -> PrepareOptions {
        let (min_user, min_item) = self.thresholds();
        PrepareOptions {
            min_user,
            min_item,
            // The anchors' files come with their split, validated on test as they do.
            validate: !self.no_validation_split && self.anchor_tsv.is_none(),
            keep_repeated: self.keep_repeated_pairs,
            by_activity: self.index_order == IndexOrder::Activity,
        }
    }

    /// The optional training handlers.
    pub fn fit_options(&self) -> FitOptions {
        FitOptions {
            checkpoint_dir: self.checkpoint_dir.clone(),
            resume: self.resume,
            early_stopping_patience: Some(self.patience()),
            max_train_minutes: self.max_train_minutes,
            lr_plateau_patience: self.lr_plateau_patience,
            progress: self.progress.mode(),
            ranks: None,
        }
    }

    /// `--dropout`, or the model's default.
    pub fn dropout(&self) -> f32 {
        let sasrec = self.model_kind().ok() == Some(ModelKind::Sasrec);
        self.dropout.unwrap_or(if sasrec { 0.3 } else { 0.5 })
    }

    /// `--early-stopping-patience`, or the model's default.
    pub fn patience(&self) -> usize {
        let sasrec = self.model_kind().ok() == Some(ModelKind::Sasrec);
        self.early_stopping_patience
            .unwrap_or(if sasrec { 10 } else { 3 })
    }

    /// Hyperparameters with the per-model defaults filled in.
    pub fn train_config(&self) -> Result<TrainConfig> {
        let model = self.model_kind()?;
        let opt = self.opt.unwrap_or(match model {
            ModelKind::Mfblock => OptKind::Sgd,
            _ => OptKind::Adam,
        });
        Ok(TrainConfig {
            task: self.task,
            negatives: self.negatives,
            ranking_loss: self.ranking_loss,
            epochs: self.epochs.unwrap_or(match model {
                // At most; early stopping ends them (see `fit_options`). The notebook's
                // network, with SGD, takes longest.
                ModelKind::Mfblock => 100,
                ModelKind::BiasedMf | ModelKind::DriftMf => 30,
                ModelKind::BprMf | ModelKind::SeqMf => 20,
                ModelKind::Sasrec => 200,
            }),
            batch_size: self.batch_size.unwrap_or(match model {
                ModelKind::Sasrec => 32,
                _ => 1024,
            }),
            opt,
            lr: self.lr.unwrap_or(match opt {
                OptKind::Sgd => 0.02,
                OptKind::Adam if model == ModelKind::Sasrec => 0.002,
                OptKind::Adam => 0.005,
            }),
            momentum: self.momentum,
            wd: self.wd,
            seed: self.seed,
            weight_average: if self.no_weight_average {
                None
            } else {
                self.weight_average
                    .or((model == ModelKind::Sasrec).then_some(0.995))
            },
        })
    }
}

/// `LOW,HIGH` with finite LOW <= HIGH.
fn parse_scale(text: &str) -> std::result::Result<(f32, f32), String> {
    let parse = |v: &str| v.trim().parse::<f32>().ok().filter(|x| x.is_finite());
    match text.split_once(',').map(|(a, b)| (parse(a), parse(b))) {
        Some((Some(low), Some(high))) if low <= high => Ok((low, high)),
        _ => Err(format!(
            "expected LOW,HIGH with finite numbers and LOW <= HIGH (e.g. 1,5), got {text:?}"
        )),
    }
}

/// `--index-order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IndexOrder {
    /// In the order users and items first appear in the data.
    FirstSeen,
    /// Most ratings first (ties by first appearance).
    Activity,
}

/// `--progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Always,
    Never,
}

impl ProgressArg {
    pub fn mode(self) -> boson::estimator::ProgressBarMode {
        use boson::estimator::ProgressBarMode;
        match self {
            ProgressArg::Auto => ProgressBarMode::Auto,
            ProgressArg::Always => ProgressBarMode::Always,
            ProgressArg::Never => ProgressBarMode::Never,
        }
    }
}
