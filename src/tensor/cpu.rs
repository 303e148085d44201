//! CPU kernels: loops over slices (matrix products in `small_gemm`), rayon for large inputs.
//!
//! These are the reference implementations every CUDA kernel is tested against.

use super::pool;
use super::primitives::ReduceOp;
use super::shape::Layout;
use super::simd::{prefetch, vectorized, Kernel};
use super::small_gemm;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Below this many elements a loop stays on one thread: splitting small ops costs more than
/// it saves (and a 2-core machine shared with other jobs punishes spinning pools).
const PAR_MIN: usize = 1 << 18;
const CHUNK: usize = 1 << 15;

pub(crate) fn map<F: Fn(f32) -> f32 + Sync>(x: &[f32], f: F) -> Vec<f32> {
    let mut out = pool::scratch(x.len());
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, i)| o.iter_mut().zip(i).for_each(|(o, &v)| *o = f(v)));
    } else {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
    }
    out
}

/// Visits the output in row-major order one innermost row at a time, passing the starting
/// offset of that row in each input layout.
fn for_each_row2(a: &Layout, b: &Layout, mut f: impl FnMut(usize, usize, usize)) {
    let rank = a.shape.len();
    if rank == 0 {
        f(0, a.offset, b.offset);
        return;
    }
    let outer: usize = a.shape[..rank - 1].iter().product();
    let mut idx = vec![0usize; rank.saturating_sub(1)];
    for row in 0..outer {
        let (mut ao, mut bo) = (a.offset, b.offset);
        for (d, &i) in idx.iter().enumerate() {
            ao += i * a.strides[d];
            bo += i * b.strides[d];
        }
        f(row, ao, bo);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < a.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// `f` over two strided views with the same (broadcast) shape; the output is
/// contiguous. Each op gets its own monomorphised loop (an indirect call per element
/// would stop the compiler from inlining and vectorising the arithmetic).
#[inline(always)]
pub(crate) fn binary_with<F: Fn(f32, f32) -> f32 + Sync>(
    f: F,
    a: &[f32],
    la: &Layout,
    b: &[f32],
    lb: &Layout,
) -> Vec<f32> {
    let n = la.elem_count();
    let mut out = pool::scratch(n);
    if la.is_contiguous() && lb.is_contiguous() && la.offset == 0 && lb.offset == 0 {
        // Zipped slices, not indices: no bounds checks, so the loop vectorises.
        let pass = |o: &mut [f32], a: &[f32], b: &[f32]| {
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        };
        let (a, b) = (&a[..n], &b[..n]);
        if n >= PAR_MIN {
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                .for_each(|(o, (a, b))| pass(o, a, b));
        } else {
            pass(&mut out, a, b);
        }
        return out;
    }
    let last = la.shape.last().copied().unwrap_or(1);
    let (sa, sb) = (
        la.strides.last().copied().unwrap_or(0),
        lb.strides.last().copied().unwrap_or(0),
    );
    for_each_row2(la, lb, |row, ao, bo| {
        let o = &mut out[row * last..(row + 1) * last];
        match (sa, sb) {
            (1, 1) => {
                for ((o, &x), &y) in o.iter_mut().zip(&a[ao..ao + last]).zip(&b[bo..bo + last]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[bo];
                for (o, &x) in o.iter_mut().zip(&a[ao..ao + last]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[ao];
                for (o, &y) in o.iter_mut().zip(&b[bo..bo + last]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in o.iter_mut().enumerate() {
                    *o = f(a[ao + j * sa], b[bo + j * sb]);
                }
            }
        }
    });
    out
}

/// Materialises a strided view of `src` into `out` (`l`'s element count long; every
/// element is written).
pub(crate) fn strided_copy<T: Copy>(src: &[T], l: &Layout, mut out: Vec<T>) -> Vec<T> {
    let n = l.elem_count();
    if l.is_contiguous() {
        out.copy_from_slice(&src[l.offset..l.offset + n]);
        return out;
    }
    let last = l.shape.last().copied().unwrap_or(1);
    let s = l.strides.last().copied().unwrap_or(0);
    for_each_row2(l, l, |row, o, _| {
        let dst = &mut out[row * last..(row + 1) * last];
        if s == 1 {
            dst.copy_from_slice(&src[o..o + last]);
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = src[o + j * s];
            }
        }
    });
    out
}

/// Reduces a contiguous tensor viewed as `(outer, len, inner)` over its middle axis.
pub(crate) fn reduce(op: ReduceOp, x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<f32> {
    if inner == 1 && op == ReduceOp::Sum {
        // Rows of the last axis (a batch of dot products, a mean loss): sum each row in
        // eight independent lanes so the adds vectorise instead of forming one chain.
        return x.chunks_exact(len).map(lane_sum).collect();
    }
    let mut out = pool::filled(outer * inner, 0.0);
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        let base = o * len * inner;
        match op {
            ReduceOp::Sum => {
                for l in 0..len {
                    let src = &x[base + l * inner..base + (l + 1) * inner];
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
                }
            }
            ReduceOp::Max | ReduceOp::Min => {
                let pick: fn(f32, f32) -> f32 = if op == ReduceOp::Max {
                    f32::max
                } else {
                    f32::min
                };
                dst.copy_from_slice(&x[base..base + inner]);
                for l in 1..len {
                    let src = &x[base + l * inner..base + (l + 1) * inner];
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = pick(*d, s));
                }
            }
        }
    }
    out
}

/// `Σ row` in eight independent lanes (vectorised; the order depends on the length only).
pub(crate) fn lane_sum(row: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ x²` accumulated in f64, in eight independent lanes so the adds vectorise (one chain
/// of dependent f64 adds runs about 8× slower; a step's gradient norm reads every
/// gradient value).
pub(crate) fn squared_norm(x: &[f32]) -> f64 {
    struct SumSquares<'a>(&'a [f32]);
    impl Kernel for SumSquares<'_> {
        type Output = f64;
        #[inline(always)]
        fn run(self) -> f64 {
            let mut lanes = [0.0f64; 8];
            let chunks = self.0.chunks_exact(8);
            let tail: f64 = chunks
                .remainder()
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum();
            for c in chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += f64::from(v) * f64::from(v);
                }
            }
            lanes.iter().sum::<f64>() + tail
        }
    }
    vectorized(SumSquares(x))
}

/// Softmax (`log`: log-softmax) of each `len`-long row of `x`, the row's maximum
/// subtracted first; rows in parallel when the input is large.
pub(crate) fn softmax(x: &[f32], len: usize, log: bool) -> Vec<f32> {
    let mut out = pool::scratch(x.len());
    for_rows(&mut out, len, |k, y| {
        let r = &x[k * len..(k + 1) * len];
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        y.iter_mut()
            .zip(r)
            .for_each(|(y, &v)| *y = exp_or_zero(v - m));
        let s = lane_sum(y);
        if log {
            let shift = m + s.ln();
            y.iter_mut().zip(r).for_each(|(y, &v)| *y = v - shift);
        } else {
            let inv = 1.0 / s;
            y.iter_mut().for_each(|y| *y *= inv);
        }
    });
    out
}

/// `exp(d)` for `d <= 0` (a softmax entry after the row's maximum is subtracted), 0
/// below −87 (where `exp` leaves f32's normal range: masked entries, −1e9, are common in
/// attention rows); NaN stays NaN.
///
/// Branch-free so that a row compiles to vector code (libm's `expf` is a call per value:
/// a tenth of a SASRec step): `d = n·ln 2 + r` with `n` rounded by adding 1.5·2²³ (whose
/// bits then hold `n`), `exp(r)` by Cephes' degree-6 polynomial (about 1 ulp), `2ⁿ` built
/// in the exponent bits. Plain multiplies and adds, so every instruction set gives the
/// same bits.
#[inline(always)]
fn exp_or_zero(d: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits
    let shifted = d * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 in two parts, the first exact in a few bits, so n·LN2_HI is exact.
    let r = d - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // n + 127 in the exponent field (n is in -126..=0 for d in -87..=0).
    let bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(bits.wrapping_add(127) << 23);
    if d < -87.0 {
        0.0
    } else {
        e * scale
    }
}

/// `erf(x)` within 6e-7 (absolute; the formula's 1.5e-7 and f32 rounding) by Abramowitz &
/// Stegun's 7.1.26, `1 − t·P(t)·e^(−x²)`
/// with `t = 1/(1 + 0.3275911·|x|)`, sign restored; NaN stays NaN. Branch-free like
/// [`exp_or_zero`], so GELU's rows compile to vector code where libm's `erff` is a call per
/// value (PyTorch's vectorised CPU GELU uses the same formula).
#[inline(always)]
pub(crate) fn erf_approx(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_8;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    (1.0 - p * t * exp_or_zero(-a * a)).copysign(x)
}

/// The standard normal density `φ(x) = e^(−x²/2)/√(2π)`, branch-free (see [`erf_approx`]).
#[inline(always)]
pub(crate) fn normal_density(x: f32) -> f32 {
    0.398_942_3 * exp_or_zero(-0.5 * x * x)
}

/// The input gradient of [`softmax`] from its output `y` and the output's gradient `dy`:
/// `y·(dy − Σ dy·y)`, or for log-softmax `dy − exp(y)·Σ dy`.
pub(crate) fn softmax_grad(y: &[f32], dy: &[f32], len: usize, log: bool) -> Vec<f32> {
    let mut dx = pool::scratch(y.len());
    for_rows(&mut dx, len, |k, out| {
        let (y, g) = (&y[k * len..(k + 1) * len], &dy[k * len..(k + 1) * len]);
        if log {
            let s = lane_sum(g);
            for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                *o = g - exp_or_zero(y) * s;
            }
        } else {
            let s: f32 = y.iter().zip(g).map(|(&y, &g)| y * g).sum();
            for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                *o = y * (g - s);
            }
        }
    });
    dx
}

/// `f(k, row k of out)` over the `len`-long rows of `out`, in parallel when it is large.
fn for_rows<F: Fn(usize, &mut [f32]) + Sync + Send>(out: &mut [f32], len: usize, f: F) {
    if len == 0 {
        return;
    }
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(k, row)| f(k, row));
    } else {
        out.chunks_mut(len)
            .enumerate()
            .for_each(|(k, row)| f(k, row));
    }
}

/// Index of the first maximum along the middle axis of `(outer, len, inner)`.
pub(crate) fn argmax(x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<i64> {
    let mut out = vec![0i64; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let mut best = f32::NEG_INFINITY;
            let mut arg = 0;
            for l in 0..len {
                let v = x[(o * len + l) * inner + i];
                if v > best || (l == 0) {
                    best = v;
                    arg = l;
                }
            }
            out[o * inner + i] = arg as i64;
        }
    }
    out
}

/// `batch` row-major products `op(a)·op(b)` of `(m × k)` and `(k × n)` matrices; a
/// transposed operand is stored `(k × m)` / `(n × k)` and read through strides (the
/// matrix-multiply kernel packs either layout, so no transposed copy is made).
pub(crate) fn matmul(
    a: &[f32],
    b: &[f32],
    (batch, m, k, n): (usize, usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
) -> Vec<f32> {
    // Every element is written: the products run with beta = 0, which never reads C.
    let mut out = pool::scratch(batch * m * n);
    let one = |a: &[f32], b: &[f32], c: &mut [f32]| {
        gemm_one(a, trans_a, b, trans_b, c, (m, k, n));
    };
    let (sa, sb) = (m * k, k * n);
    if batch > 1 && m * n * k * batch >= PAR_MIN {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(&a[i * sa..(i + 1) * sa], &b[i * sb..(i + 1) * sb], c));
    } else {
        for (i, c) in out.chunks_mut(m * n.max(1)).enumerate().take(batch) {
            one(&a[i * sa..(i + 1) * sa], &b[i * sb..(i + 1) * sb], c);
        }
    }
    out
}

/// One product through boson's register-blocked loops (`small_gemm`), shared out over
/// rayon by blocks of rows (or, for few rows, of columns) when large: each element's sum
/// is then exactly as on one thread.
fn gemm_one(
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    use small_gemm::Strided;
    if !trans_a && trans_b && small_gemm::long_inner(k) && m * n <= 64 * 64 {
        return small_gemm::gemm_nt(a, b, c, (m, k, n), false);
    }
    let (sa, sb) = (
        if trans_a {
            Strided::transposed(a, m)
        } else {
            Strided::rows(a, k)
        },
        if trans_b {
            Strided::transposed(b, k)
        } else {
            Strided::rows(b, n)
        },
    );
    let threads = rayon::current_num_threads();
    if small_gemm::has_a_small_side(m, k, n) || m * n * k < GEMM_PAR_MIN || threads == 1 {
        return small_gemm::gemm(sa, sb, c, (m, k, n), false);
    }
    // Rows per task: whole register blocks (12 rows under AVX-512, 6 under AVX2).
    let rows = m.div_ceil(threads).next_multiple_of(12);
    if rows < m {
        c[..m * n]
            .par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(t, c)| {
                let block = (c.len() / n, k, n);
                small_gemm::gemm(sa.skip_rows(t * rows), sb, c, block, false)
            });
        return;
    }
    // Too few rows to share: blocks of whole strips of columns, each computed into its
    // own buffer and copied into place.
    let cols = n.div_ceil(threads).next_multiple_of(32);
    let firsts: Vec<usize> = (0..n).step_by(cols).collect();
    let parts: Vec<Vec<f32>> = firsts
        .par_iter()
        .map(|&j0| {
            let width = cols.min(n - j0);
            let mut part = pool::scratch(m * width);
            small_gemm::gemm(sa, sb.skip_cols(j0), &mut part, (m, k, width), false);
            part
        })
        .collect();
    for (j0, part) in firsts.into_iter().zip(parts) {
        let width = cols.min(n - j0);
        for (dst, src) in c.chunks_exact_mut(n).zip(part.chunks_exact(width)) {
            dst[j0..j0 + width].copy_from_slice(src);
        }
        pool::recycle(part);
    }
}

/// Multiply-adds from which a product is shared out over rayon (≈ 80 µs of one core):
/// a hand-off to other threads costs tens of µs on a busy machine, so smaller products,
/// such as a 1024×64×64 Dense layer, stay on the calling thread.
const GEMM_PAR_MIN: usize = 1 << 23;

/// Checks every index against `size`, naming the first bad one.
pub(crate) fn check_indices(idx: &[i64], size: usize, what: &str) -> Result<()> {
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= size) {
        return Err(Error::IndexOutOfRange {
            what: what.to_string(),
            index: bad,
            size,
        });
    }
    Ok(())
}

/// Row gather: `out[i] = table[idx[i]]` for a `[rows, dim]` table of any float type.
pub(crate) fn gather_rows<T: Copy + Sync>(
    table: &[T],
    dim: usize,
    idx: &[i64],
    widen: impl Fn(T) -> f32 + Sync,
) -> Vec<f32> {
    let mut out = pool::scratch(idx.len() * dim);
    let row = |(o, &i): (&mut [f32], &i64)| {
        let src = &table[i as usize * dim..(i as usize + 1) * dim];
        o.iter_mut().zip(src).for_each(|(o, &s)| *o = widen(s));
    };
    if out.len() >= PAR_MIN && dim > 0 {
        out.par_chunks_mut(dim).zip(idx.par_iter()).for_each(row);
    } else if dim > 0 {
        for (k, pair) in out.chunks_mut(dim).zip(idx.iter()).enumerate() {
            // Rows of a large table are scattered: request a few ahead (see the optimizer).
            if let Some(&ahead) = idx.get(k + 8) {
                prefetch(&table[ahead as usize * dim..(ahead as usize + 1) * dim]);
            }
            row(pair);
        }
    }
    out
}

/// Sums rows that share an index: returns the unique indices (ascending) and their summed
/// rows. This is the row-sparse gradient of a row gather.
pub(crate) fn coalesce_rows(idx: &[i64], rows: &[f32], dim: usize) -> (Vec<i64>, Vec<f32>) {
    let mut order: Vec<u32> = (0..idx.len() as u32).collect();
    // Stable sort: equal indices keep position order, so the sum is deterministic.
    order.sort_by_key(|&p| idx[p as usize]);
    let mut uniq = Vec::with_capacity(idx.len());
    let mut summed = pool::with_capacity(idx.len() * dim);
    for &p in &order {
        let p = p as usize;
        let src = &rows[p * dim..(p + 1) * dim];
        if uniq.last() == Some(&idx[p]) {
            let start = summed.len() - dim;
            summed[start..]
                .iter_mut()
                .zip(src)
                .for_each(|(d, &s)| *d += s);
        } else {
            uniq.push(idx[p]);
            summed.extend_from_slice(src);
        }
    }
    (uniq, summed)
}

/// `dst[idx[i]] += rows[i]` (dense scatter-add), skipping negative indices.
pub(crate) fn index_add_rows(dst: &mut [f32], dim: usize, idx: &[i64], rows: &[f32]) {
    for (i, &r) in idx.iter().enumerate() {
        if r < 0 {
            continue;
        }
        let d = &mut dst[r as usize * dim..(r as usize + 1) * dim];
        d.iter_mut()
            .zip(&rows[i * dim..(i + 1) * dim])
            .for_each(|(d, &s)| *d += s);
    }
}

/// An inverted-dropout mask: `1/(1-p)` where `uniform_hash(seed, i) >= p`, else 0.
/// The hash is the costly part of a dropout layer, so large masks are split over threads
/// (each element depends only on its index, so the result is the same).
pub(crate) fn dropout_mask(n: usize, p: f32, seed: u64) -> Vec<f32> {
    /// Mask values for elements `start..start + out.len()`.
    struct Fill<'a> {
        out: &'a mut [f32],
        start: usize,
        seed: u64,
        p: f32,
    }
    impl Kernel for Fill<'_> {
        type Output = ();
        // The hash's 64-bit multiplies are scalar on baseline x86-64; AVX-512 does eight
        // at once (≈ 8× faster here).
        #[inline(always)]
        fn run(self) {
            let scale = 1.0 / (1.0 - self.p);
            for (k, o) in self.out.iter_mut().enumerate() {
                let u = crate::rng::uniform_hash(self.seed, (self.start + k) as u64);
                // Branch-free: a kept/dropped branch is a coin flip the predictor cannot learn.
                *o = scale * f32::from(u8::from(u >= self.p));
            }
        }
    }
    let mut out = pool::scratch(n);
    // Vectorised, a training batch's mask (≈ 64k values) takes about 10 µs: handing it
    // to other threads would cost more than that.
    const MASK_CHUNK: usize = 1 << 18;
    if n >= 2 * MASK_CHUNK {
        out.par_chunks_mut(MASK_CHUNK)
            .enumerate()
            .for_each(|(c, out)| {
                let start = c * MASK_CHUNK;
                vectorized(Fill {
                    out,
                    start,
                    seed,
                    p,
                })
            });
    } else {
        vectorized(Fill {
            out: &mut out,
            start: 0,
            seed,
            p,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{erf_approx, exp_or_zero, matmul, normal_density};

    #[test]
    fn softmax_exp_is_within_two_ulp_of_exp_and_zero_below_its_range() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let d = -(i as f32) * 1e-4; // 0 down to -87
            let want = f64::from(d).exp();
            let err = (f64::from(exp_or_zero(d)) - want).abs() / want;
            worst = worst.max(err);
        }
        assert!(
            worst < 2.0 * f64::from(f32::EPSILON),
            "relative error {worst}"
        );
        for d in [-87.01, -104.0, -1e9, f32::NEG_INFINITY] {
            assert_eq!(exp_or_zero(d), 0.0, "{d}");
        }
        assert_eq!(exp_or_zero(0.0), 1.0);
        assert!(exp_or_zero(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_erf_and_density_are_within_their_bounds() {
        let (mut erf_worst, mut density_worst) = (0.0f64, 0.0f64);
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-4; // -10 to 10
            let erf = (f64::from(erf_approx(x)) - libm::erf(f64::from(x))).abs();
            erf_worst = erf_worst.max(erf);
            let want = (-0.5 * f64::from(x).powi(2)).exp() / (2.0 * std::f64::consts::PI).sqrt();
            density_worst = density_worst.max((f64::from(normal_density(x)) - want).abs());
        }
        // Abramowitz & Stegun's bound, 1.5e-7, plus f32 rounding in `1 − t·P(t)·e`.
        assert!(erf_worst < 6e-7, "erf absolute error {erf_worst}");
        assert!(
            density_worst < 1e-7,
            "density absolute error {density_worst}"
        );
        assert_eq!(erf_approx(f32::INFINITY), 1.0);
        assert_eq!(erf_approx(f32::NEG_INFINITY), -1.0);
        assert!(erf_approx(f32::NAN).is_nan());
        assert_eq!(normal_density(f32::INFINITY), 0.0);
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        (0..n)
            .map(|i| crate::rng::uniform_hash(seed, i as u64) - 0.5)
            .collect()
    }

    #[test]
    fn large_products_split_over_threads_are_right_and_thread_count_independent() {
        // Row splits of boson's products (tall and wide outputs), a small output with a
        // long inner dimension, and too few rows to split (matrixmultiply's column
        // split); each above the parallel threshold, with every transpose combination.
        for (m, k, n) in [
            (300, 200, 160),
            (100, 300, 400),
            (40, 6000, 40),
            (10, 1000, 900),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
                let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
                let run = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    pool.install(|| matmul(&a, &b, (1, m, k, n), ta, tb))
                };
                let (one, three) = (run(1), run(3));
                assert_eq!(
                    one, three,
                    "{m}x{k}x{n} ta={ta} tb={tb}: thread count changed it"
                );
                for (i, j) in [(0, 0), (m - 1, n - 1), (m / 2, n / 3), (7, n - 2)] {
                    let want: f64 = (0..k)
                        .map(|p| f64::from(at(i, p)) * f64::from(bt(p, j)))
                        .sum();
                    let got = f64::from(one[i * n + j]);
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{m}x{k}x{n} ta={ta} tb={tb} ({i},{j}): {got} vs {want}"
                    );
                }
            }
        }
    }
}
