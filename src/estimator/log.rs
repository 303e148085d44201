//! Where the estimator's log lines go.

use crate::error::{Error, Result};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// The estimator's log destination: stderr by default, or any writer.
pub(crate) struct LogSink {
    writer: Box<dyn Write + Send>,
    terminal: bool,
}

impl LogSink {
    /// stderr; live progress lines are used when it is a terminal.
    pub(crate) fn stderr() -> LogSink {
        LogSink {
            writer: Box::new(std::io::stderr()),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Any writer; never treated as a terminal.
    pub(crate) fn writer(w: impl Write + Send + 'static) -> LogSink {
        LogSink {
            writer: Box::new(w),
            terminal: false,
        }
    }

    pub(crate) fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Writes `text` as is (no newline added) and flushes.
    pub(crate) fn write(&mut self, text: &str) -> Result<()> {
        self.writer
            .write_all(text.as_bytes())
            .and_then(|_| self.writer.flush())
            .map_err(|e| Error::io("<estimator log>", e))
    }
}

/// A clonable in-memory log writer: give a clone to
/// [`EstimatorBuilder::log_writer`](super::EstimatorBuilder::log_writer) and read what
/// was logged with [`contents`](Self::contents) (tests, notebooks, GUIs).
#[derive(Clone, Default, Debug)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far.
    pub fn contents(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
