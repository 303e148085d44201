//! Core benchmarks: matrix products (1024×64·64×64 and 1024³), and one embedding training step
//! (forward + backward + SGD-momentum step, batch 1024, dim 64) for tables of 1e4, 1e6
//! and 1e7 rows. With row-sparse gradients the step must not grow with the table.

use boson::loss::{L2Loss, Loss};
use boson::nn::{Block, Embedding, Forward, Initializer};
use boson::optim::{Sgd, Trainer};
use boson::{autograd, rng, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration;

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20);
    // The recommender's Dense layer (one thread) and a large product (split over rayon).
    for (m, k, n) in [(1024, 64, 64), (1024, 1024, 1024)] {
        let a = Tensor::from_vec(
            (0..m * k).map(|i| rng::uniform_hash(1, i as u64)).collect(),
            &[m, k],
        )
        .unwrap();
        let b = Tensor::from_vec(
            (0..k * n).map(|i| rng::uniform_hash(2, i as u64)).collect(),
            &[k, n],
        )
        .unwrap();
        group.bench_function(format!("{m}x{k}x{n}"), |bench| {
            bench.iter(|| black_box(a.matmul(&b).unwrap()))
        });
    }
    group.finish();
}

fn embedding_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("embedding step (batch 1024, dim 64)");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    for rows in [10_000usize, 1_000_000, 10_000_000] {
        let emb = Embedding::new(rows, 64);
        // Constant init: random init of 640M values would dominate the bench's setup.
        emb.initialize(&Initializer::Constant(0.01), Device::Cpu)
            .unwrap();
        let mut trainer = Trainer::new(emb.collect_params(), Sgd::new(0.02).momentum(0.9)).unwrap();
        let target = Tensor::ones(&[1024, 64], Device::Cpu).unwrap();
        let mut step = 0u64;
        group.bench_function(format!("{rows} rows"), |bench| {
            bench.iter(|| {
                step += 1;
                let idx: Vec<i64> = (0..1024)
                    .map(|i| (rng::uniform_hash(step, i) * rows as f32) as i64 % rows as i64)
                    .collect();
                let idx = Tensor::from_vec_i64(idx, &[1024]).unwrap();
                let loss =
                    autograd::record(|| L2Loss::new().forward(&emb.forward(&idx)?, &target, None))
                        .unwrap();
                loss.backward().unwrap();
                trainer.step(1024).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matmul, embedding_step);
criterion_main!(benches);
