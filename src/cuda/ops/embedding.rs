//! Launchers for `kernels/embedding.cu`: the embedding gather (forward) and the
//! scatter-add into a row-sparse gradient (backward), sorted or atomic.

use super::launch::{
    alloc_uninit, alloc_zeros, cfg_for, check_error_cell, check_len, error_cell, func, invalid,
    launch,
};
use crate::cuda::device::CudaDevice;
use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};

/// Table element types [`gather`] supports: f32, `half::f16`, `half::bf16`.
pub trait GatherElem: DeviceRepr {
    #[doc(hidden)]
    const HALF_KIND: Option<i32>;
}
impl GatherElem for f32 {
    const HALF_KIND: Option<i32> = None;
}
impl GatherElem for half::f16 {
    const HALF_KIND: Option<i32> = Some(0);
}
impl GatherElem for half::bf16 {
    const HALF_KIND: Option<i32> = Some(1);
}

/// Embedding lookup: `out[r, :] = table[idx[r], :]` as f32, `table` `[rows, dim]`,
/// `out` `[idx.len(), dim]`. Vectorised (16-byte stores) when `dim % 4 == 0`. An index
/// outside `[0, rows)` gives `Error::IndexOutOfRange` (its output row is zeros).
/// Synchronises to check.
pub fn gather<T: GatherElem>(
    dev: &CudaDevice,
    table: &CudaSlice<T>,
    dim: usize,
    idx: &CudaSlice<i64>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    gather_async(dev, table, dim, idx, out)?.check(dev)
}

/// A pending index check: [`IndexCheck::check`] synchronises and reports a bad index.
/// Lets a caller queue several launches (or time a kernel) before paying for the sync.
#[must_use = "an index check does nothing until `check` is called"]
pub struct IndexCheck {
    cell: CudaSlice<i64>,
    what: &'static str,
    size: usize,
}

impl IndexCheck {
    /// Waits for the kernel and returns `Error::IndexOutOfRange` if it saw a bad index.
    pub fn check(self, dev: &CudaDevice) -> Result<()> {
        check_error_cell(dev, self.cell, self.what, self.size)
    }
}

/// [`gather`] without the final synchronisation: the index check is returned instead.
pub fn gather_async<T: GatherElem>(
    dev: &CudaDevice,
    table: &CudaSlice<T>,
    dim: usize,
    idx: &CudaSlice<i64>,
    out: &mut CudaSlice<f32>,
) -> Result<IndexCheck> {
    if dim == 0 || !table.len().is_multiple_of(dim) {
        return Err(invalid(format!(
            "gather: table of {} elements is not [rows, {dim}]",
            table.len()
        )));
    }
    let rows = table.len() / dim;
    let n = idx.len();
    check_len("gather output", out.len(), n * dim)?;
    let cell = error_cell(dev)?;
    let check = IndexCheck {
        cell,
        what: "embedding row",
        size: rows,
    };
    if n == 0 {
        return Ok(check);
    }
    let (n64, r64, d64) = (n as i64, rows as i64, dim as i64);
    let vec4 = dim.is_multiple_of(4);
    let work = if vec4 { n * dim / 4 } else { n * dim } as u64;
    let name = match (T::HALF_KIND, vec4) {
        (None, true) => "gather_f32_vec4",
        (None, false) => "gather_f32_scalar",
        (Some(_), true) => "gather_half_vec4",
        (Some(_), false) => "gather_half_scalar",
    };
    let f = func(dev, "embedding.cu", name)?;
    let mut l = dev.stream().launch_builder(&f);
    let kind = T::HALF_KIND.unwrap_or(0);
    if T::HALF_KIND.is_some() {
        l.arg(&kind);
    }
    l.arg(&n64)
        .arg(&r64)
        .arg(&d64)
        .arg(idx)
        .arg(table)
        .arg(out)
        .arg(&check.cell);
    // The vectorised kernels handle GATHER_ILP (4) pieces per thread.
    let threads = if vec4 { work.div_ceil(4) } else { work };
    launch(l, cfg_for(threads), name)?;
    Ok(check)
}

/// A row-sparse gradient as produced by [`scatter_add`]. Capacity is `n = idx.len()` so
/// no host sync is needed to size it: `unique[0..k]` holds the distinct row ids
/// (ascending in [`ScatterMode::Sorted`], in no fixed order in [`ScatterMode::Atomic`])
/// and `unique[k..n] = -1`; `summed` is `[n, dim]` with row `s` the sum of all input
/// rows whose index is `unique[s]` (rows `k..n` are 0); `count[0] = k`.
pub struct RowSparse {
    pub unique: CudaSlice<i64>,
    pub summed: CudaSlice<f32>,
    pub count: CudaSlice<i64>,
}

/// How [`scatter_add`] sums rows that share an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScatterMode {
    /// Sort, segment, then sum each row's inputs in position order (no float atomics):
    /// two runs give bitwise-identical results, unique rows come out ascending, and hot
    /// (Zipf-skewed) rows are split into 32-row chunks instead of serialising. One
    /// launch up to 2048 indices (a training batch), about 18 at 64k.
    Sorted,
    /// Float atomics: three launches. The first block to claim a row stores its share,
    /// the others add theirs atomically, so with spread-out indices the gradient is
    /// read once and written once. Unique rows in no fixed order; sums depend on the
    /// order the atomics land. Duplicates within a block are pre-summed in shared
    /// memory, so a hot row costs one atomic per block of 256 indices. Keeps a
    /// 4-byte-per-row map of the largest table on the device between calls.
    Atomic,
}

impl ScatterMode {
    /// The mode [`crate::device::set_deterministic`] asks for.
    pub fn current() -> ScatterMode {
        if crate::device::deterministic() {
            ScatterMode::Sorted
        } else {
            ScatterMode::Atomic
        }
    }
}

/// Keys per shared-memory sort tile; must match SORT_TILE in embedding.cu.
const SORT_TILE: usize = 2048;

/// The sorted scatter-add of at most SORT_TILE indices runs in one block when the
/// gradient has at most this many elements (2 MB; 2048 rows of 256).
const ONE_BLOCK_MAX_ELEMS: usize = 1 << 19;

/// Scatter-add of `rows` (`[n, dim]`) by `idx` (`[n]`, each in `[0, table_rows)`) into a
/// [`RowSparse`] gradient. An out-of-range index gives `Error::IndexOutOfRange` and its
/// row is left out; synchronises to check.
pub fn scatter_add(
    dev: &CudaDevice,
    mode: ScatterMode,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
) -> Result<RowSparse> {
    let (out, check) = scatter_add_async(dev, mode, idx, rows, dim, table_rows)?;
    check.check(dev)?;
    Ok(out)
}

/// [`scatter_add`] without the final synchronisation: the index check is returned instead.
pub fn scatter_add_async(
    dev: &CudaDevice,
    mode: ScatterMode,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
) -> Result<(RowSparse, IndexCheck)> {
    let n = idx.len();
    if dim == 0 {
        return Err(invalid("scatter-add with dim 0".into()));
    }
    check_len("scatter-add rows", rows.len(), n * dim)?;
    // Sorted: keys pack (row id << 32 | position) into a u64. Atomic: slots are u32
    // (slot + 1 in the map, u32::MAX while claiming).
    if table_rows > i32::MAX as usize || n > u32::MAX as usize / 2 {
        return Err(invalid(format!(
            "scatter-add supports tables below 2^31 rows and fewer than 2^31 indices (got {table_rows} rows, {n} indices)"
        )));
    }
    let check = IndexCheck {
        cell: error_cell(dev)?,
        what: "embedding row",
        size: table_rows,
    };
    if n == 0 {
        let empty = RowSparse {
            unique: alloc_zeros::<i64>(dev, 0)?,
            summed: alloc_zeros::<f32>(dev, 0)?,
            count: alloc_zeros::<i64>(dev, 1)?,
        };
        return Ok((empty, check));
    }
    let out = match mode {
        ScatterMode::Sorted => sorted_scatter(dev, idx, rows, dim, table_rows, &check)?,
        ScatterMode::Atomic => atomic_scatter(dev, idx, rows, dim, table_rows, &check)?,
    };
    Ok((out, check))
}

/// [`ScatterMode::Sorted`] for `n > 0` valid-sized inputs.
fn sorted_scatter(
    dev: &CudaDevice,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
    check: &IndexCheck,
) -> Result<RowSparse> {
    let n = idx.len();
    // No buffer below is zeroed first (that was 14 memsets, ~17 MB of writes at dim 64):
    // each is written before it is read. keys: build_keys writes all `padded`; flags,
    // counts: one thread per slot; scan outputs and block sums: every slot; unique and
    // count: coalesce_segments (ids below k, -1 from k); seg_start: entries 0..=k, the
    // only ones read; chunk_seg and partial: the chunks below num_chunks, the only ones
    // read; summed: chunk_sum writes single-chunk segments, seg_finish the rest and
    // zeroes rows k..n.
    let mut unique = alloc_uninit::<i64>(dev, n)?;
    let mut summed = alloc_uninit::<f32>(dev, n * dim)?;
    let mut count = alloc_uninit::<i64>(dev, 1)?;
    let s = dev.stream();
    let (n64, d64, tr64) = (n as i64, dim as i64, table_rows as i64);
    let vec4 = dim.is_multiple_of(4);
    // sum_s ceil(len_s/32) <= k + n/32 <= n + n/32: a bound known without a sync.
    let cap = n + n / 32 + 1;

    // A batch's worth of indices: the whole pipeline in one block, one launch (bitwise
    // the same results). Past ONE_BLOCK_MAX_ELEMS one SM would move too many bytes.
    if n <= SORT_TILE && n * dim <= ONE_BLOCK_MAX_ELEMS {
        let mut partial = alloc_uninit::<f32>(dev, cap * dim)?;
        let name = if vec4 {
            "coalesce_one_block_vec4"
        } else {
            "coalesce_one_block_scalar"
        };
        let f = func(dev, "embedding.cu", name)?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&d64)
            .arg(&tr64)
            .arg(idx)
            .arg(rows)
            .arg(&mut unique)
            .arg(&mut summed)
            .arg(&mut count)
            .arg(&mut partial)
            .arg(&check.cell);
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: ((SORT_TILE / 2) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        launch(l, one, name)?;
        return Ok(RowSparse {
            unique,
            summed,
            count,
        });
    }

    // 1. keys, padded to a power of two of at least one tile.
    let padded = n.next_power_of_two().max(SORT_TILE);
    let p64 = padded as i64;
    let mut keys = alloc_uninit::<u64>(dev, padded)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_build_keys")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&p64)
            .arg(&tr64)
            .arg(idx)
            .arg(&mut keys)
            .arg(&check.cell);
        launch(l, cfg_for(padded as u64), "coalesce_build_keys")?;
    }

    // 2. sort: tiles in shared memory, then merge passes between two buffers.
    let tile_cfg = LaunchConfig {
        grid_dim: ((padded / SORT_TILE) as u32, 1, 1),
        block_dim: ((SORT_TILE / 2) as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    {
        let f = func(dev, "embedding.cu", "sort_tiles")?;
        let mut l = s.launch_builder(&f);
        l.arg(&mut keys);
        launch(l, tile_cfg, "sort_tiles")?;
    }
    if padded > SORT_TILE {
        const MERGE_ITEMS: usize = 8; // matches embedding.cu
        let merge = func(dev, "embedding.cu", "merge_runs")?;
        let mut other = alloc_uninit::<u64>(dev, padded)?;
        let mut run = SORT_TILE;
        while run < padded {
            let run64 = run as i64;
            let mut l = s.launch_builder(&merge);
            l.arg(&keys).arg(&mut other).arg(&p64).arg(&run64);
            launch(l, cfg_for((padded / MERGE_ITEMS) as u64), "merge_runs")?;
            std::mem::swap(&mut keys, &mut other);
            run *= 2;
        }
    }

    // 3. segments: head flags -> exclusive scan -> unique ids and segment starts.
    let mut flags = alloc_uninit::<u32>(dev, n)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_head_flags")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64).arg(&keys).arg(&mut flags);
        launch(l, cfg_for(n as u64), "coalesce_head_flags")?;
    }
    let mut seg_id = alloc_uninit::<u32>(dev, n)?;
    let mut num_segments = alloc_uninit::<u32>(dev, 1)?;
    exclusive_scan(dev, &flags, &mut seg_id, &mut num_segments)?;
    let mut seg_start = alloc_uninit::<u32>(dev, n + 1)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_segments")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&keys)
            .arg(&flags)
            .arg(&seg_id)
            .arg(&num_segments)
            .arg(&mut unique)
            .arg(&mut seg_start)
            .arg(&mut count);
        launch(l, cfg_for(n as u64), "coalesce_segments")?;
    }

    // 4. chunks of <= 32 rows per segment.
    let mut counts = alloc_uninit::<u32>(dev, n)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_chunk_counts")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&num_segments)
            .arg(&seg_start)
            .arg(&mut counts);
        launch(l, cfg_for(n as u64), "coalesce_chunk_counts")?;
    }
    let mut chunk_off = alloc_uninit::<u32>(dev, n)?;
    let mut num_chunks = alloc_uninit::<u32>(dev, 1)?;
    exclusive_scan(dev, &counts, &mut chunk_off, &mut num_chunks)?;
    let cap64 = cap as i64;
    let mut chunk_seg = alloc_uninit::<u32>(dev, cap)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_chunk_map")?;
        let mut l = s.launch_builder(&f);
        l.arg(&cap64)
            .arg(&num_segments)
            .arg(&num_chunks)
            .arg(&chunk_off)
            .arg(&mut chunk_seg);
        launch(l, cfg_for(cap as u64), "coalesce_chunk_map")?;
    }

    // 5. chunk sums; 6. combine multi-chunk segments and zero the tail.
    // Partials are only written for chunks of segments longer than 32 rows; memory
    // for all `cap` chunks is reserved because their number is only known on the device.
    let mut partial = alloc_uninit::<f32>(dev, cap * dim)?;
    {
        let name = if vec4 {
            "coalesce_chunk_sum_vec4"
        } else {
            "coalesce_chunk_sum_scalar"
        };
        let work = if vec4 { cap * dim / 4 } else { cap * dim } as u64;
        let f = func(dev, "embedding.cu", name)?;
        let mut l = s.launch_builder(&f);
        l.arg(&cap64)
            .arg(&d64)
            .arg(&keys)
            .arg(rows)
            .arg(&seg_start)
            .arg(&counts)
            .arg(&chunk_off)
            .arg(&chunk_seg)
            .arg(&num_chunks)
            .arg(&mut summed)
            .arg(&mut partial);
        launch(l, cfg_for(work), name)?;
    }
    {
        let f = func(dev, "embedding.cu", "coalesce_seg_finish")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&d64)
            .arg(&num_segments)
            .arg(&counts)
            .arg(&chunk_off)
            .arg(&partial)
            .arg(&mut summed);
        launch(l, cfg_for((n * dim) as u64), "coalesce_seg_finish")?;
    }
    Ok(RowSparse {
        unique,
        summed,
        count,
    })
}

/// [`ScatterMode::Atomic`] for `n > 0` valid-sized inputs.
fn atomic_scatter(
    dev: &CudaDevice,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
    check: &IndexCheck,
) -> Result<RowSparse> {
    // Nothing is zeroed but the slot counter: each claimed row's first contribution is
    // stored, not added, and scatter_finish writes the rest (see embedding.cu).
    let n = idx.len();
    let mut out = RowSparse {
        unique: alloc_uninit::<i64>(dev, n)?,
        summed: alloc_uninit::<f32>(dev, n * dim)?,
        count: alloc_zeros::<i64>(dev, 1)?,
    };
    let mut claimer = alloc_uninit::<u32>(dev, n)?;
    let mut map = dev.row_slots(table_rows)?;
    let result = match map.as_mut() {
        Some(m) => atomic_launches(
            dev,
            idx,
            rows,
            dim,
            table_rows,
            check,
            &mut out,
            &mut claimer,
            m,
        ),
        None => Err(Error::Cuda("scatter-add row map missing".into())),
    };
    if result.is_err() {
        // A launch failed midway: the map may hold entries nobody will clear.
        *map = None;
    }
    result.map(|()| out)
}

#[allow(clippy::too_many_arguments)]
fn atomic_launches(
    dev: &CudaDevice,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
    check: &IndexCheck,
    out: &mut RowSparse,
    claimer: &mut CudaSlice<u32>,
    map: &mut CudaSlice<u32>,
) -> Result<()> {
    const SCATTER_STEPS: usize = 4; // matches embedding.cu
    let n = idx.len();
    let (n64, d64, tr64) = (n as i64, dim as i64, table_rows as i64);
    let s = dev.stream();
    let (width, [claim, losers, finish]) = if dim.is_multiple_of(4) {
        (
            dim / 4,
            [
                "scatter_claim_store_vec4",
                "scatter_add_losers_vec4",
                "scatter_finish_vec4",
            ],
        )
    } else {
        (
            dim,
            [
                "scatter_claim_store_scalar",
                "scatter_add_losers_scalar",
                "scatter_finish_scalar",
            ],
        )
    };
    let per_index = cfg_for(n as u64); // blockDim must be SCATTER_BLOCK = THREADS
    {
        let f = func(dev, "embedding.cu", claim)?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&tr64)
            .arg(&d64)
            .arg(idx)
            .arg(&mut *map)
            .arg(&mut *claimer)
            .arg(&mut out.count)
            .arg(&mut out.unique)
            .arg(rows)
            .arg(&mut out.summed)
            .arg(&check.cell);
        launch(l, per_index, claim)?;
    }
    {
        // blockIdx.y: groups of SCATTER_STEPS steps of each row (the kernel loops past 65535).
        let groups = width.div_ceil(SCATTER_STEPS).clamp(1, 65535) as u32;
        let grid = LaunchConfig {
            grid_dim: (per_index.grid_dim.0, groups, 1),
            ..per_index
        };
        let f = func(dev, "embedding.cu", losers)?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&tr64)
            .arg(&d64)
            .arg(idx)
            .arg(&*map)
            .arg(&*claimer)
            .arg(rows)
            .arg(&mut out.summed);
        launch(l, grid, losers)?;
    }
    let f = func(dev, "embedding.cu", finish)?;
    let mut l = s.launch_builder(&f);
    l.arg(&n64)
        .arg(&d64)
        .arg(&out.count)
        .arg(&mut out.unique)
        .arg(&mut *map)
        .arg(&mut out.summed);
    launch(l, cfg_for((n * width) as u64), finish)
}

/// Device-wide exclusive scan of u32 (3 launches: block sums, one-block scan of those,
/// apply). `total[0]` receives the sum of all elements.
fn exclusive_scan(
    dev: &CudaDevice,
    input: &CudaSlice<u32>,
    out: &mut CudaSlice<u32>,
    total: &mut CudaSlice<u32>,
) -> Result<()> {
    const SCAN_BLOCK: usize = 1024; // matches SCAN_BLOCK in embedding.cu
    let n = input.len();
    let nb = n.div_ceil(SCAN_BLOCK).max(1);
    let (n64, nb64) = (n as i64, nb as i64);
    let mut sums = alloc_uninit::<u32>(dev, nb)?;
    let blocks = LaunchConfig {
        grid_dim: (nb as u32, 1, 1),
        block_dim: (SCAN_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let s = dev.stream();
    {
        let f = func(dev, "embedding.cu", "scan_block_sums")?;
        let mut l = s.launch_builder(&f);
        l.arg(input).arg(&n64).arg(&mut sums);
        launch(l, blocks, "scan_block_sums")?;
    }
    {
        let f = func(dev, "embedding.cu", "scan_block_offsets")?;
        let mut l = s.launch_builder(&f);
        l.arg(&mut sums).arg(&nb64).arg(total);
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (SCAN_BLOCK as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        launch(l, one, "scan_block_offsets")?;
    }
    let f = func(dev, "embedding.cu", "scan_apply")?;
    let mut l = s.launch_builder(&f);
    l.arg(input).arg(&n64).arg(&sums).arg(out);
    launch(l, blocks, "scan_apply")
}

/// `y[positions[k]] = value` for every k, in place; a position outside `y` is an
/// `IndexOutOfRange` error (nothing is written there).
pub fn fill_at(
    dev: &CudaDevice,
    positions: &CudaSlice<i64>,
    value: f32,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let cell = error_cell(dev)?;
    let (n, len) = (positions.len() as i64, y.len() as i64);
    if n > 0 {
        let f = func(dev, "embedding.cu", "fill_at_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n)
            .arg(&len)
            .arg(positions)
            .arg(&value)
            .arg(&mut *y)
            .arg(&cell);
        launch(l, cfg_for(positions.len() as u64), "fill_at_f32")?;
    }
    check_error_cell(dev, cell, "fill_at position", y.len())
}
