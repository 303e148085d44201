//! An optimizer written outside the crate, as a user would: MXNet 1.9.1's AdaDelta in
//! tensor ops (no CUDA kernel), registered by name with `optim::register`, created from
//! Gluon-style parameters by `optim::create`, trained by a `Trainer`, and its named state
//! saved and loaded.

use boson::loss::{L2Loss, Loss};
use boson::nn::{Block, Dense, Forward, Initializer};
use boson::optim::{self, Configurable, Hyper, Optimizer, StepArgs, Trainer};
use boson::{autograd, Device, Result, Tensor};

/// AdaDelta (Zeiler 2012) as MXNet 1.9.1 writes it: the learning rate is not used.
#[derive(Debug)]
struct AdaDelta {
    hyper: Hyper,
    rho: f32,
    epsilon: f32,
}

impl AdaDelta {
    fn new(lr: f32) -> AdaDelta {
        AdaDelta {
            hyper: Hyper::new(lr),
            rho: 0.9,
            epsilon: 1e-5,
        }
    }
}

impl Optimizer for AdaDelta {
    fn name(&self) -> &'static str {
        "adadelta"
    }
    fn hyper(&self) -> &Hyper {
        &self.hyper
    }
    fn hyper_mut(&mut self) -> &mut Hyper {
        &mut self.hyper
    }
    fn num_states(&self) -> usize {
        2
    }
    fn state_names(&self) -> Vec<String> {
        vec!["acc_g".into(), "acc_delta".into()]
    }
    fn step(&self, w: &Tensor, g: &Tensor, states: &[Tensor], a: &StepArgs) -> Result<()> {
        let c = a.clip_bound();
        let g = g.mul_scalar(a.rescale)?.clip(-c, c)?;
        let (acc_g, acc_delta) = (&states[0], &states[1]);
        let rho = self.rho;
        acc_g.assign(
            &acc_g
                .mul_scalar(rho)?
                .add(&g.square()?.mul_scalar(1.0 - rho)?)?,
        )?;
        let delta = acc_delta
            .add_scalar(self.epsilon)?
            .sqrt()?
            .div(&acc_g.add_scalar(self.epsilon)?.sqrt()?)?
            .mul(&g)?;
        acc_delta.assign(
            &acc_delta
                .mul_scalar(rho)?
                .add(&delta.square()?.mul_scalar(1.0 - rho)?)?,
        )?;
        w.assign(&w.sub(&delta.add(&w.mul_scalar(a.wd)?)?)?)
    }
}

impl Configurable for AdaDelta {
    fn set(&mut self, key: &str, value: f32) -> bool {
        match key {
            "rho" => self.rho = value,
            "epsilon" => self.epsilon = value,
            _ => return false,
        }
        true
    }
}

/// Registers `adadelta` once for the whole test binary (the registry is per process).
fn register_adadelta() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        optim::register("AdaDelta", |lr| Box::new(AdaDelta::new(lr))).unwrap();
    });
}

/// The same update on plain numbers, for one weight with gradient `g` at every step.
fn adadelta_reference(mut w: f32, g: f32, rho: f32, eps: f32, wd: f32, steps: usize) -> f32 {
    let (mut acc_g, mut acc_delta) = (0.0f32, 0.0f32);
    for _ in 0..steps {
        acc_g = rho * acc_g + (1.0 - rho) * g * g;
        let delta = (acc_delta + eps).sqrt() / (acc_g + eps).sqrt() * g;
        acc_delta = rho * acc_delta + (1.0 - rho) * delta * delta;
        w -= delta + wd * w;
    }
    w
}

#[test]
fn a_registered_optimizer_is_created_by_name_and_steps_as_its_formula_says() {
    register_adadelta();
    let opt = optim::create("adadelta", &[("rho", 0.8), ("epsilon", 1e-3), ("wd", 0.01)]).unwrap();
    assert_eq!(opt.name(), "adadelta");
    assert_eq!(opt.hyper().wd, 0.01);
    // loss = sum(x · w) with x = [2, -3]: the weight's gradient is x at every step.
    let net = Dense::new(1).in_units(2).use_bias(false);
    net.initialize(&Initializer::Constant(0.5), Device::Cpu)
        .unwrap();
    let mut trainer = Trainer::new(net.collect_params(), opt).unwrap();
    let x = Tensor::from_vec(vec![2.0, -3.0], &[1, 2]).unwrap();
    for _ in 0..3 {
        autograd::record(|| net.forward(&x)?.sum_all())
            .unwrap()
            .backward()
            .unwrap();
        trainer.step(1).unwrap();
    }
    let w = net.weight.data().unwrap().to_vec_f32().unwrap();
    for (k, g) in [2.0f32, -3.0].into_iter().enumerate() {
        let want = adadelta_reference(0.5, g, 0.8, 1e-3, 0.01, 3);
        assert!((w[k] - want).abs() < 1e-6, "weight {k}: {} vs {want}", w[k]);
    }
}

#[test]
fn a_registered_optimizer_trains_a_regression_and_its_named_state_round_trips() {
    register_adadelta();
    // y = 2 x1 − x2 + 0.5, learned by Dense(1) with AdaDelta's defaults.
    let xs: Vec<f32> = (0..64)
        .map(|k| ((k * 37 % 17) as f32 - 8.0) / 4.0)
        .collect();
    let ys: Vec<f32> = xs.chunks(2).map(|p| 2.0 * p[0] - p[1] + 0.5).collect();
    let x = Tensor::from_vec(xs, &[32, 2]).unwrap();
    let y = Tensor::from_vec(ys, &[32]).unwrap();
    let net = Dense::new(1).in_units(2);
    net.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    let opt = optim::create("adadelta", &[("rho", 0.95), ("epsilon", 1e-4)]).unwrap();
    let mut trainer = Trainer::new(net.collect_params(), opt).unwrap();
    let loss = |net: &Dense| -> f32 {
        let l = L2Loss::new()
            .forward(&net.forward(&x).unwrap().reshape(&[32]).unwrap(), &y, None)
            .unwrap();
        l.mean_all().unwrap().to_vec_f32().unwrap()[0]
    };
    let first = loss(&net);
    for _ in 0..300 {
        autograd::record(|| {
            let p = net.forward(&x)?.reshape(&[32])?;
            L2Loss::new().forward(&p, &y, None)
        })
        .unwrap()
        .backward()
        .unwrap();
        trainer.step(32).unwrap();
    }
    let last = loss(&net);
    assert!(last < 0.05 * first, "loss {first} -> {last}");

    // The state is saved under the optimizer's names and loads back into a new trainer.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trainer.states");
    trainer.save_states(&path).unwrap();
    let (tensors, _) = boson::io::load_tensors(&path).unwrap();
    let keys: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.iter().any(|k| k.ends_with(".acc_g"))
            && keys.iter().any(|k| k.ends_with(".acc_delta")),
        "{keys:?}"
    );
    let mut again = Trainer::new(
        net.collect_params(),
        optim::create("adadelta", &[("rho", 0.95), ("epsilon", 1e-4)]).unwrap(),
    )
    .unwrap();
    again.load_states(&path).unwrap();
    assert_eq!(again.num_update(), trainer.num_update());
}

#[test]
fn registering_a_taken_name_and_unknown_keys_are_errors() {
    register_adadelta();
    for name in ["sgd", "Adam", ""] {
        let err = optim::register(name, |lr| Box::new(AdaDelta::new(lr)))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("'{name}'")), "{err}");
    }
    let err = optim::register("ADADELTA", |lr| Box::new(AdaDelta::new(lr)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already registered"), "{err}");
    let err = optim::create("adadelta", &[("momentum", 0.9)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'adadelta' has no parameter 'momentum'"),
        "{err}"
    );
    // The unknown-name error lists the registered names beside the built-ins.
    let err = optim::create("lamb", &[]).unwrap_err().to_string();
    assert!(err.contains("adadelta") && err.contains("rmsprop"), "{err}");
}
