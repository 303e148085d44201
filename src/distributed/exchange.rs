//! Gradients summed over ranks: dense ones all-reduced in fused buckets (as PyTorch DDP
//! and Horovod fuse small tensors), row-sparse ones all-gathered as indices and rows and
//! merged like one process merges them.

use super::Communicator;
use crate::autograd::RowSparse;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// What one rank has sent through collectives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes this rank contributed (gradient values, row indices and rows).
    pub bytes: u64,
    /// What its row-sparse gradients would have cost densified (whole tables), plus the
    /// dense bytes: the traffic without sparse exchange.
    pub densified_bytes: u64,
}

/// `values` summed element-wise over the ranks, in f64 (metric sums and counts, exact
/// where f32 would round): each rank's bits gathered, added in rank order.
pub fn all_reduce_sum_f64(comm: &dyn Communicator, values: &mut [f64]) -> Result<()> {
    let bits: Vec<i64> = values.iter().map(|v| v.to_bits() as i64).collect();
    let all = comm.all_gather_i64(&bits)?;
    if let Some((r, v)) = all
        .iter()
        .enumerate()
        .find(|(_, v)| v.len() != values.len())
    {
        return Err(Error::InvalidArgument(format!(
            "all_reduce_sum_f64: rank {r} passed {} values, rank {} passed {}",
            v.len(),
            comm.rank(),
            values.len()
        )));
    }
    values.fill(0.0);
    for v in &all {
        for (acc, &b) in values.iter_mut().zip(v) {
            *acc += f64::from_bits(b as u64);
        }
    }
    Ok(())
}

/// `tensors` summed over the ranks (same shapes and devices), fused into buckets of at
/// most `bucket_values` f32 values per all-reduce (a larger tensor goes alone).
pub fn all_reduce_dense(
    comm: &dyn Communicator,
    tensors: &[Tensor],
    bucket_values: usize,
    traffic: &mut Traffic,
) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(tensors.len());
    let mut start = 0;
    while start < tensors.len() {
        // The bucket: tensors[start..end].
        let mut end = start;
        let mut len = 0;
        while end < tensors.len()
            && (end == start || len + tensors[end].elem_count() <= bucket_values)
        {
            len += tensors[end].elem_count();
            end += 1;
        }
        let mut bucket = Vec::with_capacity(len);
        for t in &tensors[start..end] {
            bucket.extend(t.to_vec_f32()?);
        }
        comm.all_reduce_sum(&mut bucket)?;
        traffic.bytes += 4 * len as u64;
        traffic.densified_bytes += 4 * len as u64;
        let mut at = 0;
        for t in &tensors[start..end] {
            let n = t.elem_count();
            let summed = Tensor::from_vec(bucket[at..at + n].to_vec(), t.shape())?;
            out.push(summed.to_device(t.device())?);
            at += n;
        }
        start = end;
    }
    Ok(out)
}

/// The sum over the ranks of each rank's row-sparse gradient of one table: every rank's
/// indices and rows, gathered (never densified), then rows sharing an index summed.
pub fn all_gather_rows(
    comm: &dyn Communicator,
    grad: &RowSparse,
    traffic: &mut Traffic,
) -> Result<RowSparse> {
    let dim = grad.shape.get(1).copied().unwrap_or(1);
    let device = grad.values.device();
    let mut indices = grad.indices.to_vec_i64()?;
    let mut rows = grad.values.to_vec_f32()?;
    // GPU gradients end in -1 padding rows: only the real ones travel.
    if indices.contains(&-1) {
        let keep: Vec<usize> = (0..indices.len()).filter(|&k| indices[k] >= 0).collect();
        rows = keep
            .iter()
            .flat_map(|&k| rows[k * dim..(k + 1) * dim].iter().copied())
            .collect();
        indices = keep.iter().map(|&k| indices[k]).collect();
    }
    let all_indices = comm.all_gather_i64(&indices)?;
    let all_rows = comm.all_gather_f32(&rows)?;
    traffic.bytes += 8 * indices.len() as u64 + 4 * rows.len() as u64;
    traffic.densified_bytes += 4 * grad.shape.iter().product::<usize>() as u64;
    for (r, (i, v)) in all_indices.iter().zip(&all_rows).enumerate() {
        if v.len() != i.len() * dim {
            return Err(Error::InvalidArgument(format!(
                "row-sparse gradient from rank {r}: {} indices but {} values (rows of {dim})",
                i.len(),
                v.len()
            )));
        }
    }
    let indices: Vec<i64> = all_indices.concat();
    let rows: Vec<f32> = all_rows.concat();
    let k = indices.len();
    let indices = Tensor::from_vec_i64(indices, &[k])?.to_device(device)?;
    let rows = Tensor::from_vec(rows, &[k, dim])?.to_device(device)?;
    Tensor::coalesce_rows(&indices, &rows, grad.shape.clone())
}
