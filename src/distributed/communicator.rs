//! The collective operations data-parallel training needs, whatever carries them.

use crate::error::{Error, Result};

/// One rank's handle on a group of ranks. Every rank calls the same collectives in the
/// same order; each returns once all ranks have taken part. A rank that has failed
/// makes the others' calls return an error naming it (or end the job, with MPI), never
/// hang.
pub trait Communicator: Send + Sync {
    /// This rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Sums `values` element-wise over the ranks, in place; every rank passes the same
    /// length.
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()>;
    /// Every rank's `values` (lengths may differ), in rank order.
    fn all_gather_f32(&self, values: &[f32]) -> Result<Vec<Vec<f32>>>;
    /// Every rank's `values` (lengths may differ), in rank order.
    fn all_gather_i64(&self, values: &[i64]) -> Result<Vec<Vec<i64>>>;
    /// Rank `root`'s `values` on every rank; every rank passes the same length.
    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()>;

    /// `send[r]` goes to rank r; returns what every rank sent to this one, in rank order.
    /// This default goes through [`all_gather_i64`](Self::all_gather_i64), so every rank
    /// receives every message; a transport with a true all-to-all overrides it.
    fn all_to_all_i64(&self, send: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
        check_destinations(send.len(), self.size())?;
        let lens = self.all_gather_i64(&lengths(send))?;
        addressed_to(self.rank(), &self.all_gather_i64(&send.concat())?, &lens)
    }

    /// [`all_to_all_i64`](Self::all_to_all_i64) for f32 values.
    fn all_to_all_f32(&self, send: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        check_destinations(send.len(), self.size())?;
        let lens = self.all_gather_i64(&lengths(send))?;
        addressed_to(self.rank(), &self.all_gather_f32(&send.concat())?, &lens)
    }
}

fn check_destinations(given: usize, size: usize) -> Result<()> {
    if given != size {
        return Err(Error::InvalidArgument(format!(
            "all_to_all: {given} messages for a group of {size} ranks; give one per rank"
        )));
    }
    Ok(())
}

fn lengths<T>(send: &[Vec<T>]) -> Vec<i64> {
    send.iter().map(|v| v.len() as i64).collect()
}

/// From every rank's concatenated messages (`all[r]`, split by `lens[r]`), the ones
/// addressed to rank `me`.
fn addressed_to<T: Clone>(me: usize, all: &[Vec<T>], lens: &[Vec<i64>]) -> Result<Vec<Vec<T>>> {
    all.iter()
        .zip(lens)
        .enumerate()
        .map(|(r, (data, lens))| {
            let start: usize = lens.iter().take(me).map(|&l| l as usize).sum();
            let len = lens.get(me).copied().unwrap_or(0) as usize;
            data.get(start..start + len)
                .map(<[T]>::to_vec)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("all_to_all: rank {r} sent a short message"))
                })
        })
        .collect()
}
