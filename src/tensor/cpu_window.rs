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

/// `[c·kh·kw, n·oh·ow]` columns: row `(ci, i, j)`, column `(b, oy, ox)` holds
/// `x[b, ci, oy·sh − ph + i·dh, ox·sw − pw + j·dw]`, or 0 in the padding.
pub(crate) fn im2col(x: &[f32], g: &Window2d) -> Vec<f32> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let width = g.col_width();
    let mut out = pool::scratch(g.col_rows() * width);
    chunks(&mut out, width, g.col_rows() * width, |r, row| {
        let (ci, i, j) = (r / (g.kh * g.kw), r / g.kw % g.kh, r % g.kw);
        let xo = (j * g.dw) as isize - g.pw as isize;
        let xs = valid_range(g.ow, g.sw, xo, g.w);
        for b in 0..g.n {
            let src = &x[(b * g.c + ci) * plane..][..plane];
            for oy in 0..g.oh {
                let dst = &mut row[b * l + oy * g.ow..][..g.ow];
                let iy = (oy * g.sh + i * g.dh) as isize - g.ph as isize;
                if iy < 0 || iy >= g.h as isize || xs.is_empty() {
                    dst.fill(0.0);
                    continue;
                }
                let line = &src[iy as usize * g.w..][..g.w];
                dst[..xs.start].fill(0.0);
                dst[xs.end..].fill(0.0);
                let first = (xs.start * g.sw) as isize + xo;
                if g.sw == 1 {
                    dst[xs.clone()].copy_from_slice(&line[first as usize..][..xs.len()]);
                } else {
                    for (k, d) in dst[xs.clone()].iter_mut().enumerate() {
                        *d = line[first as usize + k * g.sw];
                    }
                }
            }
        }
    });
    out
}

/// The adjoint of [`im2col`]: each column value added back to the input position it
/// came from (overlapping windows sum), padding dropped.
pub(crate) fn col2im(cols: &[f32], g: &Window2d) -> Vec<f32> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let width = g.col_width();
    let mut out = pool::filled(g.input_len(), 0.0);
    chunks(&mut out, plane, g.col_rows() * width, |p, dst| {
        let (b, ci) = (p / g.c, p % g.c);
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((ci * g.kh + i) * g.kw + j) * width + b * l..][..l];
                let xo = (j * g.dw) as isize - g.pw as isize;
                let xs = valid_range(g.ow, g.sw, xo, g.w);
                if xs.is_empty() {
                    continue;
                }
                for oy in 0..g.oh {
                    let iy = (oy * g.sh + i * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let line = &mut dst[iy as usize * g.w..][..g.w];
                    let src = &row[oy * g.ow..][..g.ow];
                    let first = (xs.start * g.sw) as isize + xo;
                    for (k, ox) in xs.clone().enumerate() {
                        line[first as usize + k * g.sw] += src[ox];
                    }
                }
            }
        }
    });
    out
}

/// The in-image part of window `(oy, ox)`: rows `y0..y1`, columns `x0..x1`, and the
/// average's divisor.
fn window(g: &Window2d, oy: usize, ox: usize, kind: PoolKind) -> (usize, usize, usize, usize, f32) {
    let ys = (oy * g.sh) as isize - g.ph as isize;
    let xs = (ox * g.sw) as isize - g.pw as isize;
    // The padded extent ends at h + ph (MXNet's divisor with count_include_pad).
    let ye = (ys + g.kh as isize).min((g.h + g.ph) as isize);
    let xe = (xs + g.kw as isize).min((g.w + g.pw) as isize);
    let (y0, x0) = (ys.max(0) as usize, xs.max(0) as usize);
    let (y1, x1) = ((ye.max(0) as usize).min(g.h), (xe.max(0) as usize).min(g.w));
    let div = match kind {
        PoolKind::Avg {
            count_include_pad: true,
        } => ((ye - ys) * (xe - xs)) as f32,
        _ => ((y1.saturating_sub(y0)) * (x1.saturating_sub(x0))) as f32,
    };
    (y0, y1, x0, x1, div)
}

/// The first position of the largest value in a window (plane-relative), if any.
fn argmax(src: &[f32], w: usize, (y0, y1, x0, x1): (usize, usize, usize, usize)) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for y in y0..y1 {
        for x in x0..x1 {
            let v = src[y * w + x];
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((y * w + x, v));
            }
        }
    }
    best.map(|(p, _)| p)
}

/// Pooled `[n, c, oh, ow]` values.
pub(crate) fn pool2d(x: &[f32], g: &Window2d, kind: PoolKind) -> Vec<f32> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let mut out = pool::scratch(g.output_len());
    chunks(&mut out, l, g.output_len() * g.kh * g.kw, |p, dst| {
        let src = &x[p * plane..][..plane];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1, div) = window(g, oy, ox, kind);
                dst[oy * g.ow + ox] = match kind {
                    PoolKind::Max => argmax(src, g.w, (y0, y1, x0, x1)).map_or(0.0, |a| src[a]),
                    PoolKind::Avg { .. } => {
                        let mut s = 0.0;
                        for y in y0..y1 {
                            s += src[y * g.w + x0..y * g.w + x1].iter().sum::<f32>();
                        }
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
    let mut out = pool::filled(g.input_len(), 0.0);
    chunks(&mut out, plane, g.output_len() * g.kh * g.kw, |p, dst| {
        let src = &x[p * plane..][..plane];
        let dyp = &dy[p * l..][..l];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let d = dyp[oy * g.ow + ox];
                let (y0, y1, x0, x1, div) = window(g, oy, ox, kind);
                match kind {
                    PoolKind::Max => {
                        if let Some(a) = argmax(src, g.w, (y0, y1, x0, x1)) {
                            dst[a] += d;
                        }
                    }
                    PoolKind::Avg { .. } if div > 0.0 => {
                        for y in y0..y1 {
                            for v in &mut dst[y * g.w + x0..y * g.w + x1] {
                                *v += d / div;
                            }
                        }
                    }
                    PoolKind::Avg { .. } => {}
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
