//! Tables split over data-parallel ranks (model parallel, as TorchRec and DLRM do for
//! tables too big for one host): [`Parameter::shard`] keeps row `g` of a table on rank
//! `g % ranks` only, as its local row `g / ranks`; an [`Embedding`](crate::nn::Embedding)
//! over such a table fetches the rows a batch needs from their owners (all-to-all), and
//! the rows' gradients go back to them when the [`Trainer`](crate::optim::Trainer) steps.
//! Every rank must run the same forwards of a sharded table (each on its shard of the
//! batch), also when evaluating; [`Parameter::gather`] makes it whole again.
//!
//! ```
//! use boson::distributed::{Communicator, LocalGroup};
//! use boson::nn::{Block, Embedding, Forward};
//! use boson::Tensor;
//! use std::sync::Arc;
//!
//! let threads: Vec<_> = LocalGroup::new(2)?
//!     .into_iter()
//!     .map(|c| std::thread::spawn(move || -> boson::Result<()> {
//!         // Row g of a 5-row table holds [g, g]; rank 0 keeps rows 0, 2, 4, rank 1 rows 1, 3.
//!         let rank = c.rank();
//!         let table = Embedding::new(5, 2);
//!         let rows: Vec<f32> = (0..5).flat_map(|g| [g as f32; 2]).collect();
//!         table.weight.set_data(&Tensor::from_vec(rows, &[5, 2])?)?;
//!         table.weight.shard(Arc::new(c))?;
//!         assert_eq!(table.weight.shape(), [if rank == 0 { 3 } else { 2 }, 2]);
//!         let out = table.forward(&Tensor::from_vec_i64(vec![3, 4, 3], &[3])?)?;
//!         assert_eq!(out.to_vec_f32()?, [3.0, 3.0, 4.0, 4.0, 3.0, 3.0]);
//!         table.weight.gather()?;
//!         assert_eq!(table.weight.shape(), [5, 2]);
//!         Ok(())
//!     }))
//!     .collect();
//! for t in threads {
//!     t.join().unwrap()?;
//! }
//! # Ok::<(), boson::Error>(())
//! ```

use crate::autograd::{self, Grad, RowSparse};
use crate::distributed::Communicator;
use crate::error::{Error, Result};
use crate::nn::Parameter;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How a parameter is split over ranks, and the forwards whose gradients are pending.
pub(crate) struct Sharding {
    pub(crate) rows: usize,
    pub(crate) comm: Arc<dyn Communicator>,
    pending: Mutex<Vec<Exchange>>,
}

/// One recorded forward, until its gradients are exchanged.
struct Exchange {
    /// The rows this rank served, read from the table under record, one block per
    /// requesting rank in rank order.
    served: Tensor,
    /// The rows this rank received, a gradient leaf, one block per owner in rank order;
    /// `per_owner[o]` rows came from rank `o`.
    received: Tensor,
    per_owner: Vec<usize>,
}

impl Sharding {
    pub(crate) fn new(rows: usize, comm: Arc<dyn Communicator>) -> Sharding {
        Sharding {
            rows,
            comm,
            pending: Mutex::default(),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The rows of the whole table that `rank` of `ranks` keeps.
pub(crate) fn owned(rows: usize, rank: usize, ranks: usize) -> impl Iterator<Item = usize> {
    (rank..rows).step_by(ranks.max(1))
}

/// This rank's rows of a whole `[rows, dim]` table.
pub(crate) fn local_part(whole: &Tensor, rank: usize, ranks: usize) -> Result<Tensor> {
    let rows = whole.shape()[0];
    let mine: Vec<i64> = owned(rows, rank, ranks).map(|g| g as i64).collect();
    let n = mine.len();
    let at = Tensor::from_vec_i64(mine, &[n])?.to_device(whole.device())?;
    autograd::pause(|| whole.take(&at, false))
}

/// The whole table from every rank's part (a collective).
pub(crate) fn whole(local: &Tensor, s: &Sharding) -> Result<Tensor> {
    let dim = local.shape()[1];
    let ranks = s.comm.size();
    let parts = s.comm.all_gather_f32(&local.to_vec_f32()?)?;
    let mut values = vec![0.0f32; s.rows * dim];
    for (r, part) in parts.iter().enumerate() {
        for (l, g) in owned(s.rows, r, ranks).enumerate() {
            let row = part.get(l * dim..(l + 1) * dim).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "gathering a sharded table: rank {r} holds {} values, fewer rows than it owns",
                    part.len()
                ))
            })?;
            values[g * dim..(g + 1) * dim].copy_from_slice(row);
        }
    }
    Tensor::from_vec(values, &[s.rows, dim])?.to_device(local.device())
}

/// The rows of `ids` (i64, any shape) of the table `weight` is this rank's part of.
pub(crate) fn forward(weight: &Parameter, s: &Sharding, ids: &Tensor) -> Result<Tensor> {
    let table = weight.data()?;
    let dim = table.shape()[1];
    let device = table.device();
    let ranks = s.comm.size();
    let flat = ids.to_vec_i64()?;
    if let Some(&bad) = flat.iter().find(|&&g| g < 0 || g as usize >= s.rows) {
        return Err(Error::IndexOutOfRange {
            what: "Embedding (sharded): row id (rows of the whole table)".into(),
            index: bad,
            size: s.rows,
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
    let asked = s.comm.all_to_all_i64(&ask)?;
    // Serve what the others asked for, from this rank's rows.
    let local: Vec<i64> = asked.iter().flatten().map(|&g| g / ranks as i64).collect();
    let n = local.len();
    let served = table.take(&Tensor::from_vec_i64(local, &[n])?.to_device(device)?, true)?;
    let values = served.to_vec_f32()?;
    let mut replies = Vec::with_capacity(ranks);
    let mut at = 0;
    for a in &asked {
        replies.push(values[at * dim..(at + a.len()) * dim].to_vec());
        at += a.len();
    }
    let rows = s.comm.all_to_all_f32(&replies)?;
    let mut received = Tensor::from_vec(rows.concat(), &[wanted.len(), dim])?.to_device(device)?;
    if autograd::is_recording() {
        received = received.attach_grad();
        s.pending().push(Exchange {
            served,
            received: received.clone(),
            per_owner: ask.iter().map(Vec::len).collect(),
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

/// Sends the gradients of the rows each rank received back to their owners, and writes
/// their sum into this rank's part as a row-sparse gradient. Every rank calls it at the
/// same point (the trainer does, before each update); a no-op without pending forwards.
pub(crate) fn settle(weight: &Parameter, s: &Sharding) -> Result<()> {
    let exchanges = std::mem::take(&mut *s.pending());
    if exchanges.is_empty() {
        return Ok(());
    }
    let dim = weight.shape()[1];
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
        let back = s.comm.all_to_all_f32(&to_owner)?.concat();
        let rows = ex.served.shape()[0];
        heads.push(Tensor::from_vec(back, &[rows, dim])?.to_device(ex.served.device())?);
        served.push(ex.served);
    }
    let served: Vec<&Tensor> = served.iter().filter(|t| t.shape()[0] > 0).collect();
    let heads: Vec<&Tensor> = heads.iter().filter(|t| t.shape()[0] > 0).collect();
    if served.is_empty() {
        // Nothing of this rank's was read: an empty gradient, not a missing one.
        let device = weight.data()?.device();
        weight.set_grad(Some(Grad::RowSparse(RowSparse {
            indices: Tensor::from_vec_i64(Vec::new(), &[0])?.to_device(device)?,
            values: Tensor::zeros(&[0, dim], device)?,
            shape: weight.shape(),
        })));
        return Ok(());
    }
    let all = autograd::record(|| Tensor::concat(&served, 0))?;
    all.backward_with(&Tensor::concat(&heads, 0)?)
}
