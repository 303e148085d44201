//! GPU kernel bandwidth: device-to-device copy (the ceiling), embedding gather and both
//! scatter-adds (sorted, atomic), uniform and Zipf(1.05) indices, 1M-row table,
//! 64k indices.
//! Timed with CUDA events, rotating among ROTATE input sets so the 50 MB L2 cannot
//! serve repeated inputs, two ways after a warm-up:
//! - *from idle*: the median of REPS calls, each bracketed by its own events with the
//!   GPU idle before it, so the host's enqueue time (launches, allocations) shows;
//! - *back to back*: REPS calls enqueued between one pair of events, divided by REPS:
//!   the host queues the next call while the GPU runs the previous one, as inside a
//!   training step, so this is the kernel's cost, unless the host cannot enqueue as fast
//!   as the GPU executes (then it shows the host's cost). Bandwidth is reported from this one.
//!
//! Bytes counted: copy = read + write; gather/scatter-add = indices read + rows read +
//! rows written. Without a GPU: prints "skipped: <reason>" and passes.
//!
//! Run (the launchers are crate-private, so this is an ignored unit test beside them):
//! `cargo test --release --lib cuda::ops::bandwidth -- --ignored --nocapture`

use std::sync::Arc;

use super::tests::Rng;
use super::{self as ops};
use crate::cuda::CudaDevice;
use crate::error::Result;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, DeviceRepr};

const WARMUP: usize = 5;
const REPS: usize = 30;
const ROTATE: usize = 8;
const TABLE_ROWS: usize = 1 << 20;
const N_IDX: usize = 1 << 16;

#[test]
#[ignore = "a GPU measurement for BENCHMARKS.md, run by scripts/gpu-check.sh"]
fn kernel_bandwidth() {
    let dev = match CudaDevice::get(0) {
        Ok(d) => d,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    run(&dev).expect("benchmark failed");
}

/// Milliseconds per call of `f(rep)`, from idle and back to back (see the module docs).
#[derive(Clone, Copy)]
struct Timing {
    idle_ms: f64,
    b2b_ms: f64,
}

fn time_ms(dev: &CudaDevice, mut f: impl FnMut(usize) -> Result<()>) -> Result<Timing> {
    let err = |e: cudarc::driver::DriverError| crate::error::Error::Cuda(format!("{e:?}"));
    let ev = || {
        dev.context()
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(err)
    };
    for r in 0..WARMUP {
        f(r)?;
    }
    dev.synchronize()?;
    let mut times = Vec::with_capacity(REPS);
    for r in 0..REPS {
        let (start, end) = (ev()?, ev()?);
        start.record(dev.stream()).map_err(err)?;
        f(WARMUP + r)?;
        end.record(dev.stream()).map_err(err)?;
        times.push(start.elapsed_ms(&end).map_err(err)? as f64);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let (start, end) = (ev()?, ev()?);
    start.record(dev.stream()).map_err(err)?;
    for r in 0..REPS {
        f(WARMUP + REPS + r)?;
    }
    end.record(dev.stream()).map_err(err)?;
    let total = start.elapsed_ms(&end).map_err(err)? as f64;
    Ok(Timing {
        idle_ms: times[REPS / 2],
        b2b_ms: total / REPS as f64,
    })
}

/// Cheap non-zero pseudo-random values (a multiplicative hash), so tables of a billion
/// elements are generated in moments.
fn values(n: usize, salt: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as u32) ^ salt).wrapping_mul(2_654_435_761) >> 8) as f32 * (1.0 / 16_777_216.0)
                - 0.5
        })
        .collect()
}

fn uniform_idx(rng: &mut Rng) -> Vec<i64> {
    (0..N_IDX)
        .map(|_| (rng.next_u64() % TABLE_ROWS as u64) as i64)
        .collect()
}

/// Zipf(s) over the table by inverse CDF; ranks are scattered over the table by a
/// multiplicative permutation so hot rows are not neighbours.
fn zipf_idx(rng: &mut Rng, cdf: &[f64]) -> Vec<i64> {
    let total = cdf[cdf.len() - 1];
    (0..N_IDX)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let rank = cdf.partition_point(|&c| c < u).min(TABLE_ROWS - 1) as u64;
            ((rank * 2_654_435_761) % TABLE_ROWS as u64) as i64
        })
        .collect()
}

fn upload<T: DeviceRepr>(dev: &CudaDevice, sets: &[Vec<T>]) -> Result<Vec<CudaSlice<T>>> {
    sets.iter().map(|s| ops::htod(dev, s)).collect()
}

struct Row {
    kernel: String,
    t: Timing,
    /// Bytes the kernel must move (read + written).
    bytes: usize,
}

fn gbs(bytes: usize, ms: f64) -> f64 {
    bytes as f64 / (ms * 1e-3) / 1e9
}

fn run(dev: &Arc<CudaDevice>) -> Result<()> {
    let mut rows: Vec<Row> = Vec::new();

    // Copy ceiling: 256 MB, two source/destination pairs alternated.
    let copy_elems = (256usize << 20) / 4;
    let srcs = upload(dev, &[values(copy_elems, 1), values(copy_elems, 2)])?;
    let mut dsts = vec![
        ops::alloc_zeros::<f32>(dev, copy_elems)?,
        ops::alloc_zeros::<f32>(dev, copy_elems)?,
    ];
    let t = time_ms(dev, |r| ops::copy(dev, &srcs[r % 2], &mut dsts[r % 2]))?;
    let copy_bytes = 2 * copy_elems * 4;
    let copy_gbs = gbs(copy_bytes, t.b2b_ms);
    rows.push(Row {
        kernel: "copy d2d 256 MB".into(),
        t,
        bytes: copy_bytes,
    });
    drop((srcs, dsts));

    let mut rng = Rng::new(42);
    let mut cdf = Vec::with_capacity(TABLE_ROWS);
    let mut acc = 0.0f64;
    for r in 0..TABLE_ROWS {
        acc += 1.0 / ((r + 1) as f64).powf(1.05);
        cdf.push(acc);
    }
    let uni: Vec<Vec<i64>> = (0..ROTATE).map(|_| uniform_idx(&mut rng)).collect();
    let zipf: Vec<Vec<i64>> = (0..ROTATE).map(|_| zipf_idx(&mut rng, &cdf)).collect();
    let idx_sets = [
        ("uniform", upload(dev, &uni)?),
        ("zipf1.05", upload(dev, &zipf)?),
    ];

    for dim in [64usize, 256] {
        let mut outs = (0..ROTATE)
            .map(|_| ops::alloc_zeros::<f32>(dev, N_IDX * dim))
            .collect::<Result<Vec<_>>>()?;
        // Gather from an f32 table, and (D=64 only) from a bf16 one.
        let f32_table = ops::htod(dev, &values(TABLE_ROWS * dim, 3))?;
        let bf16_table = if dim == 64 {
            let host: Vec<half::bf16> = values(TABLE_ROWS * dim, 4)
                .into_iter()
                .map(half::bf16::from_f32)
                .collect();
            Some(ops::htod(dev, &host)?)
        } else {
            None
        };
        for (name, idx) in &idx_sets {
            let mut checks = Vec::new();
            let t = time_ms(dev, |r| {
                let i = r % ROTATE;
                checks.push(ops::gather_async(
                    dev,
                    &f32_table,
                    dim,
                    &idx[i],
                    &mut outs[i],
                )?);
                Ok(())
            })?;
            rows.push(Row {
                kernel: format!("gather f32 D={dim} {name}"),
                t,
                bytes: N_IDX * 8 + 2 * N_IDX * dim * 4,
            });
            if let Some(table) = &bf16_table {
                let t = time_ms(dev, |r| {
                    let i = r % ROTATE;
                    checks.push(ops::gather_async(dev, table, dim, &idx[i], &mut outs[i])?);
                    Ok(())
                })?;
                rows.push(Row {
                    kernel: format!("gather bf16 D={dim} {name}"),
                    t,
                    bytes: N_IDX * 8 + N_IDX * dim * 2 + N_IDX * dim * 4,
                });
            }
            for c in checks {
                c.check(dev)?;
            }
        }
        drop((f32_table, bf16_table, outs));

        // Scatter-add into a row-sparse gradient: the deterministic sort-based one and
        // the atomic one (`set_deterministic(false)`).
        let grads = (0..ROTATE)
            .map(|r| ops::htod(dev, &values(N_IDX * dim, 10 + r as u32)))
            .collect::<Result<Vec<_>>>()?;
        for (label, mode) in [
            ("scatter sorted", ops::ScatterMode::Sorted),
            ("scatter atomic", ops::ScatterMode::Atomic),
        ] {
            for (name, idx) in &idx_sets {
                let mut checks = Vec::new();
                let mut keep = Vec::new();
                let t = time_ms(dev, |r| {
                    let i = r % ROTATE;
                    let (out, check) =
                        ops::scatter_add_async(dev, mode, &idx[i], &grads[i], dim, TABLE_ROWS)?;
                    checks.push(check);
                    keep.push(out); // freed after timing, so frees stay out of the measurement
                    Ok(())
                })?;
                for c in checks {
                    c.check(dev)?;
                }
                drop(keep);
                rows.push(Row {
                    kernel: format!("{label} f32 D={dim} {name}"),
                    t,
                    bytes: N_IDX * 8 + 2 * N_IDX * dim * 4,
                });
            }
        }
    }

    println!(
        "\nCUDA kernels on {} ({}): from idle = median of {REPS} single calls; back to back = \
         {REPS} calls in one stream / {REPS}; GB/s and % of copy from back to back\n",
        dev.name(),
        dev.arch()
    );
    println!("| kernel | from idle (us) | back to back (us) | GB/s | % of copy |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let g = gbs(r.bytes, r.t.b2b_ms);
        println!(
            "| {} | {:.1} | {:.1} | {:.0} | {:.0}% |",
            r.kernel,
            r.t.idle_ms * 1e3,
            r.t.b2b_ms * 1e3,
            g,
            100.0 * g / copy_gbs
        );
    }
    Ok(())
}
