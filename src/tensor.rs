//! TEMPORARY stand-in for the real `Tensor` (written on main). Only the functions the
//! `data` and `ratings` modules use are here; this file is deleted at merge time.

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
enum Storage {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// Stand-in CPU tensor: a flat buffer plus a shape.
#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Storage,
    shape: Vec<usize>,
}

fn check_len(len: usize, shape: &[usize]) -> Result<()> {
    let expected: usize = shape.iter().product();
    if expected != len {
        return Err(Error::InvalidShape {
            op: "from_vec",
            msg: format!("{len} values do not fill shape {shape:?}"),
        });
    }
    Ok(())
}

impl Tensor {
    /// An f32 tensor from a flat buffer.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        check_len(data.len(), shape)?;
        Ok(Tensor {
            storage: Storage::F32(data),
            shape: shape.to_vec(),
        })
    }

    /// An i64 tensor from a flat buffer.
    pub fn from_vec_i64(data: Vec<i64>, shape: &[usize]) -> Result<Tensor> {
        check_len(data.len(), shape)?;
        Ok(Tensor {
            storage: Storage::I64(data),
            shape: shape.to_vec(),
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values as f32 (error for an i64 tensor).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        match &self.storage {
            Storage::F32(v) => Ok(v.clone()),
            Storage::I64(_) => Err(Error::DTypeMismatch {
                op: "to_vec_f32",
                expected: "f32".into(),
                got: "i64".into(),
            }),
        }
    }

    /// The values as i64 (error for an f32 tensor).
    pub fn to_vec_i64(&self) -> Result<Vec<i64>> {
        match &self.storage {
            Storage::I64(v) => Ok(v.clone()),
            Storage::F32(_) => Err(Error::DTypeMismatch {
                op: "to_vec_i64",
                expected: "i64".into(),
                got: "f32".into(),
            }),
        }
    }
}
