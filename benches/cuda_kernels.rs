//! GPU kernel bandwidth: device-to-device copy (the ceiling), embedding gather and
//! coalesce (scatter-add), uniform and Zipf(1.05) indices, 1M-row table, 64k indices.
//! Timed with CUDA events: warm-up, then the median of REPS runs, rotating among
//! ROTATE input sets so the 50 MB L2 cannot serve repeated inputs.
//! Bytes counted: copy = read + write; gather/coalesce = indices read + rows read +
//! rows written. Without a GPU: prints "skipped: <reason>" and exits 0.
//!
//! Run: cargo bench --bench cuda_kernels

use std::sync::Arc;

use boson::cuda::ops;
use boson::cuda::CudaDevice;
use boson::error::Result;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, DeviceRepr};

const WARMUP: usize = 5;
const REPS: usize = 30;
const ROTATE: usize = 8;
const TABLE_ROWS: usize = 1 << 20;
const N_IDX: usize = 1 << 16;

fn main() {
    let dev = match CudaDevice::get(0) {
        Ok(d) => d,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    if let Err(e) = run(&dev) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// Median milliseconds of `f(rep)` over REPS runs after WARMUP runs, each run bracketed
/// by its own pair of events.
fn time_ms(dev: &CudaDevice, mut f: impl FnMut(usize) -> Result<()>) -> Result<f64> {
    let ev = |what: &str| {
        dev.context()
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| boson::error::Error::Cuda(format!("{what}: {e:?}")))
    };
    for r in 0..WARMUP {
        f(r)?;
    }
    dev.synchronize()?;
    let mut times = Vec::with_capacity(REPS);
    for r in 0..REPS {
        let (start, end) = (ev("start event")?, ev("end event")?);
        start
            .record(dev.stream())
            .map_err(|e| boson::error::Error::Cuda(format!("{e:?}")))?;
        f(WARMUP + r)?;
        end.record(dev.stream())
            .map_err(|e| boson::error::Error::Cuda(format!("{e:?}")))?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(|e| boson::error::Error::Cuda(format!("{e:?}")))?;
        times.push(ms as f64);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[REPS / 2])
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

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn uniform_idx(rng: &mut Rng) -> Vec<i64> {
    (0..N_IDX)
        .map(|_| (rng.next() % TABLE_ROWS as u64) as i64)
        .collect()
}

/// Zipf(s) over the table by inverse CDF; ranks are scattered over the table by a
/// multiplicative permutation so hot rows are not neighbours.
fn zipf_idx(rng: &mut Rng, cdf: &[f64]) -> Vec<i64> {
    let total = cdf[cdf.len() - 1];
    (0..N_IDX)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
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
    ms: f64,
    gbs: f64,
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
    let ms = time_ms(dev, |r| ops::copy(dev, &srcs[r % 2], &mut dsts[r % 2]))?;
    let copy_gbs = 2.0 * (copy_elems * 4) as f64 / (ms * 1e-3) / 1e9;
    rows.push(Row {
        kernel: "copy d2d 256 MB".into(),
        ms,
        gbs: copy_gbs,
    });
    drop((srcs, dsts));

    let mut rng = Rng(42);
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
        // Gather, f32 table.
        let table = ops::htod(dev, &values(TABLE_ROWS * dim, 3))?;
        let mut outs = (0..ROTATE)
            .map(|_| ops::alloc_zeros::<f32>(dev, N_IDX * dim))
            .collect::<Result<Vec<_>>>()?;
        for (name, idx) in &idx_sets {
            let mut checks = Vec::new();
            let ms = time_ms(dev, |r| {
                checks.push(ops::gather_async(
                    dev,
                    &table,
                    dim,
                    &idx[r % ROTATE],
                    &mut outs[r % ROTATE],
                )?);
                Ok(())
            })?;
            for c in checks {
                c.check(dev)?;
            }
            let bytes = N_IDX * 8 + 2 * N_IDX * dim * 4;
            rows.push(Row {
                kernel: format!("gather f32 D={dim} {name}"),
                ms,
                gbs: bytes as f64 / (ms * 1e-3) / 1e9,
            });
        }
        drop(table);

        // Gather, bf16 table (D=64 only).
        if dim == 64 {
            let host: Vec<half::bf16> = values(TABLE_ROWS * dim, 4)
                .into_iter()
                .map(half::bf16::from_f32)
                .collect();
            let table = ops::htod(dev, &host)?;
            for (name, idx) in &idx_sets {
                let mut checks = Vec::new();
                let ms = time_ms(dev, |r| {
                    checks.push(ops::gather_async(
                        dev,
                        &table,
                        dim,
                        &idx[r % ROTATE],
                        &mut outs[r % ROTATE],
                    )?);
                    Ok(())
                })?;
                for c in checks {
                    c.check(dev)?;
                }
                let bytes = N_IDX * 8 + N_IDX * dim * 2 + N_IDX * dim * 4;
                rows.push(Row {
                    kernel: format!("gather bf16 D={dim} {name}"),
                    ms,
                    gbs: bytes as f64 / (ms * 1e-3) / 1e9,
                });
            }
        }
        drop(outs);

        // Coalesce (scatter-add into a row-sparse gradient).
        let grads = (0..ROTATE)
            .map(|r| ops::htod(dev, &values(N_IDX * dim, 10 + r as u32)))
            .collect::<Result<Vec<_>>>()?;
        for (name, idx) in &idx_sets {
            let mut checks = Vec::new();
            let mut keep = Vec::new();
            let ms = time_ms(dev, |r| {
                let (out, check) = ops::coalesce_async(
                    dev,
                    &idx[r % ROTATE],
                    &grads[r % ROTATE],
                    dim,
                    TABLE_ROWS,
                )?;
                checks.push(check);
                keep.push(out); // freed after timing, so frees stay out of the measurement
                Ok(())
            })?;
            for c in checks {
                c.check(dev)?;
            }
            drop(keep);
            let bytes = N_IDX * 8 + 2 * N_IDX * dim * 4;
            rows.push(Row {
                kernel: format!("coalesce f32 D={dim} {name}"),
                ms,
                gbs: bytes as f64 / (ms * 1e-3) / 1e9,
            });
        }
    }

    println!(
        "\nCUDA kernels on {} ({}), median of {REPS} after {WARMUP} warm-up runs\n",
        dev.name(),
        dev.arch()
    );
    println!("| kernel | time (us) | GB/s | % of copy |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.1} | {:.0} | {:.0}% |",
            r.kernel,
            r.ms * 1e3,
            r.gbs,
            100.0 * r.gbs / copy_gbs
        );
    }
    Ok(())
}
