//! The recommender example's modules, tested without running the binary: the pipeline on a
//! small generated dataset, save/load, CLI errors, and the HTTP server on a loopback port.

// Not every helper of the example is used by these tests.
#![allow(dead_code)]

#[path = "common/skip.rs"]
#[macro_use]
mod skip;
include!("common/example_modules.rs");

use boson::Device;
use clap::Parser;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Runs the pipeline without output. One at a time: boson's global random stream
/// (initialisation) is process-wide, and tests compare runs for exact equality.
fn run_quietly(args: &cli::TrainArgs) -> boson::Result<(pipeline::Report, train::History)> {
    run_printing(args, &mut std::io::sink())
}

/// Runs the pipeline with its report written to `out` (one run at a time: runs seed the
/// global RNG).
fn run_printing(
    args: &cli::TrainArgs,
    out: &mut dyn std::io::Write,
) -> boson::Result<(pipeline::Report, train::History)> {
    static PIPELINE: Mutex<()> = Mutex::new(());
    let _one_at_a_time = PIPELINE.lock().unwrap_or_else(|p| p.into_inner());
    pipeline::run(args, out, std::io::sink())
}

/// Small built-in data: trains in about a second. The guard is off, so the model trained
/// is the model saved (the guard's own tests turn it back on).
fn small_args(dir: &Path, ratings: &str, extra: &[&str]) -> cli::TrainArgs {
    let mut argv = vec![
        "recommender",
        "--no-guard",
        "--synthetic-users",
        "1500",
        "--synthetic-items",
        "600",
        "--synthetic-ratings",
        ratings,
        "--device",
        "cpu",
        "--model-dir",
        dir.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    cli::Cli::try_parse_from(argv).unwrap().train
}

// The reference network with Xavier(magnitude 60) starts far from the mean on a small
// vocabulary (the init scale grows as the tables shrink) and needs the default run's
// ~500k ratings and a dozen epochs to pass the global mean (it does: see the README). In
// seconds on small data it must at least learn steadily and reload identically.
#[test]
fn mfblock_learns_and_reloads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "40000",
        &[
            "--model",
            "mfblock",
            "--epochs",
            "6",
            "--early-stopping-patience",
            "6",
            "--batch-size",
            "128",
        ],
    );
    let (report, history) = run_quietly(&args).unwrap();
    assert_eq!(history.epochs.len(), 6);
    let first = history.epochs[0].validation_rmse;
    assert!(
        report.test_rmse < first - 0.05,
        "test RMSE {first} -> {}",
        report.test_rmse
    );
    assert!(report.reload_identical);
    for f in [
        "model.safetensors",
        "config.json",
        "users.json",
        "items.json",
        "training_curve.svg",
        "ratings.svg",
        "long_tail.svg",
        "predicted_vs_actual.svg",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let svg = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let curve = svg("training_curve.svg");
    assert!(curve.starts_with("<svg"), "{}", &curve[..100]);
    for text in [
        "RMSE per epoch",
        "validation",
        "global mean (test)",
        "user + item bias (test)",
        "kept epoch",
    ] {
        assert!(curve.contains(text), "training_curve.svg lacks {text:?}");
    }
    assert!(svg("ratings.svg").contains("Ratings by value"));
    assert!(svg("long_tail.svg").contains("long tail"));
    assert!(svg("predicted_vs_actual.svg").contains("<circle"));
}

/// The parameters of the model saved in `dir`, by name.
fn saved_params(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let loaded = persist::load(dir, None, Device::Cpu).unwrap();
    loaded
        .model
        .collect_params()
        .iter()
        .map(|(name, p)| (name.to_string(), p.data().unwrap().to_vec_f32().unwrap()))
        .collect()
}

// Checkpoints save the parameters, the optimizer state, the position in the shuffled
// data and both dropout layers' mask counters (their `calls` state, found by the derive), so training 2
// epochs, stopping, and resuming to 4 ends exactly where 4 uninterrupted epochs do.
#[test]
fn interrupted_and_resumed_run_matches_an_uninterrupted_one() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (whole, part, checkpoints) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    let flags = ["--batch-size", "256", "--no-ranking", "--checkpoint-dir"];
    let mfblock = ["--model", "mfblock"];
    let ckpt = checkpoints.to_str().unwrap();
    let args = |dir, epochs, extra: &[&str]| {
        let mut v = vec!["--epochs", epochs];
        v.extend_from_slice(&mfblock);
        v.extend_from_slice(extra);
        small_args(dir, "8000", &v)
    };

    let (_, uninterrupted) =
        run_quietly(&args(whole, "4", &["--batch-size", "256", "--no-ranking"])).unwrap();
    run_quietly(&args(part, "2", &[&flags[..], &[ckpt]].concat())).unwrap();
    let (_, resumed) = run_quietly(&args(
        part,
        "4",
        &[&flags[..], &[ckpt, "--resume"]].concat(),
    ))
    .unwrap();

    assert_eq!(saved_params(whole), saved_params(part));
    // The resumed run's history includes the 2 epochs trained before the interruption
    // (read back from JSON, so equal to the last bits of an f64 only).
    assert_eq!(resumed.epochs.len(), 4);
    for (a, b) in resumed.epochs.iter().zip(&uninterrupted.epochs) {
        assert_eq!((a.epoch, a.samples), (b.epoch, b.samples));
        assert!(
            (a.train_rmse - b.train_rmse).abs() < 1e-12,
            "{a:?} vs {b:?}"
        );
        assert!(
            (a.validation_rmse - b.validation_rmse).abs() < 1e-12,
            "{a:?} vs {b:?}"
        );
    }
    // Rotation keeps 3 checkpoints, plus the best one.
    let mut names: Vec<String> = std::fs::read_dir(checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".params"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names.contains(&"model-best.params".to_string()),
        "{names:?}"
    );
}

/// The arguments tests/fixtures/v0 was written with (by the code before `#[derive(Block)]`).
fn fixture_args(
    model_dir: &Path,
    checkpoint_dir: &Path,
    epochs: &str,
    resume: bool,
) -> cli::TrainArgs {
    let mut argv = vec![
        "recommender",
        "--model",
        "mfblock",
        "--no-guard",
        "--synthetic-users",
        "120",
        "--synthetic-items",
        "60",
        "--synthetic-ratings",
        "2000",
        "--num-embeddings",
        "4",
        "--epochs",
        epochs,
        "--batch-size",
        "256",
        "--no-ranking",
        "--device",
        "cpu",
        "--min-user-ratings",
        "0",
        "--min-item-ratings",
        "0",
        // The data and protocol of the code that wrote the fixture: items chosen
        // regardless of taste, validated on test, repeated pairs kept.
        "--synthetic-taste-choice",
        "0",
        "--no-validation-split",
        "--keep-repeated-pairs",
        "--model-dir",
        model_dir.to_str().unwrap(),
        "--checkpoint-dir",
        checkpoint_dir.to_str().unwrap(),
    ];
    if resume {
        argv.push("--resume");
    }
    cli::Cli::try_parse_from(argv).unwrap().train
}

fn fixture_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v0")
        .join(name)
}

#[test]
fn a_model_folder_from_before_the_derive_loads_and_predicts_the_same() {
    let dir = fixture_dir("mfblock-model");
    let loaded = persist::load(&dir, None, Device::Cpu).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected_predictions.json")).unwrap())
            .unwrap();
    let ids = |k: &str| -> Vec<i64> { serde_json::from_value(expected[k].clone()).unwrap() };
    let pred = model::predict(
        loaded.model.as_ref(),
        &ids("users"),
        &ids("items"),
        Device::Cpu,
    )
    .unwrap();
    let want: Vec<f32> = serde_json::from_value(expected["predictions"].clone()).unwrap();
    assert_eq!(pred, want);
}

// The fixture's checkpoints store dropout counters under the old `dropout` key; resuming
// from the newest one must end exactly where an uninterrupted run of today's code does.
#[test]
fn checkpoints_from_before_the_derive_resume_exactly() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (whole, resumed, checkpoints) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    for entry in std::fs::read_dir(fixture_dir("mfblock-checkpoints")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), checkpoints.join(entry.file_name())).unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    run_quietly(&fixture_args(whole, scratch.path(), "3", false)).unwrap();
    run_quietly(&fixture_args(resumed, checkpoints, "3", true)).unwrap();
    assert_eq!(saved_params(whole), saved_params(resumed));
    // The last batch rolls over, so the third epoch has 8 batches: 22 masks in all.
    let meta = std::fs::read_to_string(checkpoints.join("model-epoch3batch22.json")).unwrap();
    assert!(meta.contains("\"dropout_user.calls\": 22"), "{meta}");
}

#[test]
fn a_batch_larger_than_the_data_is_an_error_before_training_and_nothing_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "4000",
        &["--batch-size", "100000000", "--no-ranking"],
    );
    let err = run_quietly(&args).unwrap_err().to_string();
    assert!(
        err.contains("batch_size 100000000 is larger than the") && err.contains("samples"),
        "{err}"
    );
    assert!(!dir.path().join("config.json").exists());
}

/// A time budget stops training (a budget this small ends it after the first batch,
/// whatever the machine's speed) and the run still saves and reloads; a budget that is
/// not a positive number of minutes is an error naming it, before anything is saved.
#[test]
fn a_training_time_budget_stops_training_and_bad_budgets_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "40000",
        &[
            "--epochs",
            "5",
            "--max-train-minutes",
            "1e-9",
            "--no-ranking",
        ],
    );
    let (report, history) = run_quietly(&args).unwrap();
    assert_eq!(
        history.epochs.len(),
        1,
        "one epoch, cut short after its first batch"
    );
    assert!(report.reload_identical);
    for bad in ["0", "-2", "NaN", "600000"] {
        let dir = tempfile::tempdir().unwrap();
        let budget = format!("--max-train-minutes={bad}");
        let err = run_quietly(&small_args(dir.path(), "40000", &[&budget, "--no-ranking"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--max-train-minutes must be above 0") && err.contains(bad),
            "{bad}: {err}"
        );
        assert!(!dir.path().join("config.json").exists());
    }
}

#[test]
fn a_learning_rate_plateau_patience_trains_and_zero_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "40000",
        &[
            "--epochs",
            "3",
            "--lr-plateau-patience",
            "1",
            "--no-ranking",
        ],
    );
    let (report, history) = run_quietly(&args).unwrap();
    assert_eq!(history.epochs.len(), 3);
    assert!(report.reload_identical);
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "40000",
        &["--lr-plateau-patience", "0", "--no-ranking"],
    );
    let err = run_quietly(&args).unwrap_err().to_string();
    assert!(
        err.contains("--lr-plateau-patience must be at least 1"),
        "{err}"
    );
    assert!(!dir.path().join("config.json").exists());
}

#[test]
fn weight_average_trains_reloads_and_refuses_a_bad_decay() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "40000",
        &["--epochs", "2", "--weight-average", "0.9", "--no-ranking"],
    );
    let (report, history) = run_quietly(&args).unwrap();
    assert_eq!(history.epochs.len(), 2);
    assert!(report.reload_identical);
    for bad in ["0", "1", "1.5", "NaN"] {
        let dir = tempfile::tempdir().unwrap();
        let args = small_args(
            dir.path(),
            "40000",
            &["--weight-average", bad, "--no-ranking"],
        );
        let err = run_quietly(&args).unwrap_err().to_string();
        assert!(err.contains("decay must be in (0, 1)"), "{bad}: {err}");
        assert!(!dir.path().join("config.json").exists());
    }
}

#[test]
fn huge_size_arguments_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let max = u64::MAX.to_string();
    let big = (1u64 << 62).to_string();
    for (flag, value, want) in [
        ("--synthetic-users", max.as_str(), "at most 4294967295"),
        (
            "--synthetic-items",
            "4294967295",
            "exceed the allocation limit",
        ),
        (
            "--synthetic-ratings",
            max.as_str(),
            "exceed the allocation limit",
        ),
        ("--num-embeddings", big.as_str(), "4611686018427387904"),
    ] {
        let mut argv = vec![
            "recommender",
            "--device",
            "cpu",
            "--no-ranking",
            "--model-dir",
            dir.path().to_str().unwrap(),
        ];
        if flag != "--synthetic-ratings" && flag != "--num-embeddings" {
            argv.extend(["--synthetic-ratings", "2000"]);
        }
        if flag == "--num-embeddings" {
            argv.extend(["--synthetic-users", "300", "--synthetic-items", "100"]);
            argv.extend(["--synthetic-ratings", "3000"]);
        }
        argv.extend([flag, value]);
        let args = cli::Cli::try_parse_from(argv).unwrap().train;
        let err = run_quietly(&args).unwrap_err().to_string();
        assert!(err.contains(want), "{flag} {value}: {err}");
    }
}

#[test]
fn a_model_folder_with_bad_weights_or_ids_is_refused_and_served_nan_is_a_500() {
    let good = tempfile::tempdir().unwrap();
    train_small(good.path(), "biased-mf");
    let copy = || copy_folder(good.path());
    // A duplicated id in users.json.
    let dup = copy();
    let mut ids: Vec<String> =
        serde_json::from_slice(&std::fs::read(dup.path().join("users.json")).unwrap()).unwrap();
    ids[1] = ids[0].clone();
    std::fs::write(
        dup.path().join("users.json"),
        serde_json::to_vec(&ids).unwrap(),
    )
    .unwrap();
    // With its hash recorded again, past the hash check to the id checks.
    reseal(dup.path());
    let err = persist::load(dup.path(), None, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("users.json") && err.contains("appears twice"),
        "{err}"
    );

    // users.json reordered (a swap of two ids): refused by the fingerprint.
    let swapped = copy();
    let mut ids: Vec<String> =
        serde_json::from_slice(&std::fs::read(swapped.path().join("users.json")).unwrap()).unwrap();
    ids.swap(0, 1);
    std::fs::write(
        swapped.path().join("users.json"),
        serde_json::to_vec(&ids).unwrap(),
    )
    .unwrap();
    reseal(swapped.path());
    let err = persist::load(swapped.path(), None, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("users.json") && err.contains("reordered"),
        "{err}"
    );

    // A save whose check fails leaves the previous folder as it was.
    let before = std::fs::read(good.path().join("model.safetensors")).unwrap();
    let loaded = persist::load(good.path(), None, Device::Cpu).unwrap();
    for (_, p) in loaded.model.collect_params().iter() {
        p.set_data(&p.data().unwrap().mul_scalar(3.0).unwrap())
            .unwrap();
    }
    let err = persist::save(
        good.path(),
        &persist::Contents {
            model: loaded.model.as_ref(),
            config: &loaded.config,
            users: &index_map(&loaded.users, false),
            items: &index_map(&loaded.items, false),
            interactions: None,
            pictures: &[],
        },
        |_| Err(boson::Error::Data("reload differs".into())),
    )
    .unwrap_err();
    assert!(err.to_string().contains("reload differs"));
    assert_eq!(
        std::fs::read(good.path().join("model.safetensors")).unwrap(),
        before
    );

    // NaN weights: refused at load; a model that turns NaN while served answers 500.
    let loaded = persist::load(good.path(), None, Device::Cpu).unwrap();
    let (name, p) = {
        let params = loaded.model.collect_params();
        let (n, p) = params.iter().next().unwrap();
        (n.to_string(), p.clone())
    };
    let nan = boson::Tensor::full(f32::NAN, &p.shape(), Device::Cpu).unwrap();
    p.set_data(&nan).unwrap();
    let bad = copy();
    loaded
        .model
        .collect_params()
        .save(bad.path().join("model.safetensors"))
        .unwrap();
    reseal(bad.path());
    let err = persist::load(bad.path(), None, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&name) && err.contains("NaN"), "{err}");
    let user = loaded.users.keys().next().unwrap().clone();
    let item = loaded.items.keys().next().unwrap().clone();
    let service = serve::Service::new(loaded);
    let body = serde_json::json!({ "customer_id": [user], "product_id": [item] }).to_string();
    let r = service.handle(&serve::Request::new(
        "POST",
        "/invocations",
        body.as_bytes(),
    ));
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["error"].as_str().unwrap().contains("not finite"),
        "{}",
        r.json()
    );
}

/// A loaded model's id map as the saver takes it, in index order (or reversed).
fn index_map(
    ids: &std::collections::HashMap<String, i64>,
    reversed: bool,
) -> boson::ratings::IndexMap {
    let mut by_index: Vec<(&i64, &String)> = ids.iter().map(|(k, v)| (v, k)).collect();
    by_index.sort();
    if reversed {
        by_index.reverse();
    }
    let mut map = boson::ratings::IndexMap::new();
    for (_, id) in by_index {
        map.insert(id);
    }
    map
}

/// The sum of every weight, and the index of the first user, of a loaded model folder.
fn fingerprint(loaded: &persist::LoadedModel) -> (f64, i64) {
    let sum = loaded
        .model
        .collect_params()
        .iter()
        .flat_map(|(_, p)| p.data().unwrap().to_vec_f32().unwrap())
        .map(f64::from)
        .sum();
    (sum, loaded.users.values().copied().min().unwrap_or(-1))
}

/// Run by `kill_during_save_leaves_the_old_or_the_new_folder` in a child process: saves
/// model A and model B (A's weights doubled, ids reversed, test_rmse 2) into
/// BOSON_SAVE_TARGET, alternately; at the BOSON_SAVE_PAUSE_AT-th save step reached (counted
/// over all saves from 1) it prints `paused SAVE STEP` and waits to be killed.
#[test]
#[ignore = "a helper run in a child process by kill_during_save_leaves_the_old_or_the_new_folder"]
fn save_in_a_loop_until_killed() {
    use std::io::Write;
    let Ok(target) = std::env::var("BOSON_SAVE_TARGET") else {
        return;
    };
    let source = std::env::var("BOSON_SAVE_SOURCE").unwrap();
    let pause_at: usize = std::env::var("BOSON_SAVE_PAUSE_AT")
        .unwrap()
        .parse()
        .unwrap();
    let a = persist::load(Path::new(&source), None, Device::Cpu).unwrap();
    let b = persist::load(Path::new(&source), None, Device::Cpu).unwrap();
    for (_, p) in b.model.collect_params().iter() {
        p.set_data(&p.data().unwrap().mul_scalar(2.0).unwrap())
            .unwrap();
    }
    let mut b_config = b.config.clone();
    b_config.test_rmse = 2.0;
    let mut a_config = a.config.clone();
    a_config.test_rmse = 1.0;
    let sides = [
        (
            &a,
            a_config,
            index_map(&a.users, false),
            index_map(&a.items, false),
        ),
        (
            &b,
            b_config,
            index_map(&b.users, true),
            index_map(&b.items, true),
        ),
    ];
    let mut reached = 0;
    for save in 0.. {
        let (m, config, users, items) = &sides[save % 2];
        persist::save_observed(
            Path::new(&target),
            &persist::Contents {
                model: m.model.as_ref(),
                config,
                users,
                items,
                interactions: None,
                pictures: &[],
            },
            |_| Ok(()),
            |step| {
                reached += 1;
                if reached == pause_at {
                    println!("paused {save} {step:?}");
                    std::io::stdout().flush().unwrap();
                    // Killed here: stdin stays open until then.
                    let _ = std::io::stdin().read_line(&mut String::new());
                    panic!("not killed at {step:?}");
                }
            },
        )
        .unwrap();
    }
}

// A child process saves two different models in turn into one folder and is SIGKILLed at
// every step of its first saves in turn (the child stops at the step and waits for the
// kill, so no timing decides where it lands); after each kill the folder loads, and
// entirely as the model that step promises: the old one before the swap, the new one from
// the swap on.
#[test]
fn kill_during_save_leaves_the_old_or_the_new_folder() {
    use std::io::BufRead;
    let source = tempfile::tempdir().unwrap();
    train_small(source.path(), "biased-mf");
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("model");
    // What each model looks like once loaded: (test_rmse marker, weight sum, first user index).
    let a = persist::load(source.path(), None, Device::Cpu).unwrap();
    let (a_sum, _) = fingerprint(&a);
    let first_id = a.users.iter().find(|(_, &i)| i == 0).unwrap().0.clone();
    let n_users = a.users.len() as i64;
    let mut landed = std::collections::BTreeSet::new();
    for pause_at in 1..=24usize {
        // Each child starts from an empty folder: its first save creates the model folder.
        std::fs::remove_dir_all(work.path()).unwrap();
        std::fs::create_dir(work.path()).unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "save_in_a_loop_until_killed",
                "--nocapture",
            ])
            .env("BOSON_SAVE_TARGET", &target)
            .env("BOSON_SAVE_SOURCE", source.path())
            .env("BOSON_SAVE_PAUSE_AT", pause_at.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let paused = std::io::BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(|l| l.ok())
            .find(|l| l.starts_with("paused "))
            .unwrap_or_else(|| panic!("step {pause_at}: the child ended without pausing"));
        child.kill().unwrap();
        child.wait().unwrap();
        let words: Vec<&str> = paused.split_whitespace().collect();
        let save: usize = words[1].parse().unwrap();
        let step = words[2];
        landed.insert(step.to_string());
        // Before the swap the folder is the previous save's (none before the first).
        let expected = match step {
            "Filled" | "Flushed" | "MovedAside" => save.checked_sub(1),
            _ => Some(save),
        };
        let Some(expected) = expected else {
            assert!(
                !target.exists() && !boson::io::existing_folder(&target).exists(),
                "{paused}: a folder before the first save was swapped in"
            );
            continue;
        };
        let loaded = persist::load(&boson::io::existing_folder(&target), None, Device::Cpu)
            .unwrap_or_else(|e| panic!("{paused}: the folder does not load: {e}"));
        let (sum, _) = fingerprint(&loaded);
        let first = loaded.users[&first_id];
        if expected % 2 == 0 {
            assert_eq!(loaded.config.test_rmse, 1.0, "{paused}: not model A");
            assert!(
                (sum - a_sum).abs() < 1e-6 * a_sum.abs().max(1.0),
                "{paused}: A's config, other weights"
            );
            assert_eq!(first, 0, "{paused}: A's config, B's ids");
        } else {
            assert_eq!(loaded.config.test_rmse, 2.0, "{paused}: not model B");
            assert!(
                (sum - 2.0 * a_sum).abs() < 1e-6 * a_sum.abs().max(1.0),
                "{paused}: B's config, other weights"
            );
            assert_eq!(first, n_users - 1, "{paused}: B's config, A's ids");
        }
    }
    // Every step of a save was a kill point (MovedAside only where folders cannot be
    // swapped in one step).
    for step in ["Filled", "Flushed", "Swapped", "OldRemoved", "Done"] {
        assert!(landed.contains(step), "no kill at {step}: {landed:?}");
    }
    // No temporary folder outlives the next save.
    let m = persist::load(&target, None, Device::Cpu).unwrap();
    persist::save(
        &target,
        &persist::Contents {
            model: m.model.as_ref(),
            config: &m.config,
            users: &index_map(&m.users, false),
            items: &index_map(&m.items, false),
            interactions: None,
            pictures: &[],
        },
        |_| Ok(()),
    )
    .unwrap();
    // The save lock file stays beside the folder (see write_folder_atomic).
    assert_eq!(entries(work.path()), [".model.lock", "model"]);
}

/// The names in a folder, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Run by `concurrent_saves_into_one_folder_are_serialised` in two child processes: makes
/// model A (the model in BOSON_SAVE_SOURCE, test_rmse 1) or B (its weights doubled, ids
/// reversed, test_rmse 2) as BOSON_SAVE_MODEL says, prints `ready`, waits for a line on
/// stdin, then saves it BOSON_SAVE_TIMES times into BOSON_SAVE_TARGET and prints `saved N`.
#[test]
#[ignore = "a helper run in child processes by concurrent_saves_into_one_folder_are_serialised"]
fn save_one_model_repeatedly() {
    use std::io::Write;
    let Ok(target) = std::env::var("BOSON_SAVE_TARGET") else {
        return;
    };
    let source = std::env::var("BOSON_SAVE_SOURCE").unwrap();
    let b = std::env::var("BOSON_SAVE_MODEL").unwrap() == "b";
    let times: usize = std::env::var("BOSON_SAVE_TIMES").unwrap().parse().unwrap();
    let m = persist::load(Path::new(&source), None, Device::Cpu).unwrap();
    if b {
        for (_, p) in m.model.collect_params().iter() {
            p.set_data(&p.data().unwrap().mul_scalar(2.0).unwrap())
                .unwrap();
        }
    }
    let mut config = m.config.clone();
    config.test_rmse = if b { 2.0 } else { 1.0 };
    let (users, items) = (index_map(&m.users, b), index_map(&m.items, b));
    println!("ready");
    std::io::stdout().flush().unwrap();
    std::io::stdin().read_line(&mut String::new()).unwrap();
    for _ in 0..times {
        persist::save(
            Path::new(&target),
            &persist::Contents {
                model: m.model.as_ref(),
                config: &config,
                users: &users,
                items: &items,
                interactions: None,
                pictures: &[],
            },
            |_| Ok(()),
        )
        .unwrap();
    }
    println!("saved {times}");
}

// Two processes save different models into one folder many times, started together: the
// saves take turns (the folder's lock), so every save succeeds, and the folder left is one
// of the two models entirely. Nothing here depends on timing: however the saves interleave,
// each must succeed.
#[test]
fn concurrent_saves_into_one_folder_are_serialised() {
    use std::io::{BufRead, Read, Write};
    let source = tempfile::tempdir().unwrap();
    train_small(source.path(), "biased-mf");
    let a = persist::load(source.path(), None, Device::Cpu).unwrap();
    let (a_sum, _) = fingerprint(&a);
    let first_id = a.users.iter().find(|(_, &i)| i == 0).unwrap().0.clone();
    let n_users = a.users.len() as i64;
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("model");
    let times = 25;
    let mut children: Vec<_> = ["a", "b"]
        .iter()
        .map(|model| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "save_one_model_repeatedly",
                    "--nocapture",
                ])
                .env("BOSON_SAVE_TARGET", &target)
                .env("BOSON_SAVE_SOURCE", source.path())
                .env("BOSON_SAVE_MODEL", model)
                .env("BOSON_SAVE_TIMES", times.to_string())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both have built their model before either saves.
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|child| {
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            while !line.starts_with("ready") {
                line.clear();
                assert_ne!(out.read_line(&mut line).unwrap(), 0, "a child ended early");
            }
            out
        })
        .collect();
    for child in &mut children {
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for (child, out) in children.iter_mut().zip(&mut outputs) {
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success() && text.contains(&format!("saved {times}")),
            "a save failed: {status}\n{text}\n{err}"
        );
    }
    let loaded = persist::load(&target, None, Device::Cpu).unwrap();
    let (sum, _) = fingerprint(&loaded);
    let first = loaded.users[&first_id];
    let tolerance = 1e-6 * a_sum.abs().max(1.0);
    if loaded.config.test_rmse == 1.0 {
        assert!((sum - a_sum).abs() < tolerance, "A's config, other weights");
        assert_eq!(first, 0, "A's config, B's ids");
    } else {
        assert_eq!(loaded.config.test_rmse, 2.0, "neither model");
        assert!(
            (sum - 2.0 * a_sum).abs() < tolerance,
            "B's config, other weights"
        );
        assert_eq!(first, n_users - 1, "B's config, A's ids");
    }
    assert_eq!(entries(work.path()), [".model.lock", "model"]);
}

/// Copies every file of the model folder `from` into a new temporary folder.
fn copy_folder(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// Records the hashes of a model folder's files (and of config.json) as they are now, as
/// `persist::save` does: for tests that change a file on purpose and check what `load`
/// does past the hashes.
fn reseal(dir: &Path) {
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let files = config["files_sha256"].as_object_mut().unwrap();
    for (name, hash) in files.iter_mut() {
        *hash = boson::io::file_sha256(&dir.join(name)).unwrap().into();
    }
    config.as_object_mut().unwrap().remove("config_sha256");
    let unsealed = serde_json::to_vec_pretty(&config).unwrap();
    config["config_sha256"] = boson::io::json_sha256_without(&unsealed, "config_sha256")
        .unwrap()
        .into();
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

/// Flips the top exponent bit of the last number in a safetensors file (its last byte,
/// little-endian): the file still parses, but holds another value.
fn flip_last_exponent_bit(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    *bytes.last_mut().unwrap() ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

// config.json records the SHA-256 of every file the model is loaded from and of its own
// values: a file changed after the save is refused by name, and a format 2 folder whose
// hashes or fingerprints were deleted does not load either.
#[test]
fn a_model_folder_changed_after_it_was_written_is_refused_by_its_hashes() {
    let good = tempfile::tempdir().unwrap();
    train_small(good.path(), "biased-mf");
    let config: Value =
        serde_json::from_slice(&std::fs::read(good.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["format_version"], persist::FORMAT_VERSION);
    let files = config["files_sha256"].as_object().unwrap();
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "interactions.safetensors",
            "items.json",
            "model.safetensors",
            "users.json"
        ]
    );
    for (name, hash) in files {
        let file = good.path().join(name);
        assert_eq!(hash, &boson::io::file_sha256(&file).unwrap(), "{name}");
    }
    let refused = |dir: &Path| match persist::load(dir, None, Device::Cpu) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    };
    let write_config = |dir: &Path, config: &Value| {
        let text = serde_json::to_vec_pretty(config).unwrap();
        std::fs::write(dir.join("config.json"), text).unwrap();
    };

    // One flipped exponent bit of one weight: a valid file with another number.
    let dir = copy_folder(good.path());
    flip_last_exponent_bit(&dir.path().join("model.safetensors"));
    let err = refused(dir.path());
    assert!(
        err.contains("model.safetensors: its contents do not match the SHA-256")
            && err.contains("modified after it was written"),
        "{err}"
    );

    // An edited global mean.
    let dir = copy_folder(good.path());
    let mut edited = config.clone();
    let mean = edited["model"]["global_mean"].as_f64().unwrap();
    edited["model"]["global_mean"] = (mean + 0.5).into();
    write_config(dir.path(), &edited);
    let err = refused(dir.path());
    assert!(
        err.contains("config.json: its contents do not match the config_sha256"),
        "{err}"
    );
    // Only the spacing changed: the values are what is hashed, so it loads.
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    persist::load(dir.path(), None, Device::Cpu).unwrap();

    // Deleting the checks does not switch them off.
    for fields in [
        &["id_fingerprints"][..],
        &["files_sha256"],
        &["config_sha256"],
        &["id_fingerprints", "files_sha256", "config_sha256"],
    ] {
        let dir = copy_folder(good.path());
        let mut stripped = config.clone();
        for field in fields {
            stripped.as_object_mut().unwrap().remove(*field);
        }
        write_config(dir.path(), &stripped);
        let err = refused(dir.path());
        assert!(
            err.contains("config.json") && err.contains("modified after it was written"),
            "{fields:?}: {err}"
        );
    }

    // A listed file deleted.
    for name in ["items.json", "interactions.safetensors"] {
        let dir = copy_folder(good.path());
        std::fs::remove_file(dir.path().join(name)).unwrap();
        let err = refused(dir.path());
        assert!(
            err.contains(&format!("{name}: the file is missing")),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_csv_file_is_checked_against_its_scale_and_repeated_pairs_keep_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    std::fs::write(
        &path,
        "user,item,rating\nu1,i1,4\nu1,i2,100\nu1,i1,2\n\"u,2\",i1,-3\nu2,i2,5\n",
    )
    .unwrap();
    let source = data::Source::File(data::FileSource::new(&path, data::FileFormat::Csv));
    let r = data::load(&source, boson::estimator::ProgressBarMode::Never).unwrap();
    // 100 and -3 are off the 1..5 scale; (u1, i1) keeps its later rating.
    let (r, repeated) = r.dedup_keep_latest();
    assert_eq!(repeated, 1);
    let mut got: Vec<(String, String, f32)> = r
        .iter()
        .map(|x| (x.user.to_string(), x.item.to_string(), x.rating))
        .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        got,
        [
            ("u1".to_string(), "i1".to_string(), 2.0),
            ("u2".to_string(), "i2".to_string(), 5.0),
        ]
    );
    let wide = data::Source::File(data::FileSource {
        scale: Some((-5.0, 100.0)),
        ..data::FileSource::new(&path, data::FileFormat::Csv)
    });
    assert_eq!(
        data::load(&wide, boson::estimator::ProgressBarMode::Never)
            .unwrap()
            .len(),
        5
    );
    let err = cli::Cli::try_parse_from([
        "recommender",
        "--data",
        path.to_str().unwrap(),
        "--rating-scale",
        "5,1",
    ])
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("LOW <= HIGH"), "{err}");
}

// A CSV file's time column decides which rating is a user's latest, whatever the line
// order; without one the file's order does, and the prepare summary says so.
#[test]
fn a_csv_time_column_orders_each_users_ratings() {
    let dir = tempfile::tempdir().unwrap();
    let held_out = |header: &str, times: [&str; 3], time_column: Option<&str>| {
        let path = dir.path().join("t.csv");
        // u1 rates a, b, c in the file, but c is the oldest and a the newest when timed.
        let mut text = format!("user,item,rating,{header}\n");
        for (item, t) in ["a", "b", "c"].iter().zip(times) {
            text += &format!("u1,{item},4,{t}\nu2,{item},3,{t}\n");
        }
        std::fs::write(&path, text).unwrap();
        let source = data::Source::File(data::FileSource {
            time_column: time_column.map(str::to_string),
            ..data::FileSource::new(&path, data::FileFormat::Csv)
        });
        let ratings = data::load(&source, boson::estimator::ProgressBarMode::Never)?;
        let options = data::PrepareOptions {
            min_user: 0,
            min_item: 0,
            validate: true,
            keep_repeated: false,
            by_activity: false,
        };
        let p = data::prepare(&ratings, "t.csv", options)?;
        let item = |d: &boson::ratings::RatingsDataset| {
            let (_, i, _) = boson::data::Dataset::get(d, 0).unwrap();
            p.items.id_of(i as usize).unwrap().to_string()
        };
        Ok::<_, boson::Error>((
            item(&p.test),
            item(&p.validation),
            p.summary.latest_by_file_order,
        ))
    };
    let timed = ("a".to_string(), "b".to_string(), false);
    let seconds = ["300", "200", "100"];
    assert_eq!(held_out("timestamp", seconds, None).unwrap(), timed);
    assert_eq!(
        held_out("Time", ["300.5", "200", "100"], None).unwrap(),
        timed
    );
    let dates = ["2024-03-01", "2024-02-01", "2024-01-01"];
    assert_eq!(held_out("date", dates, None).unwrap(), timed);
    assert_eq!(held_out("when", dates, Some("when")).unwrap(), timed);
    // No time column: the last lines are the latest, and the summary says so.
    let by_order = ("c".to_string(), "b".to_string(), true);
    assert_eq!(held_out("note", seconds, None).unwrap(), by_order);
    let err = held_out("note", seconds, Some("when"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"when\"") && err.contains("header"), "{err}");
}

// Without a validation split the test rows validate too; they stay ranking candidates
// (they were masked as seen once, and every run then failed on a -inf score).
#[test]
fn no_validation_split_ranks_the_test_items() {
    let dir = tempfile::tempdir().unwrap();
    let ranking = ["--task", "ranking", "--model", "seq-mf"];
    for task in [&["--model", "biased-mf"][..], &ranking[..]] {
        let mut extra = vec!["--no-validation-split", "--epochs", "1"];
        extra.extend_from_slice(task);
        let (report, _) = run_quietly(&small_args(dir.path(), "12000", &extra))
            .unwrap_or_else(|e| panic!("{task:?}: {e}"));
        let hit_rate = report.hit_rate_at_10.unwrap();
        assert!((0.0..=1.0).contains(&hit_rate), "{task:?}: {hit_rate}");
        assert!(report.ndcg_at_10.unwrap().is_finite(), "{task:?}");
    }
}

#[test]
fn a_learning_rate_of_nan_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    for lr in ["nan", "-0.5", "inf"] {
        let flag = format!("--lr={lr}");
        let args = small_args(dir.path(), "12000", &[&flag, "--no-ranking"]);
        let err = run_quietly(&args).unwrap_err().to_string();
        assert!(
            err.contains("learning rate must be finite and >= 0"),
            "{lr}: {err}"
        );
    }
    // Momentum is SGD's (mfblock's optimizer).
    let args = small_args(
        dir.path(),
        "12000",
        &["--model", "mfblock", "--momentum", "1.5", "--no-ranking"],
    );
    let err = run_quietly(&args).unwrap_err().to_string();
    assert!(err.contains("momentum must be in [0, 1), got 1.5"), "{err}");
    assert!(!dir.path().join("config.json").exists());
}

// serde_json writes NaN and infinite metrics as null: the folder must still load.
#[test]
fn non_finite_metrics_survive_a_save_and_load() {
    let a = tempfile::tempdir().unwrap();
    train_small(a.path(), "biased-mf");
    let loaded = persist::load(a.path(), None, Device::Cpu).unwrap();
    let mut config = loaded.config.clone();
    config.history.epochs[0].train_rmse = f64::NAN;
    config.history.epochs[0].validation_rmse = f64::INFINITY;
    config.test_rmse = f64::NAN;
    config.ranking.ndcg_at_10 = f64::NEG_INFINITY;
    let b = tempfile::tempdir().unwrap();
    persist::save(
        b.path(),
        &persist::Contents {
            model: loaded.model.as_ref(),
            config: &config,
            users: &index_map(&loaded.users, false),
            items: &index_map(&loaded.items, false),
            interactions: None,
            pictures: &[],
        },
        |_| Ok(()),
    )
    .unwrap();
    let text = std::fs::read_to_string(b.path().join("config.json")).unwrap();
    assert!(text.contains("\"test_rmse\": null"), "{text}");
    let back = persist::load(b.path(), None, Device::Cpu).unwrap().config;
    assert!(back.history.epochs[0].train_rmse.is_nan());
    assert!(back.history.epochs[0].validation_rmse.is_nan());
    assert!(back.test_rmse.is_nan() && back.ranking.ndcg_at_10.is_nan());
    assert_eq!(
        back.history.epochs[0].samples,
        config.history.epochs[0].samples
    );
}

// Killed after its last checkpoint but before the model folder was written: --resume
// loads the finished checkpoint, trains nothing, and writes the folder.
#[test]
fn resume_after_the_last_epoch_writes_the_model_folder() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (model_dir, checkpoints) = (dirs[0].path(), dirs[1].path());
    let ckpt = checkpoints.to_str().unwrap();
    let flags = [
        "--model",
        "mfblock",
        "--epochs",
        "2",
        "--batch-size",
        "256",
        "--no-ranking",
        "--checkpoint-dir",
        ckpt,
    ];
    let (first, _) = run_quietly(&small_args(model_dir, "8000", &flags)).unwrap();
    let trained = saved_params(model_dir);
    std::fs::remove_dir_all(model_dir).unwrap();

    let resume = [&flags[..], &["--resume"]].concat();
    let (again, history) = run_quietly(&small_args(model_dir, "8000", &resume)).unwrap();
    assert_eq!(saved_params(model_dir), trained);
    assert_eq!(again.test_rmse, first.test_rmse);
    assert_eq!(
        history.epochs.len(),
        2,
        "the history comes from the checkpoints"
    );
}

#[test]
fn early_stopping_ends_training_when_validation_stalls() {
    let dir = tempfile::tempdir().unwrap();
    // Adam with a large rate overfits the tiny data at once: validation RMSE stops
    // improving after the first epochs.
    let args = small_args(
        dir.path(),
        "8000",
        &[
            "--model",
            "biased-mf",
            "--lr",
            "0.05",
            "--epochs",
            "30",
            "--no-ranking",
            "--early-stopping-patience",
            "2",
        ],
    );
    let (report, history) = run_quietly(&args).unwrap();
    assert!(report.epochs < 30, "ran all {} epochs", report.epochs);
    assert_eq!(report.epochs, history.epochs.len());
    let best = history
        .epochs
        .iter()
        .map(|e| e.validation_rmse)
        .fold(f64::INFINITY, f64::min);
    let last_two = &history.epochs[history.epochs.len() - 2..];
    assert!(
        last_two.iter().all(|e| e.validation_rmse > best),
        "{history:?}"
    );
}

// On ratings of a planted low-rank model, with items chosen regardless of taste, the
// factors carry signal the biases cannot. (When taste also picks the items, as in the
// default data and in real data, what is left for the factors is small: BENCHMARKS.md.)
#[test]
fn biased_mf_beats_both_baselines_by_a_clear_margin() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "40000",
        &["--model", "biased-mf", "--synthetic-taste-choice", "0"],
    );
    let (report, _) = run_quietly(&args).unwrap();
    assert!(
        report.test_rmse < report.baseline_global_mean_rmse - 0.1,
        "biased-mf {} vs global mean {}",
        report.test_rmse,
        report.baseline_global_mean_rmse
    );
    assert!(
        report.test_rmse < report.baseline_bias_rmse,
        "biased-mf {} vs bias baseline {}",
        report.test_rmse,
        report.baseline_bias_rmse
    );
    assert!(report.reload_identical);
}

// The README's main job as a newcomer runs it (every default, the guard on; only the
// ranking evaluation is skipped): the default model is worth deploying.
#[test]
fn the_default_model_is_3_percent_below_the_bias_baseline_on_the_built_in_data() {
    let dir = tempfile::tempdir().unwrap();
    let argv = [
        "recommender",
        "--no-ranking",
        "--device",
        "cpu",
        "--model-dir",
    ];
    let args = cli::Cli::try_parse_from(argv.iter().copied().chain([dir.path().to_str().unwrap()]))
        .unwrap()
        .train;
    assert!(!args.no_guard);
    let (report, _) = run_quietly(&args).unwrap();
    assert_eq!(report.model, "drift-mf");
    assert!(!report.saved_bias_baseline);
    assert!(
        report.test_rmse <= 0.97 * report.baseline_bias_rmse,
        "{} vs the bias baseline's {}",
        report.test_rmse,
        report.baseline_bias_rmse
    );
    assert!(report.validation_rmse < report.baseline_bias_validation_rmse);
}

// The guard's paired test on its own: a clear win, a tie within noise, a loss, a diverged
// model, and a small win that needs enough ratings to show.
#[test]
fn a_clear_win_a_tie_within_noise_a_loss_and_a_diverged_model() {
    let truth: Vec<f32> = (0..400).map(|k| (k % 5 + 1) as f32).collect();
    let baseline = vec![3.0f32; 400];
    // Off by 0.1 everywhere: much better than a constant 3 on every non-3 rating.
    let good: Vec<f32> = truth.iter().map(|r| r + 0.1).collect();
    let v = guard::Verdict::compare(&good, &baseline, &truth).unwrap();
    assert!(v.model_wins() && v.z > 10.0, "{v:?}");
    assert!((v.model_rmse - 0.1).abs() < 1e-6 && (v.baseline_rmse - 2f64.sqrt()).abs() < 1e-6);
    // Exact on half the ratings, and on the other half with twice the baseline's
    // squared error: no better on average.
    let mixed: Vec<f32> = (0..400)
        .map(|k| match k % 2 {
            0 => truth[k],
            _ => baseline[k] + (2f32.sqrt() - 1.0) * (baseline[k] - truth[k]),
        })
        .collect();
    let v = guard::Verdict::compare(&mixed, &baseline, &truth).unwrap();
    assert!(!v.model_wins(), "{v:?}");
    // The baseline itself, and something worse, lose.
    assert!(!guard::Verdict::compare(&baseline, &baseline, &truth)
        .unwrap()
        .model_wins());
    let bad: Vec<f32> = truth.iter().map(|r| r + 2.0).collect();
    assert!(!guard::Verdict::compare(&bad, &baseline, &truth)
        .unwrap()
        .model_wins());
    let nan = vec![f32::NAN; 400];
    let v = guard::Verdict::compare(&nan, &baseline, &truth).unwrap();
    assert!(v.z.is_nan() && !v.model_wins());
    assert!(guard::Verdict::compare(&[], &[], &[]).is_none());
}

#[test]
fn a_small_win_needs_enough_ratings() {
    // The model is better by 0.05 on 60% of ratings and worse by 0.05 on the rest:
    // a real but small win, which 20 ratings cannot show and 20,000 can.
    let case = |n: usize| {
        let truth = vec![3.0f32; n];
        let baseline = vec![3.5f32; n];
        let model: Vec<f32> = (0..n)
            .map(|k| if k % 5 < 3 { 3.45 } else { 3.55 })
            .collect();
        guard::Verdict::compare(&model, &baseline, &truth).unwrap()
    };
    assert!(!case(20).model_wins(), "{:?}", case(20));
    assert!(case(20_000).model_wins(), "{:?}", case(20_000));
}

// The guard: a rating model whose validation RMSE is not below the bias baseline's by
// more than chance (here mfblock after 2 epochs on small data) is reported and the
// baseline is saved in its place, as a biased-mf folder with zero factors; --no-guard saves the model anyway.
#[test]
fn a_model_that_loses_to_the_bias_baseline_is_not_deployed() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = small_args(
        dir.path(),
        "8000",
        &["--model", "mfblock", "--epochs", "2", "--no-ranking"],
    );
    args.no_guard = false;
    let mut out = Vec::new();
    let (report, history) = run_printing(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(report.saved_bias_baseline, "{text}");
    assert_eq!(
        history.epochs.len(),
        2,
        "the trained model's epochs are kept"
    );
    assert!(report.validation_rmse >= report.baseline_bias_validation_rmse);
    assert!(
        (report.test_rmse - report.baseline_bias_rmse).abs() < 1e-5,
        "saved {} vs bias baseline {}",
        report.test_rmse,
        report.baseline_bias_rmse
    );
    assert!(report.reload_identical);
    assert!(
        text.contains("== guard: mfblock's validation RMSE")
            && text.contains("by more than chance"),
        "{text}"
    );
    assert!(text.contains("bias baseline, saved"), "{text}");
    let loaded = persist::load(dir.path(), None, Device::Cpu).unwrap();
    assert_eq!(loaded.config.model.kind, model::ModelKind::BiasedMf);
    let note = loaded.config.guard.clone().expect("the guard is recorded");
    assert!(note.contains("standard errors"), "{note}");
    for (name, values) in saved_params(dir.path()) {
        if !name.contains("bias") {
            assert!(values.iter().all(|&v| v == 0.0), "{name} is not zero");
        }
    }

    args.no_guard = true;
    let mut out = Vec::new();
    let (report, _) = run_printing(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!report.saved_bias_baseline);
    assert!(text.contains("--no-guard: saving it anyway"), "{text}");
    let loaded = persist::load(dir.path(), None, Device::Cpu).unwrap();
    assert_eq!(loaded.config.model.kind, model::ModelKind::Mfblock);
    assert!(loaded.config.guard.is_none());
}

// --search trains the grid on train, judges each trial by its best validation RMSE,
// keeps the best, and the saved folder is that trial's model.
#[test]
fn search_keeps_the_trial_with_the_best_validation_rmse() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "12000",
        &[
            "--search",
            "--num-embeddings",
            "16",
            "--epochs",
            "8",
            "--no-ranking",
        ],
    );
    let mut out = Vec::new();
    let (report, _) = run_printing(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    // The table: reg-factors, embeddings, epochs, validation RMSE.
    let trials: Vec<(f32, usize, f64)> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("reg-factors"))
        .skip(1)
        .take_while(|l| !l.starts_with("kept"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    let mut grid: Vec<(f32, usize)> = trials.iter().map(|t| (t.0, t.1)).collect();
    grid.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let want = [
        (0.05, 8),
        (0.05, 16),
        (0.1, 8),
        (0.1, 16),
        (0.2, 8),
        (0.2, 16),
    ];
    assert_eq!(grid, want, "{text}");
    let best = trials
        .iter()
        .min_by(|a, b| a.2.partial_cmp(&b.2).unwrap())
        .unwrap();
    let loaded = persist::load(dir.path(), None, Device::Cpu).unwrap();
    assert_eq!(
        (
            loaded.config.model.reg_factors,
            loaded.config.model.num_embeddings
        ),
        (best.0, best.1),
        "{text}"
    );
    assert!((report.validation_rmse - best.2).abs() < 1e-4, "{text}");
    assert!(report.reload_identical);
}

#[test]
fn search_refuses_what_it_cannot_tune() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = tempfile::tempdir().unwrap();
    for (extra, says) in [
        (&["--model", "mfblock"][..], "not mfblock"),
        (&["--task", "ranking"][..], "not sasrec"),
        (
            &["--checkpoint-dir", ckpt.path().to_str().unwrap()][..],
            "--checkpoint-dir holds one run",
        ),
        (&["--no-validation-split"][..], "no validation split"),
    ] {
        let mut v = vec!["--search", "--no-ranking", "--epochs", "1"];
        v.extend_from_slice(extra);
        let err = run_quietly(&small_args(dir.path(), "2000", &v))
            .err()
            .unwrap_or_else(|| panic!("{extra:?} must fail"))
            .to_string();
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    assert!(!dir.path().join("config.json").exists());
}

#[test]
fn ranking_scores_equal_the_model_predictions() {
    let spec = model::ModelSpec {
        kind: model::ModelKind::BiasedMf,
        num_users: 7,
        num_items: 5,
        num_embeddings: 4,
        dropout: 0.5,
        global_mean: 3.5,
        sparse_grad: true,
        reg_factors: 0.05,
        reg_bias: 0.01,
        seq_len: 3,
        blocks: 2,
        heads: 1,
    };
    for kind in [
        model::ModelKind::BiasedMf,
        model::ModelKind::Mfblock,
        model::ModelKind::DriftMf,
        model::ModelKind::BprMf,
        model::ModelKind::SeqMf,
        model::ModelKind::Sasrec,
    ] {
        let spec = model::ModelSpec { kind, ..spec };
        let m = model::build(&spec, 1, Device::Cpu).unwrap();
        // Non-zero biases, drift weight, current drift and histories (the f32 item
        // indices of SeqMf's `recent` truncate to item 0), so every term is checked.
        for (_, p) in m.collect_params().iter() {
            let shape = p.shape();
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|k| 0.1 + 0.05 * (k % 7) as f32).collect();
            p.set_data(&boson::Tensor::from_vec(values, &shape).unwrap())
                .unwrap();
        }
        let nothing =
            std::sync::Arc::new(boson::ratings::SeenItems::new(5, vec![vec![]; 7]).unwrap());
        let full = boson::ratings::FullRanking::new(m.clone(), nothing);
        let users = boson::Tensor::from_vec_i64(vec![3], &[1]).unwrap();
        let scores = boson::nn::Forward::forward(&full, &users)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        let pred = model::predict(m.as_ref(), &[3; 5], &[0, 1, 2, 3, 4], Device::Cpu).unwrap();
        for (s, p) in scores.iter().zip(&pred) {
            assert!(
                (s - p).abs() < 1e-3 * (1.0 + p.abs()),
                "{kind:?}: {s} vs {p}"
            );
        }
    }
}

/// Trains a tiny model of `kind` into `dir`.
fn train_small(dir: &Path, kind: &str) {
    let task = match kind {
        "seq-mf" | "bpr-mf" | "sasrec" => "ranking",
        _ => "rating",
    };
    let args = small_args(
        dir,
        "8000",
        &[
            "--model",
            kind,
            "--task",
            task,
            "--epochs",
            "1",
            "--no-ranking",
        ],
    );
    run_quietly(&args).unwrap();
}

#[test]
fn loading_another_kind_or_size_is_a_clear_error() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    train_small(a.path(), "mfblock");
    train_small(b.path(), "biased-mf");
    let err = persist::load(
        a.path(),
        Some((model::ModelKind::BiasedMf, 64)),
        Device::Cpu,
    )
    .err()
    .expect("kind mismatch must fail")
    .to_string();
    assert!(
        err.contains("mfblock") && err.contains("biased-mf"),
        "{err}"
    );
    let err = persist::load(a.path(), Some((model::ModelKind::Mfblock, 32)), Device::Cpu)
        .err()
        .expect("size mismatch must fail")
        .to_string();
    assert!(err.contains("64") && err.contains("32"), "{err}");
    // A parameter file of the other kind under this config is refused by its hash, and
    // with the hash recorded again, by the strict load.
    std::fs::copy(
        b.path().join("model.safetensors"),
        a.path().join("model.safetensors"),
    )
    .unwrap();
    let err = persist::load(a.path(), None, Device::Cpu)
        .err()
        .expect("foreign parameters must fail")
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("do not match the SHA-256"),
        "{err}"
    );
    reseal(a.path());
    let err = persist::load(a.path(), None, Device::Cpu)
        .err()
        .expect("foreign parameters must fail")
        .to_string();
    assert!(err.contains("parameter"), "{err}");
    // No folder at all.
    assert!(persist::load(&a.path().join("nope"), None, Device::Cpu).is_err());
}

#[test]
fn cli_errors_for_missing_file_and_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tsv");
    let args = cli::Cli::try_parse_from(["recommender", "--data", missing.to_str().unwrap()])
        .unwrap()
        .train;
    let err = run_quietly(&args).expect_err("missing file").to_string();
    assert!(err.contains("missing.tsv"), "{err}");
    let err = cli::Cli::try_parse_from(["recommender", "--data", "x.tsv", "--format", "parquet"])
        .unwrap_err();
    assert!(err.to_string().contains("parquet"), "{err}");
    assert!(cli::Cli::try_parse_from(["recommender", "--model", "transformer"]).is_err());
    assert!(cli::Cli::try_parse_from(["recommender", "--data", "a", "--anchor-tsv", "b"]).is_err());
    // `--device cuda` without a usable GPU says why (here: no driver, or no device).
    if let Err(why) = boson::Device::new_cuda(0) {
        let args = cli::Cli::try_parse_from(["recommender", "--device", "cuda"])
            .unwrap()
            .train;
        let err = run_quietly(&args).expect_err("no GPU").to_string();
        assert!(
            err.contains("--device cuda") && err.contains(&why.to_string()),
            "{err}"
        );
    }
    // The anchors' layout: dense ids with a header, test = last row of each user.
    let tsv = dir.path().join("anchor.tsv");
    let mut text = String::from("user_id\titem_id\trating\n");
    for u in 0..50 {
        for i in 0..6 {
            text += &format!("{u}\t{}\t{}\n", (u * 7 + i * 3) % 40, 1 + (u + i) % 5);
        }
    }
    std::fs::write(&tsv, text).unwrap();
    let args = cli::Cli::try_parse_from(["recommender", "--anchor-tsv", tsv.to_str().unwrap()])
        .unwrap()
        .train;
    assert_eq!(args.thresholds(), (0, 0));
    let prepared = data::prepare(
        &data::load(&args.source(), boson::estimator::ProgressBarMode::Never).unwrap(),
        "anchor",
        args.prepare_options(),
    )
    .unwrap();
    assert_eq!((prepared.summary.train, prepared.summary.test), (250, 50));
}

// `--dense-grads` trains with dense full-table embedding gradients (Gluon's default):
// the same model on the same data, so it learns too, and the choice is saved and restored.
#[test]
fn dense_gradient_mode_trains_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "20000",
        &[
            "--epochs",
            "2",
            "--batch-size",
            "256",
            "--dense-grads",
            "--no-ranking",
        ],
    );
    let (report, history) = run_quietly(&args).unwrap();
    assert_eq!(history.epochs.len(), 2);
    assert!(report.test_rmse.is_finite());
    assert!(report.reload_identical);
    let loaded = persist::load(dir.path(), None, Device::Cpu).unwrap();
    assert!(!loaded.config.model.sparse_grad);
}

/// `Estimator::fit` on the GPU: the worked example end to end (train, validate, save,
/// reload) on device 0 against the same run on the CPU; the per-epoch RMSEs agree.
/// Skips, saying why, without a usable GPU.
#[test]
fn the_example_trains_on_the_gpu_as_on_the_cpu() {
    let extra = ["--epochs", "3", "--batch-size", "128", "--dropout", "0.2"];
    let (dc, dg) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cpu_args = small_args(dc.path(), "40000", &extra);
    let mut gpu_args = small_args(dg.path(), "40000", &extra);
    gpu_args.device = cli::DeviceArg::Cuda;
    if let Err(e) = Device::new_cuda(0) {
        skip_note!("the_example_trains_on_the_gpu_as_on_the_cpu: skipped: {e}");
        return;
    }
    let (cpu_report, cpu) = run_quietly(&cpu_args).unwrap();
    let (gpu_report, gpu) = run_quietly(&gpu_args).unwrap();
    assert_eq!(gpu_report.device, "cuda:0");
    assert!(gpu_report.reload_identical, "GPU model reloads identically");
    assert_eq!(gpu.epochs.len(), cpu.epochs.len());
    for (g, c) in gpu.epochs.iter().zip(&cpu.epochs) {
        for (what, a, b) in [
            ("train RMSE", g.train_rmse, c.train_rmse),
            ("validation RMSE", g.validation_rmse, c.validation_rmse),
        ] {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs(),
                "epoch {}: {what} on the GPU {a} vs the CPU {b}",
                c.epoch
            );
        }
    }
    assert!((gpu_report.test_rmse - cpu_report.test_rmse).abs() <= 1e-3 * cpu_report.test_rmse);
}

/// `--model sasrec` on the GPU against the CPU: attention, the fused softmax, `fill_at`
/// masking in the loss and in `FullRanking`; per-epoch training loss and validation
/// NDCG@10 agree. Skips, saying why, without a usable GPU.
#[test]
fn sasrec_trains_on_the_gpu_as_on_the_cpu() {
    let extra = ["--seq-len", "20", "--epochs", "2", "--batch-size", "64"];
    let (dc, dg) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cpu_args = ranking_args(dc.path(), "sasrec", &extra);
    let mut gpu_args = ranking_args(dg.path(), "sasrec", &extra);
    gpu_args.device = cli::DeviceArg::Cuda;
    if let Err(e) = Device::new_cuda(0) {
        skip_note!("sasrec_trains_on_the_gpu_as_on_the_cpu: skipped: {e}");
        return;
    }
    let (cpu_report, cpu) = run_quietly(&cpu_args).unwrap();
    let (gpu_report, gpu) = run_quietly(&gpu_args).unwrap();
    assert!(gpu_report.reload_identical);
    for (g, c) in gpu.epochs.iter().zip(&cpu.epochs) {
        assert!(
            (g.train_loss - c.train_loss).abs() <= 1e-3 * c.train_loss.abs(),
            "{g:?} vs {c:?}"
        );
        assert!(
            (g.validation_ndcg_at_10 - c.validation_ndcg_at_10).abs() <= 0.01,
            "{g:?} vs {c:?}"
        );
    }
    let (gn, cn) = (
        gpu_report.ndcg_at_10.unwrap(),
        cpu_report.ndcg_at_10.unwrap(),
    );
    assert!(
        (gn - cn).abs() <= 0.01,
        "test NDCG@10 on the GPU {gn} vs the CPU {cn}"
    );
}

// Each user's latest rating is the test split, the one before it validation; neither is
// in train, and the epoch is chosen on validation.
#[test]
fn validation_is_each_users_second_latest_rating_and_never_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "8000",
        &["--epochs", "3", "--no-ranking", "--batch-size", "512"],
    );
    let prepared = {
        let ratings = data::load(&args.source(), boson::estimator::ProgressBarMode::Never).unwrap();
        data::prepare(&ratings, "small", args.prepare_options()).unwrap()
    };
    let s = &prepared.summary;
    assert!(s.validation > 0 && s.validation <= s.test, "{s:?}");
    assert_eq!(s.train + s.validation + s.test, s.ratings_kept);
    use std::collections::HashSet;
    let pairs = |d: &boson::ratings::RatingsDataset| -> HashSet<(i64, i64)> {
        let (u, i, _) = d.columns();
        u.iter().copied().zip(i.iter().copied()).collect()
    };
    let (train, val, test) = (
        pairs(&prepared.train),
        pairs(&prepared.validation),
        pairs(&prepared.test),
    );
    assert!(train.is_disjoint(&val) && train.is_disjoint(&test));
    // One validation and one test rating per user at most.
    let users = |d: &boson::ratings::RatingsDataset| d.columns().0.len();
    let distinct =
        |d: &boson::ratings::RatingsDataset| d.columns().0.iter().collect::<HashSet<_>>().len();
    assert_eq!(users(&prepared.validation), distinct(&prepared.validation));
    assert_eq!(users(&prepared.test), distinct(&prepared.test));

    let (report, history) = run_quietly(&args).unwrap();
    let best = history
        .epochs
        .iter()
        .map(|e| e.validation_rmse)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(report.validation_rmse, best);
}

/// MovieLens 100K from scripts/fetch-movielens.sh, if it is there.
fn movielens_100k() -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ml-100k/ml-100k.inter");
    path.is_file().then_some(path)
}

// Real data: MovieLens 100K, leave-latest-out (BENCHMARKS.md has the table).
#[test]
fn on_movielens_100k_the_default_model_is_3_percent_below_the_bias_baseline_and_als() {
    let Some(path) = movielens_100k() else {
        skip_note!(
            "on_movielens_100k_...: skipped: no \
             data/ml-100k/ml-100k.inter (run scripts/fetch-movielens.sh)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let argv = [
        "recommender",
        "--data",
        path.to_str().unwrap(),
        "--format",
        "movielens",
        "--min-user-ratings",
        "0",
        "--min-item-ratings",
        "0",
        "--device",
        "cpu",
        "--model-dir",
        dir.path().to_str().unwrap(),
    ];
    // The defaults (drift-mf, the guard on): the issue's target is at least 3% under the
    // bias baseline and under biased ALS (1.016 on this split, BENCHMARKS.md).
    let args = cli::Cli::try_parse_from(argv).unwrap().train;
    let (report, _) = run_quietly(&args).unwrap();
    assert_eq!(report.model, "drift-mf");
    assert!(!report.saved_bias_baseline);
    assert!(
        report.test_rmse <= 0.97 * report.baseline_bias_rmse && report.test_rmse < 1.016,
        "{} vs bias {}",
        report.test_rmse,
        report.baseline_bias_rmse
    );
    let pop = report.baseline_itempop_hit_rate_at_10.unwrap();
    assert!((0.07..0.10).contains(&pop), "ItemPop HitRate@10 {pop}");
    let biased_args = cli::Cli::try_parse_from(argv.iter().chain(&["--model", "biased-mf"]))
        .unwrap()
        .train;
    let (biased, _) = run_quietly(&biased_args).unwrap();
    assert!(!biased.saved_bias_baseline);
    assert!(
        biased.test_rmse < biased.baseline_bias_rmse,
        "biased-mf {} vs bias {}",
        biased.test_rmse,
        biased.baseline_bias_rmse
    );
}

/// Ratings whose users rate in moods: item quality plus a mood that changes every few
/// ratings, in time order (one line per rating), as a CSV file.
fn moody_ratings(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("user,item,rating\n");
    let hash = |a: u64, b: u64| boson::rng::uniform_hash(a, b);
    for u in 0..300u64 {
        let mut mood = 0.0;
        for k in 0..40u64 {
            if k % 8 == 0 {
                mood = (hash(u, 1000 + k) * 3.0).floor() - 1.0; // -1, 0 or +1
            }
            let item = (hash(u, k) * 100.0) as u64 % 100;
            let quality = 2.0 + (item % 3) as f32;
            let stars = (quality + mood).clamp(1.0, 5.0);
            text += &format!("u{u},i{item},{stars}\n");
        }
    }
    let path = dir.join("moody.csv");
    std::fs::write(&path, text).unwrap();
    path
}

// DriftMf reads the mood from the user's previous ratings; BiasedMf can only average it.
#[test]
fn drift_mf_follows_the_users_recent_mood_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let data = moody_ratings(dir.path());
    let run = |model: &str| {
        let model_dir = dir.path().join(model);
        let argv = [
            "recommender",
            "--data",
            data.to_str().unwrap(),
            "--format",
            "csv",
            "--min-user-ratings",
            "0",
            "--min-item-ratings",
            "0",
            "--model",
            model,
            "--epochs",
            "15",
            "--batch-size",
            "256",
            "--device",
            "cpu",
            "--model-dir",
            model_dir.to_str().unwrap(),
        ];
        run_quietly(&cli::Cli::try_parse_from(argv).unwrap().train)
            .unwrap()
            .0
    };
    let drift = run("drift-mf");
    let biased = run("biased-mf");
    assert!(drift.reload_identical);
    assert!(
        drift.test_rmse < 0.8 * biased.test_rmse,
        "drift-mf {} vs biased-mf {}",
        drift.test_rmse,
        biased.test_rmse
    );
    // The saved folder serves the same predictions (the users' current drift included).
    let loaded = persist::load(&dir.path().join("drift-mf"), None, Device::Cpu).unwrap();
    assert_eq!(loaded.config.model.kind, model::ModelKind::DriftMf);
}

// An Amazon file's product titles are printed beside the recommended items, and
// --index-order activity numbers the busiest user 0.
#[test]
fn recommendations_show_product_titles_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.tsv");
    let config = boson::ratings::SyntheticConfig {
        n_users: 400,
        n_items: 120,
        n_ratings: 12000,
        ..data::default_synthetic(3)
    };
    boson::ratings::write_synthetic_amazon_tsv(&config, &path).unwrap();
    let model_dir = dir.path().join("model");
    let argv = [
        "recommender",
        "--data",
        path.to_str().unwrap(),
        "--epochs",
        "1",
        "--no-ranking",
        "--index-order",
        "activity",
        "--device",
        "cpu",
        "--model-dir",
        model_dir.to_str().unwrap(),
    ];
    let args = cli::Cli::try_parse_from(argv).unwrap().train;
    let mut out = Vec::new();
    {
        static PIPELINE: Mutex<()> = Mutex::new(());
        let _one = PIPELINE.lock().unwrap_or_else(|p| p.into_inner());
        pipeline::run(&args, &mut out, std::io::sink()).unwrap();
    }
    let text = String::from_utf8(out).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("recommended:"))
        .unwrap();
    assert!(line.contains("\"Synthetic Video "), "{line}");
    // The notebook's quantiles are printed too.
    assert!(
        text.contains("0.99") && text.contains("ratings per item"),
        "{text}"
    );
    let loaded = persist::load(&model_dir, None, Device::Cpu).unwrap();
    let prepared = data::prepare(
        &data::load(&args.source(), boson::estimator::ProgressBarMode::Never).unwrap(),
        "x",
        args.prepare_options(),
    )
    .unwrap();
    let (users, _, _) = prepared.train.columns();
    let mut count = std::collections::HashMap::new();
    for u in users {
        *count.entry(*u).or_insert(0usize) += 1;
    }
    // By activity: user 0 has at least as many train ratings as any other... up to the
    // held-out ones (one or two per user).
    let top = count.values().max().unwrap();
    assert!(count[&0] + 2 >= *top, "user 0 has {} of {top}", count[&0]);
    assert_eq!(loaded.users.len(), prepared.summary.users);
}

// Top-k requests: each known customer's best unrated items equal a brute-force ranking of
// every item by the model's own predictions; an unknown customer gets the most rated
// items, flagged; bad k, bad flags and a folder without interactions are 400s.
#[test]
fn top_k_recommendations_match_a_brute_force_ranking() {
    // A rating model and two ranking models (whose user factors come from the
    // histories and sequences saved with them).
    for kind in ["seq-mf", "biased-mf", "sasrec"] {
        let dir = tempfile::tempdir().unwrap();
        top_k_matches_brute_force(dir.path(), kind);
    }
}

fn top_k_matches_brute_force(dir: &Path, kind: &str) {
    train_small(dir, kind);
    let loaded = persist::load(dir, None, Device::Cpu).unwrap();
    let interactions = loaded.interactions.clone().unwrap();
    let num_items = loaded.config.model.num_items;
    let id_of_user = |u: i64| {
        loaded
            .users
            .iter()
            .find(|(_, &i)| i == u)
            .unwrap()
            .0
            .clone()
    };
    let id_of_item = |i: usize| {
        loaded
            .items
            .iter()
            .find(|(_, &x)| x as usize == i)
            .unwrap()
            .0
            .clone()
    };
    let brute = |u: i64, exclude: bool| -> Vec<(String, f32)> {
        let items: Vec<i64> = (0..num_items as i64).collect();
        let pred = model::predict(
            loaded.model.as_ref(),
            &vec![u; num_items],
            &items,
            Device::Cpu,
        )
        .unwrap();
        let mut ranked: Vec<(usize, f32)> = pred
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !exclude || !interactions.rated[u as usize].contains(&(*i as u32)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(7);
        ranked
            .into_iter()
            .map(|(i, s)| (id_of_item(i), s))
            .collect()
    };
    let (a, b) = (id_of_user(0), id_of_user(5));
    let service = serve::Service::new(persist::load(dir, None, Device::Cpu).unwrap());
    let ask = |body: Value| {
        service.handle(&serve::Request::new(
            "POST",
            "/invocations",
            body.to_string().as_bytes(),
        ))
    };
    for exclude in [true, false] {
        let r = ask(serde_json::json!({
            "customer_id": [a, "nobody", b], "k": 7, "exclude_rated": exclude
        }));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let answer = r.json();
        let recs = answer["recommendations"].as_array().unwrap();
        for (rec, u) in [(&recs[0], 0), (&recs[2], 5)] {
            assert_eq!(rec["cold_start"], false);
            let got: Vec<(String, f32)> = rec["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x["product_id"].as_str().unwrap().to_string(),
                        x["score"].as_f64().unwrap() as f32,
                    )
                })
                .collect();
            let want = brute(u, exclude);
            assert_eq!(got.len(), 7);
            for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                assert!((gs - ws).abs() < 1e-4, "{got:?} vs {want:?}");
                // Equal scores may order differently; the scores must agree.
                if (gs - ws).abs() < 1e-7 {
                    assert_eq!(gi, wi, "{got:?} vs {want:?}");
                }
            }
        }
        // The unknown customer: the most rated items, flagged.
        assert_eq!(recs[1]["cold_start"], true);
        let top_count = *interactions.item_counts.iter().max().unwrap() as f64;
        assert_eq!(recs[1]["items"][0]["score"].as_f64().unwrap(), top_count);
    }
    // The same answers as CSV lines: customer_id,product_id,score,cold_start.
    let body = serde_json::json!({"customer_id": [a, "nobody"], "k": 2}).to_string();
    let r = service.handle(&serve::Request {
        accept: Some("text/csv"),
        ..serve::Request::new("POST", "/invocations", body.as_bytes())
    });
    let csv = String::from_utf8(r.body.clone()).unwrap();
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(lines[0][0], a);
    assert_eq!(lines[0][1], brute(0, true)[0].0);
    assert_eq!(
        (lines[1][3], lines[2][0], lines[2][3]),
        ("false", "nobody", "true")
    );
    for (body, want) in [
        (
            serde_json::json!({"customer_id": [a], "k": 0}),
            "\"k\" must be an integer from 1 to 1000 (--max-k)",
        ),
        (
            serde_json::json!({"customer_id": [a], "k": 1001}),
            "got 1001",
        ),
        (
            serde_json::json!({"customer_id": [a], "k": 3, "product_id": ["x"]}),
            "not both",
        ),
        (
            serde_json::json!({"customer_id": [a], "k": "ten"}),
            "\"k\" must be",
        ),
        (
            serde_json::json!({"customer_id": [a], "k": 3, "exclude_rated": "yes"}),
            "\"exclude_rated\" must be true or false",
        ),
        (serde_json::json!({"k": 3}), "missing field \"customer_id\""),
    ] {
        let r = ask(body.clone());
        assert_eq!(r.status, 400, "{body}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(want),
            "{}",
            r.json()
        );
    }
    // k beyond the catalogue is the whole catalogue.
    assert!(num_items < 1000);
    let r = ask(serde_json::json!({"customer_id": [a], "k": 1000, "exclude_rated": false}));
    assert_eq!(
        r.json()["recommendations"][0]["items"]
            .as_array()
            .unwrap()
            .len(),
        num_items
    );
    // Bounded requests: customers per request and the answer's bytes, each a 413 naming
    // the flag; within them the same customers are answered.
    let mut bounded = serve::Service::new(persist::load(dir, None, Device::Cpu).unwrap());
    bounded.limits.max_customers = 2;
    bounded.limits.max_answer_bytes = 2000;
    let ask_bounded = |body: Value| {
        bounded.handle(&serve::Request::new(
            "POST",
            "/invocations",
            body.to_string().as_bytes(),
        ))
    };
    let r = ask_bounded(serde_json::json!({"customer_id": [a, b, a], "k": 2}));
    assert_eq!(r.status, 413);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("3 customers") && msg.contains("--max-customers"),
        "{msg}"
    );
    let r = ask_bounded(serde_json::json!({"customer_id": [a, b], "k": 100}));
    assert_eq!(r.status, 413);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("2000 bytes") && msg.contains("--max-answer-bytes"),
        "{msg}"
    );
    let small = ask_bounded(serde_json::json!({"customer_id": [a, b], "k": 2}));
    assert_eq!(small.status, 200);
    let full = ask(serde_json::json!({"customer_id": [a, b], "k": 2}));
    assert_eq!(small.body, full.body);
    // A folder from before interactions were saved cannot serve top-k, and says why.
    let old = serve::Service::new(
        persist::load(&fixture_dir("mfblock-model"), None, Device::Cpu).unwrap(),
    );
    let r = old.handle(&serve::Request::new(
        "POST",
        "/invocations",
        br#"{"customer_id": ["x"], "k": 3}"#,
    ));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("retrain"),
        "{}",
        r.json()
    );
}

/// A SageMaker-style /opt/ml tree in a temporary folder.
fn sagemaker_tree(root: &Path, hyperparameters: &str) -> sagemaker::ContainerArgs {
    let args = sagemaker::ContainerArgs {
        config_dir: root.join("input/config"),
        train_channel: root.join("input/data/train"),
        model_dir: root.join("model"),
        output_dir: root.join("output"),
    };
    std::fs::create_dir_all(&args.config_dir).unwrap();
    std::fs::create_dir_all(&args.train_channel).unwrap();
    std::fs::write(
        args.config_dir.join("hyperparameters.json"),
        hyperparameters,
    )
    .unwrap();
    let config = boson::ratings::SyntheticConfig {
        n_users: 400,
        n_items: 120,
        n_ratings: 12000,
        ..data::default_synthetic(5)
    };
    boson::ratings::write_synthetic_amazon_tsv(&config, args.train_channel.join("reviews.tsv.gz"))
        .unwrap();
    args
}

#[test]
fn the_sagemaker_train_contract_reads_string_hyperparameters_and_writes_the_model() {
    let root = tempfile::tempdir().unwrap();
    // SageMaker writes every value as a string.
    let args = sagemaker_tree(
        root.path(),
        r#"{"model": "biased-mf", "epochs": "2", "lr": "0.01", "no_ranking": "true", "device": "cpu", "dense_grads": "false"}"#,
    );
    let train = sagemaker::train_args(&args).unwrap();
    assert_eq!(train.model, Some(model::ModelKind::BiasedMf));
    assert_eq!((train.epochs, train.lr), (Some(2), Some(0.01)));
    assert!(train.no_ranking && !train.dense_grads);
    sagemaker::run(&args, |a| run_quietly(a).map(drop)).unwrap();
    let loaded = persist::load(&args.model_dir, None, Device::Cpu).unwrap();
    assert_eq!(loaded.config.model.kind, model::ModelKind::BiasedMf);
    assert!(!args.output_dir.join("failure").exists());
}

#[test]
fn a_failed_sagemaker_training_writes_the_reason_to_the_failure_file() {
    for (hyperparameters, want) in [
        (r#"{"epochs": "zero", "device": "cpu"}"#, "zero"),
        (
            r#"{"lr": "nan", "device": "cpu", "no_ranking": "true"}"#,
            "learning rate",
        ),
        (r#"{"data": "/elsewhere"}"#, "set by the container"),
        ("not json", "not a JSON object"),
    ] {
        let root = tempfile::tempdir().unwrap();
        let args = sagemaker_tree(root.path(), hyperparameters);
        let err = sagemaker::run(&args, |a| run_quietly(a).map(drop))
            .unwrap_err()
            .to_string();
        let failure = std::fs::read_to_string(args.output_dir.join("failure")).unwrap();
        assert_eq!(failure, err);
        assert!(failure.contains(want), "{hyperparameters}: {failure}");
    }
    // An empty channel.
    let root = tempfile::tempdir().unwrap();
    let args = sagemaker_tree(root.path(), "{}");
    std::fs::remove_file(args.train_channel.join("reviews.tsv.gz")).unwrap();
    let err = sagemaker::run(&args, |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("exactly one rating file"), "{err}");
}

#[test]
fn sagemaker_sdk_keys_and_hidden_channel_files_are_ignored() {
    let root = tempfile::tempdir().unwrap();
    // What an SDK estimator writes beside the user's hyperparameters.
    let args = sagemaker_tree(
        root.path(),
        r#"{"model": "biased-mf", "epochs": "1", "no_ranking": "true", "device": "cpu",
            "sagemaker_program": "\"train.py\"", "sagemaker_submit_directory": "\"s3://b/src.tar.gz\"",
            "sagemaker_region": "\"eu-west-1\"", "sagemaker_container_log_level": "20",
            "sagemaker_job_name": "\"job-1\""}"#,
    );
    std::fs::write(args.train_channel.join(".DS_Store"), b"junk").unwrap();
    std::fs::write(args.train_channel.join(".reviews.tsv.gz.part"), b"junk").unwrap();
    let mut log = Vec::new();
    let train = sagemaker::train_args_logged(&args, &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    for key in [
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "sagemaker_program",
        "sagemaker_region",
        "sagemaker_submit_directory",
    ] {
        assert!(log.contains(key), "{log}");
    }
    assert_eq!(train.model, Some(model::ModelKind::BiasedMf));
    assert!(train
        .data
        .as_ref()
        .unwrap()
        .ends_with("input/data/train/reviews.tsv.gz"));
    sagemaker::run(&args, |a| run_quietly(a).map(drop)).unwrap();
    assert!(args.model_dir.join("config.json").exists());

    // Other unknown keys stay errors.
    let root = tempfile::tempdir().unwrap();
    let args = sagemaker_tree(
        root.path(),
        r#"{"sagemaker_region": "x", "learning_rate": "1"}"#,
    );
    let err = sagemaker::run(&args, |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("--learning-rate"), "{err}");
    // Only hidden files left: the error says they were ignored.
    std::fs::remove_file(args.train_channel.join("reviews.tsv.gz")).unwrap();
    std::fs::write(args.train_channel.join(".DS_Store"), b"junk").unwrap();
    std::fs::write(args.config_dir.join("hyperparameters.json"), "{}").unwrap();
    let err = sagemaker::run(&args, |_| Ok(())).unwrap_err().to_string();
    assert!(
        err.contains("exactly one rating file, it holds 0")
            && err.contains("hidden files (names starting with \".\") are ignored: .DS_Store"),
        "{err}"
    );
    // Two visible files are named.
    std::fs::write(args.train_channel.join("a.tsv"), b"x").unwrap();
    std::fs::write(args.train_channel.join("b.tsv"), b"x").unwrap();
    let err = sagemaker::run(&args, |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("it holds 2 (a.tsv, b.tsv)"), "{err}");
}

#[test]
fn on_movielens_100k_the_ranking_models_beat_itempop_and_reach_the_targets() {
    let Some(path) = movielens_100k() else {
        skip_note!(
            "on_movielens_100k_the_ranking_models_...: skipped: no \
             data/ml-100k/ml-100k.inter (run scripts/fetch-movielens.sh)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |model: &str| {
        let argv = [
            "recommender",
            "--data",
            path.to_str().unwrap(),
            "--format",
            "movielens",
            "--min-user-ratings",
            "0",
            "--min-item-ratings",
            "0",
            "--task",
            "ranking",
            "--model",
            model,
            "--device",
            "cpu",
            "--model-dir",
            dir.path().to_str().unwrap(),
        ];
        run_quietly(&cli::Cli::try_parse_from(argv).unwrap().train)
            .unwrap()
            .0
    };
    let seq = run("seq-mf");
    let (hr, ndcg) = (seq.hit_rate_at_10.unwrap(), seq.ndcg_at_10.unwrap());
    // The issue's targets: at least EASE^R's 0.145 / 0.074.
    assert!(hr >= 0.15 && ndcg >= 0.075, "seq-mf {hr} / {ndcg}");
    let pop = seq.baseline_itempop_hit_rate_at_10.unwrap();
    let bpr = run("bpr-mf");
    assert!(
        bpr.hit_rate_at_10.unwrap() > pop,
        "bpr-mf {:?} vs ItemPop {pop}",
        bpr.hit_rate_at_10
    );
    // sasrec with its defaults: validation 0.138 and test 0.129 NDCG@10 (BENCHMARKS.md),
    // above plain matrix factorisation (0.072), ItemPop and, on this seed, seq-mf.
    let sas = run("sasrec");
    let (hr, ndcg) = (sas.hit_rate_at_10.unwrap(), sas.ndcg_at_10.unwrap());
    assert!(hr > 2.0 * pop && ndcg >= 0.115, "sasrec {hr} / {ndcg}");
}

/// A ranking run on the built-in data (taste picks the items), small enough for seconds.
fn ranking_args(dir: &Path, model: &str, extra: &[&str]) -> cli::TrainArgs {
    let mut v = vec!["--task", "ranking", "--model", model, "--negatives", "20"];
    v.extend_from_slice(extra);
    small_args(dir, "40000", &v)
}

#[test]
fn ranking_models_beat_popularity_on_the_built_in_data() {
    let dir = tempfile::tempdir().unwrap();
    let (seq, history) = run_quietly(&ranking_args(dir.path(), "seq-mf", &[])).unwrap();
    let pop = seq.baseline_itempop_hit_rate_at_10.unwrap();
    let (hr, ndcg) = (seq.hit_rate_at_10.unwrap(), seq.ndcg_at_10.unwrap());
    assert!(hr > 1.2 * pop, "seq-mf HitRate@10 {hr} vs ItemPop {pop}");
    assert!(ndcg > seq.baseline_itempop_ndcg_at_10.unwrap(), "{seq:?}");
    // No ratings are predicted, and the kept epoch is the best by validation NDCG@10.
    assert!(seq.test_rmse.is_nan());
    let best = history
        .epochs
        .iter()
        .map(|e| e.validation_ndcg_at_10)
        .fold(f64::NAN, f64::max);
    assert_eq!(seq.validation_ndcg_at_10, best);
    assert!(history.epochs.iter().all(|e| e.train_rmse.is_nan()));
    assert!(seq.reload_identical);

    let (bpr, _) = run_quietly(&ranking_args(
        dir.path(),
        "bpr-mf",
        &["--ranking-loss", "bpr"],
    ))
    .unwrap();
    let bpr_hr = bpr.hit_rate_at_10.unwrap();
    assert!(bpr_hr > pop, "bpr-mf HitRate@10 {bpr_hr} vs ItemPop {pop}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["task"], "ranking");
    assert_eq!(config["train"]["ranking_loss"], "bpr");
    assert_eq!(config["model"]["kind"], "bpr-mf");
}

/// The spec of [`tiny_sasrec`].
fn tiny_spec() -> model::ModelSpec {
    model::ModelSpec {
        kind: model::ModelKind::Sasrec,
        num_users: 2,
        num_items: 6,
        num_embeddings: 8,
        dropout: 0.0,
        global_mean: 0.0,
        sparse_grad: false,
        reg_factors: 0.0,
        reg_bias: 0.0,
        seq_len: 4,
        blocks: 2,
        heads: 2,
    }
}

/// A tiny `SasRec` (6 items, windows of 4, no dropout) with fixed-seed parameters.
fn tiny_sasrec() -> sasrec::SasRec {
    boson::rng::seed(3);
    let m = sasrec::SasRec::new(&tiny_spec()).unwrap();
    boson::nn::Block::initialize(&m, &boson::nn::Initializer::xavier(3.0), Device::Cpu).unwrap();
    m
}

#[test]
fn sasrec_training_examples_are_the_next_item_at_every_position() {
    // Items 0..6, padding 6: the input is all but the last item, the targets all but
    // the first, both cut to the latest `seq_len`.
    let (input, next) = sasrec::next_item_targets(&[1, 2, 3], 6, 4).unwrap();
    assert_eq!((input, next), (vec![6, 6, 1, 2], vec![2, 3]));
    let (input, next) = sasrec::next_item_targets(&[5, 1, 2, 3, 4, 0], 6, 3).unwrap();
    assert_eq!((input, next), (vec![2, 3, 4], vec![3, 4, 0]));
    assert_eq!(sasrec::next_item_targets(&[1], 6, 4), None);
    // A long sequence gives its latest window, then the ones before it: every item after
    // the first is a target once.
    let windows = sasrec::training_windows(&[0, 1, 2, 3, 4, 5, 0, 1], 6, 3);
    let want = vec![
        (vec![4, 5, 0], vec![5, 0, 1]),
        (vec![1, 2, 3], vec![2, 3, 4]),
        (vec![6, 6, 0], vec![1]),
    ];
    assert_eq!(windows, want);
    // The loss leaves out what each position has seen, but never its target: rows
    // [pad, pad, 1, 2] → 2, 3 and [3, 4, 5, 0] → 4, 5, 0, 4 (a repeat), six positions
    // of 6 scores.
    let inputs = [6, 6, 1, 2, 3, 4, 5, 0];
    let targets = [2, 3, 4, 5, 0, 4];
    let seen = sasrec::seen_positions(&inputs, &targets, 6, 4);
    let at = |p: i64, items: &[i64]| items.iter().map(|i| p * 6 + i).collect::<Vec<_>>();
    let want = [
        at(0, &[1]),
        at(1, &[1, 2]),
        at(2, &[3]),
        at(3, &[3, 4]),
        at(4, &[3, 4, 5]),
        at(5, &[3, 5, 0]), // 4 is the target again: left in
    ]
    .concat();
    assert_eq!(seen, want);
}

#[test]
fn sasrec_refuses_a_catalogue_its_f32_sequences_cannot_index() {
    let spec = model::ModelSpec {
        num_items: sasrec::MAX_ITEMS,
        ..tiny_spec()
    };
    let err = sasrec::SasRec::new(&spec).err().unwrap().to_string();
    assert!(
        err.contains("at most 16777215 items") && err.contains("--min-item-ratings"),
        "{err}"
    );
    assert!(sasrec::SasRec::new(&model::ModelSpec {
        num_items: 5,
        ..spec
    })
    .is_ok());
}

#[test]
fn sasrec_sees_only_earlier_items_and_never_the_padding() {
    use boson::nn::Forward;
    let m = tiny_sasrec();
    let none = boson::Tensor::from_vec_i64(vec![], &[0]).unwrap();
    let scores = |rows: Vec<i64>| {
        let x = boson::Tensor::from_vec_i64(rows, &[2, 4]).unwrap();
        boson::autograd::predict_mode(|| m.forward(&(x, none.clone())))
            .unwrap()
            .to_vec_f32()
            .unwrap()
    };
    // Six real positions (row 0 has two padding slots), six scores each.
    let base = scores(vec![6, 6, 1, 2, 3, 4, 5, 0]);
    assert_eq!(base.len(), 6 * 6);
    // A later item never changes an earlier position's scores; the changed one does.
    let later = scores(vec![6, 6, 1, 2, 3, 4, 5, 1]);
    assert_eq!(base[..5 * 6], later[..5 * 6]);
    assert_ne!(base[5 * 6..], later[5 * 6..]);
    // Row 1's first item reaches all of row 1's positions and none of row 0's.
    let earlier = scores(vec![6, 6, 1, 2, 2, 4, 5, 0]);
    assert!((2 * 6..6 * 6).all(|k| earlier[k] != base[k]));
    assert_eq!(base[..2 * 6], earlier[..2 * 6]);
    // Trimming the columns that are padding in every row changes nothing: positions
    // count back from the latest item.
    let wide = scores(vec![6, 6, 1, 2, 6, 4, 5, 0]);
    let (rows, width) = sasrec::trim_padding(vec![6, 6, 1, 2, 6, 4, 5, 0], 6, 4);
    assert_eq!((rows.clone(), width), (vec![6, 1, 2, 4, 5, 0], 3));
    let x = boson::Tensor::from_vec_i64(rows, &[2, 3]).unwrap();
    let narrow = boson::autograd::predict_mode(|| m.forward(&(x, none.clone())))
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(wide.len(), narrow.len());
    for (a, b) in wide.iter().zip(&narrow) {
        assert!((a - b).abs() < 1e-5, "{wide:?} vs {narrow:?}");
    }
    // A batch of padding only keeps one column.
    assert_eq!(sasrec::trim_padding(vec![6; 8], 6, 4), (vec![6, 6], 1));
    // The padding row's values are never read.
    let params = boson::nn::Block::collect_params(&m);
    let table = params.get("item_embeddings.weight").unwrap();
    let mut w = table.data().unwrap().to_vec_f32().unwrap();
    w[6 * 8..].iter_mut().for_each(|v| *v = 9.0);
    table
        .set_data(&boson::Tensor::from_vec(w, &[7, 8]).unwrap())
        .unwrap();
    assert_eq!(scores(vec![6, 6, 1, 2, 3, 4, 5, 0]), base);
}

#[test]
fn sasrec_learns_the_built_in_data_and_reloads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let args = ranking_args(
        dir.path(),
        "sasrec",
        &["--seq-len", "20", "--epochs", "12", "--batch-size", "64"],
    );
    let (run, history) = run_quietly(&args).unwrap();
    let pop = run.baseline_itempop_hit_rate_at_10.unwrap();
    let (hr, ndcg) = (run.hit_rate_at_10.unwrap(), run.ndcg_at_10.unwrap());
    assert!(hr > pop, "sasrec HitRate@10 {hr} vs ItemPop {pop}");
    assert!(ndcg > run.baseline_itempop_ndcg_at_10.unwrap(), "{run:?}");
    assert!(run.reload_identical);
    // One example per user, its positions counted as samples.
    assert!(history.epochs[0].samples > 1500, "{:?}", history.epochs[0]);
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["kind"], "sasrec");
    assert_eq!(config["model"]["seq_len"], 20);
    // sasrec's defaults (dropout 0.3, the moving average), recorded with the
    // hyperparameters.
    assert_eq!(config["model"]["dropout"], 0.3);
    assert_eq!(config["train"]["weight_average"], 0.995);
    let mf = ranking_args(dir.path(), "seq-mf", &[]);
    assert_eq!(mf.dropout(), 0.5);
    let off = ranking_args(dir.path(), "sasrec", &["--no-weight-average"]);
    assert_eq!(off.train_config().unwrap().weight_average, None);
    assert_eq!(mf.train_config().unwrap().weight_average, None);
    // A window or a batch of scores that cannot be allocated is an error naming it.
    for (flags, says) in [
        (&["--seq-len", "0"][..], "--seq-len 0"),
        (&["--blocks", "0"][..], "--blocks 0"),
        (&["--heads", "3"][..], "--heads 3"),
    ] {
        let err = run_quietly(&ranking_args(dir.path(), "sasrec", flags))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(says) && err.contains("a multiple of --heads"),
            "{err}"
        );
    }
    let big = ranking_args(dir.path(), "sasrec", &["--batch-size", "1099511627776"]);
    let err = run_quietly(&big).unwrap_err().to_string();
    assert!(
        err.contains("--batch-size 1099511627776") && err.contains("exceed the allocation limit"),
        "{err}"
    );
}

#[test]
fn an_interrupted_ranking_run_resumes_to_the_same_parameters() {
    // sasrec with its weight average: the checkpoint holds the average, the handler's
    // state the raw values training goes on from.
    for (model, sizes) in [
        ("seq-mf", &[][..]),
        ("sasrec", &["--seq-len", "20", "--batch-size", "64"][..]),
    ] {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let (whole, part, checkpoints) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
        let ckpt = checkpoints.to_str().unwrap();
        let args = |dir, epochs, extra: &[&str]| {
            let mut v = vec![
                "--epochs",
                epochs,
                "--no-ranking",
                "--early-stopping-patience",
                "9",
            ];
            v.extend_from_slice(sizes);
            v.extend_from_slice(extra);
            ranking_args(dir, model, &v)
        };
        run_quietly(&args(whole, "4", &[])).unwrap();
        run_quietly(&args(part, "2", &["--checkpoint-dir", ckpt])).unwrap();
        run_quietly(&args(part, "4", &["--checkpoint-dir", ckpt, "--resume"])).unwrap();
        // Negatives are drawn from the batch's pairs and the seed, so the resumed epochs
        // see the same negatives as the uninterrupted run's.
        assert_eq!(saved_params(whole), saved_params(part), "{model}");
    }
}

#[test]
fn a_model_of_the_other_task_or_no_negatives_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let args = small_args(
        dir.path(),
        "2000",
        &["--task", "ranking", "--model", "biased-mf"],
    );
    let err = run_quietly(&args).unwrap_err().to_string();
    assert!(
        err.contains("--model biased-mf is a Rating model")
            && err.contains("sasrec, seq-mf or bpr-mf"),
        "{err}"
    );
    let args = small_args(dir.path(), "2000", &["--model", "seq-mf"]);
    let err = run_quietly(&args).unwrap_err().to_string();
    assert!(err.contains("--task ranking"), "{err}");
    let args = small_args(
        dir.path(),
        "2000",
        &["--task", "ranking", "--model", "seq-mf", "--negatives", "0"],
    );
    let err = run_quietly(&args).unwrap_err().to_string();
    assert!(err.contains("at least 1 negative"), "{err}");
    assert!(!dir.path().join("config.json").exists());
}

#[test]
fn negatives_outside_the_catalogue_or_a_batch_over_the_memory_limit_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let max = u64::MAX.to_string();
    for negatives in ["100", "1000000000", max.as_str()] {
        let argv = [
            "recommender",
            "--synthetic-users",
            "300",
            "--synthetic-items",
            "30",
            "--synthetic-ratings",
            "3000",
            "--min-user-ratings",
            "0",
            "--min-item-ratings",
            "0",
            "--device",
            "cpu",
            "--task",
            "ranking",
            "--model",
            "seq-mf",
            "--negatives",
            negatives,
            "--model-dir",
            dir.path().to_str().unwrap(),
        ];
        let args = cli::Cli::try_parse_from(argv).unwrap().train;
        let err = run_quietly(&args).unwrap_err().to_string();
        assert!(
            err.contains(&format!("--negatives {negatives}"))
                && err.contains("in a catalogue of 30 items")
                && err.contains("fewer than 30"),
            "{err}"
        );
    }
    // 20 negatives of 600 items, but a batch of 2^40 positives: 21 × 2^40 candidates of
    // 8 bytes exceed the memory limit; a batch of usize::MAX overflows.
    for (batch, want) in [
        ("1099511627776", "exceed the allocation limit"),
        ("18446744073709551615", "overflows usize"),
    ] {
        let args = ranking_args(dir.path(), "seq-mf", &["--batch-size", batch]);
        let err = run_quietly(&args).unwrap_err().to_string();
        assert!(
            err.contains(&format!("--negatives 20 with --batch-size {batch}"))
                && err.contains(want),
            "{err}"
        );
    }
    assert!(!dir.path().join("config.json").exists());
}

// `--distributed` in-process: two ranks (threads over a LocalGroup) of batch 32 give the
// one-process run of batch 64 to float rounding (no dropout: masks differ per sample
// position); only rank 0 writes the model folder. scripts/mpi-test.sh runs the same
// over MPI with the binary.
#[test]
fn the_example_trains_data_parallel_as_one_process() {
    use boson::distributed::LocalGroup;
    let extra = |batch: &'static str| {
        [
            "--epochs",
            "2",
            "--dropout",
            "0",
            "--no-ranking",
            "--batch-size",
            batch,
        ]
    };
    let one_dir = tempfile::tempdir().unwrap();
    let (one, _) = run_quietly(&small_args(one_dir.path(), "20000", &extra("64"))).unwrap();
    // Data parallel, then with the tables split over the ranks (--shard-embeddings).
    for shard in [false, true] {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let handles: Vec<_> = LocalGroup::new(2)
            .unwrap()
            .into_iter()
            .zip(&dirs)
            .map(|(c, dir)| {
                let mut args = small_args(dir.path(), "20000", &extra("32"));
                args.shard_embeddings = shard;
                std::thread::spawn(move || {
                    let ranks = train::Ranks(Arc::new(c));
                    pipeline::run_on(&args, Some(ranks), &mut std::io::sink(), std::io::sink())
                        .unwrap()
                        .0
                })
            })
            .collect();
        let reports: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for r in &reports {
            assert!(
                (r.test_rmse - one.test_rmse).abs() < 1e-5 * one.test_rmse,
                "{} vs {}",
                r.test_rmse,
                one.test_rmse
            );
            assert!((r.validation_rmse - one.validation_rmse).abs() < 1e-5);
        }
        assert!(reports[0].reload_identical, "rank 0 saved and reloaded");
        assert!(persist::load(dirs[0].path(), None, Device::Cpu).is_ok());
        assert!(
            !dirs[1].path().join("config.json").exists(),
            "rank 1 wrote nothing"
        );
    }
    // Sharding needs ranks.
    let dir = tempfile::tempdir().unwrap();
    let mut args = small_args(dir.path(), "2000", &extra("32"));
    args.shard_embeddings = true;
    let e = run_quietly(&args).unwrap_err().to_string();
    assert!(e.contains("--distributed"), "{e}");
}
