//! Every CPU matrix product: a convolution's per-image products (`[out_ch, c·kh·kw] ·
//! [c·kh·kw, oh·ow]` and its two gradients), `matmul` (shared out over threads by
//! `cpu::matmul`) and the Dense layers through it.
//!
//! [`gemm`] packs the left operand into panels of `MR` rows and, where it is reused, a
//! strip of `NR` columns of the right one, then runs a register block of `R ≤ MR` rows ×
//! `NR` columns of `C` over the whole inner dimension with fused multiply-adds: 12 × 32
//! under AVX-512 (24 of its 32 registers), 6 × 16 under AVX2. Either operand may be
//! transposed (read through strides; packing puts it in order).
//!
//! Each element of `C` is the chain of fused multiply-adds over `p = 0..k` in order,
//! starting from 0 (or from `C` when accumulating): the block sizes and vector width
//! change which elements are computed together, never an element's rounding, so results
//! are the same on every machine and thread count.

use super::simd::{self, Level};
use std::cell::RefCell;

/// An operand read through strides or a table of row starts: element `(i, p)` is
/// `data[row(i) + p·cs]`, where `row(i)` is `i·rs` or `row_starts[i]`. The table
/// describes a convolution's image read at shifted offsets (its columns, not built).
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
    row_starts: Option<&'a [usize]>,
}

impl<'a> Strided<'a> {
    /// A row-major matrix with `cols` columns.
    pub(crate) fn rows(data: &'a [f32], cols: usize) -> Strided<'a> {
        Strided {
            data,
            rs: cols,
            cs: 1,
            row_starts: None,
        }
    }

    /// The transpose of a row-major matrix with `rows` rows stored as `cols × rows`:
    /// element `(i, p)` is `data[p·rows + i]`.
    pub(crate) fn transposed(data: &'a [f32], rows: usize) -> Strided<'a> {
        Strided {
            data,
            rs: 1,
            cs: rows,
            row_starts: None,
        }
    }

    /// Row `i` is the contiguous run of `data` from `starts[i]`.
    pub(crate) fn shifted_rows(data: &'a [f32], starts: &'a [usize]) -> Strided<'a> {
        Strided {
            data,
            rs: 0,
            cs: 1,
            row_starts: Some(starts),
        }
    }

    /// The operand without its first `first` rows (strided operands only).
    pub(crate) fn skip_rows(self, first: usize) -> Strided<'a> {
        assert!(self.row_starts.is_none(), "skip_rows of a table of starts");
        Strided {
            data: &self.data[first * self.rs..],
            ..self
        }
    }

    /// The operand without its first `first` columns.
    pub(crate) fn skip_cols(self, first: usize) -> Strided<'a> {
        Strided {
            data: &self.data[first * self.cs..],
            ..self
        }
    }

    #[inline(always)]
    fn row(&self, i: usize) -> usize {
        self.row_starts.map_or(i * self.rs, |t| t[i])
    }

    #[inline(always)]
    fn col(&self, p: usize) -> usize {
        p * self.cs
    }

    /// Whether each row's elements are contiguous.
    fn contiguous_rows(&self) -> bool {
        self.cs == 1
    }

    #[inline(always)]
    fn at(&self, i: usize, p: usize) -> f32 {
        self.data[self.row(i) + self.col(p)]
    }
}

/// Whether a product is small enough on one side to stay on the calling thread (sharing
/// it out costs more than it saves): few rows and a short inner dimension, or a small
/// output.
pub(crate) fn has_a_small_side(m: usize, k: usize, n: usize) -> bool {
    (m <= 64 && k <= 64) || m * n <= 64 * 64
}

thread_local! {
    /// Each thread's packed operands, kept between calls (a convolution calls once per
    /// image and group).
    static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `c[m×n] = a·b` (`a` is `m×k`, `b` is `k×n`), or `c += a·b` when `accumulate`.
pub(crate) fn gemm(
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    assert!(c.len() >= m * n, "gemm: {} outputs for {m}×{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let sizes = Sizes {
        m,
        k,
        n,
        accumulate,
    };
    PACKED.with_borrow_mut(|packed| match simd::level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => product::<x86::Avx512>(a, b, c, sizes, packed),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => product::<x86::Avx2>(a, b, c, sizes, packed),
        _ => product::<Portable>(a, b, c, sizes, packed),
    })
}

/// Whether [`gemm_nt`] beats packing for `a·bᵀ` with this inner dimension: each dot
/// product ends in a reduction of its lanes, which a long one amortises.
pub(crate) fn long_inner(k: usize) -> bool {
    k >= 256
}

/// Lanes of [`gemm_nt`]'s partial sums, the same on every machine (AVX2 holds them in
/// two registers).
const LANES: usize = 16;

/// `c[m×n] = a·bᵀ` (or `c += a·bᵀ` when `accumulate`) for row-major `a` (`m×k`) and
/// `b` (`n×k`) with a long inner dimension (a weight gradient: `dy · columnsᵀ` over an
/// image's pixels), where packing either operand would be a transpose. Blocks of dot
/// products over contiguous rows; lane `l` of each sums the products at `p ≡ l (mod 16)`
/// in order, then the lanes and the last `k mod 16` products add up in a fixed order,
/// so the rounding depends on the shapes only.
pub(crate) fn gemm_nt(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    let sizes = Sizes {
        m,
        k,
        n,
        accumulate,
    };
    let (a, b, c) = (&a[..m * k], &b[..n * k], &mut c[..m * n]);
    match simd::level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => dots::<x86::Avx512>(a, b, c, sizes),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => dots::<x86::Avx2>(a, b, c, sizes),
        _ => dots::<Portable>(a, b, c, sizes),
    }
}

/// A block of `RA` rows of `a` against `RB` rows of `b` for one instruction set.
trait DotBlock {
    const RA: usize;
    const RB: usize;
    /// Lane sums of `a_rows[i] · b_rows[j]` over the first `whole` (a multiple of
    /// [`LANES`]) entries, as `out[i·RB + j]`.
    fn lanes(a_rows: &[&[f32]], b_rows: &[&[f32]], whole: usize, out: &mut [[f32; LANES]]);
}

fn dots<'a, D: DotBlock>(a: &'a [f32], b: &'a [f32], c: &mut [f32], s: Sizes) {
    let Sizes { m, k, n, .. } = s;
    let whole = k - k % LANES;
    // Up to 4 × 4 rows per block (`RA`, `RB` ≤ 4).
    let mut lanes = [[0.0; LANES]; 16];
    // Rows past the edge repeat the last one (computed, never stored).
    let rows = |x: &'a [f32], first: usize, count: usize| -> [&'a [f32]; 4] {
        std::array::from_fn(|r| &x[(first + r.min(count - 1)) * k..][..k])
    };
    // `b`'s rows outermost: a block of them stays in L1 while all of `a` (the smaller
    // operand, in L2) passes by.
    for j0 in (0..n).step_by(D::RB) {
        let rj = D::RB.min(n - j0);
        let b_rows = rows(b, j0, rj);
        for i0 in (0..m).step_by(D::RA) {
            let ri = D::RA.min(m - i0);
            let a_rows = rows(a, i0, ri);
            D::lanes(&a_rows[..D::RA], &b_rows[..D::RB], whole, &mut lanes);
            for (r, x) in a_rows.iter().take(ri).enumerate() {
                for (t, y) in b_rows.iter().take(rj).enumerate() {
                    let mut sum = add_lanes(lanes[r * D::RB + t]);
                    for p in whole..k {
                        sum = x[p].mul_add(y[p], sum);
                    }
                    let out = &mut c[(i0 + r) * n + j0 + t];
                    *out = if s.accumulate { *out + sum } else { sum };
                }
            }
        }
    }
}

/// The lanes' sum as a tree of pairs (`l + l + 8`, then `+ 4`, ...): a fixed order with
/// a short dependency chain.
fn add_lanes(mut lanes: [f32; LANES]) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for l in 0..half {
            lanes[l] += lanes[l + half];
        }
        half /= 2;
    }
    lanes[0]
}

/// A product's sizes: `c[m×n] (+)= a[m×k]·b[k×n]`.
#[derive(Clone, Copy)]
struct Sizes {
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
}

/// A register block's loop for one instruction set: `MR × NR` is its largest block.
trait Micro {
    const MR: usize;
    const NR: usize;
    /// Rows `i0..i0 + R` (`R ≤ MR`), columns `j0..j0 + cols` of `c` (see [`Block`]).
    fn block<const R: usize>(at: &Block<'_>, c: &mut [f32], s: Sizes);
    /// Rows `first..first + rows` of `a` into `panel`, `p`-major: (p, r) at `p·MR + r`,
    /// 0 past the last row.
    fn pack_panel(a: Strided<'_>, first: usize, rows: usize, panel: &mut [f32]) {
        pack_panel_scalar(a, first, rows, Self::MR, panel)
    }
}

/// [`Micro::pack_panel`] one value at a time.
fn pack_panel_scalar(a: Strided<'_>, first: usize, rows: usize, mr: usize, panel: &mut [f32]) {
    for (p, dst) in panel.chunks_exact_mut(mr).enumerate() {
        for (r, d) in dst.iter_mut().enumerate() {
            *d = if r < rows { a.at(first + r, p) } else { 0.0 };
        }
    }
}

/// Where each row of a register block's strip of `b` starts.
#[derive(Clone, Copy)]
enum Rows<'a> {
    /// Row `p` at `p · stride`.
    Stride(usize),
    /// Row `p` at `starts[p]`.
    Starts(&'a [usize]),
}

/// Where a register block reads its operands and writes `C`.
struct Block<'a> {
    /// The packed panel of `a`: `k` rows of `mr` values.
    panel: &'a [f32],
    mr: usize,
    /// `b`'s columns `j0..`, `NR` of them, row `p` starting where `rows` says.
    strip: &'a [f32],
    rows: Rows<'a>,
    i0: usize,
    j0: usize,
    /// Columns of `c` written (the rest of the `NR` are the strip's zero padding).
    cols: usize,
}

/// `a` packed into panels, `b` in strips, and every register block run through `M`.
fn product<M: Micro>(
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    sizes: Sizes,
    packed: &mut Vec<f32>,
) {
    let Sizes { m, k, n, .. } = sizes;
    let (mr, nr) = (M::MR, M::NR);
    let panels = m.div_ceil(mr);
    let a_len = panels * mr * k;
    if packed.len() < a_len + k * nr {
        packed.resize(a_len + k * nr, 0.0);
    }
    let (a_packed, strip) = packed.split_at_mut(a_len);
    // Panel `q` holds `a`'s rows `q·mr..`, `p`-major: (p, r) at `p·mr + r`, 0 past row m.
    for (q, panel) in a_packed.chunks_exact_mut(mr * k).enumerate() {
        M::pack_panel(a, q * mr, mr.min(m - q * mr), panel);
    }
    for j0 in (0..n).step_by(nr) {
        let cols = nr.min(n - j0);
        // A whole row-major strip used by one panel is read in place; otherwise it is
        // packed (contiguous for the block's loads, zero past the last column).
        let (strip, rows) = if cols == nr && b.contiguous_rows() && panels == 1 {
            let rows = match b.row_starts {
                Some(t) => Rows::Starts(t),
                None => Rows::Stride(b.rs),
            };
            (&b.data[j0..], rows)
        } else {
            pack_strip(b, j0, cols, (k, nr), strip);
            (&strip[..], Rows::Stride(nr))
        };
        for (q, panel) in a_packed.chunks_exact(mr * k).enumerate() {
            let at = Block {
                panel,
                mr,
                strip,
                rows,
                i0: q * mr,
                j0,
                cols,
            };
            // One monomorphised block per row count: the accumulators stay in registers.
            match (m - q * mr).min(mr) {
                1 => M::block::<1>(&at, c, sizes),
                2 => M::block::<2>(&at, c, sizes),
                3 => M::block::<3>(&at, c, sizes),
                4 => M::block::<4>(&at, c, sizes),
                5 => M::block::<5>(&at, c, sizes),
                6 => M::block::<6>(&at, c, sizes),
                7 => M::block::<7>(&at, c, sizes),
                8 => M::block::<8>(&at, c, sizes),
                9 => M::block::<9>(&at, c, sizes),
                10 => M::block::<10>(&at, c, sizes),
                11 => M::block::<11>(&at, c, sizes),
                _ => M::block::<12>(&at, c, sizes),
            }
        }
    }
}

/// Columns `j0..j0 + cols` of `b` into `strip` as `k` rows of `nr` (zero past `cols`).
fn pack_strip(b: Strided<'_>, j0: usize, cols: usize, (k, nr): (usize, usize), strip: &mut [f32]) {
    let strip = &mut strip[..k * nr];
    if cols < nr {
        strip.fill(0.0);
    }
    if b.contiguous_rows() {
        for (p, dst) in strip.chunks_exact_mut(nr).enumerate() {
            dst[..cols].copy_from_slice(&b.data[b.row(p) + j0..][..cols]);
        }
    } else {
        // A transposed operand: each of its columns is contiguous in `b.data`.
        for l in 0..cols {
            let column = &b.data[b.col(j0 + l)..];
            for (p, dst) in strip.chunks_exact_mut(nr).enumerate() {
                dst[l] = column[p * b.rs];
            }
        }
    }
}

impl Block<'_> {
    /// Row `p` of the strip and of the panel's first `R` rows.
    #[inline(always)]
    fn operands<const R: usize, const NR: usize>(&self, p: usize) -> (&[f32; R], &[f32; NR]) {
        let a = self.panel[p * self.mr..].first_chunk::<R>();
        let start = match self.rows {
            Rows::Stride(stride) => p * stride,
            Rows::Starts(t) => t[p],
        };
        let b = self.strip[start..].first_chunk::<NR>();
        match (a, b) {
            (Some(a), Some(b)) => (a, b),
            _ => unreachable!("panels hold k rows of mr ≥ R, strips k rows of NR"),
        }
    }

    /// Block row `r` of `c` as `NR` values (zero past `cols`): where accumulating starts.
    #[inline(always)]
    fn load_c<const NR: usize>(&self, c: &[f32], s: Sizes, r: usize) -> [f32; NR] {
        let mut row = [0.0; NR];
        if s.accumulate {
            let src = &c[(self.i0 + r) * s.n + self.j0..][..self.cols];
            if let (Some(whole), Some(dst)) = (src.first_chunk::<NR>(), row.first_chunk_mut()) {
                *dst = *whole;
            } else {
                row[..self.cols].copy_from_slice(src);
            }
        }
        row
    }

    /// Writes block row `r`'s first `cols` values to `c` (a whole row as one fixed-size
    /// copy: `copy_from_slice` of a runtime length is a `memcpy` call).
    #[inline(always)]
    fn store_c<const NR: usize>(&self, c: &mut [f32], s: Sizes, r: usize, row: &[f32; NR]) {
        let dst = &mut c[(self.i0 + r) * s.n + self.j0..][..self.cols];
        match dst.first_chunk_mut::<NR>() {
            Some(whole) => *whole = *row,
            None => dst.copy_from_slice(&row[..self.cols]),
        }
    }
}

/// Scalar `mul_add`: other architectures and x86-64 CPUs without AVX2 and FMA.
struct Portable;

impl Micro for Portable {
    const MR: usize = 6;
    const NR: usize = 16;
    fn block<const R: usize>(at: &Block<'_>, c: &mut [f32], s: Sizes) {
        let mut acc: [[f32; 16]; R] = std::array::from_fn(|r| at.load_c(c, s, r));
        for p in 0..s.k {
            let (av, bv) = at.operands::<R, 16>(p);
            for r in 0..R {
                for l in 0..16 {
                    acc[r][l] = av[r].mul_add(bv[l], acc[r][l]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            at.store_c(c, s, r, row);
        }
    }
}

impl DotBlock for Portable {
    const RA: usize = 2;
    const RB: usize = 2;
    fn lanes(a_rows: &[&[f32]], b_rows: &[&[f32]], whole: usize, out: &mut [[f32; LANES]]) {
        out.fill([0.0; LANES]);
        for p in (0..whole).step_by(LANES) {
            for (i, x) in a_rows.iter().enumerate() {
                for (j, y) in b_rows.iter().enumerate() {
                    let acc = &mut out[i * b_rows.len() + j];
                    for l in 0..LANES {
                        acc[l] = x[p + l].mul_add(y[p + l], acc[l]);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The register blocks in AVX-512 and AVX2 intrinsics (the compiler does not keep
    //! an array of accumulators this large in registers on its own).

    use super::{pack_panel_scalar, Block, DotBlock, Micro, Sizes, Strided, LANES};
    use std::arch::x86_64::*;

    /// 12 × 32: 24 accumulators of 16 lanes.
    pub(super) struct Avx512;

    impl Micro for Avx512 {
        const MR: usize = 12;
        const NR: usize = 32;
        fn block<const R: usize>(at: &Block<'_>, c: &mut [f32], s: Sizes) {
            // SAFETY: `gemm` picks this type only when `simd::level` found AVX-512 and FMA.
            unsafe { avx512::<R>(at, c, s) }
        }
        fn pack_panel(a: Strided<'_>, first: usize, rows: usize, panel: &mut [f32]) {
            if !a.contiguous_rows() {
                return pack_panel_scalar(a, first, rows, Self::MR, panel);
            }
            // SAFETY: as for `block`.
            unsafe { pack_panel_avx512(a, first, rows, panel) }
        }
    }

    /// A panel of 12 contiguous rows, 16 columns at a time: 16 row vectors (zero past
    /// the last row) transposed in registers, each column's first 12 values stored.
    #[target_feature(enable = "avx512f")]
    fn pack_panel_avx512(a: Strided<'_>, first: usize, rows: usize, panel: &mut [f32]) {
        const MR: usize = 12;
        let k = panel.len() / MR;
        let whole = k - k % 16;
        let row = |r: usize| &a.data[a.row(first + r)..][..k];
        for p0 in (0..whole).step_by(16) {
            let x: [__m512; 16] =
                std::array::from_fn(|r| match row(r.min(rows - 1))[p0..].first_chunk::<16>() {
                    // SAFETY: the 16 values lie inside the row.
                    Some(v) if r < rows => unsafe { _mm512_loadu_ps(v.as_ptr()) },
                    _ => _mm512_setzero_ps(),
                });
            for (c, v) in transpose16(x).iter().enumerate() {
                let Some(dst) = panel[(p0 + c) * MR..].first_chunk_mut::<MR>() else {
                    unreachable!("the panel holds k rows of 12")
                };
                // SAFETY: the mask writes the first 12 values, all inside `dst`.
                unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), 0x0fff, *v) };
            }
        }
        for (p, dst) in panel.chunks_exact_mut(MR).enumerate().skip(whole) {
            for (r, d) in dst.iter_mut().enumerate() {
                *d = if r < rows { row(r)[p] } else { 0.0 };
            }
        }
    }

    /// The 16 × 16 transpose of `x` (row `i` of the result is column `i` of `x`):
    /// pairs interleaved within 128-bit lanes, then quadruples, then the lanes moved.
    #[target_feature(enable = "avx512f")]
    fn transpose16(x: [__m512; 16]) -> [__m512; 16] {
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (x[i & !1], x[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // u[4g + j]: column 4L + j of rows 4g..4g + 4, in 128-bit lane L.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (g, j) = (i / 4, i % 4);
            let (lo, hi) = (t[4 * g + j / 2], t[4 * g + 2 + j / 2]);
            if j % 2 == 0 {
                _mm512_shuffle_ps::<0x44>(lo, hi)
            } else {
                _mm512_shuffle_ps::<0xee>(lo, hi)
            }
        });
        let mut out = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            let x0 = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
            let x1 = _mm512_shuffle_f32x4::<0xdd>(u[j], u[4 + j]);
            let y0 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
            let y1 = _mm512_shuffle_f32x4::<0xdd>(u[8 + j], u[12 + j]);
            out[j] = _mm512_shuffle_f32x4::<0x88>(x0, y0);
            out[4 + j] = _mm512_shuffle_f32x4::<0x88>(x1, y1);
            out[8 + j] = _mm512_shuffle_f32x4::<0xdd>(x0, y0);
            out[12 + j] = _mm512_shuffle_f32x4::<0xdd>(x1, y1);
        }
        out
    }

    #[target_feature(enable = "avx512f,fma")]
    fn avx512<const R: usize>(at: &Block<'_>, c: &mut [f32], s: Sizes) {
        let load = |v: &[f32; 32]| {
            // SAFETY: both halves lie inside the 32-value array.
            unsafe {
                [
                    _mm512_loadu_ps(v.as_ptr()),
                    _mm512_loadu_ps(v.as_ptr().add(16)),
                ]
            }
        };
        let mut acc: [[__m512; 2]; R] = std::array::from_fn(|r| load(&at.load_c::<32>(c, s, r)));
        for p in 0..s.k {
            let (av, bv) = at.operands::<R, 32>(p);
            let [b0, b1] = load(bv);
            for r in 0..R {
                let x = _mm512_set1_ps(av[r]);
                acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            }
        }
        for (r, [v0, v1]) in acc.iter().enumerate() {
            let mut row = [0.0f32; 32];
            // SAFETY: both halves lie inside the 32-value array.
            unsafe {
                _mm512_storeu_ps(row.as_mut_ptr(), *v0);
                _mm512_storeu_ps(row.as_mut_ptr().add(16), *v1);
            }
            at.store_c(c, s, r, &row);
        }
    }

    /// 6 × 16: 12 accumulators of 8 lanes.
    pub(super) struct Avx2;

    impl Micro for Avx2 {
        const MR: usize = 6;
        const NR: usize = 16;
        fn block<const R: usize>(at: &Block<'_>, c: &mut [f32], s: Sizes) {
            // SAFETY: `gemm` picks this type only when `simd::level` found AVX2 and FMA.
            unsafe { avx2::<R>(at, c, s) }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn avx2<const R: usize>(at: &Block<'_>, c: &mut [f32], s: Sizes) {
        let load = |v: &[f32; 16]| {
            // SAFETY: both halves lie inside the 16-value array.
            unsafe {
                [
                    _mm256_loadu_ps(v.as_ptr()),
                    _mm256_loadu_ps(v.as_ptr().add(8)),
                ]
            }
        };
        let mut acc: [[__m256; 2]; R] = std::array::from_fn(|r| load(&at.load_c::<16>(c, s, r)));
        for p in 0..s.k {
            let (av, bv) = at.operands::<R, 16>(p);
            let [b0, b1] = load(bv);
            for r in 0..R {
                let x = _mm256_set1_ps(av[r]);
                acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
            }
        }
        for (r, [v0, v1]) in acc.iter().enumerate() {
            let mut row = [0.0f32; 16];
            // SAFETY: both halves lie inside the 16-value array.
            unsafe {
                _mm256_storeu_ps(row.as_mut_ptr(), *v0);
                _mm256_storeu_ps(row.as_mut_ptr().add(8), *v1);
            }
            at.store_c(c, s, r, &row);
        }
    }

    impl DotBlock for Avx512 {
        const RA: usize = 4;
        const RB: usize = 4;
        fn lanes(a_rows: &[&[f32]], b_rows: &[&[f32]], whole: usize, out: &mut [[f32; LANES]]) {
            // SAFETY: `gemm_nt` picks this type only when `simd::level` found AVX-512 and FMA.
            unsafe { dots_avx512(a_rows, b_rows, whole, out) }
        }
    }

    #[target_feature(enable = "avx512f,fma")]
    fn dots_avx512(a_rows: &[&[f32]], b_rows: &[&[f32]], whole: usize, out: &mut [[f32; LANES]]) {
        let (Ok(a), Ok(b)) = (
            <&[&[f32]; 4]>::try_from(a_rows),
            <&[&[f32]; 4]>::try_from(b_rows),
        ) else {
            unreachable!("DotBlock is called with RA and RB rows")
        };
        let load = |row: &[f32], p: usize| match row[p..].first_chunk::<16>() {
            // SAFETY: the 16 values lie inside the row.
            Some(v) => unsafe { _mm512_loadu_ps(v.as_ptr()) },
            None => unreachable!("p + 16 ≤ whole ≤ k"),
        };
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        for p in (0..whole).step_by(LANES) {
            let x = a.map(|row| load(row, p));
            let y = b.map(|row| load(row, p));
            for i in 0..4 {
                for j in 0..4 {
                    acc[i][j] = _mm512_fmadd_ps(x[i], y[j], acc[i][j]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                // SAFETY: the destination holds 16 values.
                unsafe { _mm512_storeu_ps(out[i * 4 + j].as_mut_ptr(), *v) };
            }
        }
    }

    impl DotBlock for Avx2 {
        const RA: usize = 2;
        const RB: usize = 2;
        fn lanes(a_rows: &[&[f32]], b_rows: &[&[f32]], whole: usize, out: &mut [[f32; LANES]]) {
            // SAFETY: `gemm_nt` picks this type only when `simd::level` found AVX2 and FMA.
            unsafe { dots_avx2(a_rows, b_rows, whole, out) }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn dots_avx2(a_rows: &[&[f32]], b_rows: &[&[f32]], whole: usize, out: &mut [[f32; LANES]]) {
        let (Ok(a), Ok(b)) = (
            <&[&[f32]; 2]>::try_from(a_rows),
            <&[&[f32]; 2]>::try_from(b_rows),
        ) else {
            unreachable!("DotBlock is called with RA and RB rows")
        };
        // The 16 lanes as two registers of 8.
        let load = |row: &[f32], p: usize| match row[p..].first_chunk::<16>() {
            // SAFETY: the 16 values lie inside the row.
            Some(v) => unsafe {
                [
                    _mm256_loadu_ps(v.as_ptr()),
                    _mm256_loadu_ps(v.as_ptr().add(8)),
                ]
            },
            None => unreachable!("p + 16 ≤ whole ≤ k"),
        };
        let mut acc = [[[_mm256_setzero_ps(); 2]; 2]; 2];
        for p in (0..whole).step_by(LANES) {
            let x = a.map(|row| load(row, p));
            let y = b.map(|row| load(row, p));
            for i in 0..2 {
                for j in 0..2 {
                    for h in 0..2 {
                        acc[i][j][h] = _mm256_fmadd_ps(x[i][h], y[j][h], acc[i][j][h]);
                    }
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, [lo, hi]) in row.iter().enumerate() {
                let dst = &mut out[i * 2 + j];
                // SAFETY: the destination holds 16 values.
                unsafe {
                    _mm256_storeu_ps(dst.as_mut_ptr(), *lo);
                    _mm256_storeu_ps(dst.as_mut_ptr().add(8), *hi);
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

    /// `Σ_p a(i, p)·b(p, j)` in f64, plus `c0` where given.
    fn reference(
        a: Strided,
        b: Strided,
        c0: Option<&[f32]>,
        (m, k, n): (usize, usize, usize),
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let start = c0.map_or(0.0, |c0| c0[i * n + j] as f64);
                c[i * n + j] = start
                    + (0..k)
                        .map(|p| a.at(i, p) as f64 * b.at(p, j) as f64)
                        .sum::<f64>();
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

    /// Ragged shapes (row and column tails of every size class), each operand as stored
    /// and transposed, written and accumulated.
    #[test]
    fn gemm_matches_the_definition_for_every_layout_and_ragged_blocks() {
        for (m, k, n) in [
            (6, 25, 576),
            (5, 3, 17),
            (16, 54, 100),
            (1, 1, 16),
            (7, 64, 33),
            (64, 70, 40),
            (13, 9, 1),
            (25, 31, 47),
        ] {
            let (ad, bd) = (values(m * k, 1), values(k * n, 2));
            let c0 = values(m * n, 3);
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = if ta {
                    Strided::transposed(&ad, m)
                } else {
                    Strided::rows(&ad, k)
                };
                let b = if tb {
                    Strided::transposed(&bd, k)
                } else {
                    Strided::rows(&bd, n)
                };
                let mut c = vec![f32::NAN; m * n];
                gemm(a, b, &mut c, (m, k, n), false);
                close(&c, &reference(a, b, None, (m, k, n)));
                let mut c = c0.clone();
                gemm(a, b, &mut c, (m, k, n), true);
                close(&c, &reference(a, b, Some(&c0), (m, k, n)));
            }
        }
    }

    /// A right operand whose rows start at arbitrary offsets of one buffer (a
    /// convolution's shifted image), read in place (one panel) and packed (several).
    #[test]
    fn gemm_reads_rows_at_their_starts() {
        for (m, k, n) in [(6, 25, 70), (14, 9, 64), (3, 4, 5)] {
            let data = values(k * 7 + n + 40, 9);
            let starts: Vec<usize> = (0..k).map(|p| (p * 37 + 11) % (k * 7 + 40)).collect();
            let ad = values(m * k, 10);
            let (a, b) = (Strided::rows(&ad, k), Strided::shifted_rows(&data, &starts));
            let mut c = vec![f32::NAN; m * n];
            gemm(a, b, &mut c, (m, k, n), false);
            close(&c, &reference(a, b, None, (m, k, n)));
        }
    }

    #[test]
    fn an_empty_inner_dimension_gives_zeros_or_leaves_c() {
        let mut c = vec![f32::NAN; 6];
        gemm(
            Strided::rows(&[], 0),
            Strided::rows(&[], 3),
            &mut c,
            (2, 0, 3),
            false,
        );
        assert_eq!(c, [0.0; 6]);
        let mut c = vec![1.5; 6];
        gemm(
            Strided::rows(&[], 0),
            Strided::rows(&[], 3),
            &mut c,
            (2, 0, 3),
            true,
        );
        assert_eq!(c, [1.5; 6]);
    }

    /// The block shapes of every instruction set this CPU runs, and the portable loop,
    /// give the same bits: each element is one ordered chain of fused multiply-adds.
    #[test]
    fn every_block_shape_and_instruction_set_gives_the_same_bits() {
        let (m, k, n) = (29, 77, 71);
        let (ad, bd) = (values(m * k, 4), values(k * n, 5));
        for (a, b) in [
            (Strided::rows(&ad, k), Strided::transposed(&bd, k)),
            (Strided::transposed(&ad, m), Strided::rows(&bd, n)),
        ] {
            let sizes = Sizes {
                m,
                k,
                n,
                accumulate: false,
            };
            let run = |micro: fn(Strided, Strided, &mut [f32], Sizes, &mut Vec<f32>)| {
                let mut c = vec![0.0; m * n];
                micro(a, b, &mut c, sizes, &mut Vec::new());
                c
            };
            let portable = run(product::<Portable>);
            #[cfg(target_arch = "x86_64")]
            {
                if simd::level() != Level::Baseline {
                    assert_eq!(run(product::<x86::Avx2>), portable);
                }
                if simd::level() == Level::Avx512 {
                    assert_eq!(run(product::<x86::Avx512>), portable);
                }
            }
        }
    }

    #[test]
    fn gemm_nt_matches_the_definition_and_every_instruction_set_gives_the_same_bits() {
        for (m, k, n) in [
            (6, 576, 25),
            (3, 100, 5),
            (16, 64, 54),
            (1, 70, 1),
            (9, 300, 7),
        ] {
            let (ad, bd) = (values(m * k, 6), values(n * k, 7));
            let (a, b) = (Strided::rows(&ad, k), Strided::transposed(&bd, k));
            let c0 = values(m * n, 8);
            let mut c = vec![f32::NAN; m * n];
            gemm_nt(&ad, &bd, &mut c, (m, k, n), false);
            close(&c, &reference(a, b, None, (m, k, n)));
            let mut acc = c0.clone();
            gemm_nt(&ad, &bd, &mut acc, (m, k, n), true);
            close(&acc, &reference(a, b, Some(&c0), (m, k, n)));
            let sizes = Sizes {
                m,
                k,
                n,
                accumulate: false,
            };
            let run = |d: fn(&[f32], &[f32], &mut [f32], Sizes)| {
                let mut out = vec![0.0; m * n];
                d(&ad, &bd, &mut out, sizes);
                out
            };
            let portable = run(dots::<Portable>);
            assert_eq!(c, portable);
            #[cfg(target_arch = "x86_64")]
            if simd::level() != Level::Baseline {
                assert_eq!(run(dots::<x86::Avx2>), portable);
            }
        }
    }
}
