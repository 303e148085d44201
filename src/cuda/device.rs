//! `CudaDevice`: one CUDA context + default stream per ordinal, a lazily created cuBLAS
//! handle, and the kernels compiled by NVRTC on first use and cached per device.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream};
use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::error::{Error, Result};
use crate::tensor::ElementwiseKernel;

/// Every kernel source file, embedded at build time: (file name, CUDA C source as in
/// `kernels/`). `tests/cuda_kernels_compile.rs` checks that each `kernels/*.cu` is listed.
const KERNEL_FILES: &[(&str, &str)] = &[
    (
        "elementwise.cu",
        include_str!("../../kernels/elementwise.cu"),
    ),
    ("reduce.cu", include_str!("../../kernels/reduce.cu")),
    ("embedding.cu", include_str!("../../kernels/embedding.cu")),
    ("optim.cu", include_str!("../../kernels/optim.cu")),
    ("window.cu", include_str!("../../kernels/window.cu")),
];

/// A kernel file's source with its generated parts spliced in where it includes them
/// (`unary_ops.cuh` and `binary_ops.cuh`: the `unary_op` and `binary_op` switches from
/// [`UnaryOp::cuda_source`](crate::tensor::UnaryOp::cuda_source) and
/// [`BinaryOp::cuda_source`](crate::tensor::BinaryOp::cuda_source)), as NVRTC compiles it.
pub fn expand_kernel_source(file_text: &str) -> String {
    file_text
        .replace(
            "#include \"unary_ops.cuh\"",
            &crate::tensor::UnaryOp::cuda_source(),
        )
        .replace(
            "#include \"binary_ops.cuh\"",
            &crate::tensor::BinaryOp::cuda_source(),
        )
}

/// The kernel sources as NVRTC compiles them: (file name, source with generated parts).
pub fn kernel_sources() -> &'static [(&'static str, String)] {
    static SOURCES: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        KERNEL_FILES
            .iter()
            .map(|&(name, text)| (name, expand_kernel_source(text)))
            .collect()
    })
}

/// Whether the CUDA driver library can be loaded. Asking cudarc anything without it
/// panics, so every path checks this first.
fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library; no CUDA call is made.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen libnvrtc.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

fn cublas_present() -> bool {
    // SAFETY: only tries to dlopen libcublas.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

/// Folders to search for `cuda_fp16.h` / `cuda_bf16.h`. Our kernels need none of them
/// (half types are converted by hand), but a kernel that includes them compiles where
/// they can be found: `BOSON_CUDA_INCLUDE` (one or more folders, `:`-separated) first,
/// then the `include` folder next to the loaded libnvrtc, then common install places.
pub fn cuda_include_paths() -> Vec<String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(v) = std::env::var("BOSON_CUDA_INCLUDE") {
        candidates.extend(v.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    // The loaded libnvrtc's own folder tells where its toolkit lives
    // (…/lib/libnvrtc.so.13 -> …/include).
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines().filter(|l| l.contains("libnvrtc")) {
            if let Some(path) = line.split_whitespace().last() {
                if let Some(lib_dir) = Path::new(path).parent() {
                    if let Some(root) = lib_dir.parent() {
                        candidates.push(root.join("include"));
                    }
                }
            }
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates.push(PathBuf::from("/usr/local/cuda-13.0/include"));
    for lib in ["/usr/local/lib", "/usr/lib"] {
        if let Ok(entries) = std::fs::read_dir(lib) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("python3") {
                    for sub in ["dist-packages", "site-packages"] {
                        candidates.push(e.path().join(sub).join("nvidia/cu13/include"));
                        candidates.push(e.path().join(sub).join("nvidia/cuda_runtime/include"));
                    }
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for c in candidates {
        if c.join("cuda_fp16.h").is_file() {
            let s = c.to_string_lossy().to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// Compiles the embedded kernel file `source_name` (e.g. `"embedding.cu"`) to PTX for
/// `arch` (e.g. `"compute_90"`). Needs libnvrtc but no GPU; the CI compile test uses it.
/// A failed compile returns `Error::Cuda` with NVRTC's log.
pub fn compile_ptx(source_name: &str, arch: &str) -> Result<Ptx> {
    let src = kernel_sources()
        .iter()
        .find(|(name, _)| *name == source_name)
        .map(|(_, src)| src.as_str())
        .ok_or_else(|| {
            Error::Cuda(format!(
                "kernel source {source_name} is not embedded (add it to KERNEL_FILES in src/cuda/device.rs)"
            ))
        })?;
    compile_source_ptx(source_name, src, arch)
}

/// Compiles CUDA C `src` (named `source_name` in NVRTC's messages) to PTX for `arch`, as
/// [`compile_ptx`] does the embedded files: a user's kernel source (an
/// [`ElementwiseKernel`]) can be checked this way on a
/// machine without a GPU.
pub fn compile_source_ptx(source_name: &str, src: &str, arch: &str) -> Result<Ptx> {
    if !nvrtc_present() {
        return Err(Error::Cuda(
            "NVRTC (libnvrtc.so) could not be loaded: install CUDA's NVRTC or put its folder on LD_LIBRARY_PATH"
                .into(),
        ));
    }
    let opts = CompileOptions {
        include_paths: cuda_include_paths(),
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some(source_name.to_string()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(src, opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. } => Error::Cuda(format!(
            "NVRTC failed to compile {source_name} for {arch} ({nvrtc:?}):\n{}",
            log.to_string_lossy()
        )),
        other => Error::Cuda(format!("NVRTC failed on {source_name}: {other:?}")),
    })
}

/// Whether device `ordinal` can be used (driver, NVRTC and the device all present).
pub fn cuda_available(ordinal: usize) -> bool {
    CudaDevice::get(ordinal).is_ok()
}

/// One CUDA device: its context, the default stream every launcher uses, a cuBLAS
/// handle (created on first `matmul`), and the kernels compiled for it so far.
pub struct CudaDevice {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    name: String,
    blas: Mutex<Option<Arc<CudaBlas>>>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    /// Users' kernels compiled so far (at most `MAX_USER_KERNELS`).
    user_functions: Mutex<HashMap<ElementwiseKernel, CudaFunction>>,
    /// Index-check cells queued by `ops::deferring_index_checks`, read at the next copy
    /// to the host.
    deferred_checks: Mutex<Vec<(CudaSlice<i64>, &'static str, usize)>>,
    /// The atomic scatter-add's `row -> slot + 1` map (`ops::scatter_add_async`), sized
    /// for the largest table seen; all zero between calls.
    row_slots: Mutex<Option<CudaSlice<u32>>>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaDevice({}: {}, {})",
            self.ordinal, self.name, self.arch
        )
    }
}

/// Distinct user kernels (`ElementwiseKernel`s) a device keeps compiled at once.
pub const MAX_USER_KERNELS: usize = 256;

type DeviceMap = Mutex<HashMap<usize, Arc<CudaDevice>>>;
static DEVICES: OnceLock<DeviceMap> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps half-updated
    // (each insert is one call), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CudaDevice {
    /// The device with this ordinal, created on first call and shared afterwards.
    /// Errors (never panics) when the driver library, NVRTC or the device is missing.
    pub fn get(ordinal: usize) -> Result<Arc<CudaDevice>> {
        let map = DEVICES.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = lock(map);
        if let Some(d) = map.get(&ordinal) {
            return Ok(d.clone());
        }
        if !driver_present() {
            return Err(Error::Cuda(
                "no CUDA driver library (libcuda.so) could be loaded: no NVIDIA driver on this machine".into(),
            ));
        }
        if !nvrtc_present() {
            return Err(Error::Cuda(
                "NVRTC (libnvrtc.so) could not be loaded: install CUDA's NVRTC or put its folder on LD_LIBRARY_PATH"
                    .into(),
            ));
        }
        let count = CudaContext::device_count().map_err(|e| {
            Error::Cuda(format!(
                "no usable CUDA device (cuInit/cuDeviceGetCount: {e:?})"
            ))
        })?;
        if count <= 0 || ordinal >= count as usize {
            return Err(Error::Cuda(format!(
                "no CUDA device with ordinal {ordinal} ({count} device(s) found)"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| Error::Cuda(format!("creating a context on device {ordinal}: {e:?}")))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| Error::Cuda(format!("compute capability of device {ordinal}: {e:?}")))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown".into());
        // boson issues all work on one stream per device, so cudarc's cross-stream event
        // tracking has nothing to order; left on, it creates (and later destroys) two CUDA
        // events for every allocation, which a training step pays on each op output.
        // SAFETY: only this device's default stream is ever used by boson; a caller who
        // adds streams to `context()` orders them against it themselves (documented there).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let dev = Arc::new(CudaDevice {
            ordinal,
            ctx,
            stream,
            arch: format!("compute_{major}{minor}"),
            name,
            blas: Mutex::new(None),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            user_functions: Mutex::new(HashMap::new()),
            deferred_checks: Mutex::new(Vec::new()),
            row_slots: Mutex::new(None),
        });
        map.insert(ordinal, dev.clone());
        Ok(dev)
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's name as the driver reports it (e.g. "NVIDIA H100 80GB HBM3").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The NVRTC architecture kernels are compiled for, e.g. `compute_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The CUDA context. boson runs everything on [`CudaDevice::stream`] and turns off
    /// cudarc's cross-stream event tracking; work put on other streams of this context
    /// must be ordered against that stream by the caller (events or a synchronize).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Queues an index-check cell; returns how many are queued.
    pub(crate) fn defer_check(
        &self,
        cell: CudaSlice<i64>,
        what: &'static str,
        size: usize,
    ) -> usize {
        let mut q = self
            .deferred_checks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        q.push((cell, what, size));
        q.len()
    }

    pub(crate) fn take_deferred_checks(&self) -> Vec<(CudaSlice<i64>, &'static str, usize)> {
        std::mem::take(
            &mut *self
                .deferred_checks
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// The stream every kernel launch (`src/cuda/ops/`) uses. All work is ordered on it.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Blocks until all work queued on the device's stream is done; reports any
    /// asynchronous kernel error.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| Error::Cuda(format!("synchronize on device {}: {e:?}", self.ordinal)))
    }

    /// The map `ops::scatter_add_async` keeps between calls, at least `rows` long and
    /// all zero. The lock is held for a whole scatter-add; a call that fails midway
    /// drops the map (sets it to `None`) so the next one starts from a fresh zeroed one.
    pub(crate) fn row_slots(&self, rows: usize) -> Result<MutexGuard<'_, Option<CudaSlice<u32>>>> {
        let mut slot = lock(&self.row_slots);
        if slot.as_ref().is_none_or(|m| m.len() < rows) {
            *slot = None; // free the smaller map before allocating the larger one
            *slot =
                Some(self.stream.alloc_zeros::<u32>(rows.max(1)).map_err(|e| {
                    Error::Cuda(format!("allocating the scatter-add row map: {e:?}"))
                })?);
        }
        Ok(slot)
    }

    /// The cuBLAS handle bound to [`Self::stream`], created on first use.
    pub fn blas(&self) -> Result<Arc<CudaBlas>> {
        let mut slot = lock(&self.blas);
        if let Some(b) = slot.as_ref() {
            return Ok(b.clone());
        }
        if !cublas_present() {
            return Err(Error::Cuda(
                "cuBLAS (libcublas.so) could not be loaded: put its folder on LD_LIBRARY_PATH"
                    .into(),
            ));
        }
        let b = Arc::new(
            CudaBlas::new(self.stream.clone())
                .map_err(|e| Error::Cuda(format!("creating a cuBLAS handle: {e:?}")))?,
        );
        *slot = Some(b.clone());
        Ok(b)
    }

    /// Kernel `name` from the embedded file `file`, compiling and loading the file on
    /// first use. Function names are unique across all kernel files.
    pub fn function(&self, file: &'static str, name: &'static str) -> Result<CudaFunction> {
        if let Some(f) = lock(&self.functions).get(name) {
            return Ok(f.clone());
        }
        let module = self.module(file)?;
        let f = module
            .load_function(name)
            .map_err(|e| Error::Cuda(format!("kernel {name} not found in {file}: {e:?}")))?;
        lock(&self.functions).insert(name, f.clone());
        Ok(f)
    }

    /// The user's `kernel`, compiled and loaded on its first use on this device. Past
    /// `MAX_USER_KERNELS` distinct kernels the cache starts again (a program that builds
    /// kernel sources in a loop recompiles rather than holding every module).
    pub fn user_function(&self, kernel: &ElementwiseKernel) -> Result<CudaFunction> {
        // Held across the compile so two threads never compile the same kernel twice.
        let mut cache = lock(&self.user_functions);
        if let Some(f) = cache.get(kernel) {
            return Ok(f.clone());
        }
        let name = kernel.name();
        let ptx = compile_source_ptx(name, kernel.source(), &self.arch)?;
        let module = self.ctx.load_module(ptx).map_err(|e| {
            Error::Cuda(format!(
                "loading the PTX of kernel {name} on device {}: {e:?}",
                self.ordinal
            ))
        })?;
        let f = module.load_function(name).map_err(|e| {
            Error::Cuda(format!(
                "kernel {name} not found in its source (is it `extern \"C\" __global__`?): {e:?}"
            ))
        })?;
        if cache.len() >= MAX_USER_KERNELS {
            cache.clear();
        }
        cache.insert(kernel.clone(), f.clone());
        Ok(f)
    }

    fn module(&self, file: &'static str) -> Result<Arc<CudaModule>> {
        // Held across the compile so two threads never compile the same file twice.
        let mut modules = lock(&self.modules);
        if let Some(m) = modules.get(file) {
            return Ok(m.clone());
        }
        let ptx = compile_ptx(file, &self.arch)?;
        let m = self.ctx.load_module(ptx).map_err(|e| {
            Error::Cuda(format!(
                "loading the PTX of {file} on device {}: {e:?}",
                self.ordinal
            ))
        })?;
        modules.insert(file, m.clone());
        Ok(m)
    }
}
