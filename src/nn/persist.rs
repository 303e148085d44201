//! Saving and loading a block's parameters (Gluon's `save_parameters` / `load_parameters`).

use super::parameter::ParameterDict;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::io;
use std::path::Path;

/// Options for [`ParameterDict::load`], with Gluon's names.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Tolerate parameters of the model that the file lacks (they keep their values).
    pub allow_missing: bool,
    /// Tolerate tensors in the file that the model lacks.
    pub ignore_extra: bool,
    /// Where loaded parameters live when not yet initialised (default: CPU).
    pub device: Option<Device>,
}

impl ParameterDict {
    /// Writes every initialised parameter to a safetensors file (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut tensors = Vec::with_capacity(self.len());
        for (name, p) in self.iter() {
            tensors.push((name.to_string(), p.data()?));
        }
        io::save_tensors(path.as_ref(), &tensors, None)
    }

    /// Loads parameters by name. Every difference (missing, extra, wrong shape, wrong
    /// dtype) is collected and reported in one `Error::ParameterMismatch`; nothing is
    /// changed unless the whole file fits.
    pub fn load(&self, path: impl AsRef<Path>, opts: LoadOptions) -> Result<()> {
        let path = path.as_ref();
        let (tensors, _) = io::load_tensors(path)?;
        let mut problems = Vec::new();
        let mut matched = Vec::new();
        for (name, t) in &tensors {
            match self.get(name) {
                None if opts.ignore_extra => {}
                None => problems.push(format!("extra parameter '{name}' in file (model has none)")),
                Some(p) => {
                    let shape = p.shape();
                    let fits = shape.len() == t.rank()
                        && shape.iter().zip(t.shape()).all(|(&a, &b)| a == 0 || a == b);
                    if !fits {
                        problems.push(format!(
                            "parameter '{name}': file shape {:?}, model shape {shape:?}",
                            t.shape()
                        ));
                    } else if p.dtype() != t.dtype() {
                        problems.push(format!(
                            "parameter '{name}': file dtype {}, model dtype {}",
                            t.dtype(),
                            p.dtype()
                        ));
                    } else {
                        matched.push((p.clone(), t.clone()));
                    }
                }
            }
        }
        if !opts.allow_missing {
            for name in self.names() {
                if !tensors.iter().any(|(n, _)| *n == name) {
                    problems.push(format!("missing parameter '{name}' (not in file)"));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::ParameterMismatch {
                path: path.to_path_buf(),
                problems,
            });
        }
        let device = opts.device.unwrap_or(Device::Cpu);
        for (p, t) in matched {
            if p.is_initialized() {
                p.set_data(&t)?;
            } else {
                p.set_data(&t.to_device(device)?)?;
            }
        }
        Ok(())
    }
}
