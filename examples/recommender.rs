//! The worked example: the SageMaker + MXNet Gluon matrix-factorisation recommender with
//! boson. `cargo run --release --example recommender` generates Amazon-layout ratings,
//! explores, prepares, trains, evaluates, saves and reloads; `... -- serve` serves the
//! saved model. `--help` lists every option. The walk-through is in the README.

// The modules live in examples/recommender/ (one job per file); tests/recommender.rs
// includes the same files.
#[path = "recommender/charts.rs"]
mod charts;
#[path = "recommender/cli.rs"]
mod cli;
#[path = "recommender/data.rs"]
mod data;
#[path = "recommender/evaluate.rs"]
mod evaluate;
#[path = "recommender/guard.rs"]
mod guard;
#[path = "recommender/mfblock.rs"]
mod mfblock;
#[path = "recommender/model.rs"]
mod model;
#[path = "recommender/persist.rs"]
mod persist;
#[path = "recommender/pipeline.rs"]
mod pipeline;
#[path = "recommender/rank_models.rs"]
mod rank_models;
#[path = "recommender/sagemaker.rs"]
mod sagemaker;
#[path = "recommender/sasrec.rs"]
mod sasrec;
#[path = "recommender/search.rs"]
mod search;
#[path = "recommender/serve.rs"]
mod serve;
#[path = "recommender/server.rs"]
mod server;
#[path = "recommender/train.rs"]
mod train;

use clap::Parser;

// boson reuses op output buffers itself; mimalloc is still ≈ 5% faster than glibc for the
// rest of a CPU training step's allocations.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc's `purge_delay` option (15 in both its v2 and v3 option enums, which keep
/// their order; `MIMALLOC_PURGE_DELAY` in the environment).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Freed memory stays mapped (purge delay -1, "never"). sasrec's scores over the
    // catalogue change size every batch, so boson's buffer pool cannot keep them, and
    // mimalloc's default hands them back to the kernel, which faults them in zeroed on
    // the next step: 1.2M page faults and 27 of 153 CPU seconds of an ML-1M-sized epoch
    // (BENCHMARKS.md). The price: the process keeps its peak (+0.3 GB there).
    // SAFETY: set before any other thread exists, as mimalloc asks of `mi_option_set`.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = cli::Cli::parse();
    let result = match cli.command {
        Some(cli::Command::Serve(args)) => run_server(&args),
        Some(cli::Command::Train(args)) => sagemaker::run(&args, run_training),
        None => run_training(&cli.train),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_training(args: &cli::TrainArgs) -> boson::Result<()> {
    if args.distributed {
        return run_distributed(args);
    }
    let (report, _) = pipeline::run(args, &mut std::io::stdout(), std::io::stdout())?;
    print_final_line(&report)
}

/// `--distributed`: this process is one rank of `mpirun -np N`; rank 0 prints and saves.
/// An error on any rank ends every rank (MPI_Abort), so none waits for it.
#[cfg(feature = "mpi")]
fn run_distributed(args: &cli::TrainArgs) -> boson::Result<()> {
    use boson::distributed::{Communicator, Mpi};
    let mpi = Arc::new(Mpi::init()?);
    let ranks = train::Ranks(mpi.clone());
    let result = match mpi.rank() {
        0 => pipeline::run_on(args, Some(ranks), &mut std::io::stdout(), std::io::stdout()),
        _ => pipeline::run_on(args, Some(ranks), &mut std::io::sink(), std::io::sink()),
    };
    match result {
        Ok((report, _)) if mpi.rank() == 0 => print_final_line(&report),
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!("error on rank {} of {}: {e}", mpi.rank(), mpi.size());
            mpi.abort(1)
        }
    }
}

#[cfg(not(feature = "mpi"))]
fn run_distributed(_args: &cli::TrainArgs) -> boson::Result<()> {
    Err(boson::Error::InvalidArgument(
        "--distributed needs a build with MPI: cargo build --release --example recommender \
         --features mpi, then mpirun -np N target/release/examples/recommender --distributed"
            .into(),
    ))
}

/// The run's one JSON line for scripts.
fn print_final_line(report: &pipeline::Report) -> boson::Result<()> {
    // A struct, not json!, so the keys keep this order on the line.
    #[derive(serde::Serialize)]
    struct FinalLine<'a> {
        test_rmse: f64,
        validation_rmse: f64,
        baseline_global_mean_rmse: f64,
        baseline_bias_rmse: f64,
        baseline_bias_validation_rmse: f64,
        saved_bias_baseline: bool,
        hit_rate_at_10: Option<f64>,
        ndcg_at_10: Option<f64>,
        baseline_itempop_hit_rate_at_10: Option<f64>,
        train_samples_per_sec: f64,
        epochs: usize,
        model: &'a str,
        device: &'a str,
    }
    let line = serde_json::to_string(&FinalLine {
        test_rmse: report.test_rmse,
        validation_rmse: report.validation_rmse,
        baseline_global_mean_rmse: report.baseline_global_mean_rmse,
        baseline_bias_rmse: report.baseline_bias_rmse,
        baseline_bias_validation_rmse: report.baseline_bias_validation_rmse,
        saved_bias_baseline: report.saved_bias_baseline,
        hit_rate_at_10: report.hit_rate_at_10,
        ndcg_at_10: report.ndcg_at_10,
        baseline_itempop_hit_rate_at_10: report.baseline_itempop_hit_rate_at_10,
        train_samples_per_sec: report.train_samples_per_sec.round(),
        epochs: report.epochs,
        model: &report.model,
        device: &report.device,
    })
    .map_err(|e| boson::Error::InvalidArgument(e.to_string()))?;
    println!("{line}");
    Ok(())
}

fn run_server(args: &cli::ServeArgs) -> boson::Result<()> {
    let device = args.device.resolve()?;
    let loaded = persist::load(&args.model_dir, None, device)?;
    let addr = format!("{}:{}", args.host, args.port);
    // The bound address: with --port 0 the system picked the port.
    let (listener, bound) =
        server::bind(&args.host, args.port).map_err(|e| boson::Error::io(&addr, e))?;
    println!(
        "serving {} ({} users, {} items) on http://{bound}: GET /ping, POST /invocations",
        args.model_dir.display(),
        loaded.config.model.num_users,
        loaded.config.model.num_items
    );
    let mut service = serve::Service::new(loaded);
    service.limits = args.limits();
    server::serve(listener, Arc::new(service)).map_err(|e| boson::Error::io(&addr, e))?;
    println!("serve: shut down");
    Ok(())
}
