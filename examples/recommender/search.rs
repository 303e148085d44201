//! `--search`: model selection the way a SageMaker tuning job does it. A small grid of
//! regularisation strengths and factor sizes, each trained on the train split with the
//! same seed and judged by its best validation RMSE; the best is kept. The test split is
//! never looked at.

use crate::data::Prepared;
use crate::model::{build, ModelKind, ModelSpec, RecModel};
use crate::train::{fit, FitOptions, History, TrainConfig};
use boson::{Device, Error, Result};
use std::io::Write;
use std::sync::Arc;

/// The grid around `spec`: `reg_factors` ×½, ×1, ×2 times `num_embeddings` ×½ (at least
/// 1), ×1; six trials, the given values among them.
pub fn grid(spec: &ModelSpec) -> Vec<ModelSpec> {
    let mut dims = vec![(spec.num_embeddings / 2).max(1), spec.num_embeddings];
    dims.dedup();
    let mut specs = Vec::new();
    for &num_embeddings in &dims {
        for scale in [0.5, 1.0, 2.0] {
            specs.push(ModelSpec {
                num_embeddings,
                reg_factors: spec.reg_factors * scale,
                ..*spec
            });
        }
    }
    specs
}

/// One trained trial.
pub struct Trial {
    pub spec: ModelSpec,
    pub model: Arc<dyn RecModel>,
    pub history: History,
    /// The best epoch's validation RMSE.
    pub validation_rmse: f64,
}

/// Trains every spec of [`grid`] (each from `seed`, quietly) and returns the best by
/// validation RMSE; `out` gets one line per trial. An error for a model without
/// regularisation to tune (mfblock, the ranking models), for checkpoints (one folder
/// cannot hold several runs) and for data without a validation split.
pub fn search(
    spec: &ModelSpec,
    data: &Prepared,
    config: &TrainConfig,
    options: &FitOptions,
    seed: u64,
    device: Device,
    out: &mut dyn Write,
) -> Result<Trial> {
    if !matches!(spec.kind, ModelKind::BiasedMf | ModelKind::DriftMf) {
        return Err(Error::InvalidArgument(format!(
            "--search tunes the regularisation and factor size of biased-mf and drift-mf, not {}: \
             drop --search or choose one of them with --model",
            spec.kind.name()
        )));
    }
    if options.checkpoint_dir.is_some() {
        return Err(Error::InvalidArgument(
            "--search trains several models and --checkpoint-dir holds one run: use one of them"
                .into(),
        ));
    }
    if data.summary.validation == 0 {
        return Err(Error::InvalidArgument(
            "--search chooses by validation RMSE, and this data has no validation split".into(),
        ));
    }
    let options = FitOptions {
        progress: boson::estimator::ProgressBarMode::Never,
        ..options.clone()
    };
    let write = |out: &mut dyn Write, line: String| {
        writeln!(out, "{line}")
            .map_err(|e| Error::InvalidArgument(format!("could not write output: {e}")))
    };
    write(
        out,
        format!(
            "{:>12} {:>10} {:>8} {:>15}",
            "reg-factors", "embeddings", "epochs", "validation RMSE"
        ),
    )?;
    let mut best: Option<Trial> = None;
    for spec in grid(spec) {
        boson::rng::seed(seed);
        let model = build(&spec, seed, device)?;
        model.set_context(&data.context(1), device)?;
        let history = fit(&model, data, config, &options, device, std::io::sink())?;
        let validation_rmse = history
            .epochs
            .iter()
            .map(|e| e.validation_rmse)
            .fold(f64::NAN, f64::min);
        write(
            out,
            format!(
                "{:>12} {:>10} {:>8} {:>15.4}",
                spec.reg_factors,
                spec.num_embeddings,
                history.epochs.len(),
                validation_rmse
            ),
        )?;
        // NaN (a diverged trial) never wins.
        if best
            .as_ref()
            .is_none_or(|b| validation_rmse < b.validation_rmse || b.validation_rmse.is_nan())
        {
            best = Some(Trial {
                spec,
                model,
                history,
                validation_rmse,
            });
        }
    }
    let best = best.expect("the grid has trials");
    write(
        out,
        format!(
            "kept: --reg-factors {} --num-embeddings {} (validation RMSE {:.4})",
            best.spec.reg_factors, best.spec.num_embeddings, best.validation_rmse
        ),
    )?;
    Ok(best)
}
