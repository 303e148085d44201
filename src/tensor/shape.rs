//! Shape arithmetic: broadcasting and strided layouts.

use crate::error::{Error, Result};

/// Row-major strides of a contiguous tensor of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (s, d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

/// The shape two operands broadcast to (NumPy rules), or an error naming both shapes.
pub fn broadcast_shape(lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let rank = lhs.len().max(rhs.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let l = if i + lhs.len() >= rank {
            lhs[i + lhs.len() - rank]
        } else {
            1
        };
        let r = if i + rhs.len() >= rank {
            rhs[i + rhs.len() - rank]
        } else {
            1
        };
        out[i] = match (l, r) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                return Err(Error::ShapeMismatch {
                    op: "broadcast",
                    lhs: lhs.to_vec(),
                    rhs: rhs.to_vec(),
                })
            }
        };
    }
    Ok(out)
}

/// A strided view: element `i` (multi-index) lives at `offset + Σ i_d · strides_d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl Layout {
    /// The layout of a contiguous tensor.
    pub fn contiguous(shape: &[usize]) -> Layout {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// The layout of a contiguous tensor of `shape` read as if broadcast to `target`
    /// (stride 0 along broadcast dimensions). `target` must be a valid broadcast of `shape`.
    pub fn broadcast_to(shape: &[usize], target: &[usize]) -> Layout {
        let own = contiguous_strides(shape);
        let lead = target.len() - shape.len();
        let strides = (0..target.len())
            .map(|i| {
                if i < lead || shape[i - lead] == 1 && target[i] != 1 {
                    0
                } else {
                    own[i - lead]
                }
            })
            .collect();
        Layout {
            shape: target.to_vec(),
            strides,
            offset: 0,
        }
    }

    /// The layout of a contiguous tensor of `shape` with its axes permuted.
    pub fn permuted(shape: &[usize], perm: &[usize]) -> Layout {
        let own = contiguous_strides(shape);
        Layout {
            shape: perm.iter().map(|&p| shape[p]).collect(),
            strides: perm.iter().map(|&p| own[p]).collect(),
            offset: 0,
        }
    }

    /// Whether the view reads its elements in plain memory order.
    pub fn is_contiguous(&self) -> bool {
        self.strides == contiguous_strides(&self.shape)
    }

    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The number of elements of `shape`, or an error naming the shape when the product does
/// not fit in `usize`.
pub fn checked_elem_count(shape: &[usize]) -> Result<usize> {
    if shape.contains(&0) {
        return Ok(0);
    }
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "shape {shape:?} has more elements than this machine can address"
            ))
        })
}
