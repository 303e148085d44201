//! The rating models: `MfBlock` (the SageMaker + Gluon reference network, in
//! `mfblock.rs`), `BiasedMf` (user/item biases + global mean + dot product, the classic
//! stronger baseline) and `DriftMf`; the ranking models are in `rank_models.rs`.
//!
//! Every model is a `Block` and a `FactorScorer`: per-user and per-item factor rows whose
//! dot product (plus `offset`) is exactly the prediction, so scoring every item for a
//! user is one matrix product instead of one network pass per (user, item) pair.

pub use crate::mfblock::MfBlock;
use boson::nn::{Block, Embedding, Forward, Initializer, Model, Parameter};
use boson::ratings::FactorScorer;
use boson::{autograd, Device, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which network to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The reference MFBlock: Embedding → Dense(relu) → Dropout on both sides, dot product.
    Mfblock,
    /// Biases + global mean + dot product of embeddings.
    BiasedMf,
    /// BiasedMf plus the user's drift: a learned weight on how the user rated their last
    /// few items (real users rate in moods and sessions; the latest rating follows them).
    DriftMf,
    /// Ranking: matrix factorisation with an item bias (BPR-MF).
    BprMf,
    /// Ranking: BprMf whose user vector adds the mean of the user's latest items'
    /// context vectors.
    SeqMf,
    /// Ranking: causal self-attention over the user's latest items, next-item
    /// cross-entropy over the whole catalogue (SASRec).
    Sasrec,
}

/// What a run trains for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Predict star ratings (the notebook's task): L2 loss, RMSE.
    Rating,
    /// Rank items a user will interact with: sampled negatives, NDCG@10.
    Ranking,
}

impl ModelKind {
    /// The name used on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mfblock => "mfblock",
            ModelKind::BiasedMf => "biased-mf",
            ModelKind::DriftMf => "drift-mf",
            ModelKind::BprMf => "bpr-mf",
            ModelKind::SeqMf => "seq-mf",
            ModelKind::Sasrec => "sasrec",
        }
    }

    /// The task the model is built for.
    pub fn task(self) -> Task {
        match self {
            ModelKind::Mfblock | ModelKind::BiasedMf | ModelKind::DriftMf => Task::Rating,
            ModelKind::BprMf | ModelKind::SeqMf | ModelKind::Sasrec => Task::Ranking,
        }
    }
}

/// Everything needed to rebuild a model's shape (saved in the model folder's config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub kind: ModelKind,
    pub num_users: usize,
    pub num_items: usize,
    pub num_embeddings: usize,
    pub dropout: f32,
    /// The train mean rating: `BiasedMf` adds it; both use it as the cold-start answer.
    pub global_mean: f32,
    /// Row-sparse embedding gradients with lazy updates (boson's default), or dense
    /// full-table ones as Gluon's default `sparse_grad=False` (`--dense-grads`).
    #[serde(default = "sparse_by_default")]
    pub sparse_grad: bool,
    /// Per-rating L2 strength of the factor tables (`Embedding::l2`; biased-mf and
    /// drift-mf): each rating adds `λ/2 (‖p_u‖² + ‖q_i‖²)` to its loss. A training
    /// setting: predictions do not depend on it.
    #[serde(default)]
    pub reg_factors: f32,
    /// Per-rating L2 strength of the bias tables: `λ/2 (b_u² + b_i²)` per rating.
    #[serde(default)]
    pub reg_bias: f32,
    /// How many of a user's latest items `SasRec` reads.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// `SasRec`'s transformer layers.
    #[serde(default = "default_blocks")]
    pub blocks: usize,
    /// `SasRec`'s attention heads per layer (`num_embeddings` must be a multiple).
    #[serde(default = "default_heads")]
    pub heads: usize,
}

/// `SasRec`'s default window (SASRec's setting for MovieLens-1M).
pub const SEQ_LEN: usize = 200;

fn default_seq_len() -> usize {
    SEQ_LEN
}

/// Folders saved before `blocks` was a setting had 2.
fn default_blocks() -> usize {
    2
}

fn default_heads() -> usize {
    1
}

fn sparse_by_default() -> bool {
    true
}

/// An f32 embedding table with the spec's gradient type.
pub(crate) fn embedding(rows: usize, dim: usize, spec: &ModelSpec) -> Embedding {
    Embedding::with_options(rows, dim, spec.sparse_grad, boson::tensor::DType::F32)
}

/// How many of a user's latest ratings `DriftMf` looks at.
pub const DRIFT_WINDOW: usize = 5;

/// What each user's latest data was, for the models whose predictions depend on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserContext {
    /// `recent − global_mean` per user (`DriftMf`).
    pub drift: Vec<f32>,
    /// The latest items per user, oldest first (`SeqMf`).
    pub history: Vec<Vec<i64>>,
    /// All items per user before the held-out one, oldest first (`SasRec` keeps the
    /// latest of them).
    pub sequence: Vec<Vec<i64>>,
}

/// A recommender model: a `Model` the Estimator trains, a prediction for (user, item)
/// pairs (a rating, or a ranking score), and factor rows for ranking the catalogue.
pub trait RecModel: Model + FactorScorer {
    /// Predictions for `(users[k], items[k])` (in the caller's autograd mode).
    fn predict_pairs(&self, users: &Tensor, items: &Tensor) -> Result<Tensor>;
    /// Whether the model takes each rating's drift input (`DriftMf`), so training batches
    /// carry it.
    fn uses_drift(&self) -> bool {
        false
    }
    /// Whether the model takes each interaction's history (`SeqMf`).
    fn uses_history(&self) -> bool {
        false
    }
    /// For a model trained on whole item sequences (`SasRec`), the window it reads.
    fn uses_sequences(&self) -> Option<usize> {
        None
    }
    /// Each user's state for predictions after the data it describes (models that use it
    /// keep it with their parameters; others ignore it).
    fn set_context(&self, _context: &UserContext, _device: Device) -> Result<()> {
        Ok(())
    }
}

/// Builds and initialises the model described by `spec` on `device`. Parameter values
/// come from boson's global seeded stream (`boson::rng::seed`). Shared (`Arc`) because
/// the `Estimator` trains it as an `Arc<dyn Model>` while the pipeline keeps using it.
pub fn build(spec: &ModelSpec, seed: u64, device: Device) -> Result<Arc<dyn RecModel>> {
    if spec.num_users == 0 || spec.num_items == 0 || spec.num_embeddings == 0 {
        return Err(Error::InvalidArgument(format!(
            "model needs at least one user, item and embedding dimension, got {} users, {} items, {} dims",
            spec.num_users, spec.num_items, spec.num_embeddings
        )));
    }
    if !(0.0..1.0).contains(&spec.dropout) {
        return Err(Error::InvalidArgument(format!(
            "dropout must be in [0, 1), got {}",
            spec.dropout
        )));
    }
    let model: Arc<dyn RecModel> = match spec.kind {
        ModelKind::Mfblock => {
            let m = MfBlock::new(
                (spec.num_users, spec.num_items, spec.num_embeddings),
                spec.dropout,
                spec.sparse_grad,
                seed,
            );
            // The reference initialises everything with Xavier(magnitude 60); Dense biases
            // keep their own zero initializer, as in Gluon.
            m.initialize(&Initializer::xavier(60.0), device)?;
            Arc::new(m)
        }
        ModelKind::DriftMf => {
            let m = DriftMf::new(spec)?;
            m.initialize(&Initializer::Normal(0.01), device)?;
            for p in [
                &m.biased.user_bias.weight,
                &m.biased.item_bias.weight,
                &m.drift,
            ] {
                p.set_data(&Tensor::zeros(&p.shape(), device)?)?;
            }
            m.current
                .weight
                .set_data(&Tensor::zeros(&[spec.num_users, 1], device)?)?;
            Arc::new(m)
        }
        ModelKind::BprMf => {
            let m = crate::rank_models::BprMf::new(spec);
            m.initialize(&Initializer::Normal(0.1), device)?;
            m.item_bias
                .weight
                .set_data(&Tensor::zeros(&[spec.num_items, 1], device)?)?;
            Arc::new(m)
        }
        ModelKind::SeqMf => {
            let m = crate::rank_models::SeqMf::new(spec);
            m.initialize(&Initializer::Normal(0.1), device)?;
            // No history yet: every user's latest items are the padding row.
            let empty = UserContext {
                history: vec![Vec::new(); spec.num_users],
                ..UserContext::default()
            };
            m.set_context(&empty, device)?;
            Arc::new(m)
        }
        ModelKind::Sasrec => {
            let m = crate::sasrec::SasRec::new(spec)?;
            m.initialize(&Initializer::xavier(3.0), device)?;
            let empty = UserContext {
                sequence: vec![Vec::new(); spec.num_users],
                ..UserContext::default()
            };
            m.set_context(&empty, device)?;
            Arc::new(m)
        }
        ModelKind::BiasedMf => {
            let m = BiasedMf::new(spec)?;
            // Small factors so the first predictions are close to the global mean; biases
            // start at zero.
            m.initialize(&Initializer::Normal(0.01), device)?;
            for p in [&m.user_bias.weight, &m.item_bias.weight] {
                p.set_data(&Tensor::zeros(&p.shape(), device)?)?;
            }
            Arc::new(m)
        }
    };
    Ok(model)
}

impl RecModel for MfBlock {
    fn predict_pairs(&self, users: &Tensor, items: &Tensor) -> Result<Tensor> {
        self.forward(&(users.clone(), items.clone()))
    }
}

/// `global_mean + b_u + b_i + <p_u, q_i>`.
#[derive(Block)]
#[block(kind = "biased-mf")]
pub struct BiasedMf {
    user_embeddings: Embedding,
    item_embeddings: Embedding,
    user_bias: Embedding,
    item_bias: Embedding,
    #[block(skip)]
    global_mean: f32,
}

impl BiasedMf {
    pub fn new(spec: &ModelSpec) -> Result<BiasedMf> {
        let k = spec.num_embeddings;
        Ok(BiasedMf {
            user_embeddings: embedding(spec.num_users, k, spec).l2(spec.reg_factors)?,
            item_embeddings: embedding(spec.num_items, k, spec).l2(spec.reg_factors)?,
            user_bias: embedding(spec.num_users, 1, spec).l2(spec.reg_bias)?,
            item_bias: embedding(spec.num_items, 1, spec).l2(spec.reg_bias)?,
            global_mean: spec.global_mean,
        })
    }
}

/// A biased-mf model that predicts `mean + user[u] + item[i]` (zero factors): a bias
/// model in the shape every tool for biased-mf folders reads (`spec.kind` must be
/// biased-mf, `spec.global_mean` the bias model's mean).
pub fn from_biases(
    spec: &ModelSpec,
    user: &[f32],
    item: &[f32],
    device: Device,
) -> Result<Arc<dyn RecModel>> {
    if spec.kind != ModelKind::BiasedMf
        || user.len() != spec.num_users
        || item.len() != spec.num_items
    {
        return Err(Error::InvalidArgument(format!(
            "from_biases: a biased-mf spec with one bias per user and item, got {} with {} users and {} items \
             for {} user and {} item biases",
            spec.kind.name(),
            spec.num_users,
            spec.num_items,
            user.len(),
            item.len()
        )));
    }
    let m = BiasedMf::new(spec)?;
    m.initialize(&Initializer::Zero, device)?;
    m.user_bias
        .weight
        .set_data(&Tensor::from_vec(user.to_vec(), &[user.len(), 1])?.to_device(device)?)?;
    m.item_bias
        .weight
        .set_data(&Tensor::from_vec(item.to_vec(), &[item.len(), 1])?.to_device(device)?)?;
    Ok(Arc::new(m))
}

impl Forward for BiasedMf {
    type Input = (Tensor, Tensor);

    fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
        let p = self.user_embeddings.forward(users)?;
        let q = self.item_embeddings.forward(items)?;
        let dot = p.mul(&q)?.sum_axis(1, false)?;
        let bu = self.user_bias.forward(users)?.sum_axis(1, false)?;
        let bi = self.item_bias.forward(items)?.sum_axis(1, false)?;
        dot.add(&bu)?.add(&bi)?.add_scalar(self.global_mean)
    }
}

impl RecModel for BiasedMf {
    fn predict_pairs(&self, users: &Tensor, items: &Tensor) -> Result<Tensor> {
        self.forward(&(users.clone(), items.clone()))
    }
}

impl FactorScorer for BiasedMf {
    // [p_u, b_u, 1] · [q_i, 1, b_i] = <p_u, q_i> + b_u + b_i.
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| {
            let p = self.user_embeddings.forward(users)?;
            let b = self.user_bias.forward(users)?;
            let one = Tensor::ones(b.shape(), b.device())?;
            Tensor::concat(&[&p, &b, &one], 1)
        })
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| {
            let q = self.item_embeddings.forward(items)?;
            let b = self.item_bias.forward(items)?;
            let one = Tensor::ones(b.shape(), b.device())?;
            Tensor::concat(&[&q, &one, &b], 1)
        })
    }
    fn offset(&self) -> f32 {
        self.global_mean
    }
}

/// `BiasedMf + w · (recent_u − global_mean)`, where `recent_u` is the mean of the user's
/// [`DRIFT_WINDOW`] ratings before the one predicted: a per-rating input in training,
/// and for new predictions the table `current` (each user's value after the training
/// data, saved with the model).
#[derive(Block)]
#[block(kind = "drift-mf")]
pub struct DriftMf {
    biased: BiasedMf,
    /// The learned weight `w` (one value).
    drift: Parameter,
    /// Each user's `recent − global_mean` for predictions after the training data.
    current: Embedding,
}

impl DriftMf {
    pub fn new(spec: &ModelSpec) -> Result<DriftMf> {
        let current = Embedding::with_options(spec.num_users, 1, false, boson::tensor::DType::F32);
        current.weight.set_grad_req(boson::autograd::GradReq::Null);
        Ok(DriftMf {
            biased: BiasedMf::new(spec)?,
            drift: Parameter::new("drift", &[1], None),
            current,
        })
    }
}

impl Forward for DriftMf {
    /// `(users, items, deviations)`: `deviations[k]` is user k's recent mean minus the
    /// global mean (0 when the user has no earlier rating).
    type Input = (Tensor, Tensor, Tensor);

    fn forward(&self, (users, items, deviations): &(Tensor, Tensor, Tensor)) -> Result<Tensor> {
        let base = self.biased.forward(&(users.clone(), items.clone()))?;
        base + deviations.mul(&self.drift.data()?)?
    }
}

impl RecModel for DriftMf {
    fn uses_drift(&self) -> bool {
        true
    }

    fn set_context(&self, context: &UserContext, device: Device) -> Result<()> {
        let n = context.drift.len();
        let t = Tensor::from_vec(context.drift.clone(), &[n, 1])?.to_device(device)?;
        self.current.weight.set_data(&t)
    }
    fn predict_pairs(&self, users: &Tensor, items: &Tensor) -> Result<Tensor> {
        let deviations = self
            .current
            .forward(users)?
            .reshape(&[users.elem_count()])?;
        self.forward(&(users.clone(), items.clone(), deviations))
    }
}

impl FactorScorer for DriftMf {
    // [p_u, b_u + w·d_u, 1] · [q_i, 1, b_i].
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| {
            let p = self.biased.user_embeddings.forward(users)?;
            let drift = self.current.forward(users)?.mul(&self.drift.data()?)?;
            let b = self.biased.user_bias.forward(users)?.add(&drift)?;
            let one = Tensor::ones(b.shape(), b.device())?;
            Tensor::concat(&[&p, &b, &one], 1)
        })
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        self.biased.item_factors(items)
    }
    fn offset(&self) -> f32 {
        self.biased.global_mean
    }
}

/// Predicts `(users[k], items[k])` for every k, in chunks, in predict mode (no dropout,
/// nothing recorded).
pub fn predict(
    model: &dyn RecModel,
    users: &[i64],
    items: &[i64],
    device: Device,
) -> Result<Vec<f32>> {
    if users.len() != items.len() {
        return Err(Error::InvalidArgument(format!(
            "predict: {} users but {} items",
            users.len(),
            items.len()
        )));
    }
    const CHUNK: usize = 8192;
    let mut out = Vec::with_capacity(users.len());
    for (u, i) in users.chunks(CHUNK).zip(items.chunks(CHUNK)) {
        let u = Tensor::from_vec_i64(u.to_vec(), &[u.len()])?.to_device(device)?;
        let i = Tensor::from_vec_i64(i.to_vec(), &[i.len()])?.to_device(device)?;
        let p = autograd::predict_mode(|| model.predict_pairs(&u, &i))?;
        out.extend(p.to_vec_f32()?);
    }
    Ok(out)
}
