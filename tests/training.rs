//! End-to-end training checks: an MLP learns XOR, linear regression recovers its weights,
//! row-sparse updates agree with dense ones on touched rows and leave the rest alone.

mod common;
use boson::autograd::{self, Grad};
use boson::loss::{L2Loss, Loss, SoftmaxCrossEntropyLoss};
use boson::nn::{Activation, Block, Dense, Embedding, Forward, Initializer, Sequential};
use boson::optim::{self, AdaGrad, Adam, Ftrl, Optimizer, RmsProp, Sgd, Trainer};
use boson::{rng, Device, Tensor};
use common::rand_vec;

#[test]
fn mlp_learns_xor() {
    rng::seed(7);
    let net = Sequential::new()
        .add(Dense::new(8).activation(Activation::Tanh))
        .add(Dense::new(2));
    net.initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
    let x = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]).unwrap();
    let y = Tensor::from_vec_i64(vec![0, 1, 1, 0], &[4]).unwrap();
    let mut trainer = Trainer::new(net.collect_params(), Adam::new(0.05)).unwrap();
    let loss_fn = SoftmaxCrossEntropyLoss::new();
    for _ in 0..300 {
        let loss = autograd::record(|| loss_fn.forward(&net.forward(&x)?, &y, None)).unwrap();
        loss.backward().unwrap();
        trainer.step(4).unwrap();
    }
    let pred = autograd::predict_mode(|| net.forward(&x))
        .unwrap()
        .argmax(1)
        .unwrap();
    assert_eq!(pred.to_vec_i64().unwrap(), vec![0, 1, 1, 0]);
}

#[test]
fn linear_regression_recovers_weights() {
    rng::seed(1);
    let true_w = [2.0f32, -3.4];
    let true_b = 4.2f32;
    let n = 256;
    let xs = rand_vec(n * 2, -1.0, 1.0, 3);
    let ys: Vec<f32> = (0..n)
        .map(|i| true_w[0] * xs[2 * i] + true_w[1] * xs[2 * i + 1] + true_b)
        .collect();
    let x = Tensor::from_vec(xs, &[n, 2]).unwrap();
    let y = Tensor::from_vec(ys, &[n]).unwrap();
    let net = Dense::new(1);
    net.initialize(&Initializer::Normal(0.01), Device::Cpu)
        .unwrap();
    let mut trainer = Trainer::new(net.collect_params(), Sgd::new(0.5)).unwrap();
    for _ in 0..200 {
        let loss = autograd::record(|| L2Loss::new().forward(&net.forward(&x)?, &y, None)).unwrap();
        loss.backward().unwrap();
        trainer.step(n).unwrap();
    }
    let w = net.weight.data().unwrap().to_vec_f32().unwrap();
    let b = net
        .bias
        .as_ref()
        .unwrap()
        .data()
        .unwrap()
        .to_scalar()
        .unwrap();
    approx::assert_abs_diff_eq!(w[0], true_w[0], epsilon = 1e-3);
    approx::assert_abs_diff_eq!(w[1], true_w[1], epsilon = 1e-3);
    approx::assert_abs_diff_eq!(b, true_b, epsilon = 1e-3);
}

/// Trains two identical embedding tables, one with sparse and one with dense gradients,
/// and returns their values after `steps` updates of the same batches.
fn sparse_vs_dense(make: MakeOptimizer, steps: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = 20;
    let dim = 4;
    let init = Tensor::from_vec(rand_vec(rows * dim, -1.0, 1.0, 5), &[rows, dim]).unwrap();
    let sparse = Embedding::new(rows, dim);
    let dense = Embedding::with_options(rows, dim, false, boson::tensor::DType::F32);
    sparse.weight.set_data(&init).unwrap();
    dense.weight.set_data(&init).unwrap();
    let mut ts = Trainer::new(sparse.collect_params(), make()).unwrap();
    let mut td = Trainer::new(dense.collect_params(), make()).unwrap();
    // Every batch touches all of rows 0..10 (so lazy and dense momentum agree there),
    // with duplicates, and never rows 10..20.
    for s in 0..steps {
        let idx: Vec<i64> = (0..16).map(|i| ((i * 3 + s) % 10) as i64).collect();
        let idx = Tensor::from_vec_i64(idx, &[16]).unwrap();
        let target =
            Tensor::from_vec(rand_vec(16 * dim, -1.0, 1.0, 100 + s as u64), &[16, dim]).unwrap();
        for (emb, tr) in [(&sparse, &mut ts), (&dense, &mut td)] {
            let loss =
                autograd::record(|| L2Loss::new().forward(&emb.forward(&idx)?, &target, None))
                    .unwrap();
            loss.backward().unwrap();
            let g = emb.weight.grad().unwrap();
            assert_eq!(matches!(g, Grad::RowSparse(_)), std::ptr::eq(emb, &sparse));
            tr.step(16).unwrap();
        }
    }
    (
        init.to_vec_f32().unwrap(),
        sparse.weight.data().unwrap().to_vec_f32().unwrap(),
        dense.weight.data().unwrap().to_vec_f32().unwrap(),
    )
}

#[test]
fn sparse_updates_match_dense_on_touched_rows_and_leave_others() {
    let makers: [MakeOptimizer; 4] = [
        || Box::new(Sgd::new(0.1)),
        || Box::new(Sgd::new(0.1).momentum(0.9)),
        || Box::new(Adam::new(0.05)),
        || Box::new(AdaGrad::new(0.1)),
    ];
    for make in makers {
        let name = make().name();
        let (init, s, d) = sparse_vs_dense(make, 5);
        let dim = 4;
        for r in 0..20 {
            let row = |v: &[f32]| v[r * dim..(r + 1) * dim].to_vec();
            if r < 10 {
                for (a, b) in row(&s).iter().zip(row(&d)) {
                    approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-5);
                }
                assert_ne!(row(&s), row(&init), "{name}: touched row {r} did not move");
            } else {
                assert_eq!(row(&s), row(&init), "{name}: sparse update touched row {r}");
            }
        }
    }
}

#[test]
fn sparse_momentum_state_of_untouched_rows_stays_zero() {
    // Lazy update: after a step on row 0 only, row 1 must not move on a later step that
    // touches row 2 only (its momentum state was never created).
    let emb = Embedding::new(3, 2);
    emb.weight
        .set_data(&Tensor::from_vec(vec![1., 1., 1., 1., 1., 1.], &[3, 2]).unwrap())
        .unwrap();
    let mut tr = Trainer::new(emb.collect_params(), Sgd::new(0.1).momentum(0.9)).unwrap();
    for row in [0i64, 2] {
        let idx = Tensor::from_vec_i64(vec![row], &[1]).unwrap();
        let loss = autograd::record(|| emb.forward(&idx)?.sum_all()).unwrap();
        loss.backward().unwrap();
        tr.step(1).unwrap();
    }
    let w = emb.weight.data().unwrap().to_vec_f32().unwrap();
    assert_eq!(&w[2..4], &[1.0, 1.0]);
    approx::assert_abs_diff_eq!(w[0], 0.9, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(w[4], 0.9, epsilon = 1e-6);
}

#[test]
fn grad_req_add_accumulates_and_null_freezes() {
    let x = Tensor::from_vec(vec![1.0, 2.0], &[1, 2]).unwrap();
    let net = Dense::new(1).in_units(2);
    net.initialize(&Initializer::One, Device::Cpu).unwrap();
    net.weight.set_grad_req(boson::autograd::GradReq::Add);
    for _ in 0..2 {
        autograd::record(|| net.forward(&x)?.sum_all())
            .unwrap()
            .backward()
            .unwrap();
    }
    let g = net
        .weight
        .grad()
        .unwrap()
        .to_dense()
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(g, vec![2.0, 4.0]);
    net.weight.zero_grad();
    assert!(net.weight.grad().is_none());
    net.weight.set_grad_req(boson::autograd::GradReq::Null);
    autograd::record(|| net.forward(&x)?.sum_all())
        .unwrap()
        .backward()
        .unwrap();
    assert!(net.weight.grad().is_none());
    assert!(net.bias.as_ref().unwrap().grad().is_some());
}

#[test]
fn nothing_recorded_outside_record() {
    let x = Tensor::from_vec(vec![1.0], &[1]).unwrap().attach_grad();
    let y = x.square().unwrap();
    assert!(y.backward().is_err());
    let z = autograd::record(|| autograd::pause(|| x.square())).unwrap();
    assert!(z.backward().is_err());
    let d = autograd::record(|| x.square().map(|t| t.detach())).unwrap();
    assert!(d.backward().is_err());
}

#[test]
fn schedulers_follow_gluon_formulas() {
    use boson::optim::*;
    let f = FactorScheduler::new(2, 0.5);
    assert_eq!(
        [f.lr(1.0, 1), f.lr(1.0, 2), f.lr(1.0, 3), f.lr(1.0, 5)],
        [1.0, 1.0, 0.5, 0.25]
    );
    let m = MultiFactorScheduler {
        steps: vec![2, 4],
        factor: 0.1,
        warmup: Warmup::default(),
    };
    approx::assert_abs_diff_eq!(m.lr(1.0, 3), 0.1, epsilon = 1e-7);
    approx::assert_abs_diff_eq!(m.lr(1.0, 5), 0.01, epsilon = 1e-7);
    let c = CosineScheduler {
        max_update: 10,
        final_lr: 0.0,
        warmup: Warmup {
            steps: 2,
            begin_lr: 0.0,
            linear: true,
        },
    };
    approx::assert_abs_diff_eq!(c.lr(1.0, 1), 0.5, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(c.lr(1.0, 6), 0.5, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(c.lr(1.0, 10), 0.0, epsilon = 1e-6);
    let p = PolyScheduler {
        max_update: 10,
        pwr: 2.0,
        final_lr: 0.0,
        warmup: Warmup::default(),
    };
    approx::assert_abs_diff_eq!(p.lr(1.0, 5), 0.25, epsilon = 1e-6);
    // The schedule starts from the optimizer's rate, as in Gluon.
    let sgd = Sgd::new(0.1).scheduler(f);
    assert_eq!([sgd.lr_at(1), sgd.lr_at(3)], [0.1, 0.05]);
    let mut t = Trainer::new(Dense::new(1).collect_params(), sgd).unwrap();
    assert_eq!(t.learning_rate(), 0.1);
    assert!(t.set_learning_rate(0.2).is_err());
}

#[test]
fn clip_global_norm_scales_the_step() {
    let net = Dense::new(1).in_units(2).use_bias(false);
    net.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    let x = Tensor::from_vec(vec![3.0, 4.0], &[1, 2]).unwrap();
    autograd::record(|| net.forward(&x)?.sum_all())
        .unwrap()
        .backward()
        .unwrap();
    let mut t = Trainer::new(net.collect_params(), Sgd::new(1.0)).unwrap();
    t.set_clip_global_norm(Some(1.0));
    t.step(1).unwrap();
    let w = net.weight.data().unwrap().to_vec_f32().unwrap();
    approx::assert_abs_diff_eq!(w[0], -0.6, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(w[1], -0.8, epsilon = 1e-6);
}

/// Builds a fresh optimizer (a trainer owns its optimizer).
type MakeOptimizer = fn() -> Box<dyn Optimizer>;

/// The built-in optimizers' rules, for the reference below.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Sgd {
        momentum: f32,
        nesterov: bool,
    },
    Adam {
        beta1: f32,
        beta2: f32,
        epsilon: f32,
        decoupled_wd: bool,
    },
    AdaGrad {
        epsilon: f32,
    },
    RmsProp {
        gamma1: f32,
        gamma2: f32,
        epsilon: f32,
        centered: bool,
    },
    Ftrl {
        lamda1: f32,
        beta: f32,
    },
}

/// The per-element update of each rule, written out from MXNet's operator docs, for the
/// rule test below (`g` is the raw gradient; `rescale`, `clip` and `wd` as in Gluon).
#[allow(clippy::too_many_arguments)]
fn reference_update(
    rule: &Rule,
    lr: f32,
    wd: f32,
    rescale: f32,
    clip: Option<f32>,
    t: i32,
    w: &mut f32,
    s: &mut [f32; 3],
    g: f32,
) {
    let clipped = |g: f32| clip.map_or(g, |c| g.clamp(-c, c));
    // MXNet's Adam and RMSProp clip after adding the decay term; the others before.
    let decay_first = match *rule {
        Rule::Adam { decoupled_wd, .. } => !decoupled_wd,
        Rule::RmsProp { .. } => true,
        _ => false,
    };
    let g = if decay_first {
        clipped(rescale * g + wd * *w)
    } else {
        clipped(rescale * g)
    };
    match *rule {
        Rule::Sgd { momentum: 0.0, .. } => *w -= lr * (g + wd * *w),
        Rule::Sgd {
            momentum,
            nesterov: false,
        } => {
            s[0] = momentum * s[0] - lr * (g + wd * *w);
            *w += s[0];
        }
        Rule::Sgd { momentum, .. } => {
            let g = g + wd * *w;
            s[0] = momentum * s[0] + g;
            *w -= lr * (g + momentum * s[0]);
        }
        Rule::Adam {
            beta1,
            beta2,
            epsilon,
            decoupled_wd,
        } => {
            let gw = g; // the decay term is in `g` (Adam) or applied below (AdamW)
            s[0] = beta1 * s[0] + (1.0 - beta1) * gw;
            s[1] = beta2 * s[1] + (1.0 - beta2) * gw * gw;
            let lr_t = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
            let lr_t: f32 = lr_t;
            let decay = if decoupled_wd { lr * wd * *w } else { 0.0 };
            *w -= lr_t * s[0] / (s[1].sqrt() + epsilon) + decay;
        }
        Rule::AdaGrad { epsilon } => {
            s[0] += g * g;
            *w -= lr * (g / (s[0] + epsilon).sqrt() + wd * *w);
        }
        Rule::RmsProp {
            gamma1,
            gamma2,
            epsilon,
            centered,
        } => {
            s[0] = (1.0 - gamma1) * g * g + gamma1 * s[0];
            if centered {
                s[1] = (1.0 - gamma1) * g + gamma1 * s[1];
                s[2] = gamma2 * s[2] - lr * g / (s[0] - s[1] * s[1] + epsilon).sqrt();
                *w += s[2];
            } else {
                *w -= lr * g / (s[0] + epsilon).sqrt();
            }
        }
        Rule::Ftrl { lamda1, beta } => {
            let n_old = s[1];
            s[1] += g * g;
            s[0] += g - (s[1].sqrt() - n_old.sqrt()) * *w / lr;
            *w = if s[0].abs() > lamda1 {
                (s[0].signum() * lamda1 - s[0]) / ((beta + s[1].sqrt()) / lr + wd)
            } else {
                0.0
            };
        }
    }
}

#[test]
fn every_rule_matches_its_formula_on_dense_and_sparse_gradients() {
    let sgd = |momentum, nesterov| Rule::Sgd { momentum, nesterov };
    let adam = |decoupled_wd| Rule::Adam {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        decoupled_wd,
    };
    let rms = |centered| Rule::RmsProp {
        gamma1: 0.9,
        gamma2: 0.9,
        epsilon: 1e-8,
        centered,
    };
    let optimizers: [(Rule, MakeOptimizer); 9] = [
        (sgd(0.0, false), || Box::new(Sgd::new(0.1).wd(0.05))),
        (sgd(0.9, false), || {
            Box::new(Sgd::new(0.1).momentum(0.9).wd(0.05).clip_gradient(0.3))
        }),
        (sgd(0.9, true), || Box::new(Sgd::nag(0.1, 0.9).wd(0.05))),
        (adam(false), || {
            Box::new(Adam::new(0.05).wd(0.05).clip_gradient(0.4))
        }),
        (adam(true), || Box::new(Adam::adamw(0.05))),
        (Rule::AdaGrad { epsilon: 1e-7 }, || {
            Box::new(AdaGrad::new(0.1).wd(0.05))
        }),
        (rms(false), || {
            Box::new(RmsProp::new(0.01).wd(0.05).clip_gradient(0.4))
        }),
        (rms(true), || {
            Box::new(
                RmsProp::new(0.01)
                    .centered(true)
                    .wd(0.05)
                    .clip_gradient(0.4),
            )
        }),
        (
            Rule::Ftrl {
                lamda1: 0.01,
                beta: 1.0,
            },
            || Box::new(Ftrl::new(0.1).wd(0.05)),
        ),
    ];
    let (rows, dim, batch) = (6, 40, 3);
    let init = rand_vec(rows * dim, -1.0, 1.0, 11);
    for (rule, make) in optimizers {
        let opt = make();
        for sparse in [false, true] {
            let name = format!("{} {rule:?} sparse={sparse}", opt.name());
            let emb = Embedding::with_options(rows, dim, sparse, boson::tensor::DType::F32);
            emb.weight
                .set_data(&Tensor::from_vec(init.clone(), &[rows, dim]).unwrap())
                .unwrap();
            let mut trainer = Trainer::new(emb.collect_params(), make()).unwrap();
            let (mut w, mut st) = (init.clone(), vec![[0.0f32; 3]; rows * dim]);
            // Row 1 appears twice (its gradient is the sum), rows 3 and 5 never.
            let idx = [1i64, 4, 1, 0, 2];
            for step in 0..3 {
                let coef = rand_vec(idx.len() * dim, -2.0, 2.0, 50 + step);
                let loss = autograd::record(|| {
                    let x = emb.forward(&Tensor::from_vec_i64(idx.to_vec(), &[idx.len()])?)?;
                    x.mul(&Tensor::from_vec(coef.clone(), &[idx.len(), dim])?)?
                        .sum_all()
                })
                .unwrap();
                loss.backward().unwrap();
                trainer.step(batch).unwrap();
                let mut g = vec![0.0f32; rows * dim];
                for (k, &r) in idx.iter().enumerate() {
                    for j in 0..dim {
                        g[r as usize * dim + j] += coef[k * dim + j];
                    }
                }
                for e in 0..rows * dim {
                    // Lazy updates leave rows without a gradient (and their state) alone.
                    let touched = idx.contains(&((e / dim) as i64));
                    if sparse && !touched {
                        continue;
                    }
                    let h = opt.hyper();
                    let (lr, wd, clip) = (h.lr, h.wd, h.clip_gradient);
                    let t = step as i32 + 1;
                    reference_update(
                        &rule,
                        lr,
                        wd,
                        1.0 / batch as f32,
                        clip,
                        t,
                        &mut w[e],
                        &mut st[e],
                        g[e],
                    );
                }
                let got = emb.weight.data().unwrap().to_vec_f32().unwrap();
                for (e, (a, b)) in got.iter().zip(&w).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{name}: step {step} element {e}: {a} vs reference {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_negative_clip_bound_is_an_error_not_a_panic() {
    let emb = Embedding::new(3, 2);
    emb.initialize(&Initializer::Normal(0.1), Device::Cpu)
        .unwrap();
    let err = Trainer::new(emb.collect_params(), Sgd::new(0.1).clip_gradient(-1.0))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("clip_gradient") && err.contains("-1"), "{err}");
}

#[test]
fn invalid_hyperparameters_are_refused_when_the_trainer_is_built() {
    let emb = Embedding::new(3, 2);
    let cases: Vec<(Box<dyn Optimizer>, &str)> = vec![
        (
            Box::new(Sgd::new(f32::NAN)),
            "learning rate must be finite and >= 0, got NaN",
        ),
        (Box::new(Sgd::new(-0.1)), "got -0.1"),
        (Box::new(Adam::new(f32::INFINITY)), "got inf"),
        (
            Box::new(Sgd::new(0.1).momentum(1.0)),
            "momentum must be in [0, 1), got 1",
        ),
        (Box::new(Sgd::new(0.1).momentum(-0.5)), "got -0.5"),
        (
            Box::new(Sgd::new(0.1).wd(-1e-4)),
            "weight decay must be finite and >= 0",
        ),
        (
            optim::create("adam", &[("beta1", 1.5)]).unwrap(),
            "beta1 must be in [0, 1), got 1.5",
        ),
        (
            optim::create("rmsprop", &[("epsilon", 0.0)]).unwrap(),
            "epsilon must be finite and > 0, got 0",
        ),
    ];
    for (opt, want) in cases {
        let err = Trainer::new(emb.collect_params(), opt)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err} (wanted {want})");
    }
    let mut ok = Trainer::new(emb.collect_params(), Sgd::new(0.1)).unwrap();
    let err = ok.set_learning_rate(f32::NAN).unwrap_err().to_string();
    assert!(err.contains("got NaN"), "{err}");
    assert_eq!(ok.learning_rate(), 0.1);
}

/// Row-sparse gradients merge like dense ones: a table looked up twice in one graph,
/// then accumulated over a second backward pass with `GradReq::Add`.
#[test]
fn row_sparse_gradients_merge_like_dense_ones() {
    let table = common::rand_tensor(&[20, 4], -1.0, 1.0, 70);
    let lookups = [vec![3i64, 3, 7], vec![7i64, 9, 9, 3]];
    let mut grads = Vec::new();
    for sparse in [true, false] {
        let emb = Embedding::with_options(20, 4, sparse, boson::tensor::DType::F32);
        emb.weight.set_data(&table).unwrap();
        emb.weight.set_grad_req(boson::autograd::GradReq::Add);
        for pass in 0..2u64 {
            let ys: Vec<Tensor> = lookups
                .iter()
                .map(|l| Tensor::from_vec_i64(l.clone(), &[l.len()]).unwrap())
                .collect();
            let w = common::rand_tensor(&[7, 4], 0.5, 1.5, 80 + pass);
            autograd::record(|| {
                let both = Tensor::concat(&[&emb.forward(&ys[0])?, &emb.forward(&ys[1])?], 0)?;
                both.mul(&w)?.sum_all()
            })
            .unwrap()
            .backward()
            .unwrap();
        }
        let g = emb.weight.grad().unwrap();
        assert_eq!(matches!(g, Grad::RowSparse(_)), sparse);
        grads.push(g.to_dense().unwrap().to_vec_f32().unwrap());
    }
    for (s, d) in grads[0].iter().zip(&grads[1]) {
        approx::assert_abs_diff_eq!(s, d, epsilon = 1e-5);
    }
    // Rows never looked up stay zero.
    assert!(grads[0][..3 * 4].iter().all(|&v| v == 0.0));
}

// Optimizer state is saved by name (`w.mean`, `w.var` for Adam), and a file from before
// states were named (`w.state0`, `w.state1`) still loads.
#[test]
fn optimizer_state_is_saved_by_name_and_old_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let step = |opt: Box<dyn Optimizer>| {
        let net = Dense::new(2).in_units(3).use_bias(false);
        net.initialize(&Initializer::Constant(0.5), Device::Cpu)
            .unwrap();
        let mut t = Trainer::new(net.collect_params(), opt).unwrap();
        let x = Tensor::from_vec(vec![1.0, -2.0, 0.5], &[1, 3]).unwrap();
        autograd::record(|| net.forward(&x)?.sum_all())
            .unwrap()
            .backward()
            .unwrap();
        t.step(1).unwrap();
        (net, t)
    };
    let keys = |path: &std::path::Path| -> Vec<String> {
        let (tensors, _) = boson::io::load_tensors(path).unwrap();
        let mut k: Vec<String> = tensors.into_iter().map(|(n, _)| n).collect();
        k.sort();
        k
    };
    for (opt, want) in [
        (
            Box::new(Adam::new(0.1)) as Box<dyn Optimizer>,
            vec!["weight.mean", "weight.var"],
        ),
        (
            Box::new(Sgd::new(0.1).momentum(0.9)),
            vec!["weight.momentum"],
        ),
        (
            Box::new(RmsProp::new(0.1).centered(true)),
            vec!["weight.delta", "weight.g", "weight.n"],
        ),
        (Box::new(Ftrl::new(0.1)), vec!["weight.n", "weight.z"]),
        (Box::new(AdaGrad::new(0.1)), vec!["weight.history"]),
    ] {
        let name = opt.name();
        let (_, t) = step(opt);
        let path = dir.path().join(format!("{name}.states"));
        t.save_states(&path).unwrap();
        assert_eq!(keys(&path), want, "{name}");
    }
    // The same Adam state under the old positional names loads and continues alike.
    let (_, t) = step(Box::new(Adam::new(0.1)));
    let named = dir.path().join("named.states");
    t.save_states(&named).unwrap();
    let (tensors, meta) = boson::io::load_tensors(&named).unwrap();
    let old: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| (n.replace(".mean", ".state0").replace(".var", ".state1"), t))
        .collect();
    let positional = dir.path().join("positional.states");
    boson::io::save_tensors(&positional, &old, Some(meta)).unwrap();
    let mut resumed = Vec::new();
    for file in [&named, &positional] {
        let (net, mut t) = step(Box::new(Adam::new(0.1)));
        t.load_states(file).unwrap();
        let x = Tensor::from_vec(vec![0.3, 0.1, -1.0], &[1, 3]).unwrap();
        autograd::record(|| net.forward(&x)?.sum_all())
            .unwrap()
            .backward()
            .unwrap();
        t.step(1).unwrap();
        resumed.push(net.weight.data().unwrap().to_vec_f32().unwrap());
    }
    assert_eq!(resumed[0], resumed[1]);
}

/// An optimizer whose state names do not match its state count.
#[derive(Clone, Debug)]
struct Misnamed(optim::Hyper);

impl Optimizer for Misnamed {
    fn name(&self) -> &'static str {
        "misnamed"
    }
    fn hyper(&self) -> &optim::Hyper {
        &self.0
    }
    fn hyper_mut(&mut self) -> &mut optim::Hyper {
        &mut self.0
    }
    fn num_states(&self) -> usize {
        1
    }
    fn state_names(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }
    fn step(&self, _: &Tensor, _: &Tensor, _: &[Tensor], _: &optim::StepArgs) -> boson::Result<()> {
        Ok(())
    }
}

#[test]
fn state_names_must_match_the_state_count() {
    let err = Trainer::new(
        Dense::new(1).collect_params(),
        Misnamed(optim::Hyper::new(0.1)),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("'misnamed'") && err.contains("one name per state"),
        "{err}"
    );
}
