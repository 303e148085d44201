//! The collective operations data-parallel training needs, whatever carries them.

use crate::error::Result;

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
}
