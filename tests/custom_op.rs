//! A custom op as a user of the crate writes one: defined here, outside boson, with its
//! own backward and its own CUDA kernels, checked against finite differences, trained
//! through the Estimator, and (where a GPU is present) run on it against the CPU.

use boson::autograd::{self, CustomOp};
use boson::data::{ArrayDataset, DataLoader};
use boson::estimator::{Estimator, FitUntil, LogCapture};
use boson::loss::L2Loss;
use boson::metric::Rmse;
use boson::nn::{Block, Dense, Forward, Initializer};
use boson::optim::{Adam, Trainer};
use boson::tensor::ElementwiseKernel;
use boson::{Device, Error, Result, Tensor};
use std::sync::Arc;

#[path = "common/skip.rs"]
#[macro_use]
mod skip;

/// softsign's GPU path: two element-wise kernels (tests/custom_kernels/softsign.cu).
const SOFTSIGN_CU: &str = include_str!("custom_kernels/softsign.cu");

fn softsign_kernel(name: &str) -> ElementwiseKernel {
    // SAFETY: both kernels have the documented signature, loop below `n` and read only
    // the inputs they are given (`a`; `a` and `b` for the gradient).
    unsafe { ElementwiseKernel::new(name, SOFTSIGN_CU) }
}

/// `x / (1 + |x|)`: its derivative `1 / (1 + |x|)²` written by hand; on the host for CPU
/// tensors, by its own CUDA kernels for GPU ones.
struct Softsign;

impl CustomOp for Softsign {
    fn name(&self) -> &str {
        "softsign"
    }
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor> {
        let x = &inputs[0];
        if x.device().is_cuda() {
            return Tensor::map_kernel(&[x], &softsign_kernel("softsign_f32"), &[]);
        }
        // On the host, as a user porting a loop would write it.
        let v = x.to_vec_f32()?;
        let y = v.iter().map(|v| v / (1.0 + v.abs())).collect();
        Tensor::from_vec(y, x.shape())
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        if x.device().is_cuda() {
            let kernel = softsign_kernel("softsign_grad_f32");
            return Ok(vec![Some(Tensor::map_kernel(&[x, grad], &kernel, &[])?)]);
        }
        let d = x.abs()?.add_scalar(1.0)?.square()?.recip()?;
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

#[cfg(feature = "cuda")]
#[test]
fn the_custom_kernels_compile_with_nvrtc() {
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        skip_note!(
            "skipped: libnvrtc cannot be loaded (run scripts/ci-nvrtc.sh and export what it prints)"
        );
        return;
    }
    let ptx = boson::cuda::compile_source_ptx("softsign.cu", SOFTSIGN_CU, "compute_90").unwrap();
    let text = ptx.to_src();
    for name in ["softsign_f32", "softsign_grad_f32"] {
        assert!(text.contains(&format!(".entry {name}")), "no entry {name}");
    }
    // A source that does not compile is an error carrying NVRTC's log.
    let err = boson::cuda::compile_source_ptx("bad.cu", "this is not CUDA", "compute_90")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.cu"), "{err}");
}

#[test]
fn map_kernel_refuses_what_it_cannot_run() {
    let kernel = softsign_kernel("softsign_f32");
    let x = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
    let y = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap();
    let idx = Tensor::from_vec_i64(vec![1, 2], &[2]).unwrap();
    let cases: [(&[&Tensor], &[f32], &str); 5] = [
        (&[], &[], "got none"),
        (
            &[&x, &x, &x, &x],
            &[],
            "at most 3 inputs and 4 scalars, got 4 and 0",
        ),
        (&[&x], &[0.0; 5], "got 1 and 5"),
        (&[&x, &y], &[], "[2]"),
        (&[&x], &[], "on the CPU"),
    ];
    for (inputs, scalars, want) in cases {
        let err = Tensor::map_kernel(inputs, &kernel, scalars)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    let err = Tensor::map_kernel(&[&idx], &kernel, &[]).unwrap_err();
    assert!(matches!(err, Error::DTypeMismatch { .. }), "{err}");
}

#[test]
fn the_custom_op_runs_its_kernels_on_the_gpu_as_on_the_cpu() {
    let dev = Device::cuda_if_available(0);
    if !dev.is_cuda() {
        skip_note!("skipped: no usable CUDA device");
        return;
    }
    let x: Vec<f32> = (0..3000)
        .map(|i| ((i * 37 % 201) as f32 - 100.0) / 13.0)
        .collect();
    let w: Vec<f32> = (0..3000).map(|i| (i % 7) as f32 - 3.0).collect();
    let run = |device: Device| -> (Vec<f32>, Vec<f32>) {
        let leaf = Tensor::from_vec(x.clone(), &[30, 100])
            .unwrap()
            .to_device(device)
            .unwrap()
            .attach_grad();
        let wt = Tensor::from_vec(w.clone(), &[30, 100])
            .unwrap()
            .to_device(device)
            .unwrap();
        let y = autograd::record(|| autograd::apply(Arc::new(Softsign), &[&leaf])).unwrap();
        let loss = autograd::record(|| y.mul(&wt)?.sum_all()).unwrap();
        loss.backward().unwrap();
        let g = leaf.grad().unwrap().unwrap().to_vec_f32().unwrap();
        (y.to_vec_f32().unwrap(), g)
    };
    let (cpu, gpu) = (run(Device::Cpu), run(dev));
    for (what, a, b) in [("value", &cpu.0, &gpu.0), ("gradient", &cpu.1, &gpu.1)] {
        for (i, (c, g)) in a.iter().zip(b.iter()).enumerate() {
            assert!(
                (c - g).abs() <= 1e-6 * (1.0 + c.abs()),
                "{what}[{i}]: cpu {c}, gpu {g}"
            );
        }
    }
}
