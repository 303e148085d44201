//! What every launcher shares: launch configuration, buffer transfers and allocation,
//! length checks, and the device error cell through which kernels report a bad index.

use cudarc::driver::{
    CudaFunction, CudaSlice, DeviceRepr, LaunchArgs, LaunchConfig, ValidAsZeroBits,
};

use crate::cuda::device::CudaDevice;
use crate::error::{Error, Result};

pub(super) const THREADS: u32 = 256;
/// Upper bound on the grid; the kernels loop (grid-stride) over anything larger.
pub(super) const MAX_BLOCKS: u64 = 1 << 20;

pub(super) fn cuda_err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Cuda(format!("{what}: {e:?}"))
}

pub(super) fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// One thread per element, 256 per block.
pub(super) fn cfg_for(n: u64) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub(super) fn launch(mut args: LaunchArgs<'_>, cfg: LaunchConfig, name: &str) -> Result<()> {
    // SAFETY: each caller has checked that the buffers hold every element the kernel
    // touches for these sizes, and passes arguments in the kernel's parameter order and
    // types (i64 for `long long`, i32 for `int`, f32 for `float`, u64 for pointers/seeds).
    unsafe { args.launch(cfg) }
        .map(|_| ())
        .map_err(|e| cuda_err(&format!("launching {name}"), e))
}

pub(super) fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(invalid(format!(
            "{what}: buffer has {got} elements, expected {want}"
        )));
    }
    Ok(())
}

pub(super) fn as_i64(v: usize) -> i64 {
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
pub(super) fn error_cell(dev: &CudaDevice) -> Result<CudaSlice<i64>> {
    alloc_zeros::<i64>(dev, 2)
}

/// Reads the error cell (synchronises) and turns a recorded bad index into an error.
/// Inside [`deferring_index_checks`] the cell is queued instead and read at the next
/// device-to-host copy, so a training step pays no extra round trip per launch.
pub(super) fn check_error_cell(
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

pub(super) fn cell_error(v: &[i64], what: &str, size: usize) -> Result<()> {
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
pub(super) fn run_deferred_checks(dev: &CudaDevice) -> Result<()> {
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

pub(super) fn func(
    dev: &CudaDevice,
    file: &'static str,
    name: &'static str,
) -> Result<CudaFunction> {
    dev.function(file, name)
}
