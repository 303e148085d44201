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
    let users: Vec<i64> = (0..960).map(|k| (k * 13) % 200).collect();
    let items: Vec<i64> = (0..960).map(|k| (k * 7 + k / 5) % 300).collect();
    let ratings: Vec<f32> = users
        .iter()
        .zip(&items)
        .map(|(u, i)| 1.0 + ((u + 2 * i) % 5) as f32)
        .collect();
    let mut loader = DataLoader::builder(ArrayDataset::new((users, items, ratings))?)
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
