//! Printing tensors with their values, as `print(x)` does in NumPy, PyTorch and Gluon:
//! nested brackets, long axes elided to their first and last three entries.

use super::{DType, Tensor};
use std::fmt;

/// Axes longer than this print their first and last `EDGE` entries around `...`.
const MAX_SHOWN: usize = 6;
const EDGE: usize = 3;

impl fmt::Display for Tensor {
    /// `[[1, 2], [3, 4]] <Tensor [2, 2] f32 @cpu>`; values of a GPU tensor are copied to
    /// the host to print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_values(self, f)?;
        write!(
            f,
            " <Tensor {:?} {} @{}>",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor(")?;
        write_values(self, f)?;
        write!(
            f,
            ", shape={:?}, dtype={:?}, device={})",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}

fn write_values(t: &Tensor, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let values: Result<Vec<String>, _> = match t.dtype() {
        DType::I64 => t
            .to_vec_i64()
            .map(|v| v.iter().map(|x| x.to_string()).collect()),
        _ => t
            .to_vec_f32()
            .map(|v| v.iter().map(|x| format!("{x:.4}")).collect()),
    };
    match values {
        Ok(v) => write_axis(f, &v, t.shape()),
        Err(e) => write!(f, "<values unreadable: {e}>"),
    }
}

/// Writes `values` (row-major, of `shape`) as nested lists.
fn write_axis(f: &mut fmt::Formatter<'_>, values: &[String], shape: &[usize]) -> fmt::Result {
    let Some((&n, rest)) = shape.split_first() else {
        return write!(f, "{}", values.first().map_or("", String::as_str));
    };
    let inner: usize = rest.iter().product();
    write!(f, "[")?;
    for i in 0..n {
        if n > MAX_SHOWN && i == EDGE {
            write!(f, "..., ")?;
        }
        if n > MAX_SHOWN && (EDGE..n - EDGE).contains(&i) {
            continue;
        }
        write_axis(f, &values[i * inner..(i + 1) * inner], rest)?;
        if i + 1 < n {
            write!(f, ", ")?;
        }
    }
    write!(f, "]")
}
