//! `SasRec`: next-item prediction with causal self-attention over the user's latest items
//! (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation"), trained with
//! cross-entropy over every item at every position (Klenitskiy & Vasilev 2023, "SASRec+").
//!
//! Two training choices of ours (BENCHMARKS.md has the runs): the loss leaves out the
//! items a position has already seen in its window ([`seen_positions`]; ranking leaves
//! out a user's seen items too, and without it the model spends itself pushing down the
//! very items its context is made of), which raised validation NDCG@10 on MovieLens 100K
//! from 0.120 to 0.127; and a sequence longer than one window also trains on the windows
//! before its latest ([`training_windows`]), so a long history's earlier items are
//! targets too (no change on MovieLens 100K, where 145 of 943 users pass 200 items).
//!
//! A user's vector is the last position's output over their latest [`ModelSpec::seq_len`]
//! items, scored against the item embedding table (shared by input and output), so
//! ranking the catalogue stays one matrix product (`FactorScorer`).

use crate::model::{ModelSpec, RecModel, UserContext};
use boson::nn::{
    AttentionMask, Block, Dropout, Embedding, Forward, LayerNorm, PositionalEmbedding,
    TransformerEncoderLayer,
};
use boson::ratings::FactorScorer;
use boson::tensor::DType;
use boson::{autograd, Device, Error, Result, Tensor};

/// Catalogues at or above this size are refused: the saved sequences store item indices
/// (and the padding index, `num_items`) as f32, exact only below 2^24.
pub const MAX_ITEMS: usize = 1 << 24;
/// Users encoded at once when ranking (bounds the activations of a long sequence).
const USERS_PER_CHUNK: usize = 256;

/// Item embeddings (`num_items + 1` rows, the last one padding) scaled by √d plus learned
/// positions, dropout, `blocks` pre-norm transformer layers (`heads` heads, a GELU
/// feed-forward as wide as the embeddings) under a causal and a padding mask, a final
/// layer norm; `score(u, i) = <h_u, e_i>`.
#[derive(Block)]
#[block(kind = "sasrec")]
pub struct SasRec {
    item_embeddings: Embedding,
    positions: PositionalEmbedding,
    layers: Vec<TransformerEncoderLayer>,
    norm: LayerNorm,
    dropout: Dropout,
    /// Each user's latest `seq_len` items (f32 indices, left-padded with `num_items`),
    /// for predictions after the training data; saved with the model.
    recent: Embedding,
    #[block(skip)]
    num_items: usize,
    #[block(skip)]
    seq_len: usize,
}

impl SasRec {
    pub fn new(spec: &ModelSpec) -> Result<SasRec> {
        let (d, n, heads) = (spec.num_embeddings, spec.seq_len, spec.heads);
        if n == 0 || spec.blocks == 0 || heads == 0 || !d.is_multiple_of(heads) {
            return Err(Error::InvalidArgument(format!(
                "sasrec needs --seq-len >= 1, --blocks >= 1 and --num-embeddings a multiple of \
                 --heads >= 1, got --seq-len {n}, --blocks {}, --num-embeddings {d}, --heads {heads}",
                spec.blocks
            )));
        }
        // The saved sequences hold item indices as f32, exact below 2^24.
        if spec.num_items >= MAX_ITEMS {
            return Err(Error::InvalidArgument(format!(
                "sasrec keeps item indices in f32 and takes at most {} items, got {}: \
                 raise --min-item-ratings to drop rare items",
                MAX_ITEMS - 1,
                spec.num_items
            )));
        }
        let layers = (0..spec.blocks)
            .map(|_| Ok(TransformerEncoderLayer::new(d, heads, d)?.dropout(spec.dropout)))
            .collect::<Result<Vec<_>>>()?;
        let recent = Embedding::with_options(spec.num_users, n, false, DType::F32);
        recent.weight.set_grad_req(autograd::GradReq::Null);
        Ok(SasRec {
            // Dense gradients: the output layer touches every row anyway.
            item_embeddings: Embedding::with_options(spec.num_items + 1, d, false, DType::F32),
            positions: PositionalEmbedding::new(n, d),
            layers,
            norm: LayerNorm::new(d),
            dropout: Dropout::new(spec.dropout),
            recent,
            num_items: spec.num_items,
            seq_len: n,
        })
    }

    /// The latest `seq_len` items of `history`, left-padded with the padding item.
    pub fn padded(history: &[i64], num_items: usize, seq_len: usize) -> Vec<i64> {
        let tail = &history[history.len().saturating_sub(seq_len)..];
        let mut row = vec![num_items as i64; seq_len - tail.len()];
        row.extend_from_slice(tail);
        row
    }

    /// `[B, T, d]` outputs for `[B, T]` item sequences (`items`: their values on the
    /// host): position `t` has seen items `..=t` only, and no padding.
    fn encode(&self, sequences: &Tensor, items: &[i64]) -> Result<Tensor> {
        let d = self.positions.weight.shape()[1];
        let pad = self.num_items as i64;
        let keep: Vec<f32> = items
            .iter()
            .map(|&i| f32::from(u8::from(i != pad)))
            .collect();
        let keep = Tensor::from_vec(keep, sequences.shape())?.to_device(sequences.device())?;
        let x = self
            .item_embeddings
            .forward(sequences)?
            .mul_scalar((d as f32).sqrt())?;
        // Right-aligned: the latest item has the last position however far a batch's
        // all-padding columns were trimmed ([`trim_padding`]).
        let mut x = self
            .dropout
            .forward(&self.positions.forward_right_aligned(&x)?)?;
        let mask = AttentionMask {
            causal: true,
            key_padding: Some(&keep),
        };
        for layer in &self.layers {
            x = layer.forward_masked(&x, mask)?;
        }
        self.norm.forward(&x)
    }

    /// The item table without the padding row, `[num_items, d]`.
    fn item_table(&self) -> Result<Tensor> {
        self.item_embeddings
            .weight
            .data()?
            .slice_axis(0, 0, self.num_items)
    }

    /// The saved latest items of `users`, `[B, width]` i64, trimmed of the columns that
    /// are padding in every row ([`trim_padding`]), and the same values on the host.
    fn recent_items(&self, users: &Tensor) -> Result<(Tensor, Vec<i64>)> {
        let rows = self.recent.forward(users)?;
        let items: Vec<i64> = rows.to_vec_f32()?.into_iter().map(|i| i as i64).collect();
        let (items, width) = trim_padding(items, self.num_items, self.seq_len);
        let b = users.elem_count();
        let t = Tensor::from_vec_i64(items.clone(), &[b, width])?.to_device(users.device())?;
        Ok((t, items))
    }

    /// `[B, d]`: the last position's output over each user's saved sequence.
    fn user_vectors(&self, users: &Tensor) -> Result<Tensor> {
        let b = users.elem_count();
        let mut parts = Vec::new();
        for start in (0..b).step_by(USERS_PER_CHUNK) {
            let chunk = users.slice_axis(0, start, (start + USERS_PER_CHUNK).min(b))?;
            let (sequences, items) = self.recent_items(&chunk)?;
            let h = self.encode(&sequences, &items)?;
            let (rows, n, d) = (h.shape()[0], h.shape()[1], h.shape()[2]);
            parts.push(h.slice_axis(1, n - 1, n)?.reshape(&[rows, d])?);
        }
        match parts.len() {
            1 => Ok(parts.remove(0)),
            _ => Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0),
        }
    }
}

impl Forward for SasRec {
    /// `([B, T]` input sequences (left-padded, `T <= seq_len`), `[K]` positions to mask`)` →
    /// `[P, num_items]` scores of the next item at each of the `P` non-padding positions,
    /// in row-major order (the order of the targets [`next_item_targets`] lists), with
    /// `-inf` at the masked positions of that matrix ([`seen_positions`]).
    type Input = (Tensor, Tensor);

    fn forward(&self, (sequences, masked): &(Tensor, Tensor)) -> Result<Tensor> {
        if sequences.rank() != 2 || !(1..=self.seq_len).contains(&sequences.shape()[1]) {
            return Err(Error::InvalidShape {
                op: "SasRec",
                msg: format!(
                    "sequences must be [batch, 1..={}], got {:?}",
                    self.seq_len,
                    sequences.shape()
                ),
            });
        }
        let items = sequences.to_vec_i64()?;
        let h = self.encode(sequences, &items)?;
        let d = h.shape()[2];
        let pad = self.num_items as i64;
        let positions: Vec<i64> = (0..)
            .zip(items)
            .filter(|&(_, item)| item != pad)
            .map(|(k, _)| k)
            .collect();
        let p = positions.len();
        let positions = Tensor::from_vec_i64(positions, &[p])?.to_device(h.device())?;
        let scores = h
            .reshape(&[sequences.elem_count(), d])?
            .take(&positions, false)?
            .matmul_t(&self.item_table()?, false, true)?;
        match masked.elem_count() {
            0 => Ok(scores),
            _ => scores.fill_at(masked, f32::NEG_INFINITY),
        }
    }
}

/// The positions, in the `[P, num_items]` scores of a batch of `inputs` (rows of
/// `seq_len`, padding = `num_items`) and their `targets`, of the items each position
/// has already seen in its row, the target excepted: what the training loss leaves out,
/// as ranking leaves out a user's seen items.
pub fn seen_positions(
    inputs: &[i64],
    targets: &[i64],
    num_items: usize,
    seq_len: usize,
) -> Vec<i64> {
    let pad = num_items as i64;
    let mut out = Vec::new();
    let mut p = 0i64;
    let mut next = targets.iter();
    for row in inputs.chunks(seq_len) {
        let real = row.iter().position(|&i| i != pad).unwrap_or(row.len());
        for t in real..row.len() {
            let target = next.next().copied().unwrap_or(-1);
            let base = p * num_items as i64;
            out.extend(
                row[real..=t]
                    .iter()
                    .filter(|&&i| i != target)
                    .map(|&i| base + i),
            );
            p += 1;
        }
    }
    out
}

/// Rows of `width` left-padded items (padding = `num_items`) without the leading columns
/// that are padding in every row (at least one column is kept): a batch of short
/// sequences costs its longest, not the window. Returns the rows and their new width.
pub fn trim_padding(rows: Vec<i64>, num_items: usize, width: usize) -> (Vec<i64>, usize) {
    let pad = num_items as i64;
    let longest = rows
        .chunks(width.max(1))
        .map(|r| r.len() - r.iter().position(|&i| i != pad).unwrap_or(r.len()))
        .max()
        .unwrap_or(0)
        .max(1);
    if longest == width {
        return (rows, width);
    }
    let trimmed = rows
        .chunks(width)
        .flat_map(|r| r[width - longest..].iter().copied())
        .collect();
    (trimmed, longest)
}

/// One user's training example from their item sequence: the input, the latest
/// `seq_len` items before the last one (left-padded), and the item after each of its
/// non-padding positions. `None` for fewer than two items.
pub fn next_item_targets(
    sequence: &[i64],
    num_items: usize,
    seq_len: usize,
) -> Option<(Vec<i64>, Vec<i64>)> {
    if sequence.len() < 2 {
        return None;
    }
    let input = SasRec::padded(&sequence[..sequence.len() - 1], num_items, seq_len);
    let targets = sequence[sequence.len() - (seq_len.min(sequence.len() - 1))..].to_vec();
    Some((input, targets))
}

/// Every training example of a sequence longer than one window: the latest window
/// ([`next_item_targets`]), then the windows before it, each ending where the next one
/// starts, so every item after the first is a target exactly once.
pub fn training_windows(
    sequence: &[i64],
    num_items: usize,
    seq_len: usize,
) -> Vec<(Vec<i64>, Vec<i64>)> {
    let mut out = Vec::new();
    let mut end = sequence.len();
    while let Some(example) = next_item_targets(&sequence[..end], num_items, seq_len) {
        out.push(example);
        // This window's first input is the next window's last target.
        match end.checked_sub(seq_len) {
            Some(e) if e >= 2 => end = e,
            _ => break,
        }
    }
    out
}

impl FactorScorer for SasRec {
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| self.user_vectors(users))
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        autograd::predict_mode(|| self.item_embeddings.forward(items))
    }
}

impl RecModel for SasRec {
    fn uses_sequences(&self) -> Option<usize> {
        Some(self.seq_len)
    }
    fn set_context(&self, context: &UserContext, device: Device) -> Result<()> {
        let n = context.sequence.len();
        let rows: Vec<f32> = context
            .sequence
            .iter()
            .flat_map(|s| SasRec::padded(s, self.num_items, self.seq_len))
            .map(|i| i as f32)
            .collect();
        let t = Tensor::from_vec(rows, &[n, self.seq_len])?.to_device(device)?;
        self.recent.weight.set_data(&t)
    }
    fn predict_pairs(&self, users: &Tensor, items: &Tensor) -> Result<Tensor> {
        let u = self.user_vectors(users)?;
        let e = self.item_embeddings.forward(items)?;
        u.mul(&e)?.sum_axis(1, false)
    }
}
