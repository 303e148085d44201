//! A custom op as a user of the crate writes one: defined here, outside boson, with its
//! own backward, checked against finite differences and trained through the Estimator.

use boson::autograd::{self, CustomOp};
use boson::data::{ArrayDataset, DataLoader};
use boson::estimator::{Estimator, FitUntil, LogCapture};
use boson::loss::L2Loss;
use boson::metric::Rmse;
use boson::nn::{Block, Dense, Forward, Initializer};
use boson::optim::{Adam, Trainer};
use boson::{Error, Result, Tensor};
use std::sync::Arc;

/// `x / (1 + |x|)`: its derivative `1 / (1 + |x|)²` written by hand.
struct Softsign;

impl CustomOp for Softsign {
    fn name(&self) -> &str {
        "softsign"
    }
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor> {
        // On the host, as a user porting a loop would write it.
        let x = inputs[0].to_vec_f32()?;
        let y = x.iter().map(|v| v / (1.0 + v.abs())).collect();
        Tensor::from_vec(y, inputs[0].shape())
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let d = inputs[0].abs()?.add_scalar(1.0)?.square()?.recip()?;
        Ok(vec![Some(grad.mul(&d)?)])
    }
}

/// `a · b` with a row-wise scale: two inputs, the second without a gradient.
struct ScaleRows;

impl CustomOp for ScaleRows {
    fn name(&self) -> &str {
        "scale_rows"
    }
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor> {
        inputs[0].mul(&inputs[1].expand_dims(1)?)
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(grad.mul(&inputs[1].expand_dims(1)?)?), None])
    }
}

/// The gradient of `sum(f(x) · w)` for fixed weights `w`, by central differences.
fn numeric_grad(f: &dyn Fn(&Tensor) -> Result<Tensor>, x: &[f32], shape: &[usize]) -> Vec<f32> {
    let weights: Vec<f32> = (0..x.len()).map(|i| 0.5 + i as f32 * 0.25).collect();
    let loss = |v: &[f32]| -> f64 {
        let y = f(&Tensor::from_vec(v.to_vec(), shape).unwrap()).unwrap();
        let y = y.to_vec_f32().unwrap();
        y.iter().zip(&weights).map(|(a, w)| f64::from(a * w)).sum()
    };
    let eps = 1e-3;
    (0..x.len())
        .map(|i| {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[i] += eps;
            down[i] -= eps;
            ((loss(&up) - loss(&down)) / (2.0 * f64::from(eps))) as f32
        })
        .collect()
}

fn analytic_grad(f: &dyn Fn(&Tensor) -> Result<Tensor>, x: &[f32], shape: &[usize]) -> Vec<f32> {
    let weights: Vec<f32> = (0..x.len()).map(|i| 0.5 + i as f32 * 0.25).collect();
    let w = Tensor::from_vec(weights, shape).unwrap();
    let leaf = Tensor::from_vec(x.to_vec(), shape).unwrap().attach_grad();
    let loss = autograd::record(|| f(&leaf)?.mul(&w)?.sum_all()).unwrap();
    loss.backward().unwrap();
    leaf.grad().unwrap().unwrap().to_vec_f32().unwrap()
}

#[test]
fn custom_op_gradients_match_finite_differences() {
    let x = [-2.0, -0.4, 0.3, 1.7, 4.0, -3.1];
    let softsign = |t: &Tensor| autograd::apply(Arc::new(Softsign), &[t]);
    let scale = Tensor::from_vec(vec![2.0, -0.5], &[2]).unwrap();
    let scaled = |t: &Tensor| autograd::apply(Arc::new(ScaleRows), &[t, &scale]);
    for (name, f) in [
        ("softsign", &softsign as &dyn Fn(&Tensor) -> Result<Tensor>),
        ("scale_rows", &scaled),
    ] {
        let (num, ana) = (numeric_grad(f, &x, &[2, 3]), analytic_grad(f, &x, &[2, 3]));
        for (i, (n, a)) in num.iter().zip(&ana).enumerate() {
            assert!(
                (n - a).abs() < 1e-2 * n.abs().max(1.0),
                "{name} [{i}]: {n} vs {a}"
            );
        }
    }
    // Outside `record` the op is just its forward.
    let y = autograd::apply(
        Arc::new(Softsign),
        &[&Tensor::from_vec(vec![1.0], &[1]).unwrap()],
    );
    assert_eq!(y.unwrap().to_vec_f32().unwrap(), vec![0.5]);
}

/// A backward that breaks the contract: too few gradients, or the wrong shape.
struct Broken(usize);

impl CustomOp for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor> {
        inputs[0].mul_scalar(2.0)
    }
    fn backward(&self, _: &[Tensor], _: &Tensor, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        match self.0 {
            0 => Ok(vec![]),
            _ => Ok(vec![Some(grad.sum_all()?)]),
        }
    }
}

#[test]
fn a_backward_that_breaks_the_contract_is_an_error_naming_the_op() {
    for (which, want) in [
        (0, "returned 0 gradients for 1 inputs"),
        (1, "of shape [] for input 0"),
    ] {
        let x = Tensor::from_vec(vec![1.0, 2.0], &[2])
            .unwrap()
            .attach_grad();
        let y = autograd::record(|| autograd::apply(Arc::new(Broken(which)), &[&x])?.sum_all())
            .unwrap();
        let err = y.backward().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("'broken'") && msg.contains(want), "{msg}");
    }
}

/// A model whose hidden activation is the custom op.
#[derive(Block)]
struct SoftsignNet {
    hidden: Dense,
    out: Dense,
}

impl Forward for SoftsignNet {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = autograd::apply(Arc::new(Softsign), &[&self.hidden.forward(x)?])?;
        self.out.forward(&h)
    }
}

#[test]
fn a_model_with_a_custom_op_trains_through_the_estimator() {
    let xs: Vec<Vec<f32>> = (0..256)
        .map(|i| vec![(i % 16) as f32 / 8.0 - 1.0, (i / 16) as f32 / 8.0 - 1.0])
        .collect();
    let ys: Vec<f32> = xs
        .iter()
        .map(|x| (x[0] * x[1]).tanh() + 0.5 * x[0])
        .collect();
    let loader = DataLoader::builder(ArrayDataset::new((xs, ys)).unwrap())
        .batch_size(32)
        .shuffle(true)
        .seed(1)
        .build()
        .unwrap();
    let net = Arc::new(SoftsignNet {
        hidden: Dense::new(16).in_units(2),
        out: Dense::new(1).in_units(16),
    });
    let log = LogCapture::new();
    let trainer = Trainer::new(net.collect_params(), Adam::new(0.02)).unwrap();
    let mut est = Estimator::builder(net.clone(), L2Loss::new())
        .trainer(trainer)
        .train_metric(Rmse::new())
        .initializer(Initializer::xavier(1.0))
        .log_writer(log.clone())
        .build()
        .unwrap();
    est.fit(&loader, None, FitUntil::Epochs(1), &mut [])
        .unwrap();
    let first = est.train_metrics()[0].get().1;
    est.fit(&loader, None, FitUntil::Epochs(30), &mut [])
        .unwrap();
    let last = est.train_metrics()[0].get().1;
    assert!(last < 0.5 * first, "training RMSE {first} -> {last}");
}
