//! `ShardedEmbedding`: an embedding table whose rows are split over data-parallel ranks
//! (model parallel, as TorchRec and DLRM do for tables too big for one host).

use crate::autograd::{self, Grad, RowSparse};
use crate::distributed::Communicator;
use crate::error::{Error, Result};
use crate::nn::{Block, Forward, GradStype, Parameter};
use crate::tensor::{DType, Tensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A `[rows, dim]` table spread over the ranks of `comm`: global row `g` lives on rank
/// `g % ranks` as its local row `g / ranks`, so each rank holds and updates about
/// `rows / ranks` rows, optimizer state included.
///
/// `forward(ids)` sends each id to the rank that owns it and the rows back (all-to-all);
/// backward sends each row's gradient to its owner, which applies it, when the
/// [`Trainer`](crate::optim::Trainer) steps. Every rank must call `forward` the same
/// number of times per step (as data-parallel training does, each on its shard of the
/// batch), also when evaluating.
///
/// ```
/// use boson::distributed::{Communicator, LocalGroup};
/// use boson::nn::{Block, Forward, ShardedEmbedding};
/// use boson::Tensor;
/// use std::sync::Arc;
///
/// let threads: Vec<_> = LocalGroup::new(2)?
///     .into_iter()
///     .map(|c| std::thread::spawn(move || -> boson::Result<Vec<usize>> {
///         let rank = c.rank() as f32;
///         let table = ShardedEmbedding::new(5, 2, Arc::new(c));
///         // Rank 0 owns rows 0, 2, 4; rank 1 owns rows 1, 3. Row g holds [g, g].
///         let mine: Vec<f32> = (0..table.weight.shape()[0])
///             .flat_map(|l| { let g = 2.0 * l as f32 + rank; [g, g] })
///             .collect();
///         table.weight.set_data(&Tensor::from_vec(mine, &table.weight.shape())?)?;
///         let rows = table.forward(&Tensor::from_vec_i64(vec![3, 4], &[2])?)?;
///         assert_eq!(rows.to_vec_f32()?, [3.0, 3.0, 4.0, 4.0]);
///         Ok(table.weight.shape())
///     }))
///     .collect();
/// let shapes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect::<boson::Result<_>>()?;
/// assert_eq!(shapes, [vec![3, 2], vec![2, 2]]);
/// # Ok::<(), boson::Error>(())
/// ```
#[derive(Block)]
pub struct ShardedEmbedding {
    /// This rank's rows, `[rows this rank owns, dim]`.
    pub weight: Parameter,
    #[block(skip)]
    comm: Arc<dyn Communicator>,
    #[block(skip)]
    rows: usize,
    #[block(skip)]
    pending: Arc<Mutex<Vec<Exchange>>>,
}

/// One recorded forward, until its gradients are exchanged.
struct Exchange {
    /// The rows this rank served, read from `weight` under record, one block per
    /// requesting rank in rank order.
    served: Tensor,
    /// The rows this rank received, a gradient leaf, one block per owner in rank order;
    /// `per_owner[o]` rows came from rank `o`.
    received: Tensor,
    per_owner: Vec<usize>,
}

impl ShardedEmbedding {
    /// This rank's part of a `rows × dim` f32 table with row-sparse gradients.
    pub fn new(rows: usize, dim: usize, comm: Arc<dyn Communicator>) -> ShardedEmbedding {
        let (rank, ranks) = (comm.rank(), comm.size().max(1));
        let mine = (rows + ranks - 1 - rank.min(ranks - 1)) / ranks;
        let weight = Parameter::with_options(
            "weight",
            &[mine, dim],
            None,
            DType::F32,
            GradStype::RowSparse,
        );
        let pending: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let (p, c) = (Arc::clone(&pending), Arc::clone(&comm));
        weight.set_sharded(Arc::new(move |w: &Parameter| settle(&p, &*c, w, dim)));
        ShardedEmbedding {
            weight,
            comm,
            rows,
            pending,
        }
    }

    /// The number of rows of the whole table.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl Forward for ShardedEmbedding {
    /// Row ids, i64 of any shape; the output adds a last dimension of `dim`.
    type Input = Tensor;

    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let weight = self.weight.data()?;
        let dim = weight.shape()[1];
        let device = weight.device();
        let ranks = self.comm.size();
        let flat = ids.to_vec_i64()?;
        if let Some(&bad) = flat.iter().find(|&&g| g < 0 || g as usize >= self.rows) {
            return Err(Error::IndexOutOfRange {
                what: "ShardedEmbedding: row id (rows of the whole table)".into(),
                index: bad,
                size: self.rows,
            });
        }
        // The distinct ids, grouped by owner: what to ask each rank for.
        let mut wanted = flat.clone();
        wanted.sort_unstable_by_key(|&g| (g as usize % ranks, g));
        wanted.dedup();
        let mut ask = vec![Vec::new(); ranks];
        for &g in &wanted {
            ask[g as usize % ranks].push(g);
        }
        let asked = self.comm.all_to_all_i64(&ask)?;
        // Serve what the others asked for, from this rank's rows.
        let local: Vec<i64> = asked.iter().flatten().map(|&g| g / ranks as i64).collect();
        let n = local.len();
        let served = weight.take(&Tensor::from_vec_i64(local, &[n])?.to_device(device)?, true)?;
        let values = served.to_vec_f32()?;
        let mut replies = Vec::with_capacity(ranks);
        let mut at = 0;
        for a in &asked {
            replies.push(values[at * dim..(at + a.len()) * dim].to_vec());
            at += a.len();
        }
        let rows = self.comm.all_to_all_f32(&replies)?;
        let per_owner: Vec<usize> = ask.iter().map(Vec::len).collect();
        let mut received =
            Tensor::from_vec(rows.concat(), &[wanted.len(), dim])?.to_device(device)?;
        if autograd::is_recording() {
            received = received.attach_grad();
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Exchange {
                    served,
                    received: received.clone(),
                    per_owner,
                });
        }
        // The batch's rows, in its order, from the received ones.
        let at: HashMap<i64, i64> = wanted
            .iter()
            .enumerate()
            .map(|(k, &g)| (g, k as i64))
            .collect();
        let positions: Vec<i64> = flat.iter().map(|g| at[g]).collect();
        let positions = Tensor::from_vec_i64(positions, ids.shape())?.to_device(device)?;
        received.take(&positions, false)
    }
}

/// Sends the gradients of the rows each rank received back to their owners, and writes
/// the sum into this rank's part of the table as a row-sparse gradient.
fn settle(
    pending: &Mutex<Vec<Exchange>>,
    comm: &dyn Communicator,
    weight: &Parameter,
    dim: usize,
) -> Result<()> {
    let exchanges = std::mem::take(&mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
    if exchanges.is_empty() {
        // No forward since the last settle (or settled already this step).
        return Ok(());
    }
    let mut served = Vec::new();
    let mut heads = Vec::new();
    for ex in exchanges {
        let n = ex.received.shape()[0];
        let grad = match ex.received.grad()? {
            Some(g) => g.to_vec_f32()?,
            None => vec![0.0; n * dim],
        };
        let mut to_owner = Vec::with_capacity(ex.per_owner.len());
        let mut at = 0;
        for &k in &ex.per_owner {
            to_owner.push(grad[at * dim..(at + k) * dim].to_vec());
            at += k;
        }
        let back = comm.all_to_all_f32(&to_owner)?.concat();
        let rows = ex.served.shape()[0];
        heads.push(Tensor::from_vec(back, &[rows, dim])?.to_device(ex.served.device())?);
        served.push(ex.served);
    }
    let rows: usize = served.iter().map(|s| s.shape()[0]).sum();
    if rows == 0 {
        // Nothing of this rank's was read: an empty gradient, not a missing one.
        let device = weight.data()?.device();
        weight.set_grad(Some(Grad::RowSparse(RowSparse {
            indices: Tensor::from_vec_i64(Vec::new(), &[0])?.to_device(device)?,
            values: Tensor::zeros(&[0, dim], device)?,
            shape: weight.shape(),
        })));
        return Ok(());
    }
    let served: Vec<&Tensor> = served.iter().filter(|s| s.shape()[0] > 0).collect();
    let heads: Vec<&Tensor> = heads.iter().filter(|h| h.shape()[0] > 0).collect();
    let all = autograd::record(|| Tensor::concat(&served, 0))?;
    let head = Tensor::concat(&heads, 0)?;
    all.backward_with(&head)
}
