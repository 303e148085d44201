//! CPU loops of the window primitives (`im2col`, `col2im`, pooling) over contiguous
//! `NCHW` f32 values. Each output row or image plane is written by one task, so results
//! never depend on the number of threads.

use super::pool;
use super::window::{PoolKind, Window2d};
use rayon::prelude::*;

/// Work (elements touched) below which a loop stays on the calling thread.
const PAR_MIN: usize = 1 << 16;

/// Runs `f(index, chunk)` over `out` in chunks of `len`, on rayon when `work` is large.
fn chunks(out: &mut [f32], len: usize, work: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if len == 0 {
        return;
    }
    if work >= PAR_MIN {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// The outputs `o` in `0..out` whose input position `o·stride + offset` (offset may be
/// negative) falls in `0..len`.
fn valid_range(out: usize, stride: usize, offset: isize, len: usize) -> std::ops::Range<usize> {
    let lo = if offset >= 0 {
        0
    } else {
        (offset.unsigned_abs()).div_ceil(stride)
    };
    // o·stride + offset < len  ⇔  o < (len − offset) / stride (rounded up).
    let limit = len as isize - offset;
    let hi = if limit <= 0 {
        0
    } else {
        (limit as usize).div_ceil(stride)
    };
    lo.min(out)..hi.clamp(lo.min(out), out)
}

/// `[n, c·kh·kw, oh·ow]` columns: sample `b`, row `(ci, i, j)`, column `(oy, ox)` holds
/// `x[b, ci, oy·sh − ph + i·dh, ox·sw − pw + j·dw]`, or 0 in the padding.
pub(crate) fn im2col(x: &[f32], g: &Window2d) -> Vec<f32> {
    let (plane, l, rows) = (g.h * g.w, g.oh * g.ow, g.col_rows());
    let mut out = pool::scratch(g.n * rows * l);
    chunks(&mut out, l, g.n * rows * l, |q, dst| {
        let (b, r) = (q / rows, q % rows);
        let (ci, i, j) = (r / (g.kh * g.kw), r / g.kw % g.kh, r % g.kw);
        let xo = (j * g.dw) as isize - g.pw as isize;
        let xs = valid_range(g.ow, g.sw, xo, g.w);
        let src = &x[(b * g.c + ci) * plane..][..plane];
        for (oy, dst) in dst.chunks_mut(g.ow).enumerate() {
            let iy = (oy * g.sh + i * g.dh) as isize - g.ph as isize;
            if iy < 0 || iy >= g.h as isize || xs.is_empty() {
                dst.fill(0.0);
                continue;
            }
            let line = &src[iy as usize * g.w..][..g.w];
            dst[..xs.start].fill(0.0);
            dst[xs.end..].fill(0.0);
            let first = ((xs.start * g.sw) as isize + xo) as usize;
            if g.sw == 1 {
                dst[xs.clone()].copy_from_slice(&line[first..][..xs.len()]);
            } else {
                for (k, d) in dst[xs.clone()].iter_mut().enumerate() {
                    *d = line[first + k * g.sw];
                }
            }
        }
    });
    out
}

/// The adjoint of [`im2col`]: each column value added back to the input position it
/// came from (overlapping windows sum), padding dropped.
pub(crate) fn col2im(cols: &[f32], g: &Window2d) -> Vec<f32> {
    let (plane, l, rows) = (g.h * g.w, g.oh * g.ow, g.col_rows());
    let mut out = pool::filled(g.input_len(), 0.0);
    chunks(&mut out, plane, g.n * rows * l, |p, dst| {
        let (b, ci) = (p / g.c, p % g.c);
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[(b * rows + (ci * g.kh + i) * g.kw + j) * l..][..l];
                let xo = (j * g.dw) as isize - g.pw as isize;
                let xs = valid_range(g.ow, g.sw, xo, g.w);
                if xs.is_empty() {
                    continue;
                }
                for (oy, src) in row.chunks(g.ow).enumerate() {
                    let iy = (oy * g.sh + i * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let line = &mut dst[iy as usize * g.w..][..g.w];
                    let first = ((xs.start * g.sw) as isize + xo) as usize;
                    for (k, ox) in xs.clone().enumerate() {
                        line[first + k * g.sw] += src[ox];
                    }
                }
            }
        }
    });
    out
}

/// One window's in-image part `lo..hi` along an axis, and its padded length (the
/// average's divisor factor with `count_include_pad`, clipped at `len + pad` as MXNet
/// does).
type Span = (usize, usize, usize);

/// The span of each window along one axis.
fn spans(out: usize, len: usize, k: usize, stride: usize, pad: usize) -> Vec<Span> {
    (0..out)
        .map(|o| {
            let start = (o * stride) as isize - pad as isize;
            let end = (start + k as isize).min((len + pad) as isize);
            let lo = start.max(0) as usize;
            let hi = (end.max(0) as usize).clamp(lo, len);
            (lo, hi, (end - start) as usize)
        })
        .collect()
}

/// The window spans along both axes.
fn window_spans(g: &Window2d) -> (Vec<Span>, Vec<Span>) {
    (
        spans(g.oh, g.h, g.kh, g.sh, g.ph),
        spans(g.ow, g.w, g.kw, g.sw, g.pw),
    )
}

/// The average's divisor for a window with these spans (0 for an empty window).
fn divisor(kind: PoolKind, (y0, y1, yp): Span, (x0, x1, xp): Span) -> f32 {
    match kind {
        PoolKind::Avg {
            count_include_pad: true,
        } => (yp * xp) as f32,
        _ => ((y1 - y0) * (x1 - x0)) as f32,
    }
}

/// The first position (plane-relative) of the largest value in rows `ys`, columns `xs`.
#[inline]
fn argmax(src: &[f32], w: usize, ys: (usize, usize), xs: (usize, usize)) -> Option<usize> {
    if ys.0 >= ys.1 || xs.0 >= xs.1 {
        return None;
    }
    let mut best = ys.0 * w + xs.0;
    let mut value = src[best];
    for y in ys.0..ys.1 {
        let row = &src[y * w + xs.0..y * w + xs.1];
        for (k, &v) in row.iter().enumerate() {
            if v > value {
                value = v;
                best = y * w + xs.0 + k;
            }
        }
    }
    Some(best)
}

/// Pooled `[n, c, oh, ow]` values.
pub(crate) fn pool2d(x: &[f32], g: &Window2d, kind: PoolKind) -> Vec<f32> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let (ys, xs) = window_spans(g);
    let mut out = pool::scratch(g.output_len());
    chunks(&mut out, l, g.output_len() * g.kh * g.kw, |p, dst| {
        let src = &x[p * plane..][..plane];
        for (oy, &yspan) in ys.iter().enumerate() {
            let row = &mut dst[oy * g.ow..][..g.ow];
            for (d, &xspan) in row.iter_mut().zip(&xs) {
                let (y, x) = ((yspan.0, yspan.1), (xspan.0, xspan.1));
                *d = match kind {
                    PoolKind::Max => argmax(src, g.w, y, x).map_or(0.0, |a| src[a]),
                    PoolKind::Avg { .. } => {
                        let div = divisor(kind, yspan, xspan);
                        let s: f32 = (y.0..y.1)
                            .map(|r| src[r * g.w + x.0..r * g.w + x.1].iter().sum::<f32>())
                            .sum();
                        if div > 0.0 {
                            s / div
                        } else {
                            0.0
                        }
                    }
                };
            }
        }
    });
    out
}

/// The input's gradient of [`pool2d`] given the output's: a maximum's to its first
/// position, an average's spread over its window.
pub(crate) fn pool2d_grad(x: &[f32], dy: &[f32], g: &Window2d, kind: PoolKind) -> Vec<f32> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let (ys, xs) = window_spans(g);
    let mut out = pool::filled(g.input_len(), 0.0);
    chunks(&mut out, plane, g.output_len() * g.kh * g.kw, |p, dst| {
        let src = &x[p * plane..][..plane];
        let dyp = &dy[p * l..][..l];
        for (oy, &yspan) in ys.iter().enumerate() {
            for (ox, &xspan) in xs.iter().enumerate() {
                let d = dyp[oy * g.ow + ox];
                let (y, x) = ((yspan.0, yspan.1), (xspan.0, xspan.1));
                match kind {
                    PoolKind::Max => {
                        if let Some(a) = argmax(src, g.w, y, x) {
                            dst[a] += d;
                        }
                    }
                    PoolKind::Avg { .. } => {
                        let div = divisor(kind, yspan, xspan);
                        if div > 0.0 {
                            for r in y.0..y.1 {
                                for v in &mut dst[r * g.w + x.0..r * g.w + x.1] {
                                    *v += d / div;
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_range_clips_both_ends() {
        // o·2 − 1 in 0..5: o = 1, 2 (positions 1, 3); o = 3 gives 5, out.
        assert_eq!(valid_range(4, 2, -1, 5), 1..3);
        assert_eq!(valid_range(4, 1, 0, 4), 0..4);
        assert_eq!(valid_range(3, 1, 2, 3), 0..1);
        assert_eq!(valid_range(3, 1, 5, 3), 0..0);
        assert_eq!(valid_range(3, 1, -9, 3), 3..3);
    }
}
