//! A two-layer MLP trained with `Trainer` on generated data: y = sin(x₀) + x₁².
//! Prints its loss falling. Run: `cargo run --release --example quickstart`.

use boson::loss::L2Loss;
use boson::nn::{Activation, Dense, Sequential};
use boson::prelude::*;
use boson::rng;

fn main() -> Result<()> {
    rng::seed(42);
    let n = 1024;
    let xs: Vec<f32> = (0..n * 2)
        .map(|i| rng::uniform_hash(1, i as u64) * 4.0 - 2.0)
        .collect();
    let ys: Vec<f32> = (0..n)
        .map(|i| xs[2 * i].sin() + xs[2 * i + 1].powi(2))
        .collect();
    let x = Tensor::from_vec(xs, &[n, 2])?;
    let y = Tensor::from_vec(ys, &[n])?;

    let net = Sequential::new()
        .add(Dense::new(32).activation(Activation::Tanh))
        .add(Dense::new(32).activation(Activation::Tanh))
        .add(Dense::new(1));
    net.initialize(&Initializer::xavier(3.0), Device::Cpu)?;
    let mut trainer = Trainer::new(net.collect_params(), Adam::new(0.01))?;
    let loss_fn = L2Loss::new();
    for epoch in 0..200 {
        let loss = autograd::record(|| loss_fn.forward(&net.forward(&x)?, &y, None))?;
        loss.backward()?;
        trainer.step(n)?;
        if epoch % 20 == 0 || epoch == 199 {
            println!("epoch {epoch:3}  loss {:.5}", loss.mean_all()?.to_scalar()?);
        }
    }
    Ok(())
}
