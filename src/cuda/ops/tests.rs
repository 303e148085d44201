//! Every CUDA launcher against a plain CPU loop, on fresh random inputs (never zeros).
//! Outputs are poisoned with NaN before each launch so an unwritten element fails.
//! Without a usable GPU each test prints "skipped: <reason>" and returns.

use std::sync::Arc;

use super::{self as ops, Broadcast, MatmulShape, ScatterMode, StridedCopy};
use crate::cuda::CudaDevice;
use crate::error::{Error, Result};
use crate::tensor::{broadcast_shape, BinaryOp, ReduceOp, UnaryOp};
use half::{bf16, f16};

/// Strides that read a contiguous tensor of shape `from` as if broadcast to `to`
/// (NumPy rules: align right; a broadcast dim gets stride 0): the tensor layer's
/// `Layout::broadcast_to`, checked.
fn broadcast_strides(from: &[usize], to: &[usize]) -> Result<Vec<i64>> {
    if broadcast_shape(from, to).ok().as_deref() != Some(to) {
        return Err(Error::ShapeMismatch {
            op: "broadcast",
            lhs: from.to_vec(),
            rhs: to.to_vec(),
        });
    }
    Ok(ops::strides_i64(
        &crate::tensor::shape::Layout::broadcast_to(from, to).strides,
    ))
}

fn device() -> Option<Arc<CudaDevice>> {
    match CudaDevice::get(0) {
        Ok(d) => Some(d),
        Err(e) => {
            // Straight to stderr: the harness would capture `eprintln!` of a passing test.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "skipped: {e}");
            None
        }
    }
}

macro_rules! dev_or_skip {
    () => {
        match device() {
            Some(d) => d,
            None => return,
        }
    };
}

/// Small deterministic generator (the crate's splitmix64 over a Weyl sequence); every
/// test draws its own fresh stream. The bandwidth report uses it too.
pub(super) struct Rng(u64);
impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x1234_5678_9abc_def0)
    }
    pub(super) fn next_u64(&mut self) -> u64 {
        let z = crate::rng::splitmix64(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / 16_777_216.0)
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Zipf(s) sampler over [0, n) by inverse CDF, rows shuffled so hot ids are scattered.
fn zipf_indices(rng: &mut Rng, rows: usize, count: usize, s: f64) -> Vec<i64> {
    let mut cdf = Vec::with_capacity(rows);
    let mut acc = 0.0;
    for r in 0..rows {
        acc += 1.0 / ((r + 1) as f64).powf(s);
        cdf.push(acc);
    }
    let perm: Vec<i64> = {
        let mut p: Vec<i64> = (0..rows as i64).collect();
        for i in (1..rows).rev() {
            p.swap(i, rng.below(i as u64 + 1) as usize);
        }
        p
    };
    (0..count)
        .map(|_| {
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * acc;
            let r = cdf.partition_point(|&c| c < u).min(rows - 1);
            perm[r]
        })
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= atol + rtol * w.abs() || g == w;
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

fn poisoned(dev: &CudaDevice, n: usize) -> cudarc::driver::CudaSlice<f32> {
    ops::htod(dev, &vec![f32::NAN; n]).expect("htod")
}

// ------------------------------------------------------------------ elementwise

// Every unary op (UnaryOp::examples, from its one definition in src/tensor/unary.rs)
// against the CPU's loop for it.
#[test]
fn unary_ops_match_cpu() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(1);
    for op in UnaryOp::examples() {
        let n = 10_007;
        let (lo, hi) = match op.domain() {
            crate::tensor::Domain::Positive => (0.05, 6.0),
            crate::tensor::Domain::Any => (-30.0, 30.0),
        };
        let x = rng.vec(n, lo, hi);
        let xd = ops::htod(&dev, &x).unwrap();
        let mut y = poisoned(&dev, n);
        ops::unary(&dev, op, &xd, &mut y).unwrap();
        let got = ops::dtoh(&dev, &y).unwrap();
        assert_close(&format!("{op:?}"), &got, &op.cpu(&x), 2e-6, 1e-6);
    }
}

/// Values on a coarse grid so that Eq/Ne/Ge/Le see real ties.
fn grid_values(rng: &mut Rng, n: usize, positive: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v = (rng.below(9) as f32) * 0.5 + 0.25;
            if positive {
                v
            } else {
                v - 2.0
            }
        })
        .collect()
}

#[test]
fn binary_ops_broadcast_match_cpu() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(2);
    // (a shape, b shape): broadcasting on both sides, a missing leading dim, and the
    // contiguous fast path.
    let cases: [(&[usize], &[usize]); 3] = [
        (&[4, 1, 5], &[3, 1]),
        (&[2, 3, 1, 4, 1, 6], &[4, 5, 6]),
        (&[7, 9], &[7, 9]),
    ];
    for (sa, sb) in cases {
        let out_shape = broadcast_shape(sa, sb).unwrap();
        let n: usize = out_shape.iter().product();
        let a_strides = broadcast_strides(sa, &out_shape).unwrap();
        let b_strides = broadcast_strides(sb, &out_shape).unwrap();
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        for &op in BinaryOp::ALL {
            let pos = op == BinaryOp::Pow;
            let a = grid_values(&mut rng, na, pos);
            let mut b = grid_values(&mut rng, nb, false);
            if op == BinaryOp::Div {
                b.iter_mut().for_each(|v| *v += 0.125); // never divide by the exact 0 of the grid
            }
            let (ad, bd) = (ops::htod(&dev, &a).unwrap(), ops::htod(&dev, &b).unwrap());
            let mut y = poisoned(&dev, n);
            let bc = Broadcast {
                shape: &out_shape,
                a_strides: &a_strides,
                a_offset: 0,
                b_strides: &b_strides,
                b_offset: 0,
            };
            ops::binary(&dev, op, &bc, &ad, &bd, &mut y).unwrap();
            let got = ops::dtoh(&dev, &y).unwrap();
            // CPU loop over the output index.
            let mut want = vec![0f32; n];
            for (i, w) in want.iter_mut().enumerate() {
                let (mut rem, mut oa, mut ob) = (i, 0i64, 0i64);
                for d in (0..out_shape.len()).rev() {
                    let c = (rem % out_shape[d]) as i64;
                    rem /= out_shape[d];
                    oa += c * a_strides[d];
                    ob += c * b_strides[d];
                }
                *w = op.apply(a[oa as usize], b[ob as usize]);
            }
            assert_close(&format!("{op:?} {sa:?} {sb:?}"), &got, &want, 2e-6, 1e-6);
        }
    }
}

#[test]
fn fill_cast_and_half_conversions() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(3);
    let n = 5000;
    let mut y = poisoned(&dev, n);
    ops::fill(&dev, &mut y, 1.625).unwrap();
    assert!(ops::dtoh(&dev, &y).unwrap().iter().all(|&v| v == 1.625));

    let ints: Vec<i64> = (0..n).map(|_| rng.next_u64() as i64 >> 20).collect();
    let xi = ops::htod(&dev, &ints).unwrap();
    let mut y = poisoned(&dev, n);
    ops::cast_i64_f32(&dev, &xi, &mut y).unwrap();
    let want: Vec<f32> = ints.iter().map(|&v| v as f32).collect();
    assert_eq!(ops::dtoh(&dev, &y).unwrap(), want);

    let mut x = rng.vec(n, -70000.0, 70000.0);
    x.extend([
        0.0,
        -0.0,
        1e-8,
        6.1e-5,
        65519.0,
        65520.0,
        f32::INFINITY,
        f32::NAN,
        3.0e38,
    ]);
    let xd = ops::htod(&dev, &x).unwrap();
    let mut h = ops::htod(&dev, &vec![f16::from_f32(9.0); x.len()]).unwrap();
    ops::f32_to_half(&dev, &xd, &mut h).unwrap();
    let got: Vec<u16> = ops::dtoh(&dev, &h)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let want: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let both_nan = f16::from_bits(*g).is_nan() && f16::from_bits(*w).is_nan();
        assert!(
            g == w || both_nan,
            "f32->f16 element {i} ({}): got {g:#x}, want {w:#x}",
            x[i]
        );
    }
    let mut back = poisoned(&dev, x.len());
    ops::half_to_f32(&dev, &h, &mut back).unwrap();
    let back = ops::dtoh(&dev, &back).unwrap();
    for (i, &w) in want.iter().enumerate() {
        let w = f16::from_bits(w).to_f32();
        assert!(
            back[i] == w || (w.is_nan() && back[i].is_nan()),
            "f16->f32 element {i}"
        );
    }

    let mut b = ops::htod(&dev, &vec![bf16::from_f32(9.0); x.len()]).unwrap();
    ops::f32_to_half(&dev, &xd, &mut b).unwrap();
    let got: Vec<u16> = ops::dtoh(&dev, &b)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let want: Vec<u16> = x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    assert_eq!(got, want, "f32->bf16");
    let mut back = poisoned(&dev, x.len());
    ops::half_to_f32(&dev, &b, &mut back).unwrap();
    let back = ops::dtoh(&dev, &back).unwrap();
    for (i, &w) in want.iter().enumerate() {
        let w = bf16::from_bits(w).to_f32();
        assert!(
            back[i] == w || (w.is_nan() && back[i].is_nan()),
            "bf16->f32 element {i}"
        );
    }
}

// ------------------------------------------------------------------ reductions

fn reduce_ref(op: ReduceOp, x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0f32; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let vals = (0..len).map(|j| x[(o * len + j) * inner + i]);
            out[o * inner + i] = match op {
                ReduceOp::Sum => vals.map(|v| v as f64).sum::<f64>() as f32,
                ReduceOp::Max => vals.fold(f32::NEG_INFINITY, f32::max),
                ReduceOp::Min => vals.fold(f32::INFINITY, f32::min),
            };
        }
    }
    out
}

fn argmax_ref(x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<i64> {
    let mut out = vec![0i64; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for j in 1..len {
                if x[(o * len + j) * inner + i] > x[(o * len + best) * inner + i] {
                    best = j;
                }
            }
            out[o * inner + i] = best as i64;
        }
    }
    out
}

#[test]
fn reductions_match_cpu_for_both_layouts() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(4);
    // [1024, 64] over axis 1; over axis 0 (bias gradient); a long last axis (block per
    // row); a middle axis with several outer rows.
    for (outer, len, inner) in [
        (1024, 64, 1),
        (1, 1024, 64),
        (3, 5000, 1),
        (6, 77, 45),
        (5, 1, 3),
    ] {
        let mut x = rng.vec(outer * len * inner, -4.0, 4.0);
        // Coarse values in a copy give ties, so argmax's "first maximum" is exercised.
        let ties: Vec<f32> = x.iter().map(|v| v.round()).collect();
        let xd = ops::htod(&dev, &x).unwrap();
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
            let mut y = poisoned(&dev, outer * inner);
            ops::reduce(&dev, op, &xd, (outer, len, inner), &mut y).unwrap();
            let got = ops::dtoh(&dev, &y).unwrap();
            let want = reduce_ref(op, &x, outer, len, inner);
            assert_close(
                &format!("{op:?} {outer}x{len}x{inner}"),
                &got,
                &want,
                1e-5,
                1e-3,
            );
        }
        for data in [&mut x, &mut ties.clone()] {
            let xd = ops::htod(&dev, data).unwrap();
            let mut y = ops::htod(&dev, &vec![-7i64; outer * inner]).unwrap();
            ops::argmax(&dev, &xd, (outer, len, inner), &mut y).unwrap();
            assert_eq!(
                ops::dtoh(&dev, &y).unwrap(),
                argmax_ref(data, outer, len, inner),
                "argmax {outer}x{len}x{inner}"
            );
        }
    }
}

// ------------------------------------------------------------------ strided copy

#[test]
fn strided_copy_transposes_and_concatenates() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(5);
    let (r, c) = (37usize, 53usize);
    let x = rng.vec(r * c, -1.0, 1.0);
    let xd = ops::htod(&dev, &x).unwrap();
    // Transpose: read [c, r] through strides (1, c) of the source.
    let mut y = poisoned(&dev, r * c);
    let plan = StridedCopy {
        shape: &[c, r],
        src_strides: &[1, c as i64],
        src_offset: 0,
        dst_strides: &[r as i64, 1],
        dst_offset: 0,
    };
    ops::strided_copy(&dev, &plan, &xd, &mut y).unwrap();
    let got = ops::dtoh(&dev, &y).unwrap();
    for i in 0..r {
        for j in 0..c {
            assert_eq!(got[j * r + i], x[i * c + j]);
        }
    }
    // i64 and concat: two [2, 3] blocks into the columns of a [2, 6] destination.
    let a: Vec<i64> = (0..6).map(|_| rng.next_u64() as i64).collect();
    let b: Vec<i64> = (0..6).map(|_| rng.next_u64() as i64).collect();
    let (ad, bd) = (ops::htod(&dev, &a).unwrap(), ops::htod(&dev, &b).unwrap());
    let mut dst = ops::htod(&dev, &[-1i64; 12]).unwrap();
    for (src, off) in [(&ad, 0usize), (&bd, 3)] {
        let plan = StridedCopy {
            shape: &[2, 3],
            src_strides: &[3, 1],
            src_offset: 0,
            dst_strides: &[6, 1],
            dst_offset: off,
        };
        ops::strided_copy(&dev, &plan, src, &mut dst).unwrap();
    }
    let got = ops::dtoh(&dev, &dst).unwrap();
    let want = [
        a[0], a[1], a[2], b[0], b[1], b[2], a[3], a[4], a[5], b[3], b[4], b[5],
    ];
    assert_eq!(got, want);
    // A view reaching outside its buffer is refused, not launched.
    let bad = StridedCopy {
        shape: &[3, 3],
        src_strides: &[3, 1],
        src_offset: 0,
        dst_strides: &[6, 1],
        dst_offset: 0,
    };
    assert!(ops::strided_copy(&dev, &bad, &ad, &mut dst).is_err());
}

// ------------------------------------------------------------------ gather

fn gather_case<T: ops::GatherElem + Copy>(
    dev: &CudaDevice,
    rng: &mut Rng,
    dim: usize,
    to_t: fn(f32) -> T,
    to_f: fn(T) -> f32,
) {
    let rows = 3000;
    let n = 4099;
    let table_f = rng.vec(rows * dim, -2.0, 2.0);
    let table: Vec<T> = table_f.iter().map(|&v| to_t(v)).collect();
    let idx: Vec<i64> = (0..n).map(|_| rng.below(rows as u64) as i64).collect();
    let (td, id) = (
        ops::htod(dev, &table).unwrap(),
        ops::htod(dev, &idx).unwrap(),
    );
    let mut out = poisoned(dev, n * dim);
    ops::gather(dev, &td, dim, &id, &mut out).unwrap();
    let got = ops::dtoh(dev, &out).unwrap();
    for r in 0..n {
        for c in 0..dim {
            let want = to_f(table[idx[r] as usize * dim + c]);
            assert_eq!(got[r * dim + c], want, "gather dim {dim} row {r} col {c}");
        }
    }
    // An out-of-range index is an error naming it.
    let mut bad = idx.clone();
    bad[17] = rows as i64 + 5;
    let bd = ops::htod(dev, &bad).unwrap();
    match ops::gather(dev, &td, dim, &bd, &mut out) {
        Err(Error::IndexOutOfRange { index, size, .. }) => {
            assert_eq!((index, size), (rows as i64 + 5, rows));
        }
        other => panic!("expected IndexOutOfRange, got {:?}", other.map(|_| ())),
    }
    bad[17] = -3;
    let bd = ops::htod(dev, &bad).unwrap();
    assert!(matches!(
        ops::gather(dev, &td, dim, &bd, &mut out),
        Err(Error::IndexOutOfRange { index: -3, .. })
    ));
}

#[test]
fn gather_f32_f16_bf16_match_cpu() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(6);
    for dim in [64, 256, 7, 1] {
        gather_case::<f32>(&dev, &mut rng, dim, |v| v, |v| v);
        gather_case::<f16>(&dev, &mut rng, dim, f16::from_f32, f16::to_f32);
        gather_case::<bf16>(&dev, &mut rng, dim, bf16::from_f32, bf16::to_f32);
    }
}

// ------------------------------------------------------------------ scatter-add (sorted, atomic)

/// Runs one scatter-add and checks it against a CPU BTreeMap sum (the atomic one's rows
/// are matched by id); returns the raw outputs.
fn scatter_check(
    dev: &CudaDevice,
    mode: ScatterMode,
    idx: &[i64],
    rows: &[f32],
    dim: usize,
    table_rows: usize,
) -> (Vec<i64>, Vec<f32>) {
    let n = idx.len();
    let (id, rd) = (ops::htod(dev, idx).unwrap(), ops::htod(dev, rows).unwrap());
    let out = ops::scatter_add(dev, mode, &id, &rd, dim, table_rows).unwrap();
    let unique = ops::dtoh(dev, &out.unique).unwrap();
    let summed = ops::dtoh(dev, &out.summed).unwrap();
    let count = ops::dtoh(dev, &out.count).unwrap();
    // Per row id: (sum, sum of |x|); the tolerance scales with the latter, as f32
    // summation error does (hot rows add tens of thousands of values).
    let mut map: std::collections::BTreeMap<i64, Vec<(f64, f64)>> = Default::default();
    for (r, &i) in idx.iter().enumerate() {
        let e = map.entry(i).or_insert_with(|| vec![(0.0, 0.0); dim]);
        for c in 0..dim {
            let v = rows[r * dim + c] as f64;
            e[c].0 += v;
            e[c].1 += v.abs();
        }
    }
    let k = map.len();
    assert_eq!(count, vec![k as i64], "{mode:?} count");
    assert_eq!(unique.len(), n);
    assert_eq!(summed.len(), n * dim);
    // Output slot of each row id, checking each id appears once.
    let mut slot_of = std::collections::BTreeMap::new();
    for (s, &u) in unique[..k].iter().enumerate() {
        assert!(
            slot_of.insert(u, s).is_none(),
            "{mode:?}: row {u} listed twice"
        );
    }
    for (s, (&id, sum)) in map.iter().enumerate() {
        let slot = match mode {
            ScatterMode::Sorted => {
                assert_eq!(unique[s], id, "unique[{s}]");
                s
            }
            ScatterMode::Atomic => *slot_of
                .get(&id)
                .unwrap_or_else(|| panic!("atomic: row {id} missing from unique")),
        };
        for c in 0..dim {
            let (g, w) = (summed[slot * dim + c], sum[c].0 as f32);
            let tol = 1e-5 + 2e-6 * sum[c].1 as f32;
            assert!(
                (g - w).abs() <= tol,
                "{mode:?} row {id} col {c}: got {g}, want {w}"
            );
            assert!(
                (g - w).abs() <= 1e-4 + 1e-5 * w.abs(),
                "{mode:?} row {id} col {c}: got {g}, want {w}"
            );
        }
    }
    assert!(
        unique[k..].iter().all(|&u| u == -1),
        "{mode:?}: unique tail must be -1"
    );
    assert!(
        summed[k * dim..].iter().all(|&v| v == 0.0),
        "{mode:?}: summed tail must be 0"
    );
    (unique, summed)
}

#[test]
fn scatter_adds_match_cpu_on_uniform_zipf_and_one_hot_row() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(7);
    let table_rows = 50_000;
    for (dim, n) in [
        (64usize, 20_000usize),
        (6, 3001),
        (256, 5000),
        (4, 1),
        (3, 2048),
        (8, 70_000),
    ] {
        let uniform: Vec<i64> = (0..n)
            .map(|_| rng.below(table_rows as u64) as i64)
            .collect();
        let zipf = zipf_indices(&mut rng, table_rows, n, 1.05);
        let hot = vec![42i64; n]; // one segment of n rows: many chunks
        for idx in [&uniform, &zipf, &hot] {
            let rows = rng.vec(n * dim, -1.0, 1.0);
            scatter_check(&dev, ScatterMode::Sorted, idx, &rows, dim, table_rows);
            scatter_check(&dev, ScatterMode::Atomic, idx, &rows, dim, table_rows);
        }
    }
}

#[test]
fn sorted_scatter_add_is_bitwise_deterministic() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(8);
    let (n, dim, table_rows) = (30_000, 64, 10_000);
    let idx = zipf_indices(&mut rng, table_rows, n, 1.2);
    let rows = rng.vec(n * dim, -1.0, 1.0);
    let (u1, s1) = scatter_check(&dev, ScatterMode::Sorted, &idx, &rows, dim, table_rows);
    let (u2, s2) = scatter_check(&dev, ScatterMode::Sorted, &idx, &rows, dim, table_rows);
    assert_eq!(u1, u2);
    let b1: Vec<u32> = s1.iter().map(|v| v.to_bits()).collect();
    let b2: Vec<u32> = s2.iter().map(|v| v.to_bits()).collect();
    assert!(b1 == b2, "summed rows differ between runs");
}

#[test]
fn scatter_adds_report_out_of_range_index() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(9);
    let (n, dim, table_rows) = (1000, 8, 100);
    for mode in [ScatterMode::Sorted, ScatterMode::Atomic] {
        for bad in [100i64, -1, 1 << 40] {
            let mut idx: Vec<i64> = (0..n)
                .map(|_| rng.below(table_rows as u64) as i64)
                .collect();
            idx[n / 2] = bad;
            let rows = rng.vec(n * dim, -1.0, 1.0);
            let (id, rd) = (
                ops::htod(&dev, &idx).unwrap(),
                ops::htod(&dev, &rows).unwrap(),
            );
            match ops::scatter_add(&dev, mode, &id, &rd, dim, table_rows) {
                Err(Error::IndexOutOfRange { index, size, .. }) => {
                    assert_eq!((index, size), (bad, table_rows), "{mode:?}")
                }
                other => panic!(
                    "{mode:?}: expected IndexOutOfRange for {bad}, got ok={}",
                    other.is_ok()
                ),
            }
        }
    }
}

/// The atomic scatter-add keeps a row map on the device between calls: it must come
/// back clean after every call (including one that reported a bad index) and grow
/// when a larger table arrives, or later calls would skip rows claimed earlier.
#[test]
fn atomic_scatter_add_map_is_clean_between_calls() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(10);
    let dim = 16;
    for (table_rows, n) in [
        (1000usize, 5000usize),
        (1000, 300),
        (200_000, 40_000),
        (50, 4000),
    ] {
        let idx: Vec<i64> = (0..n)
            .map(|_| rng.below(table_rows as u64) as i64)
            .collect();
        let rows = rng.vec(n * dim, -1.0, 1.0);
        scatter_check(&dev, ScatterMode::Atomic, &idx, &rows, dim, table_rows);
        // The same rows again: each must be claimed afresh.
        scatter_check(&dev, ScatterMode::Atomic, &idx, &rows, dim, table_rows);
        let mut bad = idx.clone();
        bad[n / 3] = table_rows as i64;
        let (id, rd) = (
            ops::htod(&dev, &bad).unwrap(),
            ops::htod(&dev, &rows).unwrap(),
        );
        assert!(ops::scatter_add(&dev, ScatterMode::Atomic, &id, &rd, dim, table_rows).is_err());
        scatter_check(&dev, ScatterMode::Atomic, &idx, &rows, dim, table_rows);
    }
}

// ------------------------------------------------------------------ optimizers

fn clip(g: f32, c: f32) -> f32 {
    if c >= 0.0 {
        g.max(-c).min(c)
    } else {
        g
    }
}

/// Sparse setup: weight [rows, dim], 5 listed rows plus a -1 padding slot.
struct Sparse {
    rows: usize,
    dim: usize,
    w: Vec<f32>,
    g: Vec<f32>,
    idx: Vec<i64>,
}

fn sparse_setup(rng: &mut Rng) -> Sparse {
    let (rows, dim) = (40, 12);
    Sparse {
        rows,
        dim,
        w: rng.vec(rows * dim, -1.0, 1.0),
        g: rng.vec(6 * dim, -3.0, 3.0),
        idx: vec![3, 17, 0, 39, 22, -1],
    }
}

/// For each (weight element, grad element) the update touches: sparse rows then dense.
fn touched(s: &Sparse, sparse: bool) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    if sparse {
        for (r, &i) in s.idx.iter().enumerate() {
            if i >= 0 {
                for c in 0..s.dim {
                    v.push((i as usize * s.dim + c, r * s.dim + c));
                }
            }
        }
    } else {
        for e in 0..s.rows * s.dim {
            v.push((e, e));
        }
    }
    v
}

#[test]
fn sgd_adam_adagrad_match_cpu_sparse_and_dense() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(10);
    for sparse in [true, false] {
        for clip_g in [-1.0f32, 0.5] {
            let mut s = sparse_setup(&mut rng);
            if !sparse {
                s.g = rng.vec(s.rows * s.dim, -3.0, 3.0);
            }
            let pairs = touched(&s, sparse);
            let idx_d = ops::htod(&dev, &s.idx).unwrap();
            let idx_opt = if sparse { Some(&idx_d) } else { None };
            let gd = ops::htod(&dev, &s.g).unwrap();

            // SGD with momentum, then plain SGD.
            for momentum in [0.9f32, 0.0] {
                let (lr, wdecay, rescale) = (0.1f32, 0.01f32, 0.5f32);
                let p = [lr, momentum, wdecay, rescale, clip_g, 0.0, 0.0, 0.0];
                let mom0 = rng.vec(s.w.len(), -0.1, 0.1);
                let mut wd = ops::htod(&dev, &s.w).unwrap();
                let mut md = ops::htod(&dev, &mom0).unwrap();
                let states = match momentum != 0.0 {
                    true => vec![&mut md],
                    false => vec![],
                };
                ops::row_update(
                    &dev,
                    "sgd_update_f32",
                    &mut wd,
                    s.dim,
                    &gd,
                    idx_opt,
                    states,
                    &p,
                )
                .unwrap();
                let (mut w, mut m) = (s.w.clone(), mom0.clone());
                for &(e, t) in &pairs {
                    let step = clip(rescale * s.g[t], clip_g) + wdecay * w[e];
                    if momentum != 0.0 {
                        m[e] = momentum * m[e] - lr * step;
                        w[e] += m[e];
                    } else {
                        w[e] -= lr * step;
                    }
                }
                assert_close("sgd w", &ops::dtoh(&dev, &wd).unwrap(), &w, 1e-6, 1e-6);
                assert_close("sgd mom", &ops::dtoh(&dev, &md).unwrap(), &m, 1e-6, 1e-6);
            }

            // Adam.
            // Any bias-corrected rate will do: the kernel takes it as given.
            let (lr_t, beta1, beta2, eps, wdecay, rescale) =
                (0.004f32, 0.9, 0.999, 1e-8, 0.01, 0.5);
            let p = [lr_t, beta1, beta2, eps, wdecay, rescale, clip_g, 0.0];
            let (m0, v0) = (rng.vec(s.w.len(), -0.1, 0.1), rng.vec(s.w.len(), 0.0, 0.1));
            let mut wd = ops::htod(&dev, &s.w).unwrap();
            let (mut md, mut vd) = (ops::htod(&dev, &m0).unwrap(), ops::htod(&dev, &v0).unwrap());
            let states = vec![&mut md, &mut vd];
            ops::row_update(
                &dev,
                "adam_update_f32",
                &mut wd,
                s.dim,
                &gd,
                idx_opt,
                states,
                &p,
            )
            .unwrap();
            let (mut w, mut m, mut v) = (s.w.clone(), m0.clone(), v0.clone());
            for &(e, t) in &pairs {
                let g = clip(rescale * s.g[t] + wdecay * w[e], clip_g);
                m[e] = beta1 * m[e] + (1.0 - beta1) * g;
                v[e] = beta2 * v[e] + (1.0 - beta2) * g * g;
                w[e] -= lr_t * m[e] / (v[e].sqrt() + eps);
            }
            assert_close("adam w", &ops::dtoh(&dev, &wd).unwrap(), &w, 1e-5, 1e-6);
            assert_close("adam mean", &ops::dtoh(&dev, &md).unwrap(), &m, 1e-6, 1e-7);
            assert_close("adam var", &ops::dtoh(&dev, &vd).unwrap(), &v, 1e-6, 1e-7);

            // AdaGrad.
            let (lr, eps, wdecay, rescale) = (0.1f32, 1e-7f32, 0.01f32, 0.5f32);
            let p = [lr, eps, wdecay, rescale, clip_g, 0.0, 0.0, 0.0];
            let h0 = rng.vec(s.w.len(), 0.0, 0.5);
            let mut wd = ops::htod(&dev, &s.w).unwrap();
            let mut hd = ops::htod(&dev, &h0).unwrap();
            let states = vec![&mut hd];
            ops::row_update(
                &dev,
                "adagrad_update_f32",
                &mut wd,
                s.dim,
                &gd,
                idx_opt,
                states,
                &p,
            )
            .unwrap();
            let (mut w, mut h) = (s.w.clone(), h0.clone());
            for &(e, t) in &pairs {
                let g = clip(rescale * s.g[t], clip_g);
                h[e] += g * g;
                w[e] -= lr * (g / (h[e] + eps).sqrt() + wdecay * w[e]);
            }
            assert_close("adagrad w", &ops::dtoh(&dev, &wd).unwrap(), &w, 1e-5, 1e-6);
            assert_close(
                "adagrad history",
                &ops::dtoh(&dev, &hd).unwrap(),
                &h,
                1e-6,
                1e-7,
            );
        }
    }
}

#[test]
fn sparse_update_reports_out_of_range_row() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(11);
    let mut s = sparse_setup(&mut rng);
    s.idx[2] = s.rows as i64;
    let (idx_d, gd) = (
        ops::htod(&dev, &s.idx).unwrap(),
        ops::htod(&dev, &s.g).unwrap(),
    );
    let mut wd = ops::htod(&dev, &s.w).unwrap();
    let p = [0.1, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0];
    let r = ops::row_update(
        &dev,
        "sgd_update_f32",
        &mut wd,
        s.dim,
        &gd,
        Some(&idx_d),
        vec![],
        &p,
    );
    assert!(
        matches!(
            r,
            Err(Error::IndexOutOfRange {
                index: 40,
                size: 40,
                ..
            })
        ),
        "got ok={}",
        r.is_ok()
    );
}

// ------------------------------------------------------------------ dropout, one_hot

#[test]
fn dropout_mask_equals_cpu_hash_mask() {
    let dev = dev_or_skip!();
    let n = 100_003;
    for (seed, p) in [
        (7u64, 0.3f32),
        (123_456_789, 0.5),
        (u64::MAX, 0.0),
        (1, 1.0),
    ] {
        let mut m = poisoned(&dev, n);
        ops::dropout_mask(&dev, seed, p, &mut m).unwrap();
        let got = ops::dtoh(&dev, &m).unwrap();
        let scale = ops::dropout_scale(p);
        for (i, &g) in got.iter().enumerate() {
            let want = if boson::rng::uniform_hash(seed, i as u64) >= p {
                scale
            } else {
                0.0
            };
            assert_eq!(g.to_bits(), want.to_bits(), "seed {seed} p {p} element {i}");
        }
    }
}

#[test]
fn one_hot_matches_cpu_and_reports_bad_label() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(12);
    let (n, classes) = (1000, 13);
    let mut labels: Vec<i64> = (0..n).map(|_| rng.below(classes as u64) as i64).collect();
    let ld = ops::htod(&dev, &labels).unwrap();
    let mut out = poisoned(&dev, n * classes);
    ops::one_hot(&dev, &ld, classes, &mut out).unwrap();
    let got = ops::dtoh(&dev, &out).unwrap();
    for i in 0..n {
        for c in 0..classes {
            assert_eq!(
                got[i * classes + c],
                if labels[i] == c as i64 { 1.0 } else { 0.0 }
            );
        }
    }
    labels[5] = classes as i64;
    let ld = ops::htod(&dev, &labels).unwrap();
    let r = ops::one_hot(&dev, &ld, classes, &mut out);
    assert!(
        matches!(
            r,
            Err(Error::IndexOutOfRange {
                index: 13,
                size: 13,
                ..
            })
        ),
        "got ok={}",
        r.is_ok()
    );
}

// ------------------------------------------------------------------ matmul

#[test]
fn matmul_all_transposes_batched_match_cpu() {
    let dev = dev_or_skip!();
    let mut rng = Rng::new(13);
    for &(batch, m, n, k) in &[
        (1usize, 33usize, 17usize, 29usize),
        (3, 8, 64, 5),
        (2, 1, 1, 70),
    ] {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                let a = rng.vec(batch * m * k, -1.0, 1.0);
                let b = rng.vec(batch * k * n, -1.0, 1.0);
                let (ad, bd) = (ops::htod(&dev, &a).unwrap(), ops::htod(&dev, &b).unwrap());
                let mut c = poisoned(&dev, batch * m * n);
                let sh = MatmulShape {
                    batch,
                    m,
                    n,
                    k,
                    trans_a,
                    trans_b,
                };
                ops::matmul(&dev, &sh, &ad, &bd, &mut c).unwrap();
                let got = ops::dtoh(&dev, &c).unwrap();
                let mut want = vec![0f32; batch * m * n];
                for bi in 0..batch {
                    let (ao, bo) = (bi * m * k, bi * k * n);
                    for i in 0..m {
                        for j in 0..n {
                            let mut acc = 0f64;
                            for p in 0..k {
                                let av = if trans_a {
                                    a[ao + p * m + i]
                                } else {
                                    a[ao + i * k + p]
                                };
                                let bv = if trans_b {
                                    b[bo + j * k + p]
                                } else {
                                    b[bo + p * n + j]
                                };
                                acc += av as f64 * bv as f64;
                            }
                            want[bi * m * n + i * n + j] = acc as f32;
                        }
                    }
                }
                assert_close(&format!("matmul {sh:?}"), &got, &want, 1e-4, 1e-4);
            }
        }
    }
}

// Host arithmetic, no GPU needed: the kernels' strides come from the tensor layer's
// layout, with broadcasting checked.
#[test]
fn kernel_strides_follow_the_tensor_layout() {
    assert_eq!(ops::contiguous_strides(&[2, 3, 4]), [12, 4, 1]);
    let s = broadcast_strides(&[3, 1], &[2, 3, 4]).unwrap();
    assert_eq!((s[0], s[1], s[2]), (0, 1, 0));
    assert_eq!(broadcast_strides(&[4], &[2, 4]).unwrap(), [0, 1]);
    for (from, to) in [(&[3][..], &[2, 4][..]), (&[2, 3], &[3]), (&[2], &[2, 1])] {
        assert!(broadcast_strides(from, to).is_err(), "{from:?} -> {to:?}");
    }
}
