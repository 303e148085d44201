//! A small model trained data parallel or alone, shared by tests/distributed.rs (ranks as
//! threads) and tests/mpi.rs (ranks as MPI processes).
#![allow(dead_code)]

use boson::data::{ArrayDataset, DataLoader, LastBatch};
use boson::distributed::{Communicator, Traffic};
use boson::loss::{L2Loss, Loss};
use boson::nn::{Activation, Block, Dense, Embedding, Forward, Initializer};
use boson::optim::{Optimizer, Trainer};
use boson::tensor::DType;
use boson::{autograd, Device, Result, Tensor};
use std::sync::Arc;

#[derive(Block)]
struct Net {
    users: Embedding,
    items: Embedding,
    dense: Dense,
}

impl Forward for Net {
    type Input = (Tensor, Tensor);
    fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
        let u = self.dense.forward(&self.users.forward(users)?)?;
        let i = self.dense.forward(&self.items.forward(items)?)?;
        (&u * &i)?.sum_axis(1, false)
    }
}

/// Every parameter's name and values.
pub type Params = Vec<(String, Vec<f32>)>;

/// Trains 3 epochs of `batch` per rank (shuffled, seeded) and returns every parameter.
/// `init_seed` differs per rank: the communicator must make them start alike.
pub fn train(
    comm: Option<Arc<dyn Communicator>>,
    init_seed: u64,
    batch: usize,
    sparse: bool,
    optimizer: impl Optimizer + 'static,
) -> Result<(Params, Traffic)> {
    boson::rng::seed(init_seed);
    let net = Net {
        users: Embedding::with_options(200, 8, sparse, DType::F32),
        items: Embedding::with_options(300, 8, sparse, DType::F32),
        dense: Dense::new(8).in_units(8).activation(Activation::Relu),
    };
    net.initialize(&Initializer::xavier(2.0), Device::Cpu)?;
    let mut loader = DataLoader::builder(ratings())
        .batch_size(batch)
        .shuffle(true)
        .seed(7)
        .last_batch(LastBatch::Keep);
    if let Some(c) = &comm {
        loader = loader.shard(c.size(), c.rank());
    }
    let loader = loader.build()?;
    let mut trainer = Trainer::new(net.collect_params(), optimizer)?;
    if let Some(c) = comm {
        trainer.set_communicator(c)?;
    }
    let loss_fn = L2Loss::new();
    for _ in 0..3 {
        for b in loader.iter() {
            let (u, i, r) = b?;
            let n = u.shape()[0];
            let loss = autograd::record(|| loss_fn.forward(&net.forward(&(u, i))?, &r, None))?;
            loss.backward()?;
            trainer.step(n)?;
        }
    }
    let params = net
        .collect_params()
        .iter()
        .map(|(name, p)| Ok((name.to_string(), p.data()?.to_vec_f32()?)))
        .collect::<Result<Vec<_>>>()?;
    Ok((params, trainer.traffic()))
}

/// Each parameter within 1e-4 (relative to 1 + |value|) of the reference.
pub fn assert_close(a: &Params, b: &Params, what: &str) {
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: {name} differs by {worst}");
    }
}

/// The rows of the user and item tables a rank holds after `train_tables`, by global id.
pub struct Tables {
    pub users: Vec<(usize, Vec<f32>)>,
    pub items: Vec<(usize, Vec<f32>)>,
    /// Rows held of each table.
    pub held: [usize; 2],
}

const DIM: usize = 8;

/// Row g of a table starts as value(g, d), for whole and sharded tables alike.
fn value(g: usize, d: usize) -> f32 {
    ((g * 31 + d * 17) % 23) as f32 / 23.0 - 0.5
}

/// A `rows`-row table's start.
fn start(rows: usize) -> Tensor {
    let v: Vec<f32> = (0..rows)
        .flat_map(|g| (0..DIM).map(move |d| value(g, d)))
        .collect();
    Tensor::from_vec(v, &[rows, DIM]).unwrap()
}

/// 2 epochs of Adam on 200 × 300 tables through one Dense layer: whole tables
/// (`comm` None, batch 64) or tables sharded over `comm`'s ranks (`Parameter::shard`,
/// batch 64 / ranks each).
pub fn train_tables(comm: Option<Arc<dyn Communicator>>) -> Tables {
    let (rank, ranks) = comm.as_ref().map_or((0, 1), |c| (c.rank(), c.size()));
    let dense = Dense::new(DIM).in_units(DIM);
    let w: Vec<f32> = (0..DIM * DIM)
        .map(|k| ((k * 7) % 11) as f32 / 11.0 - 0.4)
        .collect();
    let w = Tensor::from_vec(w, &[DIM, DIM]).unwrap();
    dense.weight.set_data(&w).unwrap();
    let zeros = Tensor::zeros(&[DIM], Device::Cpu).unwrap();
    dense.bias.as_ref().unwrap().set_data(&zeros).unwrap();
    // The same start everywhere; sharded, each rank keeps its rows of it.
    let table = |rows: usize| {
        let t = Embedding::new(rows, DIM);
        t.weight.set_data(&start(rows)).unwrap();
        if let Some(c) = &comm {
            t.weight.shard(c.clone()).unwrap();
        }
        t
    };
    let (users, items) = (table(200), table(300));
    let mut params = users.collect_params();
    for (n, p) in items
        .collect_params()
        .iter()
        .chain(dense.collect_params().iter())
    {
        params.insert(format!("x.{n}"), p.clone());
    }
    let mut trainer = Trainer::new(params, boson::optim::Adam::new(0.01)).unwrap();
    let mut loader = DataLoader::builder(ratings())
        .batch_size(64 / ranks)
        .shuffle(true)
        .seed(7);
    if let Some(c) = comm {
        loader = loader.shard(ranks, rank);
        trainer.set_communicator(c).unwrap();
    }
    let loader = loader.build().unwrap();
    for _ in 0..2 {
        for b in loader.iter() {
            let (u, i, r) = b.unwrap();
            let n = u.shape()[0];
            let loss = autograd::record(|| {
                let u = dense.forward(&users.forward(&u)?)?;
                let i = dense.forward(&items.forward(&i)?)?;
                L2Loss::new().forward(&(&u * &i)?.sum_axis(1, false)?, &r, None)
            })
            .unwrap();
            loss.backward().unwrap();
            trainer.step(n).unwrap();
        }
    }
    let rows_of = |w: &boson::nn::Parameter| -> Vec<(usize, Vec<f32>)> {
        let v = w.data().unwrap().to_vec_f32().unwrap();
        v.chunks(DIM)
            .enumerate()
            .map(|(l, r)| (l * ranks + rank, r.to_vec()))
            .collect()
    };
    Tables {
        users: rows_of(&users.weight),
        items: rows_of(&items.weight),
        held: [users.weight.shape()[0], items.weight.shape()[0]],
    }
}

/// The ranks' rows together equal the whole tables (1e-4 relative), which trained.
pub fn assert_tables_close(ranks: &[Tables], whole: &Tables) {
    for (which, whole) in [("user", &whole.users), ("item", &whole.items)] {
        let mut got: Vec<(usize, Vec<f32>)> = ranks
            .iter()
            .flat_map(|r| {
                if which == "user" {
                    r.users.clone()
                } else {
                    r.items.clone()
                }
            })
            .collect();
        got.sort_by_key(|r| r.0);
        assert_eq!(got.len(), whole.len(), "{which} rows");
        for ((g, a), (_, b)) in got.iter().zip(whole.iter()) {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() < 1e-4 * (1.0 + y.abs()),
                    "{which} row {g}: {a:?} vs {b:?}"
                );
            }
        }
        assert!(
            whole
                .iter()
                .any(|(g, v)| (v[0] - value(*g, 0)).abs() > 1e-3),
            "{which} trained"
        );
    }
}

/// 960 (user, item, rating) triples over 200 users and 300 items.
pub fn ratings() -> ArrayDataset<(Vec<i64>, Vec<i64>, Vec<f32>)> {
    let users: Vec<i64> = (0..960).map(|k| (k * 13) % 200).collect();
    let items: Vec<i64> = (0..960).map(|k| (k * 7 + k / 5) % 300).collect();
    let ratings: Vec<f32> = users
        .iter()
        .zip(&items)
        .map(|(u, i)| 1.0 + ((u + 2 * i) % 5) as f32)
        .collect();
    ArrayDataset::new((users, items, ratings)).unwrap()
}
