//! Learning-rate schedules with Gluon's definitions, including linear or constant warmup.
//! A schedule starts from the optimizer's learning rate, as in Gluon (where the optimizer
//! sets its scheduler's `base_lr` to its own `learning_rate`).

/// The learning rate as a function of the optimizer's base rate and the update count
/// (1-based).
pub trait LrScheduler: Send + Sync {
    /// The rate for update number `num_update`, starting from `base_lr`.
    fn lr(&self, base_lr: f32, num_update: u64) -> f32;
}

/// Warmup shared by every schedule: for the first `steps` updates the rate goes from
/// `begin_lr` to the base rate linearly (or stays at `begin_lr` when not `linear`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Warmup {
    /// number of warmup updates
    pub steps: u64,
    /// the rate at update 0
    pub begin_lr: f32,
    /// linear ramp (true) or constant (false)
    pub linear: bool,
}

impl Warmup {
    fn lr(&self, base: f32, n: u64) -> Option<f32> {
        if n >= self.steps {
            return None;
        }
        Some(if self.linear {
            self.begin_lr + (base - self.begin_lr) * n as f32 / self.steps as f32
        } else {
            self.begin_lr
        })
    }
}

/// `base_lr · factor^⌊(n−1)/step⌋`, never below `stop_factor_lr` (Gluon's
/// `FactorScheduler`).
#[derive(Clone, Debug)]
pub struct FactorScheduler {
    /// updates between decays
    pub step: u64,
    /// multiplier per decay
    pub factor: f32,
    /// lower bound
    pub stop_factor_lr: f32,
    /// warmup
    pub warmup: Warmup,
}

impl FactorScheduler {
    /// Decay by `factor` every `step` updates.
    pub fn new(step: u64, factor: f32) -> Self {
        FactorScheduler {
            step: step.max(1),
            factor,
            stop_factor_lr: 1e-8,
            warmup: Warmup::default(),
        }
    }
}

impl LrScheduler for FactorScheduler {
    fn lr(&self, base_lr: f32, n: u64) -> f32 {
        if let Some(w) = self.warmup.lr(base_lr, n) {
            return w;
        }
        let decays = n.saturating_sub(1) / self.step;
        (base_lr * self.factor.powi(decays.min(i32::MAX as u64) as i32)).max(self.stop_factor_lr)
    }
}

/// Decay by `factor` at each listed update count (Gluon's `MultiFactorScheduler`).
#[derive(Clone, Debug)]
pub struct MultiFactorScheduler {
    /// increasing update counts after which the rate decays
    pub steps: Vec<u64>,
    /// multiplier per decay
    pub factor: f32,
    /// warmup
    pub warmup: Warmup,
}

impl LrScheduler for MultiFactorScheduler {
    fn lr(&self, base_lr: f32, n: u64) -> f32 {
        if let Some(w) = self.warmup.lr(base_lr, n) {
            return w;
        }
        let passed = self.steps.iter().filter(|&&s| n > s).count();
        base_lr * self.factor.powi(passed as i32)
    }
}

/// Polynomial decay to `final_lr` at `max_update` (Gluon's `PolyScheduler`).
#[derive(Clone, Debug)]
pub struct PolyScheduler {
    /// the update count where the rate reaches `final_lr`
    pub max_update: u64,
    /// exponent (Gluon's default 2)
    pub pwr: f32,
    /// final rate
    pub final_lr: f32,
    /// warmup
    pub warmup: Warmup,
}

impl LrScheduler for PolyScheduler {
    fn lr(&self, base_lr: f32, n: u64) -> f32 {
        if let Some(w) = self.warmup.lr(base_lr, n) {
            return w;
        }
        if n >= self.max_update {
            return self.final_lr;
        }
        let span = (self.max_update - self.warmup.steps).max(1) as f32;
        let frac = 1.0 - (n - self.warmup.steps) as f32 / span;
        self.final_lr + (base_lr - self.final_lr) * frac.powf(self.pwr)
    }
}

/// Cosine decay to `final_lr` at `max_update` (Gluon's `CosineScheduler`).
#[derive(Clone, Debug)]
pub struct CosineScheduler {
    /// the update count where the rate reaches `final_lr`
    pub max_update: u64,
    /// final rate
    pub final_lr: f32,
    /// warmup
    pub warmup: Warmup,
}

impl LrScheduler for CosineScheduler {
    fn lr(&self, base_lr: f32, n: u64) -> f32 {
        if let Some(w) = self.warmup.lr(base_lr, n) {
            return w;
        }
        if n >= self.max_update {
            return self.final_lr;
        }
        let span = (self.max_update - self.warmup.steps).max(1) as f32;
        let x = (n - self.warmup.steps) as f32 / span;
        self.final_lr + (base_lr - self.final_lr) * (1.0 + (std::f32::consts::PI * x).cos()) / 2.0
    }
}
