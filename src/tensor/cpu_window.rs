//! CPU loops of the window primitives over contiguous `NCHW` f32 values: `im2col`,
//! `col2im` and pooling, and the convolution's three products fused per image (columns
//! in a per-thread buffer, then small products). Each output row, image plane or image
//! is written by one task, and the weight gradient sums fixed partials, so results never
//! depend on the number of threads.

use super::cpu;
use super::max_pool_2x2;
use super::pool;
use super::primitives::{PoolKind, Window2d};
use super::simd::{vectorized, Kernel};
use super::small_gemm::{self, Strided};
use rayon::prelude::*;
use std::cell::RefCell;

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

/// `dst.copy_from_slice(src)` for the short rows of an image (10–30 floats), in 16- and
/// 8-float blocks: `copy_from_slice` calls `memcpy`, whose call costs more than such a
/// copy.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        let block: [f32; 16] = std::array::from_fn(|i| s[i]);
        d.copy_from_slice(&block);
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    let (d, s) = match (d.split_first_chunk_mut::<8>(), s.split_first_chunk::<8>()) {
        (Some((d8, d_rest)), Some((s8, s_rest))) => {
            *d8 = *s8;
            (d_rest, s_rest)
        }
        _ => (d, s),
    };
    for (d, s) in d.iter_mut().zip(s) {
        *d = *s;
    }
}

/// Image `x` (its `c` planes) laid out as `[c·kh·kw, oh·ow]` columns in `out`: row
/// `(ci, i, j)`, column `(oy, ox)` holds `x[ci, oy·sh − ph + i·dh, ox·sw − pw + j·dw]`,
/// or 0 in the padding.
fn im2col_image(x: &[f32], g: &Window2d, out: &mut [f32]) {
    vectorized(Im2col { x, g, out })
}

/// [`im2col_image`]'s loop: per column row, the valid output columns are computed once,
/// then each output row's segment is a copy of one input line (a strided read when
/// `sw > 1`) with zeros at the edges.
struct Im2col<'a> {
    x: &'a [f32],
    g: &'a Window2d,
    out: &'a mut [f32],
}

impl Kernel for Im2col<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Im2col { x, g, out } = self;
        let (plane, l) = (g.h * g.w, g.oh * g.ow);
        if l == 0 {
            return;
        }
        // Rows counted rather than divided out of the row index.
        for (dst, (ci, i, j)) in out.chunks_exact_mut(l).zip(taps(g)) {
            let xo = (j * g.dw) as isize - g.pw as isize;
            let xs = valid_range(g.ow, g.sw, xo, g.w);
            let src = &x[ci * plane..][..plane];
            let first = ((xs.start * g.sw) as isize + xo) as usize;
            let ys = valid_range(g.oh, g.sh, (i * g.dh) as isize - g.ph as isize, g.h);
            dst[..ys.start * g.ow].fill(0.0);
            dst[ys.end * g.ow..].fill(0.0);
            let edges = xs.start > 0 || xs.end < g.ow;
            for oy in ys {
                let iy = oy * g.sh + i * g.dh - g.ph;
                let dst = &mut dst[oy * g.ow..][..g.ow];
                let line = &src[iy * g.w..][..g.w];
                if edges {
                    dst[..xs.start].fill(0.0);
                    dst[xs.end..].fill(0.0);
                }
                if g.sw == 1 {
                    copy_short(&mut dst[xs.clone()], &line[first..][..xs.len()]);
                } else {
                    for (k, d) in dst[xs.clone()].iter_mut().enumerate() {
                        *d = line[first + k * g.sw];
                    }
                }
            }
        }
    }
}

/// The window taps `(channel, kernel row, kernel column)` in column-row order.
fn taps(g: &Window2d) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    (0..g.c).flat_map(move |ci| (0..g.kh).flat_map(move |i| (0..g.kw).map(move |j| (ci, i, j))))
}

/// Adds `[c·kh·kw, oh·ow]` columns back into image `x` (the adjoint of
/// [`im2col_image`]): overlapping windows sum, padding is dropped.
fn col2im_image(cols: &[f32], g: &Window2d, x: &mut [f32]) {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    for (ci, dst) in x.chunks_mut(plane).enumerate() {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((ci * g.kh + i) * g.kw + j) * l..][..l];
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
    }
}

/// `[n, c·kh·kw, oh·ow]` columns, one block per image (see [`im2col_image`]).
pub(crate) fn im2col(x: &[f32], g: &Window2d) -> Vec<f32> {
    let per_image = g.col_rows() * g.col_width();
    let mut out = pool::scratch(g.n * per_image);
    chunks(&mut out, per_image, g.cols_len(), |b, dst| {
        im2col_image(&x[b * g.c * g.h * g.w..][..g.c * g.h * g.w], g, dst)
    });
    out
}

/// The adjoint of [`im2col`]: each column value added back to the input position it
/// came from (overlapping windows sum), padding dropped.
pub(crate) fn col2im(cols: &[f32], g: &Window2d) -> Vec<f32> {
    let per_image = g.col_rows() * g.col_width();
    let mut out = pool::filled(g.input_len(), 0.0);
    chunks(&mut out, g.c * g.h * g.w, g.cols_len(), |b, dst| {
        col2im_image(&cols[b * per_image..][..per_image], g, dst)
    });
    out
}

thread_local! {
    /// Each thread's image columns, kept between calls: a convolution needs one image's
    /// (`c·kh·kw × oh·ow` values; it grows to the largest layer the thread has run).
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's column buffer, `len` values long (contents unspecified:
/// `im2col_image` and the products overwrite every value they read).
fn with_columns<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COLUMNS.with_borrow_mut(|buf| {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// A unit-stride convolution read from the image itself ("implicit im2col"): tap
/// `(ci, i, j)` of every output pixel lies at one fixed offset from the pixel's position
/// in the (zero-padded) image, so the product's right operand is the image read at `k`
/// offsets and no columns are built. Outputs are computed on the padded width: `wide`
/// columns per channel, of which the `wp − ow` past each output row's end are computed
/// and dropped. The sums run over the taps in the same order as with columns.
struct Shifted {
    /// The padded image's height and width.
    hp: usize,
    wp: usize,
    /// Each tap's offset in one group's padded planes, in column-row order.
    starts: Vec<usize>,
    /// Output columns on the padded width: `(oh − 1)·wp + ow`.
    wide: usize,
}

impl Shifted {
    /// The layout for one group's geometry, when its strides are 1.
    fn new(g: &Window2d) -> Option<Shifted> {
        if (g.sh, g.sw) != (1, 1) || g.oh == 0 || g.ow == 0 {
            return None;
        }
        let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
        let starts = taps(g)
            .map(|(ci, i, j)| ci * hp * wp + i * g.dh * wp + j * g.dw)
            .collect();
        Some(Shifted {
            hp,
            wp,
            starts,
            wide: (g.oh - 1) * wp + g.ow,
        })
    }

    /// Scratch values for one image group with `og` output channels: the wide outputs
    /// (or wide `dy`), then the padded copy of the planes (none without padding).
    fn scratch_len(&self, g: &Window2d, og: usize) -> usize {
        let padded = if (g.ph, g.pw) == (0, 0) {
            0
        } else {
            g.c * self.hp * self.wp
        };
        og * self.wide + padded
    }

    /// One group's planes as the product reads them: `x` itself without padding, else
    /// copied into `buf` inside a zero border.
    fn image<'a>(&self, g: &Window2d, x: &'a [f32], buf: &'a mut [f32]) -> &'a [f32] {
        if (g.ph, g.pw) == (0, 0) {
            return x;
        }
        let buf = &mut buf[..g.c * self.hp * self.wp];
        buf.fill(0.0);
        for (dst, src) in buf
            .chunks_exact_mut(self.hp * self.wp)
            .zip(x.chunks_exact(g.h * g.w))
        {
            for (y, line) in src.chunks_exact(g.w).enumerate() {
                copy_short(&mut dst[(y + g.ph) * self.wp + g.pw..][..g.w], line);
            }
        }
        buf
    }

    /// The wide product's kept columns into `y` (channels of `oh·ow`).
    fn narrow(&self, g: &Window2d, wide: &[f32], y: &mut [f32]) {
        for (dst, src) in y
            .chunks_exact_mut(g.oh * g.ow)
            .zip(wide.chunks_exact(self.wide))
        {
            for (oy, row) in dst.chunks_exact_mut(g.ow).enumerate() {
                copy_short(row, &src[oy * self.wp..][..g.ow]);
            }
        }
    }

    /// The adjoint layout of [`Shifted::narrow`]: `dy` (channels of `oh·ow`) on the wide
    /// layout, 0 in the dropped columns.
    fn widen(&self, g: &Window2d, dy: &[f32], wide: &mut [f32]) {
        for (src, dst) in dy
            .chunks_exact(g.oh * g.ow)
            .zip(wide.chunks_exact_mut(self.wide))
        {
            for (oy, row) in src.chunks_exact(g.ow).enumerate() {
                let line = &mut dst[oy * self.wp..];
                copy_short(&mut line[..g.ow], row);
                let end = self.wp.min(line.len());
                line[g.ow..end].fill(0.0);
            }
        }
    }
}

/// The sizes of a grouped convolution's per-image, per-group products.
struct Grouped {
    /// One group's geometry: its input channels of one image.
    gw: Window2d,
    /// Rows of a group's columns (`c / groups · kh · kw`).
    rows: usize,
    /// Output pixels.
    l: usize,
    /// Output channels per group.
    og: usize,
    /// Elements of an input image, and of one group's channels of it.
    image: usize,
    group_image: usize,
}

impl Grouped {
    fn new(g: &Window2d, o: usize, groups: usize) -> Grouped {
        let gw = Window2d {
            n: 1,
            c: g.c / groups,
            ..*g
        };
        Grouped {
            gw,
            rows: gw.col_rows(),
            l: g.oh * g.ow,
            og: o / groups,
            image: g.c * g.h * g.w,
            group_image: gw.c * g.h * g.w,
        }
    }
}

/// A 2-D convolution `y[n, o, oh, ow]` of `x[n, c, h, w]` with `w[o, c / groups, kh,
/// kw]`, one image per task: its columns go to a per-thread buffer that stays in cache
/// and one product per group writes the output in place (no batch-sized column matrix).
/// With `relu`, `max(y, 0)` in the same pass as the bias.
pub(crate) fn conv2d(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    g: &Window2d,
    o: usize,
    groups: usize,
) -> Vec<f32> {
    let Grouped {
        gw,
        rows,
        l,
        og,
        image,
        group_image,
    } = Grouped::new(g, o, groups);
    let mut out = pool::scratch(g.n * o * l);
    if out.is_empty() {
        return out;
    }
    let shifted = Shifted::new(&gw);
    let scratch = shifted
        .as_ref()
        .map_or(rows * l, |sh| sh.scratch_len(&gw, og));
    let wg = |gi: usize| Strided::rows(&w[gi * og * rows..][..og * rows], rows);
    let task = |buf: &mut [f32], b: usize, y: &mut [f32]| {
        for gi in 0..groups {
            let xg = &x[b * image + gi * group_image..][..group_image];
            let yg = &mut y[gi * og * l..][..og * l];
            match &shifted {
                Some(sh) => {
                    let (wide, padded) = buf.split_at_mut(og * sh.wide);
                    let src = sh.image(&gw, xg, padded);
                    let taps = Strided::shifted_rows(src, &sh.starts);
                    small_gemm::gemm(wg(gi), taps, wide, (og, rows, sh.wide), false);
                    sh.narrow(&gw, wide, yg);
                }
                None => {
                    im2col_image(xg, &gw, buf);
                    small_gemm::gemm(wg(gi), Strided::rows(buf, l), yg, (og, rows, l), false);
                }
            }
        }
        // The bias and the ReLU while the image is still in cache.
        match (bias, relu) {
            (Some(bias), false) => {
                for (row, &b) in y.chunks_mut(l).zip(bias) {
                    row.iter_mut().for_each(|v| *v += b);
                }
            }
            (Some(bias), true) => {
                for (row, &b) in y.chunks_mut(l).zip(bias) {
                    row.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
                }
            }
            (None, true) => y.iter_mut().for_each(|v| *v = v.max(0.0)),
            (None, false) => {}
        }
    };
    out.par_chunks_mut(o * l)
        .enumerate()
        .for_each(|(b, y)| with_columns(scratch, |buf| task(buf, b, y)));
    out
}

/// The input's gradient of [`conv2d`] given the output's `dy[n, o, oh, ow]`: per image
/// and group, `wᵀ·dy` as columns, summed back into the image.
pub(crate) fn conv2d_grad_input(
    dy: &[f32],
    w: &[f32],
    g: &Window2d,
    o: usize,
    groups: usize,
) -> Vec<f32> {
    if let Some(full) = full_correlation(g, o, groups) {
        let flipped = flip_weight(w, g, o, groups);
        return conv2d(dy, &flipped, None, false, &full, g.c, groups);
    }
    let Grouped {
        gw,
        rows,
        l,
        og,
        image,
        group_image,
    } = Grouped::new(g, o, groups);
    let mut out = pool::filled(g.input_len(), 0.0);
    if out.is_empty() {
        return out;
    }
    let task = |buf: &mut [f32], b: usize, dx: &mut [f32]| {
        for gi in 0..groups {
            let wg = Strided::transposed(&w[gi * og * rows..][..og * rows], rows);
            let dyg = Strided::rows(&dy[(b * o + gi * og) * l..][..og * l], l);
            small_gemm::gemm(wg, dyg, buf, (rows, og, l), false);
            col2im_image(buf, &gw, &mut dx[gi * group_image..][..group_image]);
        }
    };
    out.par_chunks_mut(image)
        .enumerate()
        .for_each(|(b, dx)| with_columns(rows * l, |buf| task(buf, b, dx)));
    out
}

/// Input channels per group from which [`full_correlation`] pays: its product has one
/// row per input channel, and 1–3 rows leave most of a register block idle (LeNet's
/// second layer, 6 channels, measured 3% faster training with it than with `col2im`).
const FULL_CORRELATION_MIN_CHANNELS: usize = 4;

/// For unit strides, the input's gradient is itself a convolution: of `dy` (padded by
/// `(k − 1)·d − p`) with the weight flipped in space and with its two channel axes
/// swapped. Its geometry, when the stride is 1, the padding at most `(k − 1)·d` (so the
/// new padding is not negative) and the input has enough channels per group. One product
/// per image then writes the gradient, in place of a product into columns and their
/// scatter back (`col2im`).
fn full_correlation(g: &Window2d, o: usize, groups: usize) -> Option<Window2d> {
    let pad = |k: usize, d: usize, p: usize| ((k - 1) * d).checked_sub(p);
    if (g.sh, g.sw) != (1, 1) || g.c / groups < FULL_CORRELATION_MIN_CHANNELS {
        return None;
    }
    Some(Window2d {
        n: g.n,
        c: o,
        h: g.oh,
        w: g.ow,
        ph: pad(g.kh, g.dh, g.ph)?,
        pw: pad(g.kw, g.dw, g.pw)?,
        oh: g.h,
        ow: g.w,
        ..*g
    })
}

/// `w[o, c / groups, kh, kw]` as `w'[c, o / groups, kh, kw]` with
/// `w'[gi·cg + cc, oo, i, j] = w[gi·og + oo, cc, kh − 1 − i, kw − 1 − j]`.
fn flip_weight(w: &[f32], g: &Window2d, o: usize, groups: usize) -> Vec<f32> {
    let (cg, og, taps) = (g.c / groups, o / groups, g.kh * g.kw);
    let mut out = pool::scratch(g.c * og * taps);
    for (r, dst) in out.chunks_exact_mut(taps).enumerate() {
        // Row r of w' is (input channel c, output channel oo within its group).
        let (c, oo) = (r / og, r % og);
        let (gi, cc) = (c / cg, c % cg);
        let src = &w[((gi * og + oo) * cg + cc) * taps..][..taps];
        for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
            *d = *s;
        }
    }
    out
}

/// `dy[n, o, oh, ow]` summed over every axis but the channels: `[o]` (a bias's
/// gradient), one pass in a fixed order.
pub(crate) fn channel_sums(dy: &[f32], shape: &[usize]) -> Vec<f32> {
    let (o, l) = (shape[1], shape[2] * shape[3]);
    let mut out = vec![0.0; o];
    for image in dy.chunks(o * l.max(1)).take(shape[0]) {
        for (sum, row) in out.iter_mut().zip(image.chunks(l.max(1))) {
            *sum += cpu::lane_sum(row);
        }
    }
    out
}

/// Output channels per group from which the weight gradient runs on the shifted image
/// (see [`conv2d_grad_weight`]): one whole register-block strip of 32 columns.
const TRANSPOSED_GRADIENT_MIN_CHANNELS: usize = 32;

/// Images per partial sum of the weight gradient: a fixed split (not the thread count),
/// so the sum's rounding is the same on every machine.
const IMAGES_PER_PARTIAL: usize = 16;

/// The weight's gradient of [`conv2d`]: `Σ_images dy · columᵀ`, per group.
pub(crate) fn conv2d_grad_weight(
    x: &[f32],
    dy: &[f32],
    g: &Window2d,
    o: usize,
    groups: usize,
) -> Vec<f32> {
    let Grouped {
        gw,
        rows,
        l,
        og,
        image,
        group_image,
    } = Grouped::new(g, o, groups);
    // With many output channels, the transposed gradient `dwᵀ[tap, o] = Σ_q image[start
    // (tap) + q] · dy[o, q]` runs as a forward-like product on the shifted image (its
    // panels packed from the image's rows, no columns built); with few, the product
    // would fill a fraction of a register block's columns, so columns are built and
    // `dy · columnsᵀ` runs as dot products (long rows) or a packed product.
    let shifted = Shifted::new(&gw).filter(|_| og >= TRANSPOSED_GRADIENT_MIN_CHANNELS);
    let scratch = shifted
        .as_ref()
        .map_or(rows * l, |sh| sh.scratch_len(&gw, og));
    let add_image = |buf: &mut [f32], xg: &[f32], dyg: &[f32], dwg: &mut [f32]| match &shifted {
        Some(sh) => {
            // `dwg` holds this group's `dwᵀ` here (`rows × og`), transposed at the end.
            let (wide, padded) = buf.split_at_mut(og * sh.wide);
            sh.widen(&gw, dyg, wide);
            let src = sh.image(&gw, xg, padded);
            let taps = Strided::shifted_rows(src, &sh.starts);
            let dy_t = Strided::transposed(wide, sh.wide);
            small_gemm::gemm(taps, dy_t, dwg, (rows, sh.wide, og), true);
        }
        None => {
            im2col_image(xg, &gw, buf);
            if small_gemm::long_inner(l) {
                small_gemm::gemm_nt(dyg, buf, dwg, (og, l, rows), true);
            } else {
                let (a, b) = (Strided::rows(dyg, l), Strided::transposed(buf, l));
                small_gemm::gemm(a, b, dwg, (og, l, rows), true);
            }
        }
    };
    let partial = |first: usize| -> Vec<f32> {
        let mut dw = pool::filled(o * rows, 0.0);
        with_columns(scratch, |buf| {
            for b in first..(first + IMAGES_PER_PARTIAL).min(g.n) {
                for gi in 0..groups {
                    let xg = &x[b * image + gi * group_image..][..group_image];
                    let dyg = &dy[(b * o + gi * og) * l..][..og * l];
                    add_image(buf, xg, dyg, &mut dw[gi * og * rows..][..og * rows]);
                }
            }
        });
        if shifted.is_none() {
            return dw;
        }
        let mut out = pool::scratch(o * rows);
        for (dst, src) in out
            .chunks_exact_mut(og * rows)
            .zip(dw.chunks_exact(og * rows))
        {
            for (t, row) in src.chunks_exact(og).enumerate() {
                for (oo, v) in row.iter().enumerate() {
                    dst[oo * rows + t] = *v;
                }
            }
        }
        pool::recycle(dw);
        out
    };
    let starts: Vec<usize> = (0..g.n).step_by(IMAGES_PER_PARTIAL).collect();
    let partials: Vec<Vec<f32>> = starts.into_par_iter().map(partial).collect();
    let mut out = pool::filled(o * rows, 0.0);
    for p in partials {
        for (d, v) in out.iter_mut().zip(&p) {
            *d += v;
        }
        pool::recycle(p);
    }
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

/// [`pool2d`] for 2 × 2 windows moved by 2 (see [`max_pool_2x2`]), one image per task.
fn max_pool_2x2(x: &[f32], g: &Window2d) -> Vec<f32> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let mut out = pool::scratch(g.output_len());
    chunks(&mut out, g.c * l, g.input_len(), |b, dst| {
        max_pool_2x2::forward(&x[b * g.c * plane..][..g.c * plane], dst, g);
    });
    out
}

/// [`pool2d_grad`] for 2 × 2 windows moved by 2, one image per task.
fn max_pool_2x2_grad(x: &[f32], dy: &[f32], g: &Window2d) -> Vec<f32> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let mut out = pool::scratch(g.input_len());
    chunks(&mut out, g.c * plane, g.input_len(), |b, dx| {
        let x = &x[b * g.c * plane..][..g.c * plane];
        max_pool_2x2::backward(x, &dy[b * g.c * l..][..g.c * l], dx, g);
    });
    out
}

/// Pooled `[n, c, oh, ow]` values.
pub(crate) fn pool2d(x: &[f32], g: &Window2d, kind: PoolKind) -> Vec<f32> {
    if kind == PoolKind::Max && max_pool_2x2::applies(g) {
        return max_pool_2x2(x, g);
    }
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
                        // One running sum in row-major order, as the CUDA kernel adds.
                        let mut s = 0.0f32;
                        for r in y.0..y.1 {
                            for &v in &src[r * g.w + x.0..r * g.w + x.1] {
                                s += v;
                            }
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
    if kind == PoolKind::Max && max_pool_2x2::applies(g) {
        return max_pool_2x2_grad(x, dy, g);
    }
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
