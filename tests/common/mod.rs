//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[macro_use]
mod skip;

use boson::{autograd, Result, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Uniform values in `[lo, hi)` from a seeded generator (never all zeros).
pub fn rand_vec(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

pub fn rand_tensor(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::from_vec(rand_vec(shape.iter().product(), lo, hi, seed), shape).unwrap()
}

/// Compares the autograd gradient of `Σ r ⊙ f(inputs)` (random `r`) with central finite
/// differences for every input element.
pub fn gradcheck(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>, eps: f32, tol: f32) {
    let leaves: Vec<Tensor> = inputs.iter().map(|t| t.attach_grad()).collect();
    let out = autograd::record(|| f(&leaves)).unwrap();
    let r = rand_tensor(out.shape(), 0.5, 1.5, 99);
    let obj = |xs: &[Tensor]| -> f64 {
        let y = f(xs).unwrap();
        y.to_vec_f32()
            .unwrap()
            .iter()
            .zip(r.to_vec_f32().unwrap())
            .map(|(&a, b)| a as f64 * b as f64)
            .sum()
    };
    let scalar = autograd::record(|| out.mul(&r)?.sum_all()).unwrap();
    scalar.backward().unwrap();
    for (k, leaf) in leaves.iter().enumerate() {
        let analytic = leaf
            .grad()
            .unwrap()
            .expect("gradient")
            .to_vec_f32()
            .unwrap();
        let base = inputs[k].to_vec_f32().unwrap();
        for i in 0..base.len() {
            let shifted = |d: f32| {
                let mut v = base.clone();
                v[i] += d;
                let mut xs: Vec<Tensor> = inputs.to_vec();
                xs[k] = Tensor::from_vec(v, inputs[k].shape()).unwrap();
                obj(&xs)
            };
            let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
            let a = analytic[i] as f64;
            let err = (a - numeric).abs() / (1.0 + numeric.abs());
            assert!(
                err < tol as f64,
                "input {k} element {i}: analytic {a} vs numeric {numeric} (rel err {err})"
            );
        }
    }
}

/// The numbers of a JSON array (a fixture's values), as f32.
pub fn json_floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// A JSON array of sizes (a fixture's shape).
pub fn json_shape(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_u64().expect("a size") as usize)
        .collect()
}

/// Asserts each element of `got` is within `tol · (1 + |want|)` of `reference`'s value.
pub fn assert_close_to(what: &str, got: &[f32], want: &[f32], tol: f32, reference: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{k}]: boson {a} vs {reference} {b}"
        );
    }
}

/// Asserts every parameter's gradient in `params` is close to the fixture's
/// `{name: [values]}` in `want` (`reference`'s gradients).
pub fn assert_param_grads(
    what: &str,
    params: &boson::nn::ParameterDict,
    want: &serde_json::Value,
    tol: f32,
    reference: &str,
) {
    for (name, values) in want.as_object().expect("a JSON object") {
        let p = params
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no parameter {name}"));
        let g = p.grad().expect("a gradient").to_dense().unwrap();
        assert_close_to(
            &format!("{what}: {name} gradient"),
            &g.to_vec_f32().unwrap(),
            &json_floats(values),
            tol,
            reference,
        );
    }
}
