//! Data-parallel training over several processes (MPI) or threads: a [`Communicator`]
//! moves gradients between ranks; [`crate::optim::Trainer::set_communicator`] uses it.
//!
//! Each rank reads its shard of every batch ([`crate::data::DataLoaderBuilder::shard`]),
//! computes gradients, and the trainer sums them over the ranks before the update:
//! dense gradients by an all-reduce in fused buckets, row-sparse embedding gradients by
//! an all-gather of their indices and rows (never densified), merged as one process
//! merges them. Every rank then applies the same update, so N ranks of batch B train as
//! one process of batch N·B (to float rounding).
//!
//! Transports: [`LocalGroup`] (ranks as threads of one process, for tests and for trying
//! it out) and, with the `mpi` feature, `Mpi` over the system's MPI library (Open MPI;
//! `mpirun -np N`), and with `nccl`, `Nccl`: the sums on the GPUs, one process per GPU.
//!
//! ```
//! use boson::distributed::{Communicator, LocalGroup};
//!
//! let ranks = LocalGroup::new(2)?;
//! let handles: Vec<_> = ranks
//!     .into_iter()
//!     .map(|c| std::thread::spawn(move || {
//!         let mut v = vec![c.rank() as f32 + 1.0; 3];
//!         c.all_reduce_sum(&mut v).map(|_| v)
//!     }))
//!     .collect();
//! for h in handles {
//!     assert_eq!(h.join().unwrap()?, vec![3.0; 3]);
//! }
//! # Ok::<(), boson::Error>(())
//! ```

mod communicator;
mod exchange;
mod local;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;

#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;
#[cfg(feature = "nccl")]
pub use self::nccl::Nccl;
pub use communicator::Communicator;
pub use exchange::{all_gather_rows, all_reduce_dense, all_reduce_sum_f64, Traffic};
pub use local::{LocalCommunicator, LocalGroup};
