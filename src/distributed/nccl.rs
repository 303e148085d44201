//! [`Communicator`] with NCCL doing the sums on the GPUs, one process per GPU, started by
//! `mpirun` (MPI hands out the NCCL id and carries the variable-length gathers and
//! all-to-alls, which NCCL has no single call for). The CUDA host code cannot run on the machines this was written
//! on: it is compiled and linted, and tests/mpi.rs exercises it on 2 or more GPUs.

use super::{Communicator, Mpi};
use crate::cuda::CudaDevice;
use crate::error::{Error, Result};
use cudarc::nccl::safe::{Comm, Id, ReduceOp};
use std::sync::{Arc, Mutex};

/// NCCL over this process's GPU, beside the job's [`Mpi`].
pub struct Nccl {
    mpi: Arc<Mpi>,
    device: Arc<CudaDevice>,
    comm: Mutex<Comm>,
}

// NCCL communicators may be used from any thread one call at a time; the mutex keeps it
// so, and every call is ordered on the device's one stream.
unsafe impl Send for Nccl {}
unsafe impl Sync for Nccl {}

fn nccl_err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::InvalidArgument(format!("NCCL {what} failed: {e:?}"))
}

impl Nccl {
    /// One NCCL communicator per rank of `mpi`, on CUDA device `ordinal` (usually the
    /// rank's local index): rank 0 makes the NCCL id and MPI broadcasts it.
    pub fn init(mpi: Arc<Mpi>, ordinal: usize) -> Result<Nccl> {
        let device = CudaDevice::get(ordinal)?;
        let mut id_bytes = vec![0i64; 128];
        if mpi.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_err("id", e))?;
            for (b, &c) in id_bytes.iter_mut().zip(id.internal().iter()) {
                *b = i64::from(c);
            }
        }
        let all = mpi.all_gather_i64(&id_bytes)?;
        let mut internal = [0 as core::ffi::c_char; 128];
        for (c, &b) in internal.iter_mut().zip(&all[0]) {
            *c = b as core::ffi::c_char;
        }
        let comm = Comm::from_rank(
            device.stream().clone(),
            mpi.rank(),
            mpi.size(),
            Id::uninit(internal),
        )
        .map_err(|e| nccl_err("init", e))?;
        Ok(Nccl {
            mpi,
            device,
            comm: Mutex::new(comm),
        })
    }

    fn comm(&self) -> std::sync::MutexGuard<'_, Comm> {
        self.comm.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cuda_err(e: impl std::fmt::Debug) -> Error {
        Error::InvalidArgument(format!("CUDA copy for NCCL failed: {e:?}"))
    }
}

impl Communicator for Nccl {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }

    fn size(&self) -> usize {
        self.mpi.size()
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let stream = self.device.stream();
        let mut buf = stream.clone_htod(values).map_err(Self::cuda_err)?;
        self.comm()
            .all_reduce_in_place(&mut buf, &ReduceOp::Sum)
            .map_err(|e| nccl_err("all_reduce", e))?;
        stream.memcpy_dtoh(&buf, values).map_err(Self::cuda_err)?;
        stream.synchronize().map_err(Self::cuda_err)
    }

    fn all_gather_f32(&self, values: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.mpi.all_gather_f32(values)
    }

    fn all_gather_i64(&self, values: &[i64]) -> Result<Vec<Vec<i64>>> {
        self.mpi.all_gather_i64(values)
    }

    fn all_to_all_i64(&self, send: &[Vec<i64>]) -> Result<Vec<Vec<i64>>> {
        self.mpi.all_to_all_i64(send)
    }

    fn all_to_all_f32(&self, send: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        self.mpi.all_to_all_f32(send)
    }

    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()> {
        if root >= self.size() {
            return Err(Error::InvalidArgument(format!(
                "broadcast from rank {root} in a world of {}",
                self.size()
            )));
        }
        if values.is_empty() {
            return Ok(());
        }
        let stream = self.device.stream();
        let mut buf = stream.clone_htod(values).map_err(Self::cuda_err)?;
        self.comm()
            .broadcast_in_place(&mut buf, root as i32)
            .map_err(|e| nccl_err("broadcast", e))?;
        stream.memcpy_dtoh(&buf, values).map_err(Self::cuda_err)?;
        stream.synchronize().map_err(Self::cuda_err)
    }
}
