//! In-place row updates of a table and its per-row state: the primitive an optimizer
//! step runs on, with no notion of optimizers here. Either every row is updated (a dense
//! gradient) or only the listed rows (a row-sparse gradient: rows absent from it keep
//! their values and state, as MXNet's `lazy_update=True`).
//!
//! On the CPU the caller's [`RowKernel`] runs row by row inside a loop compiled for the
//! widest vectors the CPU has; on CUDA the fused kernel of `kernels/optim.cu` that the
//! caller names in a [`DeviceKernel`] runs.

use super::storage::{CudaStorage, Storage};
use super::{prefetch, vectorized, Kernel, Tensor};
use crate::error::{Error, Result};

/// The per-row math of an update, for the CPU: `row` updates one row `w` of the table,
/// its state rows (`None` past [`RowKernel::num_states`], at most 3), from one gradient
/// row `g`. Implementations mark `row` `#[inline(always)]`, so that it is compiled into
/// the vectorised loop.
pub trait RowKernel: Copy + Send + Sync {
    /// How many state tensors (each the table's shape) the update reads and writes.
    fn num_states(&self) -> usize;
    /// Updates one row.
    fn row(self, w: &mut [f32], states: [Option<&mut [f32]>; 3], g: &[f32]);
}

/// A fused CUDA update: the name of a kernel of `kernels/optim.cu` and its scalars.
/// Every kernel there has the same signature (the table's rows, the gradient, up to three
/// state tensors and eight scalars), so this layer launches any of them without knowing
/// what it computes; each optimizer's file says which kernel it runs and what its
/// scalars are, in the order that kernel reads them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceKernel {
    /// The kernel's name in `kernels/optim.cu` (`adam_update_f32`).
    pub name: &'static str,
    /// Its scalars `p0..p7`; unused ones are 0.
    pub scalars: [f32; 8],
}

impl DeviceKernel {
    /// Kernel `name` with its first `N` (at most 8) scalars.
    pub fn new<const N: usize>(name: &'static str, scalars: [f32; N]) -> DeviceKernel {
        const { assert!(N <= 8, "a row-update kernel takes at most 8 scalars") };
        let mut all = [0.0; 8];
        all[..N].copy_from_slice(&scalars);
        DeviceKernel { name, scalars: all }
    }
}

impl Tensor {
    /// Updates this `[rows, dim]` table (or any f32 tensor, as one row per `dim` values)
    /// and its `states` in place from `grad`: with `rows = None`, `grad` has the table's
    /// shape and every row is updated; with `rows` (i64 `[n]`), `grad` is `[n, dim]` and
    /// its row `k` updates table row `rows[k]` (negative entries are padding and skipped).
    /// On the CPU `kernel` runs; on CUDA `device` does (an error when it is `None`).
    /// Sizes, row indices and devices are checked before anything changes.
    pub fn update_rows<K: RowKernel>(
        &self,
        states: &[Tensor],
        grad: &Tensor,
        rows: Option<&Tensor>,
        kernel: K,
        device: Option<&DeviceKernel>,
    ) -> Result<()> {
        let dim = match rows {
            Some(_) => self.shape().get(1).copied().unwrap_or(1),
            None => self.elem_count(),
        };
        if states.len() < kernel.num_states() || states.len() > 3 {
            return Err(Error::InvalidArgument(format!(
                "update_rows: the update keeps {} state tensors (at most 3), got {}",
                kernel.num_states(),
                states.len()
            )));
        }
        if let Some(bad) = states.iter().find(|s| s.elem_count() != self.elem_count()) {
            return Err(Error::ShapeMismatch {
                op: "update_rows state vs table",
                lhs: bad.shape().to_vec(),
                rhs: self.shape().to_vec(),
            });
        }
        let mut guards: Vec<_> = states.iter().map(|s| s.storage_mut()).collect();
        let mut refs: Vec<&mut Storage> = guards.iter_mut().map(|g| &mut **g).collect();
        let mut w = self.storage_mut();
        let g = grad.storage();
        let r = rows.map(|r| r.storage());
        match &mut *w {
            Storage::Cpu(wc) => {
                let wv = wc.f32_mut("update_rows")?;
                let mut sv: Vec<&mut [f32]> = Vec::with_capacity(refs.len());
                for s in refs.iter_mut() {
                    sv.push(s.cpu_f32_mut("update_rows state")?);
                }
                let gv = g.cpu_f32("update_rows gradient")?;
                let rv = match &r {
                    None => None,
                    Some(r) => Some(r.cpu_i64("update_rows rows")?),
                };
                cpu_update(kernel, wv, &mut sv, gv, rv, dim)
            }
            Storage::Cuda(wc) => {
                let device = device.ok_or_else(|| {
                    Error::Cuda(
                        "update_rows: this update has no CUDA kernel; write it with tensor ops \
                         to run it on a GPU"
                            .into(),
                    )
                })?;
                CudaStorage::update_rows(device, wc, &mut refs, &g, r.as_deref(), dim)
            }
        }
    }
}

/// The CPU update: pairs of (table row, gradient row) checked, then the sweep.
fn cpu_update<K: RowKernel>(
    kernel: K,
    w: &mut [f32],
    states: &mut [&mut [f32]],
    g: &[f32],
    rows: Option<&[i64]>,
    dim: usize,
) -> Result<()> {
    let n_rows = w.len() / dim.max(1);
    let pairs: Vec<(usize, usize)> = match rows {
        None => {
            if g.len() != w.len() {
                return Err(Error::ShapeMismatch {
                    op: "update_rows gradient vs table",
                    lhs: vec![g.len()],
                    rhs: vec![w.len()],
                });
            }
            (0..n_rows).map(|r| (r, r)).collect()
        }
        Some(rows) => {
            if g.len() != rows.len() * dim {
                return Err(Error::ShapeMismatch {
                    op: "row-sparse gradient values vs rows",
                    lhs: vec![g.len()],
                    rhs: vec![rows.len(), dim],
                });
            }
            let mut pairs = Vec::with_capacity(rows.len());
            for (src, &r) in rows.iter().enumerate() {
                if r < 0 {
                    continue;
                }
                if r as usize >= n_rows {
                    return Err(Error::IndexOutOfRange {
                        what: "row-sparse gradient rows".into(),
                        index: r,
                        size: n_rows,
                    });
                }
                pairs.push((r as usize, src));
            }
            pairs
        }
    };
    vectorized(Sweep {
        pairs: &pairs,
        dim,
        w,
        states,
        g,
        kernel,
    });
    Ok(())
}

/// The update of every (table row, gradient row) pair: the loop `vectorized` compiles
/// for the CPU's widest vectors.
struct Sweep<'a, 's, K> {
    pairs: &'a [(usize, usize)],
    dim: usize,
    w: &'a mut [f32],
    states: &'a mut [&'s mut [f32]],
    g: &'a [f32],
    kernel: K,
}

impl<K: RowKernel> Kernel for Sweep<'_, '_, K> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Sweep {
            pairs,
            dim,
            w,
            states,
            g,
            kernel,
        } = self;
        for (k, &(d, s)) in pairs.iter().enumerate() {
            // Lazy updates touch scattered rows of large tables: fetch a few rows ahead
            // so the loads overlap instead of waiting on each row in turn.
            if let Some(&(ahead, _)) = pairs.get(k + PREFETCH_AHEAD) {
                let r = ahead * dim..(ahead + 1) * dim;
                prefetch(&w[r.clone()]);
                for st in states.iter() {
                    prefetch(&st[r.clone()]);
                }
            }
            let (lo, hi) = (d * dim, (d + 1) * dim);
            let mut st = states.iter_mut();
            let rows = std::array::from_fn(|_| st.next().map(|x| &mut x[lo..hi]));
            kernel.row(&mut w[lo..hi], rows, &g[s * dim..(s + 1) * dim]);
        }
    }
}

/// How many rows ahead of the update the rows' cache lines are requested.
const PREFETCH_AHEAD: usize = 8;
