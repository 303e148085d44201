//! The crate's error type. Every fallible public function returns [`Result`].

use std::path::PathBuf;

/// Everything that can go wrong in boson. Each variant carries the offending values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree did not.
    #[error("shape mismatch in {op}: {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// A shape, axis or size argument was not valid for the operation.
    #[error("invalid shape in {op}: {msg}")]
    InvalidShape { op: &'static str, msg: String },
    /// An index (embedding row, label, axis position) was outside its valid range.
    #[error("index {index} out of range for {what} of size {size}")]
    IndexOutOfRange {
        what: String,
        index: i64,
        size: usize,
    },
    /// The tensor's element type does not suit the operation.
    #[error("dtype mismatch in {op}: expected {expected}, got {got}")]
    DTypeMismatch {
        op: &'static str,
        expected: String,
        got: String,
    },
    /// Tensors on different devices met in one operation.
    #[error("device mismatch in {op}: {lhs} vs {rhs}")]
    DeviceMismatch {
        op: &'static str,
        lhs: String,
        rhs: String,
    },
    /// A CUDA device, driver, NVRTC or cuBLAS problem.
    #[error("cuda: {0}")]
    Cuda(String),
    /// A loss or gradient became NaN or infinite.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// A parameter problem: not initialised, missing gradient, bad name.
    #[error("parameter error: {0}")]
    Parameter(String),
    /// Loading a parameter file found differences; every one is listed.
    #[error("parameter file {path} does not match the model:\n  {}", .problems.join("\n  "))]
    ParameterMismatch {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// A file could not be parsed (bad format, truncated, malformed line).
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// An invalid argument or configuration.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A data pipeline failure (dataset `get`, worker, batchify).
    #[error("data: {0}")]
    Data(String),
    /// An I/O error with the path that caused it.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with boson's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
