//! Recommender (MFBlock) training throughput on the GPU: samples/s over full training
//! steps (host→device upload of the batch, forward, backward, SGD-momentum step), with
//! row-sparse embedding gradients. Prints one JSON line per vocabulary size (on the GPU,
//! for each scatter-add: deterministic and atomic, `"deterministic"`); on the CPU
//! the line also splits a step into forward, backward and optimizer time.
//! Without a GPU it prints why and exits 0. Run by scripts/gpu-check.sh.

#[path = "../examples/recommender/mfblock.rs"]
mod mfblock;

use boson::loss::{L2Loss, Loss};
use boson::nn::{Block, Forward, Initializer};
use boson::optim::{Sgd, Trainer};
use boson::{autograd, rng, Device, Result, Tensor};
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Samples/s, and the mean µs per step of forward (with the batch upload), backward and
/// the optimizer step (meaningful on the CPU only: GPU launches return before the work).
fn run(dev: Device, users: usize, items: usize, steps: usize) -> Result<(f64, [f64; 3])> {
    let batch = 1024;
    let net = mfblock::MfBlock::new((users, items, 64), 0.5, true, 1);
    rng::seed(1);
    net.initialize(&Initializer::xavier(60.0), dev)?;
    let mut tr = Trainer::new(net.collect_params(), Sgd::new(0.02).momentum(0.9))?;
    let n = batch * 64;
    let u: Vec<i64> = (0..n)
        .map(|k| (rng::uniform_hash(1, k as u64) * users as f32) as i64 % users as i64)
        .collect();
    let i: Vec<i64> = (0..n)
        .map(|k| (rng::uniform_hash(2, k as u64) * items as f32) as i64 % items as i64)
        .collect();
    let r: Vec<f32> = (0..n)
        .map(|k| 1.0 + (rng::uniform_hash(3, k as u64) * 4.0).round())
        .collect();
    let step = |s: usize, tr: &mut Trainer, phases: &mut [f64; 3]| -> Result<()> {
        let t0 = Instant::now();
        let o = (s % 64) * batch;
        let ub = Tensor::from_vec_i64(u[o..o + batch].to_vec(), &[batch])?.to_device(dev)?;
        let ib = Tensor::from_vec_i64(i[o..o + batch].to_vec(), &[batch])?.to_device(dev)?;
        let rb = Tensor::from_vec(r[o..o + batch].to_vec(), &[batch])?.to_device(dev)?;
        let loss = autograd::record(|| L2Loss::new().forward(&net.forward(&(ub, ib))?, &rb, None))?;
        let t1 = Instant::now();
        loss.backward()?;
        let t2 = Instant::now();
        tr.step(batch)?;
        for (p, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t2.elapsed()]) {
            *p += d.as_secs_f64() * 1e6;
        }
        Ok(())
    };
    let mut phases = [0.0; 3];
    for s in 0..20 {
        step(s, &mut tr, &mut phases)?;
    }
    phases = [0.0; 3];
    // Reading a value back synchronises the device before the clock starts and stops.
    let params = net.collect_params();
    let table = params
        .get("user_embeddings.weight")
        .expect("MfBlock has a user table");
    table.data()?.slice_axis(0, 0, 1)?.to_vec_f32()?;
    let t = Instant::now();
    for s in 0..steps {
        step(s, &mut tr, &mut phases)?;
    }
    table.data()?.slice_axis(0, 0, 1)?.to_vec_f32()?;
    let sps = (steps * batch) as f64 / t.elapsed().as_secs_f64();
    Ok((sps, phases.map(|p| p / steps as f64)))
}

fn main() {
    // `cargo bench --bench gpu_train -- cpu` times the same steps on the CPU.
    let dev = if std::env::args().any(|a| a == "cpu") {
        Device::Cpu
    } else {
        Device::cuda_if_available(0)
    };
    if dev == Device::Cpu && !std::env::args().any(|a| a == "cpu") {
        println!("skipped: no usable CUDA device");
        return;
    }
    // On the GPU both scatter-adds: the deterministic default and the atomic one.
    let modes: &[bool] = if dev == Device::Cpu {
        &[true]
    } else {
        &[true, false]
    };
    for &deterministic in modes {
        boson::device::set_deterministic(deterministic);
        for (users, items) in [(20_000, 5_000), (150_000, 38_000)] {
            let steps = if dev == Device::Cpu { 100 } else { 300 };
            match run(dev, users, items, steps) {
                Ok((sps, [fwd, bwd, opt])) => {
                    let phases = if dev == Device::Cpu {
                        format!(",\"step_us\":{{\"forward\":{fwd:.0},\"backward\":{bwd:.0},\"optimizer\":{opt:.0}}}")
                    } else {
                        String::new()
                    };
                    println!(
                        "{{\"harness\":\"boson\",\"device\":\"{dev}\",\"deterministic\":{deterministic},\"users\":{users},\"items\":{items},\"samples_per_sec\":{sps:.0}{phases}}}"
                    )
                }
                Err(e) => println!(
                    "{{\"harness\":\"boson\",\"deterministic\":{deterministic},\"users\":{users},\"error\":\"{e}\"}}"
                ),
            }
        }
    }
}
