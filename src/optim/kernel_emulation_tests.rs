//! `kernels/optim.cu` under the CPU emulator (`tests/emu/cuda_emu.h`), against the CPU
//! optimizer: each built-in optimizer's CUDA kernel choice (`BuiltIn::device_kernel`) runs
//! one launch per step, for three steps, and must land where the optimizer's CPU step
//! does. Here rather than in `tests/` because the kernel choice is crate-private; it needs
//! no GPU and no `cuda` feature, only a C++ compiler. Skips,
//! saying why, without a C++20 compiler (`CXX`, else `c++`).

use super::optimizer::BuiltIn;
use super::{AdaGrad, Adam, Ftrl, RmsProp, Sgd, StepArgs};
use crate::tensor::row_update::DeviceKernel;
use crate::tensor::Tensor;
use std::path::PathBuf;
use std::process::Command;

#[path = "../../tests/emu/build.rs"]
mod build;

/// Builds `tests/emu/optim_emu.cpp` into a fresh temporary folder; `None` without a
/// C++ compiler (noted on stderr).
fn build_runner() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("boson-emu-{}", std::process::id()));
    build::build_driver("optim_emu", &dir, &[]).map(|exe| (dir, exe))
}

/// One launch of `kernel` through the emulator; returns the new weights, states and the
/// error cell.
#[allow(clippy::too_many_arguments)]
fn emulate(
    (dir, exe): &(PathBuf, PathBuf),
    kernel: DeviceKernel,
    w: &[f32],
    states: &[Vec<f32>],
    g: &[f32],
    idx: Option<&[i64]>,
    dim: usize,
) -> (Vec<f32>, Vec<Vec<f32>>, [i64; 2]) {
    let mut buf = Vec::new();
    let mut name = [0u8; 64];
    name[..kernel.name.len()].copy_from_slice(kernel.name.as_bytes());
    buf.extend(name);
    let rows = w.len() / dim;
    for v in [g.len(), dim, rows, idx.is_some() as usize, states.len()] {
        buf.extend((v as i64).to_le_bytes());
    }
    kernel
        .scalars
        .iter()
        .for_each(|v| buf.extend(v.to_le_bytes()));
    idx.unwrap_or(&[])
        .iter()
        .for_each(|v| buf.extend(v.to_le_bytes()));
    for part in [w, g]
        .into_iter()
        .chain(states.iter().map(|s| s.as_slice()))
    {
        part.iter().for_each(|v| buf.extend(v.to_le_bytes()));
    }
    let (inp, outp) = (dir.join("in.bin"), dir.join("out.bin"));
    std::fs::write(&inp, buf).unwrap();
    let run = Command::new(exe).arg(&inp).arg(&outp).output().unwrap();
    assert!(
        run.status.success(),
        "optim_emu failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&outp).unwrap();
    let f32s = |at: usize, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| f32::from_le_bytes(bytes[at + 4 * i..at + 4 * i + 4].try_into().unwrap()))
            .collect()
    };
    let new_w = f32s(0, w.len());
    let new_states = (0..states.len())
        .map(|k| f32s(4 * w.len() * (k + 1), w.len()))
        .collect();
    let at = 4 * w.len() * (states.len() + 1);
    let i64_at = |o: usize| i64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    (new_w, new_states, [i64_at(at), i64_at(at + 8)])
}

/// Reproducible values in `[lo, hi)`, from the crate's counter-based hash.
fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| lo + (hi - lo) * crate::rng::uniform_hash(seed, i))
        .collect()
}

#[test]
fn optimizer_kernels_match_the_cpu_rules_under_the_emulator() {
    let Some(runner) = build_runner() else {
        return;
    };
    let optimizers: Vec<Box<dyn BuiltIn>> = vec![
        Box::new(Sgd::new(0.1)),
        Box::new(Sgd::new(0.1).momentum(0.9)),
        Box::new(Sgd::nag(0.1, 0.9)),
        Box::new(Adam::new(0.1)),
        Box::new(Adam::adamw(0.1).betas(0.8, 0.99).epsilon(1e-6)),
        Box::new(AdaGrad::new(0.1)),
        Box::new(RmsProp::new(0.1)),
        Box::new(RmsProp::new(0.1).gammas(0.95, 0.9).centered(true)),
        Box::new(Ftrl::new(0.1)),
    ];
    let (rows, dim) = (40, 6);
    // Row-sparse steps touch rows 3, 17, 0 and 39 (and one -1 padding row, skipped).
    let touched = [3i64, 17, -1, 0, 39];
    for (r, opt) in optimizers.iter().enumerate() {
        for sparse in [false, true] {
            let what = format!("{} #{r} sparse={sparse}", opt.name());
            let w_cpu = Tensor::from_vec(values(rows * dim, 1 + r as u64, -1.0, 1.0), &[rows, dim])
                .unwrap();
            let s_cpu: Vec<Tensor> = (0..opt.num_states())
                .map(|_| Tensor::zeros(&[rows, dim], crate::Device::Cpu).unwrap())
                .collect();
            let mut w_emu = w_cpu.to_vec_f32().unwrap();
            let mut s_emu = vec![vec![0.0f32; rows * dim]; opt.num_states()];
            for t in 1..=3u64 {
                let a = StepArgs {
                    lr: 0.1,
                    wd: 0.01,
                    rescale: 0.5,
                    clip: if t == 2 { Some(0.3) } else { None },
                    t,
                };
                let idx = sparse.then_some(&touched[..]);
                let n_rows = if sparse { touched.len() } else { rows };
                let g = values(n_rows * dim, 100 * t + r as u64, -1.0, 1.0);
                let g_t = Tensor::from_vec(g.clone(), &[n_rows, dim]).unwrap();
                if sparse {
                    let rows_t = Tensor::from_vec_i64(touched.to_vec(), &[touched.len()]).unwrap();
                    opt.step_rows(&w_cpu, &rows_t, &g_t, &s_cpu, &a).unwrap();
                } else {
                    opt.step(&w_cpu, &g_t, &s_cpu, &a).unwrap();
                }
                let (w, s, err) =
                    emulate(&runner, opt.device_kernel(&a), &w_emu, &s_emu, &g, idx, dim);
                assert_eq!(err, [0, 0], "{what}: no bad row");
                (w_emu, s_emu) = (w, s);
                let cpu: Vec<Vec<f32>> = std::iter::once(&w_cpu)
                    .chain(&s_cpu)
                    .map(|t| t.to_vec_f32().unwrap())
                    .collect();
                let all = std::iter::once(&w_emu).chain(&s_emu).zip(&cpu);
                for (k, (e, c)) in all.enumerate() {
                    for (i, (x, y)) in e.iter().zip(c.iter()).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                            "{what} step {t} {}[{i}]: kernel {x}, cpu {y}",
                            if k == 0 {
                                "w".to_string()
                            } else {
                                format!("state{}", k - 1)
                            }
                        );
                    }
                }
            }
        }
    }
    // A row past the table is reported in the error cell and skipped; the rest update.
    let w = values(rows * dim, 7, -1.0, 1.0);
    let a = StepArgs {
        lr: 0.1,
        wd: 0.0,
        rescale: 1.0,
        clip: None,
        t: 1,
    };
    let g = values(2 * dim, 8, -1.0, 1.0);
    let kernel = Sgd::new(0.1).device_kernel(&a);
    let (new_w, _, err) = emulate(&runner, kernel, &w, &[], &g, Some(&[5, rows as i64]), dim);
    assert_eq!(err, [1, rows as i64]);
    for c in 0..dim {
        assert!((new_w[5 * dim + c] - (w[5 * dim + c] - 0.1 * g[c])).abs() < 1e-6);
    }
    let _ = std::fs::remove_dir_all(&runner.0);
}
