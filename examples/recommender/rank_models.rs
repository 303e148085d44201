//! The ranking models (`--task ranking`), trained on implicit feedback (a rating is an
//! interaction) against sampled negatives. Both score a user and an item as a dot product
//! of factor rows plus an item bias, so ranking the whole catalogue is one matrix product.

use crate::model::{embedding, ModelSpec, RecModel, UserContext};
use boson::nn::{Block, Embedding, Forward};
use boson::ratings::FactorScorer;
use boson::tensor::DType;
use boson::{autograd, Device, Result, Tensor};

/// How many of a user's latest items `SeqMf` looks at.
pub const HISTORY_WINDOW: usize = 5;

/// `score(u, i) = <p_u, q_i> + b_i` (matrix factorisation for implicit feedback, as BPR-MF
/// of Rendle et al. 2009; the loss, BPR or sampled softmax, is the trainer's choice).
#[derive(Block)]
#[block(kind = "bpr-mf")]
pub struct BprMf {
    pub(crate) user_embeddings: Embedding,
    pub(crate) item_embeddings: Embedding,
    pub(crate) item_bias: Embedding,
}

impl BprMf {
    pub fn new(spec: &ModelSpec) -> BprMf {
        let k = spec.num_embeddings;
        BprMf {
            user_embeddings: embedding(spec.num_users, k, spec),
            item_embeddings: embedding(spec.num_items, k, spec),
            item_bias: embedding(spec.num_items, 1, spec),
        }
    }

    /// `[B, C]` scores of `candidates` (`[B, C]` item indices) for `[B, d]` user vectors.
    fn score(&self, user_vectors: &Tensor, candidates: &Tensor) -> Result<Tensor> {
        let q = self.item_embeddings.forward(candidates)?;
        let b = self.item_bias.forward(candidates)?.sum_axis(2, false)?;
        q.mul(&user_vectors.expand_dims(1)?)?
            .sum_axis(2, false)?
            .add(&b)
    }

    /// `[q_i, b_i]`, paired with user rows `[v_u, 1]`.
    fn item_rows(&self, items: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| {
            let q = self.item_embeddings.forward(items)?;
            let b = self.item_bias.forward(items)?;
            Tensor::concat(&[&q, &b], 1)
        })
    }
}

/// `[v, 1]` for user vectors `v`.
fn with_one(v: &Tensor) -> Result<Tensor> {
    let one = Tensor::ones(&[v.shape()[0], 1], v.device())?;
    Tensor::concat(&[v, &one], 1)
}

/// Candidates `[B]` (one item per user, a pair prediction) or `[B, C]`.
fn as_rows(candidates: &Tensor) -> Result<Tensor> {
    match candidates.rank() {
        1 => candidates.reshape(&[candidates.elem_count(), 1]),
        _ => Ok(candidates.clone()),
    }
}

impl Forward for BprMf {
    /// `(users [B], candidates [B, C])` → scores `[B, C]`.
    type Input = (Tensor, Tensor);

    fn forward(&self, (users, candidates): &(Tensor, Tensor)) -> Result<Tensor> {
        self.score(&self.user_embeddings.forward(users)?, candidates)
    }
}

impl FactorScorer for BprMf {
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| with_one(&self.user_embeddings.forward(users)?))
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        self.item_rows(items)
    }
}

impl RecModel for BprMf {
    fn predict_pairs(&self, users: &Tensor, items: &Tensor) -> Result<Tensor> {
        let s = self.forward(&(users.clone(), as_rows(items)?))?;
        s.reshape(&[users.elem_count()])
    }
}

/// `score(u, i) = <p_u + mean_j c_j, q_i> + b_i` over the user's last [`HISTORY_WINDOW`]
/// items `j`: what the user watched just before matters for what comes next (users rate
/// in sessions and series). A short history is padded with a learned "no item" row.
/// For predictions after the training data it keeps each user's latest items (`recent`,
/// saved with the model).
#[derive(Block)]
#[block(kind = "seq-mf")]
pub struct SeqMf {
    mf: BprMf,
    /// `num_items + 1` rows: the last one is the padding.
    context_embeddings: Embedding,
    /// Each user's latest items (as f32 indices, padding = `num_items`).
    recent: Embedding,
    #[block(skip)]
    num_items: usize,
}

impl SeqMf {
    pub fn new(spec: &ModelSpec) -> SeqMf {
        let recent = Embedding::with_options(spec.num_users, HISTORY_WINDOW, false, DType::F32);
        recent.weight.set_grad_req(autograd::GradReq::Null);
        SeqMf {
            mf: BprMf::new(spec),
            context_embeddings: embedding(spec.num_items + 1, spec.num_embeddings, spec),
            recent,
            num_items: spec.num_items,
        }
    }

    /// `p_u + mean(c_history)`, `[B, d]`.
    fn user_vectors(&self, users: &Tensor, history: &Tensor) -> Result<Tensor> {
        let context = self
            .context_embeddings
            .forward(history)?
            .mean_axis(1, false)?;
        self.mf.user_embeddings.forward(users)?.add(&context)
    }

    /// The saved latest items of `users`, `[B, HISTORY_WINDOW]` i64.
    fn recent_items(&self, users: &Tensor) -> Result<Tensor> {
        let rows = self.recent.forward(users)?;
        let items = rows.to_vec_f32()?.into_iter().map(|i| i as i64).collect();
        Tensor::from_vec_i64(items, rows.shape())?.to_device(users.device())
    }

    /// A history left-padded to `HISTORY_WINDOW` with the padding row.
    pub fn padded(history: &[i64], num_items: usize) -> Vec<i64> {
        let tail = &history[history.len().saturating_sub(HISTORY_WINDOW)..];
        let mut row = vec![num_items as i64; HISTORY_WINDOW - tail.len()];
        row.extend_from_slice(tail);
        row
    }
}

impl Forward for SeqMf {
    /// `(users [B], histories [B, HISTORY_WINDOW], candidates [B, C])` → `[B, C]`.
    type Input = (Tensor, Tensor, Tensor);

    fn forward(&self, (users, history, candidates): &(Tensor, Tensor, Tensor)) -> Result<Tensor> {
        self.mf
            .score(&self.user_vectors(users, history)?, candidates)
    }
}

impl FactorScorer for SeqMf {
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| with_one(&self.user_vectors(users, &self.recent_items(users)?)?))
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        self.mf.item_rows(items)
    }
}

impl RecModel for SeqMf {
    fn uses_history(&self) -> bool {
        true
    }
    fn set_context(&self, context: &UserContext, device: Device) -> Result<()> {
        let n = context.history.len();
        let rows: Vec<f32> = context
            .history
            .iter()
            .flat_map(|h| SeqMf::padded(h, self.num_items))
            .map(|i| i as f32)
            .collect();
        let t = Tensor::from_vec(rows, &[n, HISTORY_WINDOW])?.to_device(device)?;
        self.recent.weight.set_data(&t)
    }
    fn predict_pairs(&self, users: &Tensor, items: &Tensor) -> Result<Tensor> {
        let history = self.recent_items(users)?;
        let s = self.forward(&(users.clone(), history, as_rows(items)?))?;
        s.reshape(&[users.elem_count()])
    }
}
