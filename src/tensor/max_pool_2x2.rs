//! 2 × 2 max pooling moved by 2 without padding (`MaxPool2D((2, 2))`, LeNet's pooling and
//! most networks'): value and gradient of one image at a time.
//!
//! Each output is the first largest of its window's values read top-left, top-right,
//! bottom-left, bottom-right (`>` keeps the earlier one, as the general path's argmax), so a
//! NaN counts only in the first place; the gradient goes to that input and the other three
//! get 0. Windows do not overlap, so each input is written once.
//!
//! The rows are short (12 outputs in LeNet's first pooling, 5 in its second), shorter than
//! the 16 lanes a compiler-vectorised loop needs before it leaves its scalar remainder, so
//! the AVX-512 version takes up to 16 outputs at a time under a mask, splitting each pair
//! of inputs with two permutes. Every version makes the same comparisons, so results are
//! identical.

use super::primitives::Window2d;
use super::simd::{self, Level};

/// Whether `g` is a 2 × 2 window moved by 2 without padding or dilation (each input in at
/// most one window, every window whole).
pub(crate) fn applies(g: &Window2d) -> bool {
    (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw) == (2, 2, 2, 2, 0, 0, 1, 1)
        && 2 * g.oh <= g.h
        && 2 * g.ow <= g.w
}

/// Pools one image: `x` is `[c, h, w]`, `out` `[c, oh, ow]`.
pub(crate) fn forward(x: &[f32], out: &mut [f32], g: &Window2d) {
    match simd::level() {
        // SAFETY: `level` checked AVX-512.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::forward(x, out, g) },
        _ => each_row(x, out, g, row),
    }
}

/// The gradient for one image: `x` is `[c, h, w]`, `dy` `[c, oh, ow]`, `dx` `[c, h, w]`
/// (every value written; rows and columns no window covers get 0).
pub(crate) fn backward(x: &[f32], dy: &[f32], dx: &mut [f32], g: &Window2d) {
    match simd::level() {
        // SAFETY: `level` checked AVX-512.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::backward(x, dy, dx, g) },
        _ => each_grad_row(x, dy, dx, g, grad_row),
    }
}

/// Calls `f(top, bottom, out)` for every output row of every plane.
#[inline(always)]
fn each_row(
    x: &[f32],
    out: &mut [f32],
    g: &Window2d,
    mut f: impl FnMut(&[f32], &[f32], &mut [f32]),
) {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    for (src, dst) in x.chunks_exact(plane).zip(out.chunks_exact_mut(l)) {
        for (oy, row) in dst.chunks_exact_mut(g.ow).enumerate() {
            let top = &src[2 * oy * g.w..][..2 * g.ow];
            let bottom = &src[(2 * oy + 1) * g.w..][..2 * g.ow];
            f(top, bottom, row);
        }
    }
}

/// The input rows, the output gradient and the two input-gradient rows of one output row:
/// what a gradient row function is given.
struct GradRow<'a> {
    top: &'a [f32],
    bottom: &'a [f32],
    dy: &'a [f32],
    dtop: &'a mut [f32],
    dbottom: &'a mut [f32],
}

/// Calls `f` for every output row of every plane, and zeroes what no window covers.
#[inline(always)]
fn each_grad_row(
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    g: &Window2d,
    mut f: impl FnMut(GradRow<'_>),
) {
    let (plane, l, w, covered) = (g.h * g.w, g.oh * g.ow, g.w, 2 * g.ow);
    let planes = x.chunks_exact(plane).zip(dy.chunks_exact(l));
    for ((src, dyp), dst) in planes.zip(dx.chunks_exact_mut(plane)) {
        for (oy, d) in dyp.chunks_exact(g.ow).enumerate() {
            let (dtop, dbottom) = dst[2 * oy * w..][..2 * w].split_at_mut(w);
            dtop[covered..].fill(0.0);
            dbottom[covered..].fill(0.0);
            f(GradRow {
                top: &src[2 * oy * w..][..covered],
                bottom: &src[(2 * oy + 1) * w..][..covered],
                dy: d,
                dtop: &mut dtop[..covered],
                dbottom: &mut dbottom[..covered],
            });
        }
        dst[2 * g.oh * w..].fill(0.0);
    }
}

/// One output row, one window at a time.
fn row(top: &[f32], bottom: &[f32], out: &mut [f32]) {
    let pairs = top.chunks_exact(2).zip(bottom.chunks_exact(2));
    for (o, (t, b)) in out.iter_mut().zip(pairs) {
        let m1 = if t[1] > t[0] { t[1] } else { t[0] };
        let m2 = if b[0] > m1 { b[0] } else { m1 };
        *o = if b[1] > m2 { b[1] } else { m2 };
    }
}

/// One output row's gradient, one window at a time.
fn grad_row(r: GradRow<'_>) {
    let inputs = r.top.chunks_exact(2).zip(r.bottom.chunks_exact(2));
    let grads = r
        .dtop
        .chunks_exact_mut(2)
        .zip(r.dbottom.chunks_exact_mut(2));
    for ((&d, (t, b)), (gt, gb)) in r.dy.iter().zip(inputs).zip(grads) {
        let c1 = t[1] > t[0];
        let m1 = if c1 { t[1] } else { t[0] };
        let c2 = b[0] > m1;
        let m2 = if c2 { b[0] } else { m1 };
        let c3 = b[1] > m2;
        gb[1] = if c3 { d } else { 0.0 };
        gb[0] = if c2 && !c3 { d } else { 0.0 };
        gt[1] = if c1 && !c2 && !c3 { d } else { 0.0 };
        gt[0] = if !c1 && !c2 && !c3 { d } else { 0.0 };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Up to 16 windows at a time: two 16-value loads per input row, split into the
    //! windows' left and right values by permutes, the same comparisons as `row` and
    //! `grad_row` as mask registers, the gradients interleaved back by permutes.

    use super::{each_grad_row, each_row, GradRow, Window2d};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) fn forward(x: &[f32], out: &mut [f32], g: &Window2d) {
        each_row(x, out, g, |top, bottom, out| {
            for o in (0..out.len()).step_by(16) {
                let w = Windows::load(top, bottom, o, out.len() - o);
                let m1 = _mm512_mask_blend_ps(w.c1, w.t0, w.t1);
                let m2 = _mm512_mask_blend_ps(w.c2, m1, w.b0);
                let m3 = _mm512_mask_blend_ps(w.c3, m2, w.b1);
                // SAFETY: the mask stores only the row's outputs from `o` on.
                unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(o), w.outputs, m3) };
            }
        })
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn backward(x: &[f32], dy: &[f32], dx: &mut [f32], g: &Window2d) {
        each_grad_row(x, dy, dx, g, |r: GradRow<'_>| {
            for o in (0..r.dy.len()).step_by(16) {
                let w = Windows::load(r.top, r.bottom, o, r.dy.len() - o);
                // SAFETY: the mask reads only the row's gradients from `o` on.
                let d = unsafe { _mm512_maskz_loadu_ps(w.outputs, r.dy.as_ptr().add(o)) };
                let (c1, c2, c3) = (w.c1, w.c2, w.c3);
                let gb1 = _mm512_maskz_mov_ps(c3, d);
                let gb0 = _mm512_maskz_mov_ps(c2 & !c3, d);
                let gt1 = _mm512_maskz_mov_ps(c1 & !c2 & !c3, d);
                let gt0 = _mm512_maskz_mov_ps(!c1 & !c2 & !c3, d);
                store_pairs(r.dtop, 2 * o, w.inputs, gt0, gt1);
                store_pairs(r.dbottom, 2 * o, w.inputs, gb0, gb1);
            }
        })
    }

    /// Up to 16 windows: their four values (top-left, top-right, bottom-left,
    /// bottom-right), which comparisons hold, and the masks of the windows and of their
    /// inputs in each 16-value half.
    struct Windows {
        t0: __m512,
        t1: __m512,
        b0: __m512,
        b1: __m512,
        c1: __mmask16,
        c2: __mmask16,
        c3: __mmask16,
        outputs: __mmask16,
        inputs: [__mmask16; 2],
    }

    impl Windows {
        /// Windows `o..o + count.min(16)` of the rows `top` and `bottom`.
        #[target_feature(enable = "avx512f")]
        fn load(top: &[f32], bottom: &[f32], o: usize, count: usize) -> Windows {
            let n = count.min(16);
            let mask = |bits: usize| ((1u32 << bits.min(16)) - 1) as __mmask16;
            let inputs = [mask(2 * n), mask((2 * n).saturating_sub(16))];
            let split = |row: &[f32]| {
                let at = row.as_ptr().wrapping_add(2 * o);
                // SAFETY: the masks read only the 2n values from 2·o on, all inside `row`
                // (masked-off lanes are not accessed).
                let (lo, hi) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(inputs[0], at),
                        _mm512_maskz_loadu_ps(inputs[1], at.wrapping_add(16)),
                    )
                };
                let left =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let right =
                    _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
                (
                    _mm512_permutex2var_ps(lo, left, hi),
                    _mm512_permutex2var_ps(lo, right, hi),
                )
            };
            let ((t0, t1), (b0, b1)) = (split(top), split(bottom));
            let c1 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(t1, t0);
            let m1 = _mm512_mask_blend_ps(c1, t0, t1);
            let c2 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b0, m1);
            let m2 = _mm512_mask_blend_ps(c2, m1, b0);
            let c3 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(b1, m2);
            Windows {
                t0,
                t1,
                b0,
                b1,
                c1,
                c2,
                c3,
                outputs: mask(n),
                inputs,
            }
        }
    }

    /// Stores `left[i], right[i]` pairs into `row` from `at` on, under the input masks.
    #[target_feature(enable = "avx512f")]
    fn store_pairs(row: &mut [f32], at: usize, masks: [__mmask16; 2], left: __m512, right: __m512) {
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let ptr = row.as_mut_ptr().wrapping_add(at);
        // SAFETY: the masks write only the values `Windows::load` read, all inside `row`.
        unsafe {
            _mm512_mask_storeu_ps(ptr, masks[0], _mm512_permutex2var_ps(left, lo, right));
            _mm512_mask_storeu_ps(
                ptr.wrapping_add(16),
                masks[1],
                _mm512_permutex2var_ps(left, hi, right),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(c: usize, h: usize, w: usize) -> Window2d {
        Window2d {
            n: 1,
            c,
            h,
            w,
            kh: 2,
            kw: 2,
            sh: 2,
            sw: 2,
            ph: 0,
            pw: 0,
            dh: 1,
            dw: 1,
            oh: h / 2,
            ow: w / 2,
        }
    }

    /// Values with ties, NaNs in every window position and infinities.
    fn values(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| match (i * 7919) % 23 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                k => (k % 5) as f32 - 2.0,
            })
            .collect()
    }

    /// Every instruction set gives what the one-window-at-a-time loops give, for rows
    /// shorter than, equal to and longer than 16 windows, and odd sizes.
    #[test]
    fn every_instruction_set_matches_the_window_loops() {
        for (c, h, w) in [
            (3, 24, 24),
            (2, 10, 10),
            (2, 7, 9),
            (1, 4, 66),
            (1, 2, 32),
            (2, 5, 35),
        ] {
            let g = geometry(c, h, w);
            assert!(applies(&g));
            let x = values(c * h * w);
            let dy: Vec<f32> = (0..c * g.oh * g.ow).map(|i| i as f32 + 1.0).collect();
            let mut want = vec![0.0; dy.len()];
            each_row(&x, &mut want, &g, row);
            let mut want_dx = vec![f32::NAN; x.len()];
            each_grad_row(&x, &dy, &mut want_dx, &g, grad_row);
            let mut got = vec![0.0; dy.len()];
            forward(&x, &mut got, &g);
            let mut got_dx = vec![f32::NAN; x.len()];
            backward(&x, &dy, &mut got_dx, &g);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{c}x{h}x{w} forward");
            assert_eq!(bits(&got_dx), bits(&want_dx), "{c}x{h}x{w} backward");
            // Each window's gradient lands once: the input gradients sum to the outputs'.
            let total: f32 = want_dx.iter().sum();
            assert_eq!(total, dy.iter().sum::<f32>());
        }
    }

    /// The window loops against the definition: the first largest in reading order, a NaN
    /// only in the first place.
    #[test]
    fn the_window_loops_pick_the_first_largest() {
        let g = geometry(1, 2, 2);
        for (x, want, at) in [
            ([1.0, 3.0, 3.0, 2.0], 3.0, 1),
            ([5.0, 5.0, 5.0, 5.0], 5.0, 0),
            ([1.0, 2.0, 3.0, 4.0], 4.0, 3),
            ([f32::NAN, 9.0, 9.0, 9.0], f32::NAN, 0),
            ([1.0, f32::NAN, 2.0, 0.0], 2.0, 2),
            ([1.0, 0.0, f32::NAN, 4.0], 4.0, 3),
        ] {
            let mut out = [0.0];
            forward(&x, &mut out, &g);
            assert_eq!(out[0].to_bits(), want.to_bits(), "{x:?}");
            let mut dx = [0.0; 4];
            backward(&x, &[1.0], &mut dx, &g);
            let mut one_hot = [0.0; 4];
            one_hot[at] = 1.0;
            assert_eq!(dx, one_hot, "{x:?}");
        }
    }
}
