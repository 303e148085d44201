//! Data-parallel training over MPI, one process per rank: run it as
//! `mpirun -np 2 <this test binary>` (scripts/mpi-test.sh does). Each rank trains its
//! shard with the real MPI transport and checks that its parameters equal those of one
//! process trained alone on the global batch, for dense and row-sparse gradients, and
//! that every rank holds the same values; and that sharded tables (`Parameter::shard`)
//! train as one process's whole tables. A check that fails ends the whole job with a
//! non-zero exit (MPI_Abort), so no rank waits forever.
//!
//! BOSON_MPI_FAIL_RANK=r makes rank r exit with an error before its first collective:
//! mpirun must then end every rank with an error naming it (the script checks).
//!
//! Run alone (`cargo test --features mpi`), the world has one rank: it says so and passes.

#[path = "common/data_parallel.rs"]
mod data_parallel;

use boson::distributed::{Communicator, Mpi};
use boson::optim::{Adam, Sgd};
use data_parallel::{assert_close, train};
use std::sync::Arc;

fn main() {
    let mpi = Arc::new(Mpi::init().expect("MPI initialises"));
    let (rank, size) = (mpi.rank(), mpi.size());
    if size < 2 {
        println!("tests/mpi.rs: skipped: a world of {size} rank; run under mpirun -np 2");
        return;
    }
    if let Ok(r) = std::env::var("BOSON_MPI_FAIL_RANK") {
        if r.parse() == Ok(rank) {
            eprintln!("rank {rank}: failing on purpose before the first collective");
            std::process::exit(3);
        }
    }
    #[cfg_attr(not(feature = "nccl"), allow(unused_mut))]
    let mut transports: Vec<(&str, Arc<dyn Communicator>)> = vec![("MPI", mpi.clone())];
    #[cfg(feature = "nccl")]
    match nccl(&mpi) {
        Ok(n) => transports.push(("NCCL", n)),
        Err(why) if rank == 0 => println!("tests/mpi.rs: NCCL checks skipped: {why}"),
        Err(_) => {}
    }
    for (transport, comm) in transports {
        checks(&mpi, transport, comm);
    }
}

/// NCCL on GPU `rank` when every rank has its GPU; else why not (the same on every
/// rank, decided together, so no rank waits in NCCL's init for one that cannot come).
#[cfg(feature = "nccl")]
fn nccl(mpi: &Arc<Mpi>) -> Result<Arc<dyn Communicator>, String> {
    let mine = boson::Device::new_cuda(mpi.rank()).map(|_| ());
    let all = mpi.all_gather_i64(&[i64::from(mine.is_ok())]).unwrap();
    if let Some(r) = all.iter().position(|v| v[0] == 0) {
        return Err(match mine {
            Err(e) if r == mpi.rank() => format!("rank {r} has no GPU {r}: {e}"),
            _ => format!("rank {r} has no GPU {r}"),
        });
    }
    boson::distributed::Nccl::init(mpi.clone(), mpi.rank())
        .map(|n| Arc::new(n) as Arc<dyn Communicator>)
        .map_err(|e| e.to_string())
}

fn checks(mpi: &Arc<Mpi>, transport: &str, comm: Arc<dyn Communicator>) {
    let (rank, size) = (mpi.rank(), mpi.size());
    let checks: [(&str, bool, usize); 3] = [
        ("dense gradients, Adam", false, 0),
        ("row-sparse gradients, Adam", true, 0),
        ("row-sparse gradients, momentum SGD", true, 1),
    ];
    for (name, sparse, opt) in checks {
        let global = 64;
        let comm = comm.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (alone, together) = if opt == 0 {
                (
                    train(None, 100, global, sparse, Adam::new(0.01)).unwrap().0,
                    train(
                        Some(comm),
                        100 + rank as u64,
                        global / size,
                        sparse,
                        Adam::new(0.01),
                    ),
                )
            } else {
                let sgd = || Sgd::new(0.05).momentum(0.9);
                (
                    train(None, 100, global, sparse, sgd()).unwrap().0,
                    train(Some(comm), 100 + rank as u64, global / size, sparse, sgd()),
                )
            };
            let (together, traffic) = together.unwrap();
            assert_close(&together, &alone, name);
            // Every rank holds the same values, bit for bit.
            let mine: Vec<f32> = together
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
                .collect();
            let all = mpi.all_gather_f32(&mine).unwrap();
            assert!(all.iter().all(|v| v == &mine), "{name}: the ranks differ");
            traffic
        }));
        match result {
            Ok(traffic) => println!(
                "rank {rank}/{size} over {transport}: {name}: same parameters as one process \
                 of batch {global}; sent {} bytes ({} densified)",
                traffic.bytes, traffic.densified_bytes
            ),
            Err(_) => {
                eprintln!("rank {rank} over {transport}: {name}: FAILED");
                mpi.abort(1);
            }
        }
    }
    // Sharded tables: this rank's rows equal those rows of one process's whole tables.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let whole = data_parallel::train_tables(None);
        let mine = data_parallel::train_tables(Some(comm.clone()));
        let part = data_parallel::Tables {
            users: whole
                .users
                .iter()
                .filter(|(g, _)| g % size == rank)
                .cloned()
                .collect(),
            items: whole
                .items
                .iter()
                .filter(|(g, _)| g % size == rank)
                .cloned()
                .collect(),
            held: whole.held,
        };
        assert_eq!(mine.held, [part.users.len(), part.items.len()]);
        data_parallel::assert_tables_close(std::slice::from_ref(&mine), &part);
        mine.held
    }));
    match result {
        Ok(held) => println!(
            "rank {rank}/{size} over {transport}: sharded tables: its rows as one process's \
             whole tables; holds {held:?} of [200, 300] rows"
        ),
        Err(_) => {
            eprintln!("rank {rank} over {transport}: sharded tables: FAILED");
            mpi.abort(1);
        }
    }
}
