//! Tensor files in the safetensors format, written atomically, and folders replaced as a
//! whole.
//!
//! A file is written to a temporary name in the same folder, flushed to disk, then renamed
//! over the real name, so a crash mid-write never leaves a half file under that name; a
//! folder is written beside its old self and swapped in ([`write_folder_atomic`]), one
//! save at a time. [`file_sha256`] and [`verify_file_sha256`] record and check what a
//! file held when it was written.

mod folder;
mod hash;

pub use folder::{existing_folder, write_folder_atomic, write_folder_atomic_observed, SaveStep};
pub use hash::{file_sha256, json_sha256_without, sha256_hex, verify_file_sha256};

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Free-form string metadata stored in a file's header.
pub type Metadata = HashMap<String, String>;

fn to_st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::I64 => Dtype::I64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
    }
}

fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    Ok(match t.dtype() {
        DType::F32 => t
            .to_vec_f32()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I64 => t
            .to_vec_i64()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => t
            .to_vec_f32()?
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        DType::BF16 => t
            .to_vec_f32()?
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename. Temporary files that
/// killed writes of the same `path` left behind are removed first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a file path", path.display())))?;
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    // Temporary files of writes that were killed are removed by the next write.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Saves named tensors (from any device) and metadata to `path`.
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<Metadata>,
) -> Result<()> {
    let mut bufs = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        bufs.push((
            name.clone(),
            t.dtype(),
            t.shape().to_vec(),
            tensor_bytes(t)?,
        ));
    }
    let mut views = Vec::with_capacity(bufs.len());
    for (name, dtype, shape, bytes) in &bufs {
        let view = TensorView::new(to_st_dtype(*dtype), shape.clone(), bytes).map_err(|e| {
            Error::Format {
                path: path.to_path_buf(),
                msg: format!("tensor {name}: {e}"),
            }
        })?;
        views.push((name.clone(), view));
    }
    let bytes = safetensors::serialize(views, metadata).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Reads every tensor (onto the CPU) and the metadata of a safetensors file. A truncated
/// or foreign file is an `Error::Format` naming the path.
pub fn load_tensors(path: &Path) -> Result<(Vec<(String, Tensor)>, Metadata)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: String| Error::Format {
        path: path.to_path_buf(),
        msg,
    };
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("unreadable header ({e})")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names {
        let view = st
            .tensor(&name)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        let shape = view.shape().to_vec();
        let data = view.data();
        let t = match view.dtype() {
            Dtype::F32 => {
                let mut v = crate::tensor::pool::for_parameter(data.len() / 4);
                v.extend(
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                Tensor::from_vec(v, &shape)?
            }
            Dtype::I64 => Tensor::from_vec_i64(
                data.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                &shape,
            )?,
            Dtype::F16 => Tensor::from_vec_f16(
                data.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                &shape,
            )?,
            Dtype::BF16 => Tensor::from_vec_bf16(
                data.chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                &shape,
            )?,
            other => {
                return Err(bad(format!(
                    "tensor {name} has unsupported dtype {other:?}"
                )))
            }
        };
        out.push((name, t));
    }
    Ok((out, metadata))
}
