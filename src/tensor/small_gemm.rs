//! Matrix products with a small side, without packing: a convolution's per-image
//! products (`[out_ch, c·kh·kw] · [c·kh·kw, oh·ow]` and its two gradients) have 6–64
//! rows or a 25–600 inner dimension, where a general GEMM spends as long packing its
//! operands as multiplying them. Two register-blocked loops cover them:
//!
//! - [`axpy_form`]: `C = op(A)·B` for few rows and a short inner dimension: each row of
//!   `B` is streamed once per block of rows of `C`, scaled and added into accumulators;
//! - [`dot_form`]: `C = A·Bᵀ` with a long inner dimension and a small `C`: blocks of dot
//!   products over rows of `A` and `B`, both contiguous.
//!
//! Both run through [`simd::vectorized`] (AVX-512 or AVX2 where present). Sums run in a
//! fixed order that depends on the shapes only, and no multiply-add is fused, so the
//! results are the same on every machine and thread count.

use super::simd::{self, Kernel};

/// Rows of `C` per block, and columns per block (two AVX2 or one AVX-512 register).
const MR: usize = 6;
const NR: usize = 16;

/// Whether [`axpy_form`] handles a product of this shape well.
pub(crate) fn fits_axpy_form(m: usize, k: usize, n: usize) -> bool {
    m <= 64 && k <= 64 && n >= NR
}

/// Whether [`dot_form`] handles a product of this shape well.
pub(crate) fn fits_dot_form(m: usize, k: usize, n: usize) -> bool {
    m * n <= 64 * 64 && k >= 64
}

/// `c[m×n] = op(a)·b` with `b` row-major `k×n`; `op(a)[i, p]` is `a[i·rs + p·cs]`
/// (`rs = k, cs = 1` for `a` as stored, `rs = 1, cs = m` for its transpose).
pub(crate) fn axpy_form(
    a: &[f32],
    (rs, cs): (usize, usize),
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    simd::vectorized(Axpy {
        a,
        rs,
        cs,
        b,
        c,
        m,
        k,
        n,
    })
}

struct Axpy<'a> {
    a: &'a [f32],
    rs: usize,
    cs: usize,
    b: &'a [f32],
    c: &'a mut [f32],
    m: usize,
    k: usize,
    n: usize,
}

impl Kernel for Axpy<'_> {
    type Output = ();
    #[inline(always)]
    fn run(mut self) {
        for i0 in (0..self.m).step_by(MR) {
            let mut j0 = 0;
            while j0 < self.n {
                let cols = NR.min(self.n - j0);
                // One monomorphised block per row count: the accumulators stay in registers.
                match self.m - i0 {
                    1 => self.block::<1>(i0, j0, cols),
                    2 => self.block::<2>(i0, j0, cols),
                    3 => self.block::<3>(i0, j0, cols),
                    4 => self.block::<4>(i0, j0, cols),
                    5 => self.block::<5>(i0, j0, cols),
                    _ => self.block::<MR>(i0, j0, cols),
                }
                j0 += cols;
            }
        }
    }
}

impl Axpy<'_> {
    /// Rows `i0..i0 + R`, columns `j0..j0 + cols` of `c`.
    #[inline(always)]
    fn block<const R: usize>(&mut self, i0: usize, j0: usize, cols: usize) {
        let (a, b, n) = (self.a, self.b, self.n);
        let mut acc = [[0f32; NR]; R];
        for p in 0..self.k {
            let start = p * n + j0;
            let mut padded = [0f32; NR];
            let bv: &[f32; NR] = match b[start..].first_chunk::<NR>() {
                Some(full) if cols == NR => full,
                _ => {
                    padded[..cols].copy_from_slice(&b[start..start + cols]);
                    &padded
                }
            };
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let av = a[(i0 + r) * self.rs + p * self.cs];
                for l in 0..NR {
                    acc_row[l] += av * bv[l];
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate() {
            let at = (i0 + r) * n + j0;
            self.c[at..at + cols].copy_from_slice(&acc_row[..cols]);
        }
    }
}

/// `c[m×n] = a·bᵀ` with `a` row-major `m×k` and `b` row-major `n×k`.
pub(crate) fn dot_form(a: &[f32], b: &[f32], c: &mut [f32], (m, k, n): (usize, usize, usize)) {
    simd::vectorized(Dot { a, b, c, m, k, n })
}

struct Dot<'a> {
    a: &'a [f32],
    b: &'a [f32],
    c: &'a mut [f32],
    m: usize,
    k: usize,
    n: usize,
}

/// Lanes of each dot product's partial sums.
const LANES: usize = 16;

impl<'a> Kernel for Dot<'a> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Dot { a, b, c, m, k, n } = self;
        let whole = k - k % LANES;
        // Two rows of `a` against two rows of `b`: four dot products share each load.
        for i0 in (0..m).step_by(2) {
            for j0 in (0..n).step_by(2) {
                let (ri, rj) = (2.min(m - i0), 2.min(n - j0));
                let mut acc = [[[0f32; LANES]; 2]; 2];
                let arow = |r: usize| &a[(i0 + r.min(ri - 1)) * k..][..k];
                let brow = |r: usize| &b[(j0 + r.min(rj - 1)) * k..][..k];
                let (a0, a1, b0, b1) = (arow(0), arow(1), brow(0), brow(1));
                let chunks = |row: &'a [f32]| row[..whole].chunks_exact(LANES);
                for (((x0, x1), y0), y1) in
                    chunks(a0).zip(chunks(a1)).zip(chunks(b0)).zip(chunks(b1))
                {
                    for l in 0..LANES {
                        acc[0][0][l] += x0[l] * y0[l];
                        acc[0][1][l] += x0[l] * y1[l];
                        acc[1][0][l] += x1[l] * y0[l];
                        acc[1][1][l] += x1[l] * y1[l];
                    }
                }
                for r in 0..ri {
                    for s in 0..rj {
                        let (x, y) = (arow(r), brow(s));
                        let mut sum = 0.0;
                        for lane in acc[r][s] {
                            sum += lane;
                        }
                        for p in whole..k {
                            sum += x[p] * y[p];
                        }
                        c[(i0 + r) * n + j0 + s] = sum;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        (0..len)
            .map(|i| crate::rng::uniform_hash(seed, i as u64) * 2.0 - 1.0)
            .collect()
    }

    fn reference(
        a: &[f32],
        (rs, cs): (usize, usize),
        b: &[f32],
        (bk, bn): (usize, usize),
        (m, k, n): (usize, usize, usize),
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * rs + p * cs] as f64 * b[p * bk + j * bn] as f64)
                    .sum();
            }
        }
        c
    }

    fn close(got: &[f32], want: &[f64]) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                "element {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn axpy_form_matches_the_definition_with_ragged_blocks() {
        for (m, k, n) in [
            (6, 25, 576),
            (5, 3, 17),
            (16, 54, 100),
            (1, 1, 16),
            (7, 64, 33),
        ] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let mut c = vec![f32::NAN; m * n];
            axpy_form(&a, (k, 1), &b, &mut c, (m, k, n));
            close(&c, &reference(&a, (k, 1), &b, (n, 1), (m, k, n)));
            // The transposed left operand: stored k × m.
            axpy_form(&a, (1, m), &b, &mut c, (m, k, n));
            close(&c, &reference(&a, (1, m), &b, (n, 1), (m, k, n)));
        }
    }

    #[test]
    fn dot_form_matches_the_definition_with_ragged_blocks() {
        for (m, k, n) in [(6, 576, 25), (3, 100, 5), (16, 64, 54), (1, 70, 1)] {
            let (a, b) = (values(m * k, 3), values(n * k, 4));
            let mut c = vec![f32::NAN; m * n];
            dot_form(&a, &b, &mut c, (m, k, n));
            close(&c, &reference(&a, (k, 1), &b, (1, k), (m, k, n)));
        }
    }
}
