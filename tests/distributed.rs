//! Data-parallel training with in-process ranks (`LocalGroup`): the collectives, errors
//! instead of hangs when a rank stops, and N ranks of batch B training to the same
//! parameters as one process of batch N·B, for dense and row-sparse gradients. The same
//! checks over MPI, one process per rank, are tests/mpi.rs (`mpirun -np 2`).

#[path = "common/data_parallel.rs"]
mod data_parallel;

use boson::data::{ArrayDataset, DataLoader, LastBatch};
use boson::distributed::{Communicator, LocalGroup, Traffic};
use boson::optim::{Adam, Optimizer, Sgd};
use data_parallel::{assert_close, train, Params};
use std::sync::Arc;
use std::time::Duration;

/// Runs `train` on `ranks` threads; every rank's parameters and traffic.
fn train_ranks(
    ranks: usize,
    batch: usize,
    sparse: bool,
    optimizer: impl Optimizer + Clone + 'static,
) -> Vec<(Params, Traffic)> {
    let handles: Vec<_> = LocalGroup::new(ranks)
        .unwrap()
        .into_iter()
        .map(|c| {
            let opt = optimizer.clone();
            std::thread::spawn(move || {
                let seed = 100 + c.rank() as u64;
                train(Some(Arc::new(c)), seed, batch, sparse, opt).unwrap()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn single(batch: usize, sparse: bool, optimizer: impl Optimizer + 'static) -> Params {
    train(None, 100, batch, sparse, optimizer).unwrap().0
}

#[test]
fn two_ranks_train_as_one_process_with_the_global_batch() {
    for sparse in [false, true] {
        let one = single(64, sparse, Adam::new(0.01));
        let two = train_ranks(2, 32, sparse, Adam::new(0.01));
        let what = if sparse { "row-sparse" } else { "dense" };
        assert_close(&two[0].0, &one, what);
        // Every rank holds the same parameters, bit for bit: same sums, same updates.
        assert_eq!(two[0].0, two[1].0, "{what}: the ranks differ");
        // It trained at all: the result is not the starting point.
        let start = single(64, sparse, Sgd::new(0.0));
        assert!(one.iter().zip(&start).any(|(a, b)| a.1 != b.1));
    }
    // Three ranks, momentum SGD, and a short last batch: 960 % 90 = 60 samples, 20 each.
    let one = single(90, true, Sgd::new(0.05).momentum(0.9));
    let three = train_ranks(3, 30, true, Sgd::new(0.05).momentum(0.9));
    assert_close(&three[2].0, &one, "three ranks");
}

#[test]
fn row_sparse_gradients_travel_sparse() {
    let two = train_ranks(2, 32, true, Sgd::new(0.05));
    let dense = train_ranks(2, 32, false, Sgd::new(0.05));
    let (sparse_traffic, dense_traffic) = (two[0].1, dense[0].1);
    // Densified, the embedding tables would cost what the dense run sent.
    assert_eq!(sparse_traffic.densified_bytes, dense_traffic.bytes);
    assert!(
        sparse_traffic.bytes * 3 < dense_traffic.bytes,
        "{sparse_traffic:?} vs {dense_traffic:?}"
    );
}

#[test]
fn collectives_sum_gather_and_broadcast() {
    let handles: Vec<_> = LocalGroup::new(3)
        .unwrap()
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let r = c.rank();
                let mut v = vec![r as f32; 2];
                c.all_reduce_sum(&mut v).unwrap();
                let g = c.all_gather_i64(&vec![r as i64; r]).unwrap();
                let mut b = vec![r as f32 * 10.0; 2];
                c.broadcast(&mut b, 2).unwrap();
                let e = c
                    .all_reduce_sum(&mut vec![0.0; r + 1])
                    .unwrap_err()
                    .to_string();
                (v, g, b, e)
            })
        })
        .collect();
    for h in handles {
        let (v, g, b, e) = h.join().unwrap();
        assert_eq!(v, [3.0, 3.0]);
        assert_eq!(g, vec![vec![], vec![1], vec![2, 2]]);
        assert_eq!(b, [20.0, 20.0]);
        assert!(e.contains("same length"), "{e}");
    }
    assert!(LocalGroup::new(0).is_err());
}

// A rank that stops (an error, a panic) makes the others' collectives fail naming it,
// instead of waiting forever.
#[test]
fn a_rank_that_stops_fails_the_others_instead_of_hanging() {
    let mut ranks = LocalGroup::new(2).unwrap();
    let quitter = ranks.pop().unwrap();
    let mut waiter = ranks.pop().unwrap();
    // Long enough never to be what ends the wait: a timeout error fails the test.
    waiter.set_timeout(Duration::from_secs(300));
    let t = std::thread::spawn(move || {
        let mut v = vec![1.0; 4];
        waiter.all_reduce_sum(&mut v).unwrap_err().to_string()
    });
    std::thread::sleep(Duration::from_millis(100));
    let panicked = std::thread::spawn(move || {
        let _held = quitter;
        panic!("rank 1 fails");
    })
    .join();
    assert!(panicked.is_err());
    let e = t.join().unwrap();
    assert!(e.contains("rank 1 stopped"), "{e}");

    // A rank that never comes: the timeout.
    let mut ranks = LocalGroup::new(2).unwrap();
    ranks[0].set_timeout(Duration::from_millis(200));
    let e = ranks[0].all_reduce_sum(&mut [1.0]).unwrap_err().to_string();
    assert!(e.contains("waited"), "{e}");
}

#[test]
fn sharding_errors_name_the_numbers() {
    let ds = || ArrayDataset::new(vec![0.0f32; 10]).unwrap();
    fn err<D: boson::data::Dataset + 'static>(b: boson::data::DataLoaderBuilder<D>) -> String
    where
        boson::data::StackBatchify: boson::data::Batchify<D::Item>,
    {
        b.build().err().unwrap().to_string()
    }
    // 10 % (4 × 2) = 2 samples left: one each, fine; 10 % (3 × 3) = 1 over 3 shards: not.
    assert!(DataLoader::builder(ds())
        .batch_size(4)
        .shard(2, 1)
        .build()
        .is_ok());
    let e = err(DataLoader::builder(ds()).batch_size(3).shard(3, 0));
    assert!(
        e.contains("last batch of 1") && e.contains("3 shards"),
        "{e}"
    );
    let e = err(DataLoader::builder(ds()).batch_size(2).shard(2, 2));
    assert!(e.contains("shard 2 of 2"), "{e}");
    let e = err(DataLoader::builder(ds())
        .batch_size(6)
        .last_batch(LastBatch::Discard)
        .shard(2, 0));
    assert!(e.contains("6 × 2"), "{e}");
}

/// The traffic of one step on tables the size of the 150k-user × 38k-item file (64
/// dimensions, 1,024 ratings per rank, 2 ranks), sparse against densified, and the wall
/// clock of 1 process of batch 2,048 beside 2 ranks of 1,024: figures for BENCHMARKS.md,
/// not a timed test (`cargo test --release --test distributed -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement for BENCHMARKS.md"]
fn traffic_and_time_on_large_tables() {
    use boson::autograd;
    use boson::loss::{L2Loss, Loss};
    use boson::nn::{Block, Embedding, Forward, Initializer};
    use boson::optim::Trainer;
    use boson::{Device, Tensor};
    let (users, items, dim, batch, steps) = (150_000usize, 38_000usize, 64, 1024usize, 20);
    // One step on `b` ratings whose ids spread like real ones: a popular head, a long tail.
    let train_step = move |u_table: &Embedding,
                           i_table: &Embedding,
                           trainer: &mut Trainer,
                           rank: usize,
                           step: usize,
                           b: usize| {
        let id = |k: usize, n: usize| {
            let x = boson::rng::mix_seed((step * 7919 + rank * 104_729 + k) as u64, 3);
            ((x % n as u64) * (x % 97) / 97) as i64
        };
        let u: Vec<i64> = (0..b).map(|k| id(k, users)).collect();
        let i: Vec<i64> = (0..b).map(|k| id(k + 1_000_000, items)).collect();
        let (u, i) = (
            Tensor::from_vec_i64(u, &[b]).unwrap(),
            Tensor::from_vec_i64(i, &[b]).unwrap(),
        );
        let target = Tensor::full(3.5, &[b], Device::Cpu).unwrap();
        let loss = autograd::record(|| {
            let p = (&u_table.forward(&u)? * &i_table.forward(&i)?)?.sum_axis(1, false)?;
            L2Loss::new().forward(&p, &target, None)
        })
        .unwrap();
        loss.backward().unwrap();
        trainer.step(b).unwrap();
    };
    let run = move |comm: Option<Arc<dyn Communicator>>, b: usize| {
        boson::rng::seed(1);
        let (u_table, i_table) = (Embedding::new(users, dim), Embedding::new(items, dim));
        u_table
            .initialize(&Initializer::Normal(0.1), Device::Cpu)
            .unwrap();
        i_table
            .initialize(&Initializer::Normal(0.1), Device::Cpu)
            .unwrap();
        let mut params = u_table.collect_params();
        for (n, p) in i_table.collect_params().iter() {
            params.insert(format!("item.{n}"), p.clone());
        }
        let mut trainer = Trainer::new(params, Sgd::new(0.01)).unwrap();
        let rank = comm.as_ref().map_or(0, |c| c.rank());
        if let Some(c) = comm {
            trainer.set_communicator(c).unwrap();
        }
        let start_traffic = trainer.traffic();
        let started = std::time::Instant::now();
        for step in 0..steps {
            train_step(&u_table, &i_table, &mut trainer, rank, step, b);
        }
        let t = trainer.traffic();
        let per_step = |x: u64, y: u64| (x - y) / steps as u64;
        (
            started.elapsed().as_secs_f64() / steps as f64,
            per_step(t.bytes, start_traffic.bytes),
            per_step(t.densified_bytes, start_traffic.densified_bytes),
        )
    };
    let (alone, _, _) = run(None, 2 * batch);
    let handles: Vec<_> = LocalGroup::new(2)
        .unwrap()
        .into_iter()
        .map(|c| std::thread::spawn(move || run(Some(Arc::new(c)), batch)))
        .collect();
    let ranks: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!("1 process, batch {}: {:.2} ms/step", 2 * batch, alone * 1e3);
    for (r, (t, bytes, densified)) in ranks.iter().enumerate() {
        println!(
            "rank {r} of 2, batch {batch}: {:.2} ms/step, sent {bytes} bytes/step sparse, \
             {densified} densified ({:.0}×)",
            t * 1e3,
            *densified as f64 / *bytes as f64
        );
    }

    // The same tables sharded: what each rank holds, and what it sends to the other
    // (ids out, rows back, gradient rows at the step), counted by a wrapper.
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Counted(boson::distributed::LocalCommunicator, AtomicU64);
    impl Counted {
        fn add(&self, n: usize) {
            self.1.fetch_add(n as u64, Ordering::Relaxed);
        }
        /// Values of an all-to-all addressed to the other ranks.
        fn to_others<T>(&self, send: &[Vec<T>]) -> usize {
            let me = self.0.rank();
            send.iter()
                .enumerate()
                .filter(|(r, _)| *r != me)
                .map(|(_, v)| v.len())
                .sum()
        }
    }
    impl Communicator for Counted {
        fn rank(&self) -> usize {
            self.0.rank()
        }
        fn size(&self) -> usize {
            self.0.size()
        }
        fn all_reduce_sum(&self, v: &mut [f32]) -> boson::Result<()> {
            self.add(4 * v.len());
            self.0.all_reduce_sum(v)
        }
        fn all_gather_f32(&self, v: &[f32]) -> boson::Result<Vec<Vec<f32>>> {
            self.add(4 * v.len());
            self.0.all_gather_f32(v)
        }
        fn all_gather_i64(&self, v: &[i64]) -> boson::Result<Vec<Vec<i64>>> {
            self.add(8 * v.len());
            self.0.all_gather_i64(v)
        }
        fn broadcast(&self, v: &mut [f32], root: usize) -> boson::Result<()> {
            self.0.broadcast(v, root)
        }
        fn all_to_all_i64(&self, send: &[Vec<i64>]) -> boson::Result<Vec<Vec<i64>>> {
            self.add(8 * self.to_others(send));
            self.0.all_to_all_i64(send)
        }
        fn all_to_all_f32(&self, send: &[Vec<f32>]) -> boson::Result<Vec<Vec<f32>>> {
            self.add(4 * self.to_others(send));
            self.0.all_to_all_f32(send)
        }
    }
    let sharded = move |c: Arc<Counted>| {
        let comm: Arc<dyn Communicator> = c.clone();
        let rank = c.rank();
        boson::rng::seed(1);
        let (u_table, i_table) = (Embedding::new(users, dim), Embedding::new(items, dim));
        for t in [&u_table, &i_table] {
            t.initialize(&Initializer::Normal(0.1), Device::Cpu)
                .unwrap();
            t.weight.shard(comm.clone()).unwrap();
        }
        let held = (u_table.weight.shape()[0] + i_table.weight.shape()[0]) * dim * 4;
        let mut params = u_table.collect_params();
        for (n, p) in i_table.collect_params().iter() {
            params.insert(format!("item.{n}"), p.clone());
        }
        let mut trainer = Trainer::new(params, Sgd::new(0.01)).unwrap();
        trainer.set_communicator(comm).unwrap();
        let before = c.1.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        for step in 0..steps {
            train_step(&u_table, &i_table, &mut trainer, rank, step, batch);
        }
        let bytes = (c.1.load(Ordering::Relaxed) - before) / steps as u64;
        (started.elapsed().as_secs_f64() / steps as f64, bytes, held)
    };
    let handles: Vec<_> = LocalGroup::new(2)
        .unwrap()
        .into_iter()
        .map(|c| {
            let c = Arc::new(Counted(c, AtomicU64::new(0)));
            std::thread::spawn(move || sharded(c))
        })
        .collect();
    for (r, h) in handles.into_iter().enumerate() {
        let (t, bytes, held) = h.join().unwrap();
        println!(
            "sharded, rank {r} of 2, batch {batch}: {:.2} ms/step, sent {bytes} bytes/step to \
             the other rank, holds {held} bytes of tables (whole: {})",
            t * 1e3,
            (users + items) * dim * 4
        );
    }
}

/// `Estimator::fit` with 2 epochs of an MLP on y = 2·x0 − x1 + 0.5, validating, with
/// checkpoints; `comm` makes it one rank of a data-parallel run. Returns the parameters,
/// each epoch's training and validation RMSE (as the handlers saw them), the log, and
/// the checkpoint files written.
fn fit(
    comm: Option<Arc<dyn Communicator>>,
    batch: usize,
) -> (Params, Vec<(f32, f32)>, String, usize) {
    let dir = tempfile::tempdir().unwrap();
    fit_in(comm, batch, 2, dir.path(), false)
}

/// `fit` for `epochs` with its checkpoints in `dir`, resuming from them if `resume`.
fn fit_in(
    comm: Option<Arc<dyn Communicator>>,
    batch: usize,
    epochs: usize,
    dir: &std::path::Path,
    resume: bool,
) -> (Params, Vec<(f32, f32)>, String, usize) {
    use boson::estimator::{
        CheckpointHandler, Estimator, EventHandler, FitUntil, LogCapture, Signal,
    };
    use boson::loss::L2Loss;
    use boson::metric::Rmse;
    use boson::nn::{Activation, Block, Dense, Initializer, Model, Sequential};
    use boson::optim::Trainer;

    /// Each epoch's metrics, as every handler sees them at epoch end.
    struct Seen(Vec<(f32, f32)>);
    impl EventHandler for Seen {
        fn epoch_end(&mut self, est: &mut Estimator) -> boson::Result<Signal> {
            let get = |n: &str| est.find_metric(n).unwrap().get().1;
            self.0.push((get("training rmse"), get("validation rmse")));
            Ok(Signal::Continue)
        }
    }
    let rank = comm.as_ref().map_or(0, |c| c.rank());
    boson::rng::seed(5 + rank as u64);
    let net: Arc<dyn Model> = Arc::new(
        Sequential::new()
            .add(Dense::new(8).in_units(2).activation(Activation::Relu))
            .add(Dense::new(1).in_units(8)),
    );
    net.initialize(&Initializer::xavier(3.0), boson::Device::Cpu)
        .unwrap();
    let data = |n: usize| {
        let xs: Vec<Vec<f32>> = (0..n)
            .map(|i| vec![(i % 7) as f32 / 7.0, (i % 5) as f32 / 5.0])
            .collect();
        let ys: Vec<f32> = xs.iter().map(|x| 2.0 * x[0] - x[1] + 0.5).collect();
        ArrayDataset::new((xs, ys)).unwrap()
    };
    let loader = |n: usize, shuffle: bool| {
        let b = DataLoader::builder(data(n))
            .batch_size(batch)
            .shuffle(shuffle)
            .seed(3);
        match &comm {
            Some(c) => b.shard(c.size(), c.rank()),
            None => b,
        }
        .build()
        .unwrap()
    };
    let (train, val) = (loader(200, true), loader(60, false));
    let mut trainer = Trainer::new(net.collect_params(), Sgd::new(0.1)).unwrap();
    if let Some(c) = comm {
        trainer.set_communicator(c).unwrap();
    }
    let log = LogCapture::new();
    let mut est = Estimator::builder(net.clone(), L2Loss::new())
        .trainer(trainer)
        .train_metric(Rmse::new())
        .log_writer(log.clone())
        .build()
        .unwrap();
    let mut ck = CheckpointHandler::new(dir).resume_from_checkpoint(resume);
    let mut seen = Seen(Vec::new());
    est.fit(
        &train,
        Some(&val),
        FitUntil::Epochs(epochs),
        &mut [&mut ck, &mut seen],
    )
    .unwrap();
    let params = net
        .collect_params()
        .iter()
        .map(|(n, p)| (n.to_string(), p.data().unwrap().to_vec_f32().unwrap()))
        .collect();
    let files = std::fs::read_dir(dir).unwrap().count();
    (params, seen.0, log.contents(), files)
}

// The Estimator on top of a data-parallel trainer: the same parameters and the same
// epoch metrics (summed over the ranks) as one process of the global batch; only rank 0
// logs and writes checkpoints.
#[test]
fn the_estimator_trains_data_parallel_as_one_process() {
    let (one, one_metrics, one_log, one_files) = fit(None, 20);
    let handles: Vec<_> = LocalGroup::new(2)
        .unwrap()
        .into_iter()
        .map(|c| std::thread::spawn(move || fit(Some(Arc::new(c)), 10)))
        .collect();
    let ranks: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (params, metrics, _, _) in &ranks {
        assert_close(params, &one, "estimator");
        for ((t, v), (t1, v1)) in metrics.iter().zip(&one_metrics) {
            assert!(
                (t - t1).abs() < 1e-4 && (v - v1).abs() < 1e-4,
                "{metrics:?} vs {one_metrics:?}"
            );
        }
    }
    assert!(one_log.contains("training rmse"), "{one_log}");
    assert!(ranks[0].2.contains("training rmse"));
    assert_eq!(ranks[1].2, "", "rank 1 logs nothing");
    assert!(one_files > 0);
    assert_eq!(
        (ranks[0].3, ranks[1].3),
        (one_files, 0),
        "only rank 0 writes checkpoints"
    );
}

// Model parallel: user and item tables split over 2 ranks (`Parameter::shard`), each rank
// training on its shard of every batch, end with the parameters of one process holding
// the whole tables; each rank holds half of each table (and its Adam state).
#[test]
fn sharded_tables_train_as_whole_tables_in_one_process() {
    let whole = data_parallel::train_tables(None);
    let handles: Vec<_> = LocalGroup::new(2)
        .unwrap()
        .into_iter()
        .map(|c| std::thread::spawn(move || data_parallel::train_tables(Some(Arc::new(c)))))
        .collect();
    let ranks: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &ranks {
        assert_eq!(r.held, [100, 150], "half of each table");
    }
    assert_eq!(whole.held, [200, 300]);
    data_parallel::assert_tables_close(&ranks, &whole);
}

#[test]
fn sharding_refuses_what_it_cannot_do() {
    use boson::nn::{Block, Embedding, Forward, Initializer, Parameter};
    use boson::{Device, Tensor};
    let mut group = LocalGroup::new(1).unwrap();
    let comm: Arc<dyn Communicator> = Arc::new(group.pop().unwrap());
    let table = Embedding::new(4, 2);
    // Not initialised yet.
    assert!(table.weight.shard(comm.clone()).is_err());
    table
        .initialize(&Initializer::Normal(0.1), Device::Cpu)
        .unwrap();
    table.weight.shard(comm.clone()).unwrap();
    let e = table.weight.shard(comm.clone()).unwrap_err().to_string();
    assert!(e.contains("sharded already"), "{e}");
    let e = table
        .forward(&Tensor::from_vec_i64(vec![1, 4], &[2]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains('4'), "{e}");
    let bias = Parameter::new("bias", &[3], None);
    bias.initialize(&Initializer::Zero, Device::Cpu, 0).unwrap();
    let e = bias.shard(comm).unwrap_err().to_string();
    assert!(e.contains("[rows, dim]") && e.contains("bias"), "{e}");
    // A world of one: gather gives the same table back.
    let before = table.weight.data().unwrap().to_vec_f32().unwrap();
    table.weight.gather().unwrap();
    assert!(!table.weight.is_sharded());
    assert_eq!(table.weight.data().unwrap().to_vec_f32().unwrap(), before);
}

// A data-parallel run checkpointed by rank 0 resumes on the same number of ranks (all
// reading rank 0's files) and ends where the uninterrupted run ends.
#[test]
fn a_data_parallel_run_resumes_from_rank_0s_checkpoints() {
    let on_ranks = |epochs: usize, dir: &std::path::Path, resume: bool| -> Vec<Params> {
        let handles: Vec<_> = LocalGroup::new(2)
            .unwrap()
            .into_iter()
            .map(|c| {
                let dir = dir.to_path_buf();
                std::thread::spawn(move || fit_in(Some(Arc::new(c)), 10, epochs, &dir, resume).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    };
    let (full, part) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let uninterrupted = on_ranks(3, full.path(), false);
    let first = on_ranks(1, part.path(), false);
    let resumed = on_ranks(3, part.path(), true);
    assert_ne!(first[0], uninterrupted[0]);
    for r in 0..2 {
        assert_eq!(resumed[r], uninterrupted[r], "rank {r}");
    }
}
