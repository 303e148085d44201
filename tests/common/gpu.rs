//! Helpers shared by the GPU integration tests (`tests/gpu_*.rs`): finding the GPU or
//! saying why the test skips, CPU-vs-GPU comparisons, skewed indices, and the
//! recommender's loss curve on one device (its `MfBlock`, from the example).
#![allow(dead_code)]

use super::common::{rand_tensor, rand_vec};
use super::mfblock::MfBlock;
use boson::autograd;
use boson::loss::{L2Loss, Loss};
use boson::nn::{Block, Forward, Initializer};
use boson::optim::{Sgd, Trainer};
use boson::{Device, Result, Tensor};

/// Device 0, or `None` after printing why `test` skips.
pub fn gpu(test: &str) -> Option<Device> {
    match Device::cuda_if_available(0) {
        Device::Cpu => {
            #[cfg(feature = "cuda")]
            let why = boson::cuda::CudaDevice::get(0)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            #[cfg(not(feature = "cuda"))]
            let why = "built without the cuda feature".to_string();
            skip_note!("{test}: skipped: no usable CUDA device ({why})");
            None
        }
        d => Some(d),
    }
}

/// Element-wise `|a - b| <= tol * (1 + |b|)`, naming the first failing element.
pub fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: gpu {x} vs cpu {y}"
        );
    }
}

/// Runs `f` on CPU inputs and on their GPU copies; compares outputs and input gradients.
pub fn same_on_both(
    dev: Device,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    what: &str,
) {
    let run = |xs: Vec<Tensor>| {
        let leaves: Vec<Tensor> = xs.iter().map(|t| t.attach_grad()).collect();
        let y = autograd::record(|| f(&leaves)).unwrap();
        let r = rand_tensor(y.shape(), 0.5, 1.5, 5)
            .to_device(y.device())
            .unwrap();
        autograd::record(|| y.mul(&r)?.sum_all())
            .unwrap()
            .backward()
            .unwrap();
        let grads: Vec<Vec<f32>> = leaves
            .iter()
            .map(|l| l.grad().unwrap().unwrap().to_vec_f32().unwrap())
            .collect();
        (y.to_vec_f32().unwrap(), grads)
    };
    let (yc, gc) = run(inputs.to_vec());
    let (yg, gg) = run(inputs.iter().map(|t| t.to_device(dev).unwrap()).collect());
    close(&yg, &yc, 1e-4, &format!("{what} forward"));
    for (k, (a, b)) in gg.iter().zip(&gc).enumerate() {
        close(a, b, 1e-4, &format!("{what} grad of input {k}"));
    }
}

/// Heavily skewed indices into `[0, rows)`.
pub fn zipf_indices(n: usize, rows: usize, seed: u64) -> Vec<i64> {
    // Heavily skewed: about half of the indices hit the first few rows.
    rand_vec(n, 0.0, 1.0, seed)
        .iter()
        .map(|&u| ((rows as f32).powf(u * u * u) as usize - 1).min(rows - 1) as i64)
        .collect()
}

/// The recommender (matrix factorisation, 20 batches of 1024, SGD with momentum) trained
/// on `device` from seed 3: the mean loss of each batch.
pub fn mf_loss_curve(device: Device) -> Vec<f32> {
    let (users, items, n, batch) = (2000, 500, 20 * 1024, 1024);
    let u: Vec<i64> = rand_vec(n, 0.0, users as f32, 40)
        .iter()
        .map(|&v| v as i64)
        .collect();
    let i: Vec<i64> = zipf_indices(n, items, 41);
    let r: Vec<f32> = rand_vec(n, 1.0, 5.0, 42)
        .iter()
        .map(|v| v.round())
        .collect();
    let net = MfBlock::new((users, items, 64), 0.5, true, 1);
    boson::rng::seed(3);
    net.initialize(&Initializer::xavier(60.0), device).unwrap();
    let mut tr = Trainer::new(net.collect_params(), Sgd::new(0.02).momentum(0.9)).unwrap();
    let mut curve = Vec::new();
    for b in 0..n / batch {
        let s = b * batch..(b + 1) * batch;
        let ub = Tensor::from_vec_i64(u[s.clone()].to_vec(), &[batch])
            .unwrap()
            .to_device(device)
            .unwrap();
        let ib = Tensor::from_vec_i64(i[s.clone()].to_vec(), &[batch])
            .unwrap()
            .to_device(device)
            .unwrap();
        let rb = Tensor::from_vec(r[s].to_vec(), &[batch])
            .unwrap()
            .to_device(device)
            .unwrap();
        let loss = autograd::record(|| L2Loss::new().forward(&net.forward(&(ub, ib))?, &rb, None))
            .unwrap();
        loss.backward().unwrap();
        tr.step(batch).unwrap();
        curve.push(loss.mean_all().unwrap().to_scalar().unwrap());
    }
    curve
}
