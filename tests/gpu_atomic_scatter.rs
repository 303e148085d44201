//! The GPU with `set_deterministic(false)`: embedding backward through the atomic
//! scatter-add, against the CPU. A file of its own because the setting is process-wide
//! and the other GPU tests expect the deterministic default.
//! Without a usable GPU each test prints why it skipped and returns.

#[macro_use]
mod common;
#[path = "common/gpu.rs"]
mod gpu_common;
#[path = "../examples/recommender/mfblock.rs"]
mod mfblock;
use boson::autograd::{self, Grad};
use boson::nn::{Embedding, Forward};
use boson::{Device, Tensor};
use common::{rand_tensor, rand_vec};
use gpu_common::{close, gpu, mf_loss_curve, same_on_both, zipf_indices};

#[test]
fn embedding_gradients_match_cpu_with_atomic_scatter_add() {
    let Some(dev) = gpu("embedding_gradients_match_cpu_with_atomic_scatter_add") else {
        return;
    };
    boson::device::set_deterministic(false);
    let (rows, dim) = (5000, 64);
    let table = rand_tensor(&[rows, dim], -1.0, 1.0, 21);
    let uniform: Vec<i64> = rand_vec(4096, 0.0, rows as f32, 22)
        .iter()
        .map(|&v| v as i64)
        .collect();
    for (name, idx) in [("uniform", uniform), ("zipf", zipf_indices(4096, rows, 23))] {
        let ic = Tensor::from_vec_i64(idx.clone(), &[64, 64]).unwrap();
        let ig = ic.to_device(dev).unwrap();
        for sparse in [true, false] {
            let f =
                |v: &[Tensor]| v[0].take(if v[0].device().is_cuda() { &ig } else { &ic }, sparse);
            same_on_both(
                dev,
                std::slice::from_ref(&table),
                f,
                &format!("take {name} sparse={sparse}"),
            );
        }
        // The row-sparse gradient lists each touched row once (in any order), -1 after.
        let emb = Embedding::with_options(rows, dim, true, boson::tensor::DType::F32);
        emb.weight.set_data(&table.to_device(dev).unwrap()).unwrap();
        autograd::record(|| emb.forward(&ig)?.sum_all())
            .unwrap()
            .backward()
            .unwrap();
        let Some(Grad::RowSparse(rs)) = emb.weight.grad() else {
            panic!("expected a row-sparse gradient");
        };
        let got = rs.indices.to_vec_i64().unwrap();
        let mut listed: Vec<i64> = got.iter().copied().filter(|&r| r >= 0).collect();
        let k = listed.len();
        assert!(
            got[k..].iter().all(|&r| r == -1),
            "{name}: -1 padding after the rows"
        );
        listed.sort_unstable();
        let mut want = idx.clone();
        want.sort_unstable();
        want.dedup();
        assert_eq!(listed, want, "{name}: touched rows");
    }
}

#[test]
fn recommender_training_matches_cpu_with_atomic_scatter_add() {
    let Some(dev) = gpu("recommender_training_matches_cpu_with_atomic_scatter_add") else {
        return;
    };
    boson::device::set_deterministic(false);
    let cpu = mf_loss_curve(Device::Cpu);
    let gpu = mf_loss_curve(dev);
    eprintln!("cpu loss curve {cpu:?}\ngpu loss curve {gpu:?}");
    close(&gpu, &cpu, 1e-3, "loss curve");
}
