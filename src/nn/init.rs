//! Initializers with Gluon's definitions, seeded.

use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::RngExt;

/// Xavier's random distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RndType {
    /// `U(-s, s)`
    Uniform,
    /// `N(0, s²)`
    Gaussian,
}

/// Which fan Xavier divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorType {
    /// `(fan_in + fan_out) / 2`
    Avg,
    /// `fan_in`
    In,
    /// `fan_out`
    Out,
}

/// How to fill a parameter's initial values.
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    /// Gluon's `Xavier(rnd_type, factor_type, magnitude)`: scale `s = sqrt(magnitude / factor)`
    /// with `fan_in = shape[1]·Π shape[2..]` and `fan_out = shape[0]·Π shape[2..]`.
    Xavier {
        /// uniform or gaussian
        rnd_type: RndType,
        /// avg, in or out
        factor_type: FactorType,
        /// Gluon's default is 3.
        magnitude: f32,
    },
    /// `N(0, sigma²)` (Gluon's default sigma is 0.01).
    Normal(f32),
    /// `U(-scale, scale)` (Gluon's default scale is 0.07).
    Uniform(f32),
    /// All zeros.
    Zero,
    /// All ones.
    One,
    /// Every value `v`.
    Constant(f32),
}

impl Default for Initializer {
    /// Gluon's default global initializer, `Uniform(0.07)`.
    fn default() -> Self {
        Initializer::Uniform(0.07)
    }
}

impl Initializer {
    /// `Xavier(uniform, avg, magnitude)`.
    pub fn xavier(magnitude: f32) -> Initializer {
        Initializer::Xavier {
            rnd_type: RndType::Uniform,
            factor_type: FactorType::Avg,
            magnitude,
        }
    }

    /// `shape`'s initial values, deterministic in `seed`.
    pub fn generate(&self, shape: &[usize], seed: u64) -> Result<Vec<f32>> {
        let n = crate::tensor::checked_elem_count(shape)?;
        crate::tensor::check_alloc(n, 4, || format!("initial values of shape {shape:?}"))?;
        let mut rng = crate::rng::init_generator(seed);
        let mut out = crate::tensor::pool::for_parameter(n);
        match *self {
            Initializer::Zero => out.resize(n, 0.0),
            Initializer::One => out.resize(n, 1.0),
            Initializer::Constant(v) => out.resize(n, v),
            Initializer::Uniform(s) => out.extend((0..n).map(|_| rng.random_range(-s..=s))),
            Initializer::Normal(sigma) => out.extend((0..n).map(|_| sigma * std_normal(&mut rng))),
            Initializer::Xavier {
                rnd_type,
                factor_type,
                magnitude,
            } => {
                if shape.len() < 2 {
                    return Err(Error::InvalidArgument(format!(
                        "Xavier needs a parameter of at least 2 dimensions, got shape {shape:?}"
                    )));
                }
                let hw: usize = shape[2..].iter().product();
                let (fan_in, fan_out) = ((shape[1] * hw) as f32, (shape[0] * hw) as f32);
                let factor = match factor_type {
                    FactorType::Avg => (fan_in + fan_out) / 2.0,
                    FactorType::In => fan_in,
                    FactorType::Out => fan_out,
                };
                let scale = (magnitude / factor).sqrt();
                match rnd_type {
                    RndType::Uniform => {
                        out.extend((0..n).map(|_| rng.random_range(-scale..=scale)))
                    }
                    RndType::Gaussian => out.extend((0..n).map(|_| scale * std_normal(&mut rng))),
                }
            }
        }
        Ok(out)
    }
}

/// A standard normal draw (Box–Muller).
fn std_normal(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}
