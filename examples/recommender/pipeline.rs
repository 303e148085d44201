//! The default run, step by step: explore → prepare → train → evaluate → save → reload.
//! The steps print to `out` and the Estimator's training log goes to `log` (the example
//! passes stdout for both; tests pass sinks to run quietly).

use crate::charts;
use crate::cli::TrainArgs;
use crate::data::{load, prepare, Source};
use crate::evaluate::{ranking, score, seen_items, top_k, BiasBaseline, Ranking};
use crate::guard::Verdict;
use crate::model::{build, from_biases, predict, ModelKind, ModelSpec, Task};
use crate::persist::{self, ModelConfig, FORMAT_VERSION};
use crate::search;
use crate::train::{fit, FitOptions, History, Ranks};
use boson::metric::{Mae, Rmse};
use boson::ratings::{item_counts, ItemPop, Per};
use boson::{Error, Result};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// The numbers of a run (the final JSON line).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub test_rmse: f64,
    pub test_mae: f64,
    /// The best epoch's validation RMSE (the epoch whose parameters were kept; rating
    /// task).
    pub validation_rmse: f64,
    /// The best epoch's validation NDCG@10 (ranking task).
    pub validation_ndcg_at_10: f64,
    pub baseline_global_mean_rmse: f64,
    pub baseline_bias_rmse: f64,
    pub hit_rate_at_10: Option<f64>,
    pub ndcg_at_10: Option<f64>,
    pub baseline_itempop_hit_rate_at_10: Option<f64>,
    pub baseline_itempop_ndcg_at_10: Option<f64>,
    pub train_samples_per_sec: f64,
    pub epochs: usize,
    pub model: String,
    pub device: String,
    pub reload_identical: bool,
    /// The bias baseline's validation RMSE (rating task), what the guard compares with.
    pub baseline_bias_validation_rmse: f64,
    /// Whether the trained model lost to the bias baseline on validation, so the bias
    /// baseline was saved in its place (and `test_rmse` is the baseline's).
    pub saved_bias_baseline: bool,
}

fn w(e: std::io::Error) -> Error {
    Error::InvalidArgument(format!("could not write output: {e}"))
}

pub fn run(
    args: &TrainArgs,
    out: &mut dyn Write,
    log: impl Write + Send + 'static,
) -> Result<(Report, History)> {
    run_on(args, None, out, log)
}

/// [`run`] as one rank of a data-parallel run (`--distributed`) when `ranks` is given:
/// every rank loads, prepares and trains on its shard; only rank 0 saves the model folder.
pub fn run_on(
    args: &TrainArgs,
    ranks: Option<Ranks>,
    out: &mut dyn Write,
    log: impl Write + Send + 'static,
) -> Result<(Report, History)> {
    let primary = ranks.as_ref().is_none_or(|r| r.0.rank() == 0);
    let device = args.device.resolve()?;
    boson::rng::seed(args.seed);
    let source = args.source();
    let source_name = match &source {
        Source::Synthetic(c) => format!(
            "built-in synthetic Amazon-layout data ({} users × {} items, {} ratings, seed {})",
            c.n_users, c.n_items, c.n_ratings, c.seed
        ),
        Source::File(f) => format!("{} ({:?})", f.path.display(), f.format),
        Source::AnchorTsv(p) => format!("{} (anchor TSV)", p.display()),
    };

    // 1. Explore.
    let t = Instant::now();
    let ratings = load(&source, args.progress.mode())?;
    writeln!(out, "== explore: {source_name}").map_err(w)?;
    let (min_user, min_item) = args.thresholds();
    let data = prepare(&ratings, &source_name, args.prepare_options())?;
    write!(out, "{}", data.explored).map_err(w)?;
    // The reference notebook's `value_counts().quantile([...])`, same interpolation.
    const NOTEBOOK_QUANTILES: [f64; 17] = [
        0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99,
        1.0,
    ];
    writeln!(out, "{:<18} ratings per user  ratings per item", "quantile").map_err(w)?;
    let per_user = data.explored.quantiles(Per::User, &NOTEBOOK_QUANTILES)?;
    let per_item = data.explored.quantiles(Per::Item, &NOTEBOOK_QUANTILES)?;
    for ((q, u), i) in NOTEBOOK_QUANTILES.iter().zip(&per_user).zip(&per_item) {
        writeln!(out, "{q:<18} {u:>16.1}  {i:>16.1}").map_err(w)?;
    }

    // 2. Prepare.
    let s = &data.summary;
    writeln!(
        out,
        "== prepare: kept {} of {} ratings ({} repeated (user, item) pairs: the latest kept; users with >= {min_user}, \
         items with >= {min_item}); {} users, {} items; leave-last-out: {} train, {} validation (each user's second-latest), \
         {} test (latest{}) ({:.1} s)",
        s.ratings_kept, s.ratings_read, s.repeated_pairs, s.users, s.items, s.train, s.validation, s.test,
        if s.latest_by_file_order { "; no time column: the file's line order decides \"latest\"" } else { "" },
        t.elapsed().as_secs_f64()
    )
    .map_err(w)?;

    // 3. Train.
    let global_mean = data.global_mean();
    let mut spec = ModelSpec {
        kind: args.model_kind()?,
        num_users: s.users,
        num_items: s.items,
        num_embeddings: args.num_embeddings,
        dropout: args.dropout(),
        global_mean,
        sparse_grad: !args.dense_grads,
        reg_factors: args.reg_factors,
        reg_bias: args.reg_bias,
        seq_len: args.seq_len,
        blocks: args.blocks,
        heads: args.heads,
    };
    let config = args.train_config()?;
    if args.search && ranks.is_some() {
        return Err(Error::InvalidArgument(
            "--search trains its grid on one process: drop --distributed or --search".into(),
        ));
    }
    let mut model = build(&spec, args.seed, device)?;
    // The bias baseline (regularised means on train), what every model is compared with.
    let bias = BiasBaseline::fit(&data.train, s.users, s.items, global_mean);
    // Model parallel (--shard-embeddings): every rank keeps its rows of each embedding
    // table while training, and the tables are put back together after.
    let tables: Vec<boson::nn::Parameter> = match (&ranks, args.shard_embeddings) {
        (Some(r), true) => {
            let tables: Vec<_> = model
                .collect_params()
                .iter()
                .filter(|(_, p)| p.grad_stype() == boson::nn::GradStype::RowSparse)
                .map(|(_, p)| p.clone())
                .collect();
            for t in &tables {
                t.shard(r.0.clone())?;
            }
            tables
        }
        (None, true) => {
            return Err(Error::InvalidArgument(
                "--shard-embeddings splits the tables over the ranks of --distributed; add \
                 --distributed and start with mpirun -np N"
                    .into(),
            ))
        }
        _ => Vec::new(),
    };
    // Validated with each user's state before the validation rating, tested with the
    // state before the test rating.
    model.set_context(&data.context(1), device)?;
    let reg = match spec.kind {
        ModelKind::BiasedMf | ModelKind::DriftMf => format!(
            ", L2 per rating {} on factors and {} on biases",
            spec.reg_factors, spec.reg_bias
        ),
        _ => String::new(),
    };
    let task = match (config.task, spec.kind) {
        (Task::Rating, _) => String::new(),
        (Task::Ranking, ModelKind::Sasrec) => format!(
            "ranking: the next item at every position of windows of {}, cross-entropy over all \
             {} items (what the position has seen left out), ",
            spec.seq_len, spec.num_items
        ),
        (Task::Ranking, _) => format!(
            "ranking with {} sampled negatives per positive ({:?} loss), ",
            config.negatives, config.ranking_loss
        ),
    };
    writeln!(
        out,
        "== train: {} ({} embeddings, dropout {}{reg}), {task}{:?} lr {} momentum {} wd {}, batch {}, at most {} epochs \
         (early stopping patience {}), device {device:?}",
        spec.kind.name(), spec.num_embeddings, spec.dropout, config.opt, config.lr, config.momentum, config.wd,
        config.batch_size, config.epochs, args.patience()
    )
    .map_err(w)?;
    let explain = match config.task {
        Task::Rating => {
            "training RMSE is the running value over each epoch's batches with dropout on; \
             validation RMSE is on the validation ratings in predict mode"
        }
        Task::Ranking => {
            "training loss is the running value over each epoch's batches; validation ranks \
             each user's validation item against every item they have not rated in train"
        }
    };
    writeln!(
        out,
        "(Estimator::fit: {explain}; the best epoch's parameters are kept)"
    )
    .map_err(w)?;
    out.flush().map_err(w)?;
    let options = FitOptions {
        ranks,
        ..args.fit_options()
    };
    let history = if args.search {
        writeln!(
            out,
            "== search: {} around --reg-factors {} --num-embeddings {}, each judged by its best validation RMSE",
            spec.kind.name(),
            spec.reg_factors,
            spec.num_embeddings
        )
        .map_err(w)?;
        let best = search::search(&spec, &data, &config, &options, args.seed, device, out)?;
        (spec, model) = (best.spec, best.model);
        best.history
    } else {
        fit(&model, &data, &config, &options, device, log)?
    };
    for t in &tables {
        t.gather()?;
    }

    // The guard: a rating model that is not better than the bias baseline on validation
    // by more than chance is not deployed; the baseline is, as a biased-mf model with
    // zero factors. The model still holds the validation context.
    let validation_rmse = history
        .epochs
        .iter()
        .map(|e| e.validation_rmse)
        .fold(f64::NAN, f64::min);
    let verdict = match config.task {
        Task::Rating if s.validation > 0 => {
            let (vu, vi, vr) = data.validation.columns();
            let model_pred = predict(model.as_ref(), vu, vi, device)?;
            Verdict::compare(&model_pred, &bias.predict(&data.validation), vr)
        }
        _ => None,
    };
    let saved_bias_baseline = verdict.is_some_and(|v| !v.model_wins()) && !args.no_guard;
    if let Some(v) = &verdict {
        let what = match spec.kind {
            _ if v.model_wins() => "it is saved",
            _ if args.no_guard => "--no-guard: saving it anyway.",
            ModelKind::BiasedMf | ModelKind::DriftMf if args.search => {
                "the bias baseline is saved instead (as biased-mf with zero factors)."
            }
            ModelKind::BiasedMf | ModelKind::DriftMf => {
                "the bias baseline is saved instead (as biased-mf with zero factors). \
                 --search tries stronger and weaker --reg-factors and smaller factors."
            }
            _ => {
                "the bias baseline is saved instead (as biased-mf with zero factors). \
                 drift-mf (the default) and biased-mf are regularised for data like this."
            }
        };
        writeln!(out, "== guard: {}: {what}", v.describe(spec.kind.name())).map_err(w)?;
    }
    // Why the saved model is not the trained one, for config.json.
    let guard = verdict
        .filter(|_| saved_bias_baseline)
        .map(|v| v.describe(spec.kind.name()));
    if saved_bias_baseline {
        spec = ModelSpec {
            kind: ModelKind::BiasedMf,
            ..spec
        };
        model = from_biases(&spec, &bias.user, &bias.item, device)?;
    }
    model.set_context(&data.context(2), device)?;
    let epochs = history.epochs.len();

    // 4. Evaluate, beside the two baselines on the same split.
    let (tu, ti, tr) = data.test.columns();
    let pred = predict(model.as_ref(), tu, ti, device)?;
    // A ranking model's scores are not ratings: it has no RMSE.
    let (test_rmse, test_mae) = match config.task {
        Task::Rating => (
            score(Rmse::new(), &pred, tr)?,
            score(Mae::new(), &pred, tr)?,
        ),
        Task::Ranking => (f64::NAN, f64::NAN),
    };
    let mean_pred = vec![global_mean; tr.len()];
    let bias_pred = bias.predict(&data.test);
    let (mean_rmse, bias_rmse) = (
        score(Rmse::new(), &mean_pred, tr)?,
        score(Rmse::new(), &bias_pred, tr)?,
    );
    writeln!(out, "== evaluate on {} held-out ratings", tr.len()).map_err(w)?;
    writeln!(out, "{:<28} {:>8} {:>8}", "", "RMSE", "MAE").map_err(w)?;
    let name = match saved_bias_baseline {
        true => "bias baseline, saved".to_string(),
        false => format!("{} (boson)", spec.kind.name()),
    };
    let boson_row = (name, test_rmse, test_mae);
    let rows = [
        boson_row,
        (
            "baseline: global mean".to_string(),
            mean_rmse,
            score(Mae::new(), &mean_pred, tr)?,
        ),
        (
            "baseline: user + item bias".to_string(),
            bias_rmse,
            score(Mae::new(), &bias_pred, tr)?,
        ),
    ];
    let skip = usize::from(config.task == Task::Ranking);
    for (name, r, a) in rows.into_iter().skip(skip) {
        writeln!(out, "{name:<28} {r:>8.4} {a:>8.4}").map_err(w)?;
    }
    // What each user already rated (train and validation): never a ranking candidate.
    // Without a validation split the validation rows are the test rows, which must stay
    // candidates.
    let seen = if s.validation > 0 {
        seen_items(&[&data.train, &data.validation], s.users, s.items)?
    } else {
        seen_items(&[&data.train], s.users, s.items)?
    };
    let rated = seen.lists().to_vec();
    let (rank, itempop) = if args.no_ranking {
        (None, None)
    } else {
        let t = Instant::now();
        let r = ranking(model.clone(), &seen, &data.test, device)?;
        let popularity = Arc::new(ItemPop::from_dataset(&data.train, s.items)?);
        let pop = ranking(popularity, &seen, &data.test, device)?;
        writeln!(
            out,
            "HitRate@10 {:.4}  NDCG@10 {:.4}  (baseline ItemPop: {:.4} / {:.4}; held-out item ranked among all {:.0} unrated items per user on average; {:.1} s)",
            r.hit_rate_at_10, r.ndcg_at_10, pop.hit_rate_at_10, pop.ndcg_at_10, r.mean_candidates,
            t.elapsed().as_secs_f64()
        )
        .map_err(w)?;
        (Some(r), Some(pop))
    };

    // Top-5 for three users: the first, middle and last test users.
    writeln!(out, "== top-5 recommendations").map_err(w)?;
    let (train_u, train_i, train_r) = data.train.columns();
    let picks = [0, tu.len() / 2, tu.len() - 1];
    for &k in &picks {
        let u = tu[k];
        let uid = data.users.id_of(u as usize).unwrap_or("?");
        let known: Vec<String> = (0..train_u.len())
            .filter(|&r| train_u[r] == u)
            .take(8)
            .map(|r| {
                format!(
                    "{}:{}",
                    data.items.id_of(train_i[r] as usize).unwrap_or("?"),
                    train_r[r]
                )
            })
            .collect();
        writeln!(
            out,
            "customer {uid}: knows {} ratings, e.g. {}",
            rated[u as usize].len(),
            known.join(" ")
        )
        .map_err(w)?;
        let top = top_k(&model, &[u], &seen, 5, device)?;
        let recs: Vec<String> = top[0]
            .iter()
            .map(|(i, score)| {
                let id = data.items.id_of(*i).unwrap_or("?");
                // With a title column (the Amazon file's product_title), the title too.
                let title = data
                    .item_info
                    .columns()
                    .first()
                    .and_then(|c| data.item_info.get(c, *i));
                match title {
                    Some(t) if !t.is_empty() => format!("{id} \"{t}\" ({score:.2})"),
                    _ => format!("{id} ({score:.2})"),
                }
            })
            .collect();
        writeln!(out, "  recommended: {}", recs.join(", ")).map_err(w)?;
    }

    // 5. Save, reload, compare.
    let model_config = ModelConfig {
        format_version: FORMAT_VERSION,
        model: spec,
        train: config,
        data: data.summary.clone(),
        history: history.clone(),
        test_rmse,
        test_mae,
        ranking: rank.unwrap_or(Ranking::default()),
        guard,
        // Filled in by persist::save.
        id_fingerprints: None,
        files_sha256: None,
        config_sha256: None,
    };
    // The folder is checked where it is written, before it replaces the previous one.
    let mut identical = false;
    let curve = match config.task {
        Task::Rating => charts::training_curve(
            &history,
            Task::Rating,
            &[("global mean", mean_rmse), ("user + item bias", bias_rmse)],
            test_rmse,
        )?,
        Task::Ranking => charts::training_curve(
            &history,
            Task::Ranking,
            &[(
                "ItemPop NDCG@10",
                itempop.map_or(f64::NAN, |r| r.ndcg_at_10),
            )],
            rank.map_or(f64::NAN, |r| r.ndcg_at_10),
        )?,
    };
    let mut pictures = vec![
        ("training_curve.svg", curve),
        ("ratings.svg", charts::rating_histogram(&data.explored)?),
        (
            "long_tail.svg",
            charts::long_tail(
                data.explored.counts(Per::User),
                data.explored.counts(Per::Item),
            )?,
        ),
    ];
    // A ranking model's scores are not ratings to plot against the true ones.
    if config.task == Task::Rating {
        pictures.push((
            "predicted_vs_actual.svg",
            charts::predicted_vs_actual(tr, &pred)?,
        ));
    }
    let interactions = persist::Interactions {
        rated: rated.clone(),
        item_counts: item_counts(&data.train, s.items)?,
    };
    let contents = persist::Contents {
        model: model.as_ref(),
        config: &model_config,
        users: &data.users,
        items: &data.items,
        interactions: Some(&interactions),
        pictures: &pictures,
    };
    let report = |reload_identical: bool| Report {
        test_rmse,
        test_mae,
        baseline_global_mean_rmse: mean_rmse,
        baseline_bias_rmse: bias_rmse,
        validation_rmse,
        validation_ndcg_at_10: history
            .epochs
            .iter()
            .map(|e| e.validation_ndcg_at_10)
            .fold(f64::NAN, f64::max),
        hit_rate_at_10: rank.map(|r| r.hit_rate_at_10),
        ndcg_at_10: rank.map(|r| r.ndcg_at_10),
        baseline_itempop_hit_rate_at_10: itempop.map(|r| r.hit_rate_at_10),
        baseline_itempop_ndcg_at_10: itempop.map(|r| r.ndcg_at_10),
        train_samples_per_sec: history.samples_per_sec(),
        epochs,
        model: spec.kind.name().to_string(),
        device: device.to_string(),
        reload_identical,
        baseline_bias_validation_rmse: verdict.map_or(f64::NAN, |v| v.baseline_rmse),
        saved_bias_baseline,
    };
    if !primary {
        // The other ranks hold the same model; rank 0 writes it.
        return Ok((report(identical), history));
    }
    persist::save(&args.model_dir, &contents, |written| {
        let loaded = persist::load(written, Some((spec.kind, spec.num_embeddings)), device)?;
        identical = predict(loaded.model.as_ref(), tu, ti, device)? == pred;
        match identical {
            true => Ok(()),
            false => Err(Error::Data(
                "the reloaded model predicts differently from the trained one; the \
                     previous model folder is kept"
                    .into(),
            )),
        }
    })?;
    let names: Vec<&str> = pictures.iter().map(|p| p.0).collect();
    writeln!(
        out,
        "== saved {} (model.safetensors, config.json, users.json, items.json, and the pictures \
         {}); reloaded: predictions on the test set identical",
        args.model_dir.display(),
        names.join(", "),
    )
    .map_err(w)?;

    Ok((report(identical), history))
}
