//! Safe launchers for the kernels in `kernels/*.cu` plus cuBLAS matmul.
//!
//! Conventions:
//! - Every launcher takes the device, its inputs and the output buffers (allocated by the
//!   caller, e.g. with [`alloc_zeros`]), validates every length and shape against what the
//!   kernel will touch (so a kernel can never read or write out of its buffers), queues
//!   the kernel on [`CudaDevice::stream`] and returns the launch error, if any.
//! - Launches are asynchronous. Launchers that read indices (gather, scatter-add, one_hot,
//!   the optimizer updates) synchronise once at the end to read the device error cell
//!   (16 bytes) and return `Error::IndexOutOfRange` naming the first bad index.
//! - All buffers must belong to `dev` (its stream allocated them).

use cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{
    CudaFunction, CudaSlice, DeviceRepr, LaunchArgs, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};

use super::device::CudaDevice;
use crate::error::{Error, Result};
pub use crate::tensor::{broadcast_shape, BinaryOp, ReduceOp, UnaryOp};

/// Most dimensions a strided copy or a broadcasting binary op handles.
pub const MAX_DIMS: usize = 6;

const THREADS: u32 = 256;
/// Upper bound on the grid; the kernels loop (grid-stride) over anything larger.
const MAX_BLOCKS: u64 = 1 << 20;

// ------------------------------------------------------------------ helpers

fn cuda_err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Cuda(format!("{what}: {e:?}"))
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// One thread per element, 256 per block.
fn cfg_for(n: u64) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn launch(mut args: LaunchArgs<'_>, cfg: LaunchConfig, name: &str) -> Result<()> {
    // SAFETY: each caller has checked that the buffers hold every element the kernel
    // touches for these sizes, and passes arguments in the kernel's parameter order and
    // types (i64 for `long long`, i32 for `int`, f32 for `float`, u64 for pointers/seeds).
    unsafe { args.launch(cfg) }
        .map(|_| ())
        .map_err(|e| cuda_err(&format!("launching {name}"), e))
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(invalid(format!(
            "{what}: buffer has {got} elements, expected {want}"
        )));
    }
    Ok(())
}

fn as_i64(v: usize) -> i64 {
    // Buffer lengths come from allocations, which never exceed i64::MAX bytes.
    v as i64
}

/// Copies host data to a new device buffer.
pub fn htod<T: DeviceRepr>(dev: &CudaDevice, data: &[T]) -> Result<CudaSlice<T>> {
    dev.stream()
        .clone_htod(data)
        .map_err(|e| cuda_err("host-to-device copy", e))
}

/// Copies a device buffer to the host, waiting for all queued work first. A kernel
/// fault from earlier asynchronous work shows up here as `Error::Cuda`.
pub fn dtoh<T: DeviceRepr>(dev: &CudaDevice, src: &CudaSlice<T>) -> Result<Vec<T>> {
    let v = dev
        .stream()
        .clone_dtoh(src)
        .map_err(|e| cuda_err("device-to-host copy", e))?;
    dev.synchronize()?;
    run_deferred_checks(dev)?;
    Ok(v)
}

/// A new zero-filled device buffer of `len` elements.
pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(
    dev: &CudaDevice,
    len: usize,
) -> Result<CudaSlice<T>> {
    dev.stream()
        .alloc_zeros::<T>(len)
        .map_err(|e| cuda_err(&format!("allocating {len} elements"), e))
}

/// A new device buffer of `len` elements whose contents are unspecified (whatever the
/// stream-ordered memory pool held). For outputs that the next launch on the stream
/// writes in full: it saves the zeroing pass (a launch, and a write of every byte) that
/// [`alloc_zeros`] makes. `T` is limited to plain numeric types, for which any bit
/// pattern is a valid value.
pub(crate) fn alloc_uninit<T: DeviceRepr + ValidAsZeroBits>(
    dev: &CudaDevice,
    len: usize,
) -> Result<CudaSlice<T>> {
    // SAFETY: the memory is only reached through kernels and copies on this stream,
    // never as a Rust reference, and every bit pattern is a valid `T` (numeric types).
    unsafe { dev.stream().alloc::<T>(len) }
        .map_err(|e| cuda_err(&format!("allocating {len} elements"), e))
}

/// Device-to-device copy of a whole buffer (`dst.len() == src.len()`).
pub fn copy<T: DeviceRepr>(
    dev: &CudaDevice,
    src: &CudaSlice<T>,
    dst: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("copy dst", dst.len(), src.len())?;
    dev.stream()
        .memcpy_dtod(src, dst)
        .map_err(|e| cuda_err("device-to-device copy", e))
}

/// A 2-element i64 cell kernels use to report a bad index: [flag, first bad value].
fn error_cell(dev: &CudaDevice) -> Result<CudaSlice<i64>> {
    alloc_zeros::<i64>(dev, 2)
}

/// Reads the error cell (synchronises) and turns a recorded bad index into an error.
/// Inside [`deferring_index_checks`] the cell is queued instead and read at the next
/// device-to-host copy, so a training step pays no extra round trip per launch.
fn check_error_cell(
    dev: &CudaDevice,
    cell: CudaSlice<i64>,
    what: &'static str,
    size: usize,
) -> Result<()> {
    if DEFER_CHECKS.with(|d| d.get()) {
        // Bounded: a loop that never reads anything back still gets its errors, and the
        // queue of cells cannot grow without limit.
        if dev.defer_check(cell, what, size) >= MAX_DEFERRED_CHECKS {
            dev.synchronize()?;
            run_deferred_checks(dev)?;
        }
        return Ok(());
    }
    let v = dtoh(dev, &cell)?;
    cell_error(&v, what, size)
}

fn cell_error(v: &[i64], what: &str, size: usize) -> Result<()> {
    if v.first().copied().unwrap_or(0) != 0 {
        return Err(Error::IndexOutOfRange {
            what: what.to_string(),
            index: v.get(1).copied().unwrap_or(-1),
            size,
        });
    }
    Ok(())
}

const MAX_DEFERRED_CHECKS: usize = 1024;

thread_local! {
    static DEFER_CHECKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with index checks deferred: launchers that would synchronise to read their
/// error cell queue it on the device instead, and the next [`dtoh`] (for example reading
/// a loss value) reports the first bad index. The kernels never touch memory out of
/// bounds either way; only the moment the error surfaces changes.
pub fn deferring_index_checks<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            DEFER_CHECKS.with(|d| d.set(self.0));
        }
    }
    let _reset = Reset(DEFER_CHECKS.with(|d| d.replace(true)));
    f()
}

/// Reads every queued error cell (the stream is already synchronised) and reports the
/// first bad index.
fn run_deferred_checks(dev: &CudaDevice) -> Result<()> {
    let mut first = Ok(());
    for (cell, what, size) in dev.take_deferred_checks() {
        let v = dev
            .stream()
            .clone_dtoh(&cell)
            .map_err(|e| cuda_err("reading an index check", e))?;
        if first.is_ok() {
            first = cell_error(&v, what, size);
        }
    }
    first
}

fn func(dev: &CudaDevice, file: &'static str, name: &'static str) -> Result<CudaFunction> {
    dev.function(file, name)
}

// ------------------------------------------------------------------ unary / binary

/// `y[i] = op(x[i])`; `x` and `y` must have the same length. The kernel's op codes and
/// parameters come from [`UnaryOp::code`].
pub fn unary(
    dev: &CudaDevice,
    op: UnaryOp,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("unary output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", "unary_f32")?;
    let (code, p0, p1) = op.code();
    let mut a = dev.stream().launch_builder(&f);
    a.arg(&code).arg(&n).arg(x).arg(y).arg(&p0).arg(&p1);
    launch(a, cfg_for(n as u64), "unary_f32")
}

/// Row-major contiguous strides for `shape`, in elements (the tensor layer's layout, as
/// the kernels take it).
pub fn contiguous_strides(shape: &[usize]) -> Vec<i64> {
    to_i64(&crate::tensor::shape::Layout::contiguous(shape).strides)
}

/// Strides that read a contiguous tensor of shape `from` as if broadcast to `to`
/// (NumPy rules: align right; a broadcast dim gets stride 0): the tensor layer's
/// `Layout::broadcast_to`, checked.
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Result<Vec<i64>> {
    if crate::tensor::broadcast_shape(from, to).ok().as_deref() != Some(to) {
        return Err(Error::ShapeMismatch {
            op: "broadcast",
            lhs: from.to_vec(),
            rhs: to.to_vec(),
        });
    }
    Ok(to_i64(
        &crate::tensor::shape::Layout::broadcast_to(from, to).strides,
    ))
}

fn to_i64(strides: &[usize]) -> Vec<i64> {
    strides.iter().map(|&s| s as i64).collect()
}

/// Kernel parameter block for `binary_f32`; layout matches `BinaryMeta` in
/// `kernels/elementwise.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct BinaryMeta {
    ndim: i64,
    shape: [i64; MAX_DIMS],
    a_strides: [i64; MAX_DIMS],
    b_strides: [i64; MAX_DIMS],
    a_offset: i64,
    b_offset: i64,
}
// SAFETY: plain #[repr(C)] integers, passed by value as a kernel parameter.
unsafe impl DeviceRepr for BinaryMeta {}

/// Kernel parameter block for `strided_copy_*`; layout matches `CopyMeta`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct CopyMeta {
    ndim: i64,
    shape: [i64; MAX_DIMS],
    src_strides: [i64; MAX_DIMS],
    dst_strides: [i64; MAX_DIMS],
    src_offset: i64,
    dst_offset: i64,
}
// SAFETY: as above.
unsafe impl DeviceRepr for CopyMeta {}

/// Smallest and largest element offset `offset + sum(i_d * stride_d)` reaches over
/// `shape` (shape has no zero dims here).
fn offset_range(shape: &[usize], strides: &[i64], offset: usize) -> (i64, i64) {
    let (mut lo, mut hi) = (offset as i64, offset as i64);
    for (&n, &s) in shape.iter().zip(strides) {
        let span = (n as i64 - 1) * s;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo, hi)
}

/// Checks that a strided view stays inside a buffer of `len` elements.
fn check_view(
    what: &str,
    shape: &[usize],
    strides: &[i64],
    offset: usize,
    len: usize,
) -> Result<()> {
    if strides.len() != shape.len() {
        return Err(invalid(format!(
            "{what}: {} strides for {} dims",
            strides.len(),
            shape.len()
        )));
    }
    let (lo, hi) = offset_range(shape, strides, offset);
    if lo < 0 || hi >= len as i64 {
        return Err(invalid(format!(
            "{what}: view shape {shape:?} strides {strides:?} offset {offset} reaches [{lo}, {hi}] outside a buffer of {len}"
        )));
    }
    Ok(())
}

fn pack(shape: &[usize], what: &str) -> Result<[i64; MAX_DIMS]> {
    if shape.len() > MAX_DIMS {
        return Err(invalid(format!(
            "{what}: {} dims, at most {MAX_DIMS} supported",
            shape.len()
        )));
    }
    let mut a = [0i64; MAX_DIMS];
    for (d, &v) in shape.iter().enumerate() {
        a[d] = v as i64;
    }
    Ok(a)
}

fn pack_i64(v: &[i64]) -> [i64; MAX_DIMS] {
    let mut a = [0i64; MAX_DIMS];
    a[..v.len()].copy_from_slice(v);
    a
}

/// Describes how the two inputs of [`binary`] are read: the (contiguous) output
/// `shape`, and each input's strides (0 on broadcast dims, see [`broadcast_strides`])
/// and element offset.
#[derive(Clone, Debug)]
pub struct Broadcast<'a> {
    pub shape: &'a [usize],
    pub a_strides: &'a [i64],
    pub a_offset: usize,
    pub b_strides: &'a [i64],
    pub b_offset: usize,
}

/// `y = op(a, b)` with `y` contiguous of `bc.shape` (at most 6 dims). Uses an
/// index-free fast path when both inputs are contiguous with that shape.
pub fn binary(
    dev: &CudaDevice,
    op: BinaryOp,
    bc: &Broadcast<'_>,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    let n: usize = bc.shape.iter().product();
    check_len("binary output", y.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    check_view("binary lhs", bc.shape, bc.a_strides, bc.a_offset, a.len())?;
    check_view("binary rhs", bc.shape, bc.b_strides, bc.b_offset, b.len())?;
    let code = op.code();
    let n64 = n as i64;
    let contig = contiguous_strides(bc.shape);
    if bc.a_offset == 0
        && bc.b_offset == 0
        && bc.a_strides == contig.as_slice()
        && bc.b_strides == contig.as_slice()
    {
        let f = func(dev, "elementwise.cu", "binary_contig_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&code).arg(&n64).arg(a).arg(b).arg(y);
        return launch(l, cfg_for(n as u64), "binary_contig_f32");
    }
    let meta = BinaryMeta {
        ndim: bc.shape.len() as i64,
        shape: pack(bc.shape, "binary")?,
        a_strides: pack_i64(bc.a_strides),
        b_strides: pack_i64(bc.b_strides),
        a_offset: bc.a_offset as i64,
        b_offset: bc.b_offset as i64,
    };
    let f = func(dev, "elementwise.cu", "binary_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&code).arg(&n64).arg(&meta).arg(a).arg(b).arg(y);
    launch(l, cfg_for(n as u64), "binary_f32")
}

// ------------------------------------------------------------------ strided copy, fill, casts

/// Element types [`strided_copy`] supports (f32 and i64).
pub trait CopyElem: DeviceRepr {
    #[doc(hidden)]
    const KERNEL: &'static str;
}
impl CopyElem for f32 {
    const KERNEL: &'static str = "strided_copy_f32";
}
impl CopyElem for i64 {
    const KERNEL: &'static str = "strided_copy_i64";
}

/// A strided copy: for every index tuple `i` of `shape`,
/// `dst[dst_offset + Σ i_d*dst_strides_d] = src[src_offset + Σ i_d*src_strides_d]`.
/// Transpose/permute, broadcast materialisation (stride 0), slice and concat (offsets
/// into a larger destination) are all this.
#[derive(Clone, Debug)]
pub struct StridedCopy<'a> {
    pub shape: &'a [usize],
    pub src_strides: &'a [i64],
    pub src_offset: usize,
    pub dst_strides: &'a [i64],
    pub dst_offset: usize,
}

/// Runs a [`StridedCopy`] (at most 6 dims). Both views are checked to stay inside
/// their buffers. Destination elements outside the view are left untouched.
pub fn strided_copy<T: CopyElem>(
    dev: &CudaDevice,
    plan: &StridedCopy<'_>,
    src: &CudaSlice<T>,
    dst: &mut CudaSlice<T>,
) -> Result<()> {
    let n: usize = plan.shape.iter().product();
    if n == 0 {
        return Ok(());
    }
    check_view(
        "strided_copy src",
        plan.shape,
        plan.src_strides,
        plan.src_offset,
        src.len(),
    )?;
    check_view(
        "strided_copy dst",
        plan.shape,
        plan.dst_strides,
        plan.dst_offset,
        dst.len(),
    )?;
    let meta = CopyMeta {
        ndim: plan.shape.len() as i64,
        shape: pack(plan.shape, "strided_copy")?,
        src_strides: pack_i64(plan.src_strides),
        dst_strides: pack_i64(plan.dst_strides),
        src_offset: plan.src_offset as i64,
        dst_offset: plan.dst_offset as i64,
    };
    let n64 = n as i64;
    let f = func(dev, "elementwise.cu", T::KERNEL)?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n64).arg(&meta).arg(src).arg(dst);
    launch(l, cfg_for(n as u64), T::KERNEL)
}

/// Sets every element of `y` to `value`.
pub fn fill(dev: &CudaDevice, y: &mut CudaSlice<f32>, value: f32) -> Result<()> {
    let n = as_i64(y.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", "fill_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(&value).arg(y);
    launch(l, cfg_for(n as u64), "fill_f32")
}

/// `y[i] = x[i] as f32`.
pub fn cast_i64_f32(dev: &CudaDevice, x: &CudaSlice<i64>, y: &mut CudaSlice<f32>) -> Result<()> {
    check_len("cast output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", "cast_i64_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(x).arg(y);
    launch(l, cfg_for(n as u64), "cast_i64_f32")
}

/// 16-bit float element types (`half::f16`, `half::bf16`) for conversions and gathers.
pub trait HalfElem: DeviceRepr {
    #[doc(hidden)]
    const KIND: i32;
    #[doc(hidden)]
    const TO_F32: &'static str;
    #[doc(hidden)]
    const FROM_F32: &'static str;
}
impl HalfElem for half::f16 {
    const KIND: i32 = 0;
    const TO_F32: &'static str = "f16_to_f32_kernel";
    const FROM_F32: &'static str = "f32_to_f16_kernel";
}
impl HalfElem for half::bf16 {
    const KIND: i32 = 1;
    const TO_F32: &'static str = "bf16_to_f32_kernel";
    const FROM_F32: &'static str = "f32_to_bf16_kernel";
}

/// `y[i] = x[i]` widened to f32 (exact).
pub fn half_to_f32<T: HalfElem>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_len("half_to_f32 output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", T::TO_F32)?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(x).arg(y);
    launch(l, cfg_for(n as u64), T::TO_F32)
}

/// `y[i] = x[i]` rounded to nearest even, the same as `half::{f16,bf16}::from_f32`.
pub fn f32_to_half<T: HalfElem>(
    dev: &CudaDevice,
    x: &CudaSlice<f32>,
    y: &mut CudaSlice<T>,
) -> Result<()> {
    check_len("f32_to_half output", y.len(), x.len())?;
    let n = as_i64(x.len());
    if n == 0 {
        return Ok(());
    }
    let f = func(dev, "elementwise.cu", T::FROM_F32)?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(x).arg(y);
    launch(l, cfg_for(n as u64), T::FROM_F32)
}

// ------------------------------------------------------------------ reductions

fn check_reduce(x_len: usize, y_len: usize, outer: usize, len: usize, inner: usize) -> Result<()> {
    check_len("reduce input", x_len, outer * len * inner)?;
    check_len("reduce output", y_len, outer * inner)?;
    if len == 0 {
        return Err(invalid("reduce over an axis of length 0".into()));
    }
    Ok(())
}

/// Grid for the inner > 1 kernels: (ceil(inner/32), outer capped at 65535) with
/// 32 x 32 threads; the kernels loop over any remaining outer rows.
fn mid_cfg(outer: usize, inner: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (inner.div_ceil(32) as u32, outer.clamp(1, 65535) as u32, 1),
        block_dim: (32, 32, 1),
        shared_mem_bytes: 0,
    }
}

/// Rows longer than this get a whole 256-thread block each, shorter ones a warp.
const LONG_ROW: usize = 1024;

fn last_cfg(outer: usize, len: usize) -> LaunchConfig {
    let rows_per_block = if len > LONG_ROW {
        1
    } else {
        (THREADS / 32) as usize
    };
    let blocks = outer.div_ceil(rows_per_block).clamp(1, MAX_BLOCKS as usize) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Reduces a contiguous tensor viewed as `(outer, len, inner)` over the middle axis:
/// `y[o, i] = op_j x[o, j, i]`, `y` of `outer * inner` elements. Block/warp reductions in
/// a fixed order, so results are deterministic.
pub fn reduce(
    dev: &CudaDevice,
    op: ReduceOp,
    x: &CudaSlice<f32>,
    (outer, len, inner): (usize, usize, usize),
    y: &mut CudaSlice<f32>,
) -> Result<()> {
    check_reduce(x.len(), y.len(), outer, len, inner)?;
    if outer * inner == 0 {
        return Ok(());
    }
    let code = op.code();
    let (o, l64, i) = (outer as i64, len as i64, inner as i64);
    if inner == 1 {
        let name = if len > LONG_ROW {
            "reduce_last_block_f32"
        } else {
            "reduce_last_warp_f32"
        };
        let f = func(dev, "reduce.cu", name)?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&code).arg(&o).arg(&l64).arg(x).arg(y);
        launch(a, last_cfg(outer, len), name)
    } else {
        let f = func(dev, "reduce.cu", "reduce_mid_f32")?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&code).arg(&o).arg(&l64).arg(&i).arg(x).arg(y);
        launch(a, mid_cfg(outer, inner), "reduce_mid_f32")
    }
}

/// Index of the first maximum along the middle axis of `(outer, len, inner)`;
/// `y` has `outer * inner` elements. NaNs are never selected.
pub fn argmax(
    dev: &CudaDevice,
    x: &CudaSlice<f32>,
    (outer, len, inner): (usize, usize, usize),
    y: &mut CudaSlice<i64>,
) -> Result<()> {
    check_reduce(x.len(), y.len(), outer, len, inner)?;
    if outer * inner == 0 {
        return Ok(());
    }
    let (o, l64, i) = (outer as i64, len as i64, inner as i64);
    if inner == 1 {
        let name = if len > LONG_ROW {
            "argmax_last_block_f32"
        } else {
            "argmax_last_warp_f32"
        };
        let f = func(dev, "reduce.cu", name)?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&o).arg(&l64).arg(x).arg(y);
        launch(a, last_cfg(outer, len), name)
    } else {
        let f = func(dev, "reduce.cu", "argmax_mid_f32")?;
        let mut a = dev.stream().launch_builder(&f);
        a.arg(&o).arg(&l64).arg(&i).arg(x).arg(y);
        launch(a, mid_cfg(outer, inner), "argmax_mid_f32")
    }
}

// ------------------------------------------------------------------ one_hot, dropout

/// `out[i, c] = (labels[i] == c) as f32`, `out` of `labels.len() * classes`. A label
/// outside `[0, classes)` gives `Error::IndexOutOfRange` (its row is written as zeros).
/// Synchronises to check.
pub fn one_hot(
    dev: &CudaDevice,
    labels: &CudaSlice<i64>,
    classes: usize,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    let n = labels.len();
    check_len("one_hot output", out.len(), n * classes)?;
    if n == 0 {
        return Ok(());
    }
    if classes == 0 {
        return Err(invalid("one_hot with 0 classes".into()));
    }
    let err = error_cell(dev)?;
    let (n64, c64) = (n as i64, classes as i64);
    let f = func(dev, "elementwise.cu", "one_hot_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n64).arg(&c64).arg(labels).arg(out).arg(&err);
    launch(l, cfg_for((n * classes) as u64), "one_hot_f32")?;
    check_error_cell(dev, err, "one_hot label", classes)
}

/// Dropout mask: `mask[i] = if uniform_hash(seed, i) >= p { 1/(1-p) } else { 0 }`,
/// bit-identical to the CPU mask built with [`crate::rng::uniform_hash`]. `p` in [0, 1].
pub fn dropout_mask(dev: &CudaDevice, seed: u64, p: f32, mask: &mut CudaSlice<f32>) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(format!("dropout probability {p} outside [0, 1]")));
    }
    let n = as_i64(mask.len());
    if n == 0 {
        return Ok(());
    }
    // Computed here once so the CPU reference (same expression) matches bit for bit.
    let scale = dropout_scale(p);
    let f = func(dev, "elementwise.cu", "dropout_mask_f32")?;
    let mut l = dev.stream().launch_builder(&f);
    l.arg(&n).arg(&seed).arg(&p).arg(&scale).arg(mask);
    launch(l, cfg_for(n as u64), "dropout_mask_f32")
}

/// The keep-scale of dropout: `1/(1-p)`, or 0 when `p == 1` (everything dropped).
pub fn dropout_scale(p: f32) -> f32 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

// ------------------------------------------------------------------ embedding gather

/// Table element types [`gather`] supports: f32, `half::f16`, `half::bf16`.
pub trait GatherElem: DeviceRepr {
    #[doc(hidden)]
    const HALF_KIND: Option<i32>;
}
impl GatherElem for f32 {
    const HALF_KIND: Option<i32> = None;
}
impl GatherElem for half::f16 {
    const HALF_KIND: Option<i32> = Some(0);
}
impl GatherElem for half::bf16 {
    const HALF_KIND: Option<i32> = Some(1);
}

/// Embedding lookup: `out[r, :] = table[idx[r], :]` as f32, `table` `[rows, dim]`,
/// `out` `[idx.len(), dim]`. Vectorised (16-byte stores) when `dim % 4 == 0`. An index
/// outside `[0, rows)` gives `Error::IndexOutOfRange` (its output row is zeros).
/// Synchronises to check.
pub fn gather<T: GatherElem>(
    dev: &CudaDevice,
    table: &CudaSlice<T>,
    dim: usize,
    idx: &CudaSlice<i64>,
    out: &mut CudaSlice<f32>,
) -> Result<()> {
    gather_async(dev, table, dim, idx, out)?.check(dev)
}

/// A pending index check: [`IndexCheck::check`] synchronises and reports a bad index.
/// Lets a caller queue several launches (or time a kernel) before paying for the sync.
#[must_use = "an index check does nothing until `check` is called"]
pub struct IndexCheck {
    cell: CudaSlice<i64>,
    what: &'static str,
    size: usize,
}

impl IndexCheck {
    /// Waits for the kernel and returns `Error::IndexOutOfRange` if it saw a bad index.
    pub fn check(self, dev: &CudaDevice) -> Result<()> {
        check_error_cell(dev, self.cell, self.what, self.size)
    }
}

/// [`gather`] without the final synchronisation: the index check is returned instead.
pub fn gather_async<T: GatherElem>(
    dev: &CudaDevice,
    table: &CudaSlice<T>,
    dim: usize,
    idx: &CudaSlice<i64>,
    out: &mut CudaSlice<f32>,
) -> Result<IndexCheck> {
    if dim == 0 || !table.len().is_multiple_of(dim) {
        return Err(invalid(format!(
            "gather: table of {} elements is not [rows, {dim}]",
            table.len()
        )));
    }
    let rows = table.len() / dim;
    let n = idx.len();
    check_len("gather output", out.len(), n * dim)?;
    let cell = error_cell(dev)?;
    let check = IndexCheck {
        cell,
        what: "embedding row",
        size: rows,
    };
    if n == 0 {
        return Ok(check);
    }
    let (n64, r64, d64) = (n as i64, rows as i64, dim as i64);
    let vec4 = dim.is_multiple_of(4);
    let work = if vec4 { n * dim / 4 } else { n * dim } as u64;
    let name = match (T::HALF_KIND, vec4) {
        (None, true) => "gather_f32_vec4",
        (None, false) => "gather_f32_scalar",
        (Some(_), true) => "gather_half_vec4",
        (Some(_), false) => "gather_half_scalar",
    };
    let f = func(dev, "embedding.cu", name)?;
    let mut l = dev.stream().launch_builder(&f);
    let kind = T::HALF_KIND.unwrap_or(0);
    if T::HALF_KIND.is_some() {
        l.arg(&kind);
    }
    l.arg(&n64)
        .arg(&r64)
        .arg(&d64)
        .arg(idx)
        .arg(table)
        .arg(out)
        .arg(&check.cell);
    // The vectorised kernels handle GATHER_ILP (4) pieces per thread.
    let threads = if vec4 { work.div_ceil(4) } else { work };
    launch(l, cfg_for(threads), name)?;
    Ok(check)
}

// ------------------------------------------------------------------ scatter-add

/// A row-sparse gradient as produced by [`scatter_add`]. Capacity is `n = idx.len()` so
/// no host sync is needed to size it: `unique[0..k]` holds the distinct row ids
/// (ascending in [`ScatterMode::Sorted`], in no fixed order in [`ScatterMode::Atomic`])
/// and `unique[k..n] = -1`; `summed` is `[n, dim]` with row `s` the sum of all input
/// rows whose index is `unique[s]` (rows `k..n` are 0); `count[0] = k`.
pub struct RowSparse {
    pub unique: CudaSlice<i64>,
    pub summed: CudaSlice<f32>,
    pub count: CudaSlice<i64>,
}

/// How [`scatter_add`] sums rows that share an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScatterMode {
    /// Sort, segment, then sum each row's inputs in position order (no float atomics):
    /// two runs give bitwise-identical results, unique rows come out ascending, and hot
    /// (Zipf-skewed) rows are split into 32-row chunks instead of serialising. One
    /// launch up to 2048 indices (a training batch), about 18 at 64k.
    Sorted,
    /// Float atomics: three launches. The first block to claim a row stores its share,
    /// the others add theirs atomically, so with spread-out indices the gradient is
    /// read once and written once. Unique rows in no fixed order; sums depend on the
    /// order the atomics land. Duplicates within a block are pre-summed in shared
    /// memory, so a hot row costs one atomic per block of 256 indices. Keeps a
    /// 4-byte-per-row map of the largest table on the device between calls.
    Atomic,
}

impl ScatterMode {
    /// The mode [`crate::device::set_deterministic`] asks for.
    pub fn current() -> ScatterMode {
        if crate::device::deterministic() {
            ScatterMode::Sorted
        } else {
            ScatterMode::Atomic
        }
    }
}

/// Keys per shared-memory sort tile; must match SORT_TILE in embedding.cu.
const SORT_TILE: usize = 2048;

/// The sorted scatter-add of at most SORT_TILE indices runs in one block when the
/// gradient has at most this many elements (2 MB; 2048 rows of 256).
const ONE_BLOCK_MAX_ELEMS: usize = 1 << 19;

/// Scatter-add of `rows` (`[n, dim]`) by `idx` (`[n]`, each in `[0, table_rows)`) into a
/// [`RowSparse`] gradient. An out-of-range index gives `Error::IndexOutOfRange` and its
/// row is left out; synchronises to check.
pub fn scatter_add(
    dev: &CudaDevice,
    mode: ScatterMode,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
) -> Result<RowSparse> {
    let (out, check) = scatter_add_async(dev, mode, idx, rows, dim, table_rows)?;
    check.check(dev)?;
    Ok(out)
}

/// [`scatter_add`] without the final synchronisation: the index check is returned instead.
pub fn scatter_add_async(
    dev: &CudaDevice,
    mode: ScatterMode,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
) -> Result<(RowSparse, IndexCheck)> {
    let n = idx.len();
    if dim == 0 {
        return Err(invalid("scatter-add with dim 0".into()));
    }
    check_len("scatter-add rows", rows.len(), n * dim)?;
    // Sorted: keys pack (row id << 32 | position) into a u64. Atomic: slots are u32
    // (slot + 1 in the map, u32::MAX while claiming).
    if table_rows > i32::MAX as usize || n > u32::MAX as usize / 2 {
        return Err(invalid(format!(
            "scatter-add supports tables below 2^31 rows and fewer than 2^31 indices (got {table_rows} rows, {n} indices)"
        )));
    }
    let check = IndexCheck {
        cell: error_cell(dev)?,
        what: "embedding row",
        size: table_rows,
    };
    if n == 0 {
        let empty = RowSparse {
            unique: alloc_zeros::<i64>(dev, 0)?,
            summed: alloc_zeros::<f32>(dev, 0)?,
            count: alloc_zeros::<i64>(dev, 1)?,
        };
        return Ok((empty, check));
    }
    let out = match mode {
        ScatterMode::Sorted => sorted_scatter(dev, idx, rows, dim, table_rows, &check)?,
        ScatterMode::Atomic => atomic_scatter(dev, idx, rows, dim, table_rows, &check)?,
    };
    Ok((out, check))
}

/// [`ScatterMode::Sorted`] for `n > 0` valid-sized inputs.
fn sorted_scatter(
    dev: &CudaDevice,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
    check: &IndexCheck,
) -> Result<RowSparse> {
    let n = idx.len();
    // No buffer below is zeroed first (that was 14 memsets, ~17 MB of writes at dim 64):
    // each is written before it is read. keys: build_keys writes all `padded`; flags,
    // counts: one thread per slot; scan outputs and block sums: every slot; unique and
    // count: coalesce_segments (ids below k, -1 from k); seg_start: entries 0..=k, the
    // only ones read; chunk_seg and partial: the chunks below num_chunks, the only ones
    // read; summed: chunk_sum writes single-chunk segments, seg_finish the rest and
    // zeroes rows k..n.
    let mut unique = alloc_uninit::<i64>(dev, n)?;
    let mut summed = alloc_uninit::<f32>(dev, n * dim)?;
    let mut count = alloc_uninit::<i64>(dev, 1)?;
    let s = dev.stream();
    let (n64, d64, tr64) = (n as i64, dim as i64, table_rows as i64);
    let vec4 = dim.is_multiple_of(4);
    // sum_s ceil(len_s/32) <= k + n/32 <= n + n/32: a bound known without a sync.
    let cap = n + n / 32 + 1;

    // A batch's worth of indices: the whole pipeline in one block, one launch (bitwise
    // the same results). Past ONE_BLOCK_MAX_ELEMS one SM would move too many bytes.
    if n <= SORT_TILE && n * dim <= ONE_BLOCK_MAX_ELEMS {
        let mut partial = alloc_uninit::<f32>(dev, cap * dim)?;
        let name = if vec4 {
            "coalesce_one_block_vec4"
        } else {
            "coalesce_one_block_scalar"
        };
        let f = func(dev, "embedding.cu", name)?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&d64)
            .arg(&tr64)
            .arg(idx)
            .arg(rows)
            .arg(&mut unique)
            .arg(&mut summed)
            .arg(&mut count)
            .arg(&mut partial)
            .arg(&check.cell);
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: ((SORT_TILE / 2) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        launch(l, one, name)?;
        return Ok(RowSparse {
            unique,
            summed,
            count,
        });
    }

    // 1. keys, padded to a power of two of at least one tile.
    let padded = n.next_power_of_two().max(SORT_TILE);
    let p64 = padded as i64;
    let mut keys = alloc_uninit::<u64>(dev, padded)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_build_keys")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&p64)
            .arg(&tr64)
            .arg(idx)
            .arg(&mut keys)
            .arg(&check.cell);
        launch(l, cfg_for(padded as u64), "coalesce_build_keys")?;
    }

    // 2. sort: tiles in shared memory, then merge passes between two buffers.
    let tile_cfg = LaunchConfig {
        grid_dim: ((padded / SORT_TILE) as u32, 1, 1),
        block_dim: ((SORT_TILE / 2) as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    {
        let f = func(dev, "embedding.cu", "sort_tiles")?;
        let mut l = s.launch_builder(&f);
        l.arg(&mut keys);
        launch(l, tile_cfg, "sort_tiles")?;
    }
    if padded > SORT_TILE {
        const MERGE_ITEMS: usize = 8; // matches embedding.cu
        let merge = func(dev, "embedding.cu", "merge_runs")?;
        let mut other = alloc_uninit::<u64>(dev, padded)?;
        let mut run = SORT_TILE;
        while run < padded {
            let run64 = run as i64;
            let mut l = s.launch_builder(&merge);
            l.arg(&keys).arg(&mut other).arg(&p64).arg(&run64);
            launch(l, cfg_for((padded / MERGE_ITEMS) as u64), "merge_runs")?;
            std::mem::swap(&mut keys, &mut other);
            run *= 2;
        }
    }

    // 3. segments: head flags -> exclusive scan -> unique ids and segment starts.
    let mut flags = alloc_uninit::<u32>(dev, n)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_head_flags")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64).arg(&keys).arg(&mut flags);
        launch(l, cfg_for(n as u64), "coalesce_head_flags")?;
    }
    let mut seg_id = alloc_uninit::<u32>(dev, n)?;
    let mut num_segments = alloc_uninit::<u32>(dev, 1)?;
    exclusive_scan(dev, &flags, &mut seg_id, &mut num_segments)?;
    let mut seg_start = alloc_uninit::<u32>(dev, n + 1)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_segments")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&keys)
            .arg(&flags)
            .arg(&seg_id)
            .arg(&num_segments)
            .arg(&mut unique)
            .arg(&mut seg_start)
            .arg(&mut count);
        launch(l, cfg_for(n as u64), "coalesce_segments")?;
    }

    // 4. chunks of <= 32 rows per segment.
    let mut counts = alloc_uninit::<u32>(dev, n)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_chunk_counts")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&num_segments)
            .arg(&seg_start)
            .arg(&mut counts);
        launch(l, cfg_for(n as u64), "coalesce_chunk_counts")?;
    }
    let mut chunk_off = alloc_uninit::<u32>(dev, n)?;
    let mut num_chunks = alloc_uninit::<u32>(dev, 1)?;
    exclusive_scan(dev, &counts, &mut chunk_off, &mut num_chunks)?;
    let cap64 = cap as i64;
    let mut chunk_seg = alloc_uninit::<u32>(dev, cap)?;
    {
        let f = func(dev, "embedding.cu", "coalesce_chunk_map")?;
        let mut l = s.launch_builder(&f);
        l.arg(&cap64)
            .arg(&num_segments)
            .arg(&num_chunks)
            .arg(&chunk_off)
            .arg(&mut chunk_seg);
        launch(l, cfg_for(cap as u64), "coalesce_chunk_map")?;
    }

    // 5. chunk sums; 6. combine multi-chunk segments and zero the tail.
    // Partials are only written for chunks of segments longer than 32 rows; memory
    // for all `cap` chunks is reserved because their number is only known on the device.
    let mut partial = alloc_uninit::<f32>(dev, cap * dim)?;
    {
        let name = if vec4 {
            "coalesce_chunk_sum_vec4"
        } else {
            "coalesce_chunk_sum_scalar"
        };
        let work = if vec4 { cap * dim / 4 } else { cap * dim } as u64;
        let f = func(dev, "embedding.cu", name)?;
        let mut l = s.launch_builder(&f);
        l.arg(&cap64)
            .arg(&d64)
            .arg(&keys)
            .arg(rows)
            .arg(&seg_start)
            .arg(&counts)
            .arg(&chunk_off)
            .arg(&chunk_seg)
            .arg(&num_chunks)
            .arg(&mut summed)
            .arg(&mut partial);
        launch(l, cfg_for(work), name)?;
    }
    {
        let f = func(dev, "embedding.cu", "coalesce_seg_finish")?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&d64)
            .arg(&num_segments)
            .arg(&counts)
            .arg(&chunk_off)
            .arg(&partial)
            .arg(&mut summed);
        launch(l, cfg_for((n * dim) as u64), "coalesce_seg_finish")?;
    }
    Ok(RowSparse {
        unique,
        summed,
        count,
    })
}

/// [`ScatterMode::Atomic`] for `n > 0` valid-sized inputs.
fn atomic_scatter(
    dev: &CudaDevice,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
    check: &IndexCheck,
) -> Result<RowSparse> {
    // Nothing is zeroed but the slot counter: each claimed row's first contribution is
    // stored, not added, and scatter_finish writes the rest (see embedding.cu).
    let n = idx.len();
    let mut out = RowSparse {
        unique: alloc_uninit::<i64>(dev, n)?,
        summed: alloc_uninit::<f32>(dev, n * dim)?,
        count: alloc_zeros::<i64>(dev, 1)?,
    };
    let mut claimer = alloc_uninit::<u32>(dev, n)?;
    let mut map = dev.row_slots(table_rows)?;
    let result = match map.as_mut() {
        Some(m) => atomic_launches(
            dev,
            idx,
            rows,
            dim,
            table_rows,
            check,
            &mut out,
            &mut claimer,
            m,
        ),
        None => Err(Error::Cuda("scatter-add row map missing".into())),
    };
    if result.is_err() {
        // A launch failed midway: the map may hold entries nobody will clear.
        *map = None;
    }
    result.map(|()| out)
}

#[allow(clippy::too_many_arguments)]
fn atomic_launches(
    dev: &CudaDevice,
    idx: &CudaSlice<i64>,
    rows: &CudaSlice<f32>,
    dim: usize,
    table_rows: usize,
    check: &IndexCheck,
    out: &mut RowSparse,
    claimer: &mut CudaSlice<u32>,
    map: &mut CudaSlice<u32>,
) -> Result<()> {
    const SCATTER_STEPS: usize = 4; // matches embedding.cu
    let n = idx.len();
    let (n64, d64, tr64) = (n as i64, dim as i64, table_rows as i64);
    let s = dev.stream();
    let (width, [claim, losers, finish]) = if dim.is_multiple_of(4) {
        (
            dim / 4,
            [
                "scatter_claim_store_vec4",
                "scatter_add_losers_vec4",
                "scatter_finish_vec4",
            ],
        )
    } else {
        (
            dim,
            [
                "scatter_claim_store_scalar",
                "scatter_add_losers_scalar",
                "scatter_finish_scalar",
            ],
        )
    };
    let per_index = cfg_for(n as u64); // blockDim must be SCATTER_BLOCK = THREADS
    {
        let f = func(dev, "embedding.cu", claim)?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&tr64)
            .arg(&d64)
            .arg(idx)
            .arg(&mut *map)
            .arg(&mut *claimer)
            .arg(&mut out.count)
            .arg(&mut out.unique)
            .arg(rows)
            .arg(&mut out.summed)
            .arg(&check.cell);
        launch(l, per_index, claim)?;
    }
    {
        // blockIdx.y: groups of SCATTER_STEPS steps of each row (the kernel loops past 65535).
        let groups = width.div_ceil(SCATTER_STEPS).clamp(1, 65535) as u32;
        let grid = LaunchConfig {
            grid_dim: (per_index.grid_dim.0, groups, 1),
            ..per_index
        };
        let f = func(dev, "embedding.cu", losers)?;
        let mut l = s.launch_builder(&f);
        l.arg(&n64)
            .arg(&tr64)
            .arg(&d64)
            .arg(idx)
            .arg(&*map)
            .arg(&*claimer)
            .arg(rows)
            .arg(&mut out.summed);
        launch(l, grid, losers)?;
    }
    let f = func(dev, "embedding.cu", finish)?;
    let mut l = s.launch_builder(&f);
    l.arg(&n64)
        .arg(&d64)
        .arg(&out.count)
        .arg(&mut out.unique)
        .arg(&mut *map)
        .arg(&mut out.summed);
    launch(l, cfg_for((n * width) as u64), finish)
}

/// Device-wide exclusive scan of u32 (3 launches: block sums, one-block scan of those,
/// apply). `total[0]` receives the sum of all elements.
fn exclusive_scan(
    dev: &CudaDevice,
    input: &CudaSlice<u32>,
    out: &mut CudaSlice<u32>,
    total: &mut CudaSlice<u32>,
) -> Result<()> {
    const SCAN_BLOCK: usize = 1024; // matches SCAN_BLOCK in embedding.cu
    let n = input.len();
    let nb = n.div_ceil(SCAN_BLOCK).max(1);
    let (n64, nb64) = (n as i64, nb as i64);
    let mut sums = alloc_uninit::<u32>(dev, nb)?;
    let blocks = LaunchConfig {
        grid_dim: (nb as u32, 1, 1),
        block_dim: (SCAN_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let s = dev.stream();
    {
        let f = func(dev, "embedding.cu", "scan_block_sums")?;
        let mut l = s.launch_builder(&f);
        l.arg(input).arg(&n64).arg(&mut sums);
        launch(l, blocks, "scan_block_sums")?;
    }
    {
        let f = func(dev, "embedding.cu", "scan_block_offsets")?;
        let mut l = s.launch_builder(&f);
        l.arg(&mut sums).arg(&nb64).arg(total);
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (SCAN_BLOCK as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        launch(l, one, "scan_block_offsets")?;
    }
    let f = func(dev, "embedding.cu", "scan_apply")?;
    let mut l = s.launch_builder(&f);
    l.arg(input).arg(&n64).arg(&sums).arg(out);
    launch(l, blocks, "scan_apply")
}

// ------------------------------------------------------------------ optimizer updates

/// MXNet `sgd_mom_update` / `sgd_update` hyper-parameters. `clip_gradient < 0`: no clip.
#[derive(Clone, Copy, Debug)]
pub struct SgdParams {
    pub lr: f32,
    pub momentum: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
}

/// MXNet `adam_update` hyper-parameters; `lr_t` already bias-corrected (see
/// `boson::optim::adam_lr_t`).
#[derive(Clone, Copy, Debug)]
pub struct AdamParams {
    pub lr_t: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
}

/// MXNet AdaGrad hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct AdaGradParams {
    pub lr: f32,
    pub epsilon: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
}

/// Which rows an optimizer update touches.
/// `idx = Some(ids)`: row-sparse gradient, `grad` is `[ids.len(), dim]` and its row r
/// updates weight row `ids[r]` (`ids[r] < 0` skipped, e.g. the scatter-add's -1 padding);
/// `None`: dense, `grad` has the weight's shape.
fn update_setup(
    w_len: usize,
    dim: usize,
    grad_len: usize,
    idx: Option<&CudaSlice<i64>>,
) -> Result<(i64, i64, i64)> {
    if dim == 0 || !w_len.is_multiple_of(dim) {
        return Err(invalid(format!(
            "optimizer: weight of {w_len} elements is not [rows, {dim}]"
        )));
    }
    let rows = w_len / dim;
    let n = match idx {
        Some(ids) => ids.len() * dim,
        None => w_len,
    };
    check_len("optimizer gradient", grad_len, n)?;
    Ok((n as i64, dim as i64, rows as i64))
}

/// SGD (MXNet semantics) on `w` (`[rows, dim]`): with `mom`,
/// `mom = momentum*mom - lr*(clip(rescale*g) + wd*w); w += mom`; without,
/// `w -= lr*(clip(rescale*g) + wd*w)`. Row selection as in `update_setup`: `idx`
/// lists the rows of a row-sparse gradient (others untouched), `None` means dense.
/// An id `>= rows` gives `Error::IndexOutOfRange`; synchronises to check.
pub fn sgd_update(
    dev: &CudaDevice,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    mom: Option<&mut CudaSlice<f32>>,
    p: &SgdParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    if let Some(m) = mom.as_ref() {
        check_len("sgd momentum", m.len(), w.len())?;
    }
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64; // a null device pointer for absent idx / momentum
        let f = func(dev, "optim.cu", "sgd_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad);
        match mom {
            Some(m) => l.arg(m),
            None => l.arg(&null),
        };
        l.arg(&p.lr)
            .arg(&p.momentum)
            .arg(&p.wd)
            .arg(&p.rescale_grad)
            .arg(&p.clip_gradient)
            .arg(&err);
        launch(l, cfg_for(n as u64), "sgd_update_f32")?;
    }
    check_error_cell(dev, err, "sgd row", rows as usize)
}

/// Adam (MXNet `adam_update`): `g = clip(rescale*g) + wd*w; mean = b1*mean + (1-b1)*g;
/// var = b2*var + (1-b2)*g^2; w -= lr_t*mean/(sqrt(var)+eps)`. `mean`, `var` have the
/// weight's shape. Rows as in [`sgd_update`]; synchronises to check indices.
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    dev: &CudaDevice,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    mean: &mut CudaSlice<f32>,
    var: &mut CudaSlice<f32>,
    p: &AdamParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    check_len("adam mean", mean.len(), w.len())?;
    check_len("adam var", var.len(), w.len())?;
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64;
        let f = func(dev, "optim.cu", "adam_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad).arg(mean).arg(var);
        l.arg(&p.lr_t)
            .arg(&p.beta1)
            .arg(&p.beta2)
            .arg(&p.epsilon)
            .arg(&p.wd)
            .arg(&p.rescale_grad);
        l.arg(&p.clip_gradient).arg(&err);
        launch(l, cfg_for(n as u64), "adam_update_f32")?;
    }
    check_error_cell(dev, err, "adam row", rows as usize)
}

/// AdaGrad (MXNet): `g = clip(rescale*g); history += g^2;
/// w -= lr*(g/sqrt(history+eps) + wd*w)`. `history` has the weight's shape. Rows as in
/// [`sgd_update`]; synchronises to check indices.
pub fn adagrad_update(
    dev: &CudaDevice,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    history: &mut CudaSlice<f32>,
    p: &AdaGradParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    check_len("adagrad history", history.len(), w.len())?;
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64;
        let f = func(dev, "optim.cu", "adagrad_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        l.arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad).arg(history);
        l.arg(&p.lr)
            .arg(&p.epsilon)
            .arg(&p.wd)
            .arg(&p.rescale_grad)
            .arg(&p.clip_gradient)
            .arg(&err);
        launch(l, cfg_for(n as u64), "adagrad_update_f32")?;
    }
    check_error_cell(dev, err, "adagrad row", rows as usize)
}

/// The rules of the general `rule_update_f32` kernel (codes as in `kernels/optim.cu`).
pub use crate::tensor::row_update::GeneralRule as RuleKernel;

/// Hyper-parameters of a [`RuleKernel`] update. `lr` and `wd` are as the rule uses them
/// (AdamW: the bias-corrected `lr_t` and the decay coefficient `lr * wd`); `hyper` holds
/// the rule's own values in the order `kernels/optim.cu` lists. `clip_gradient < 0`: no
/// clip.
#[derive(Clone, Copy, Debug)]
pub struct RuleParams {
    pub lr: f32,
    pub wd: f32,
    pub rescale_grad: f32,
    pub clip_gradient: f32,
    pub hyper: [f32; 4],
}

/// NAG, AdamW, RMSProp (plain or centered) or FTRL on `w` (`[rows, dim]`) with the
/// rule's `states` (each the weight's shape). Rows as in [`sgd_update`].
#[allow(clippy::too_many_arguments)]
pub fn rule_update(
    dev: &CudaDevice,
    rule: RuleKernel,
    w: &mut CudaSlice<f32>,
    dim: usize,
    grad: &CudaSlice<f32>,
    idx: Option<&CudaSlice<i64>>,
    states: Vec<&mut CudaSlice<f32>>,
    p: &RuleParams,
) -> Result<()> {
    let (n, d, rows) = update_setup(w.len(), dim, grad.len(), idx)?;
    if states.len() != rule.num_states() {
        return Err(invalid(format!(
            "{rule:?} needs {} state buffers, got {}",
            rule.num_states(),
            states.len()
        )));
    }
    for s in &states {
        check_len("optimizer state", s.len(), w.len())?;
    }
    let err = error_cell(dev)?;
    if n > 0 {
        let null = 0u64; // a null device pointer for absent idx / states
        let f = func(dev, "optim.cu", "rule_update_f32")?;
        let mut l = dev.stream().launch_builder(&f);
        let code = rule.code();
        l.arg(&code).arg(&n).arg(&d).arg(&rows);
        match idx {
            Some(i) => l.arg(i),
            None => l.arg(&null),
        };
        l.arg(&mut *w).arg(grad);
        let mut states = states.into_iter();
        for _ in 0..3 {
            match states.next() {
                Some(s) => l.arg(s),
                None => l.arg(&null),
            };
        }
        l.arg(&p.lr)
            .arg(&p.wd)
            .arg(&p.rescale_grad)
            .arg(&p.clip_gradient);
        for h in &p.hyper {
            l.arg(h);
        }
        l.arg(&err);
        launch(l, cfg_for(n as u64), "rule_update_f32")?;
    }
    check_error_cell(dev, err, "optimizer row", rows as usize)
}

// ------------------------------------------------------------------ matmul

/// Shape of a (batched) row-major matmul: `C[b] = op(A[b]) · op(B[b])` with `C[b]`
/// `m × n`. `A[b]` is stored `m × k`, or `k × m` when `trans_a`; `B[b]` `k × n`, or
/// `n × k` when `trans_b`. Matrices of one batch follow each other contiguously.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

/// Row-major (batched) matmul through cuBLAS `sgemm_strided_batched` (full f32, no
/// TF32 unless the process enables it via `NVIDIA_TF32_OVERRIDE`). Overwrites `c`.
pub fn matmul(
    dev: &CudaDevice,
    sh: &MatmulShape,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
) -> Result<()> {
    let MatmulShape {
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
    } = *sh;
    check_len("matmul A", a.len(), batch * m * k)?;
    check_len("matmul B", b.len(), batch * k * n)?;
    check_len("matmul C", c.len(), batch * m * n)?;
    if batch * m * n == 0 {
        return Ok(());
    }
    if k == 0 {
        return fill(dev, c, 0.0);
    }
    let too_big = |v: usize| v > i32::MAX as usize;
    if too_big(m) || too_big(n) || too_big(k) || too_big(batch) {
        return Err(invalid(format!("matmul dims exceed i32: {sh:?}")));
    }
    // cuBLAS is column-major. A row-major X is the column-major X^T, so compute
    // C^T = op(B)^T · op(A)^T: cuBLAS's "A" is our B and its "B" is our A, with the
    // same transpose flags, and the leading dimensions are the row lengths as stored.
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let gemm = GemmConfig {
        transa: op(trans_b),
        transb: op(trans_a),
        m: n as i32,
        n: m as i32,
        k: k as i32,
        alpha: 1.0f32,
        lda: if trans_b { k } else { n } as i32,
        ldb: if trans_a { m } else { k } as i32,
        beta: 0.0f32,
        ldc: n as i32,
    };
    let blas = dev.blas()?;
    let cfg = StridedBatchedConfig {
        gemm,
        batch_size: batch as i32,
        stride_a: (k * n) as i64,
        stride_b: (m * k) as i64,
        stride_c: (m * n) as i64,
    };
    // SAFETY: lengths checked above cover batch strides and leading dimensions.
    unsafe { blas.gemm_strided_batched(cfg, b, a, c) }
        .map_err(|e| cuda_err("cuBLAS sgemm_strided_batched", e))
}
