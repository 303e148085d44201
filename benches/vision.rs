//! Convolution and pooling, forward and backward, on the CPU: LeNet's two layers at the
//! crash course's batch of 256, and a GEMM-bound 64-channel 3×3 layer on 32×32 inputs at
//! batch 64 (`scripts/torch_conv_bench.py` times the same layers in PyTorch).

use boson::tensor::{Conv2dParams, Pool2dParams};
use boson::{autograd, rng, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn values(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    let v = (0..n)
        .map(|i| rng::uniform_hash(seed, i as u64) - 0.5)
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Forward, and forward + backward to the input, weight and bias.
fn conv2d(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    let same = Conv2dParams {
        padding: [1, 1],
        ..Default::default()
    };
    let cases = [
        (
            "lenet conv1 256x1x28x28 6@5x5",
            [256, 1, 28, 28],
            [6, 1, 5, 5],
            Conv2dParams::default(),
        ),
        (
            "lenet conv2 256x6x12x12 16@3x3",
            [256, 6, 12, 12],
            [16, 6, 3, 3],
            Conv2dParams::default(),
        ),
        (
            "64x64x32x32 64@3x3 pad 1",
            [64, 64, 32, 32],
            [64, 64, 3, 3],
            same,
        ),
    ];
    for (name, xs, ws, p) in cases {
        let x = values(&xs, 1).attach_grad();
        let w = values(&ws, 2).attach_grad();
        let b = values(&[ws[0]], 3).attach_grad();
        group.bench_function(format!("{name} forward"), |bench| {
            bench.iter(|| black_box(x.conv2d(&w, Some(&b), &p).unwrap()))
        });
        group.bench_function(format!("{name} forward+backward"), |bench| {
            bench.iter(|| {
                let y = autograd::record(|| x.conv2d(&w, Some(&b), &p)?.sum_all()).unwrap();
                y.backward().unwrap();
            })
        });
    }
    group.finish();
}

fn pool2d(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool2d");
    group.sample_size(20);
    let x = values(&[256, 6, 24, 24], 4).attach_grad();
    let overlapping = Pool2dParams {
        kernel: [3, 3],
        strides: [2, 2],
        padding: [1, 1],
        ceil_mode: false,
    };
    for (name, p) in [
        ("max 2x2", Pool2dParams::new([2, 2])),
        ("max 3x3 stride 2 pad 1", overlapping),
    ] {
        group.bench_function(format!("{name} 256x6x24x24 forward+backward"), |bench| {
            bench.iter(|| {
                let y = autograd::record(|| x.max_pool2d(&p)?.sum_all()).unwrap();
                y.backward().unwrap();
            })
        });
    }
    group.bench_function("avg 2x2 256x6x24x24 forward+backward", |bench| {
        let p = Pool2dParams::new([2, 2]);
        bench.iter(|| {
            let y = autograd::record(|| x.avg_pool2d(&p, true)?.sum_all()).unwrap();
            y.backward().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, conv2d, pool2d);
criterion_main!(benches);
