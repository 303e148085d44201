//! [`Communicator`] over MPI (the `mpi` crate on the system's Open MPI): one process per
//! rank, started by `mpirun -np N`.

use super::Communicator;
use crate::error::{Error, Result};
use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};
use mpi::Count;
use std::sync::Mutex;

/// The MPI world of this process. MPI ends when it is dropped (once per process).
pub struct Mpi {
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    // Dropped last: finalises MPI.
    _universe: mpi::environment::Universe,
}

// MPI is initialised with MPI_THREAD_MULTIPLE (checked in `init`), so its handles may be
// used from any thread; the mutex keeps one collective at a time from this process.
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

impl Mpi {
    /// Initialises MPI; the rank and size come from the launcher (`mpirun -np N`; run
    /// alone, a world of one). An error if MPI was initialised already in this process
    /// or lacks thread support.
    pub fn init() -> Result<Mpi> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Multiple)
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "MPI is initialised already in this process: create one Mpi and share it"
                        .into(),
                )
            })?;
        if threading != mpi::Threading::Multiple {
            return Err(Error::InvalidArgument(format!(
                "this MPI library gives thread level {threading:?}, not Multiple; use an \
                 MPI built with thread support (Debian's Open MPI is)"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Mpi {
            world: Mutex::new(world),
            rank,
            size,
            _universe: universe,
        })
    }

    /// Ends every rank of the job with `code` (after an error on this one, so that the
    /// others do not wait for it).
    pub fn abort(&self, code: i32) -> ! {
        self.world().abort(code)
    }

    fn world(&self) -> std::sync::MutexGuard<'_, SimpleCommunicator> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gather<T: mpi::datatype::Equivalence + Default + Clone>(
        &self,
        values: &[T],
    ) -> Result<Vec<Vec<T>>> {
        let world = self.world();
        let mine = count(values.len())?;
        let mut counts: Vec<Count> = vec![0; self.size];
        world.all_gather_into(&mine, &mut counts[..]);
        let displs = displacements(&counts);
        let mut all = vec![T::default(); total(&counts)];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(values, &mut partition);
        }
        Ok(split(&all, &counts, &displs))
    }
}

impl Mpi {
    /// MPI_Alltoallv: `send[r]` to rank r, only what is addressed travels.
    fn exchange<T: mpi::datatype::Equivalence + Default + Clone>(
        &self,
        send: &[Vec<T>],
    ) -> Result<Vec<Vec<T>>> {
        if send.len() != self.size {
            return Err(Error::InvalidArgument(format!(
                "all_to_all: {} messages for a world of {} ranks; give one per rank",
                send.len(),
                self.size
            )));
        }
        let world = self.world();
        let send_counts = send
            .iter()
            .map(|v| count(v.len()))
            .collect::<Result<Vec<_>>>()?;
        let mut recv_counts: Vec<Count> = vec![0; self.size];
        world.all_to_all_into(&send_counts[..], &mut recv_counts[..]);
        let (send_displs, recv_displs) = (displacements(&send_counts), displacements(&recv_counts));
        let flat: Vec<T> = send.concat();
        let mut all = vec![T::default(); total(&recv_counts)];
        {
            let out = Partition::new(&flat[..], &send_counts[..], &send_displs[..]);
            let mut into = PartitionMut::new(&mut all[..], &recv_counts[..], &recv_displs[..]);
            world.all_to_all_varcount_into(&out, &mut into);
        }
        Ok(split(&all, &recv_counts, &recv_displs))
    }
}

/// Where each rank's part starts in a buffer of parts of `counts` values.
fn displacements(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0, |at, &c| {
            let d = *at;
            *at += c;
            Some(d)
        })
        .collect()
}

fn total(counts: &[Count]) -> usize {
    counts.iter().map(|&c| c as usize).sum()
}

/// `all` cut into the parts of `counts` at `displs`.
fn split<T: Clone>(all: &[T], counts: &[Count], displs: &[Count]) -> Vec<Vec<T>> {
    counts
        .iter()
        .zip(displs)
        .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
        .collect()
}

fn count(n: usize) -> Result<Count> {
    Count::try_from(n).map_err(|_| {
        Error::InvalidArgument(format!(
            "{n} values in one MPI call: more than MPI's limit of {}",
            Count::MAX
        ))
    })
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        count(values.len())?;
        let send = values.to_vec();
        self.world()
            .all_reduce_into(&send[..], values, mpi::collective::SystemOperation::sum());
        Ok(())
    }

    fn all_gather_f32(&self, values: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.gather(values)
    }

    fn all_gather_i64(&self, values: &[i64]) -> Result<Vec<Vec<i64>>> {
        self.gather(values)
    }

    fn all_to_all_i64(&self, send: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
        self.exchange(send)
    }

    fn all_to_all_f32(&self, send: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        self.exchange(send)
    }

    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()> {
        if root >= self.size {
            return Err(Error::InvalidArgument(format!(
                "broadcast from rank {root} in a world of {}",
                self.size
            )));
        }
        count(values.len())?;
        self.world()
            .process_at_rank(root as i32)
            .broadcast_into(values);
        Ok(())
    }
}
