//! The SageMaker bring-your-own-container training contract: `recommender train` reads
//! `/opt/ml/input/config/hyperparameters.json` (every value a string, as SageMaker writes
//! them) and the `train` channel folder, writes the model folder to `/opt/ml/model`, and
//! on failure writes the reason to `/opt/ml/output/failure` and exits non-zero. Every
//! path can be moved by a flag or SageMaker's environment variables, so tests run it in
//! a temporary folder.

use crate::cli::{Cli, TrainArgs};
use boson::{Error, Result};
use clap::{Args, Parser};
use std::path::{Path, PathBuf};

/// Hyperparameters the SageMaker SDK adds for its own containers; ignored here.
const SDK_PREFIX: &str = "sagemaker_";

/// `recommender train`: where SageMaker puts things.
#[derive(Clone, Debug, Args)]
pub struct ContainerArgs {
    /// The folder holding hyperparameters.json.
    #[arg(
        long,
        env = "SM_INPUT_CONFIG_DIR",
        default_value = "/opt/ml/input/config"
    )]
    pub config_dir: PathBuf,
    /// The train channel: the rating file (plain or gzip) is the one file in it (hidden
    /// files, whose names start with ".", are ignored).
    #[arg(
        long,
        env = "SM_CHANNEL_TRAIN",
        default_value = "/opt/ml/input/data/train"
    )]
    pub train_channel: PathBuf,
    /// Where the model folder goes (SageMaker uploads it as model.tar.gz).
    #[arg(long, env = "SM_MODEL_DIR", default_value = "/opt/ml/model")]
    pub model_dir: PathBuf,
    /// Where the failure reason goes (`failure`).
    #[arg(long, env = "SM_OUTPUT_DIR", default_value = "/opt/ml/output")]
    pub output_dir: PathBuf,
}

/// The training run's arguments: each hyperparameter `name: "value"` becomes
/// `--name value` (`"true"` a bare flag, `"false"` nothing), then the data and model
/// paths. Validation is the command line's own. Keys starting with `sagemaker_`, which
/// the SageMaker SDK's estimators add (`sagemaker_program`, `sagemaker_region`, ...), are
/// ignored with one line on stderr naming them.
pub fn train_args(args: &ContainerArgs) -> Result<TrainArgs> {
    train_args_logged(args, &mut std::io::stderr())
}

/// [`train_args`], writing the line naming ignored `sagemaker_` keys to `log`.
pub fn train_args_logged(args: &ContainerArgs, log: &mut dyn std::io::Write) -> Result<TrainArgs> {
    let path = args.config_dir.join("hyperparameters.json");
    let hyperparameters: serde_json::Map<String, serde_json::Value> = match path.exists() {
        false => serde_json::Map::new(),
        true => {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            serde_json::from_slice(&bytes).map_err(|e| Error::Format {
                path: path.clone(),
                msg: format!("not a JSON object of hyperparameters: {e}"),
            })?
        }
    };
    let mut argv = vec!["recommender".to_string()];
    let (sdk, hyperparameters): (Vec<_>, Vec<_>) = hyperparameters
        .iter()
        .partition(|(name, _)| name.starts_with(SDK_PREFIX));
    if !sdk.is_empty() {
        let names: Vec<&str> = sdk.iter().map(|(name, _)| name.as_str()).collect();
        // A log line that cannot be written does not stop training.
        let _ = writeln!(
            log,
            "hyperparameters.json: ignoring the SageMaker SDK's keys {}",
            names.join(", ")
        );
    }
    for (name, value) in hyperparameters {
        let name = name.replace('_', "-");
        if name == "data" || name == "model-dir" {
            return Err(Error::InvalidArgument(format!(
                "hyperparameter {name:?} is set by the container (the train channel and \
                 SM_MODEL_DIR), not in hyperparameters.json"
            )));
        }
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match value.as_str() {
            "true" => argv.push(format!("--{name}")),
            "false" => {}
            _ => argv.extend([format!("--{name}"), value]),
        }
    }
    argv.extend(["--data".into(), channel_file(&args.train_channel)?]);
    argv.extend(["--model-dir".into(), args.model_dir.display().to_string()]);
    argv.extend(["--progress".into(), "never".into()]);
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        Error::InvalidArgument(format!("hyperparameters.json: {}", e.to_string().trim()))
    })?;
    Ok(cli.train)
}

/// The one rating file in the channel folder; hidden files (`.DS_Store`, an uploader's
/// `.part` files) do not count.
fn channel_file(dir: &Path) -> Result<String> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let (mut hidden, mut files): (Vec<PathBuf>, Vec<PathBuf>) = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .partition(|p| {
            p.file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        });
    match files.as_slice() {
        [file] => Ok(file.display().to_string()),
        _ => {
            files.sort();
            hidden.sort();
            let names = |paths: &[PathBuf]| {
                let names: Vec<String> = paths
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                names.join(", ")
            };
            let mut msg = format!(
                "the train channel {} must hold exactly one rating file, it holds {}",
                dir.display(),
                files.len()
            );
            if !files.is_empty() {
                msg += &format!(" ({})", names(&files));
            }
            if !hidden.is_empty() {
                msg += &format!(
                    "; hidden files (names starting with \".\") are ignored: {}",
                    names(&hidden)
                );
            }
            Err(Error::Data(msg))
        }
    }
}

/// Runs `train`, writing the reason to `output_dir/failure` when it fails.
pub fn run(args: &ContainerArgs, train: impl FnOnce(&TrainArgs) -> Result<()>) -> Result<()> {
    let result = train_args(args).and_then(|a| train(&a));
    if let Err(e) = &result {
        std::fs::create_dir_all(&args.output_dir).map_err(|io| Error::io(&args.output_dir, io))?;
        boson::io::write_atomic(&args.output_dir.join("failure"), e.to_string().as_bytes())?;
    }
    result
}
