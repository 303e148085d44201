//! Where a tensor lives: the CPU or one NVIDIA GPU.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// A compute device. Tensors move between devices only through
/// [`Tensor::to_device`](crate::tensor::Tensor::to_device); an op whose inputs sit on different
/// devices returns [`Error::DeviceMismatch`](crate::Error::DeviceMismatch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory; ops run as vectorised loops shared out over rayon.
    #[default]
    Cpu,
    /// The CUDA device with this ordinal.
    Cuda(usize),
}

// `new_cuda`, `cuda_if_available` and `cuda_is_available` ask the CUDA backend, so they
// are written at the tensor layer's backend seam (src/tensor/storage.rs), above this file.
impl Device {
    /// True for `Device::Cuda(_)`.
    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

static DETERMINISTIC: AtomicBool = AtomicBool::new(true);

/// Chooses bitwise-reproducible GPU kernels (`true`, the default) or faster ones whose
/// float sums depend on the order threads finish (`false`), like PyTorch's
/// `torch.use_deterministic_algorithms`. Process-wide; takes effect at the next op.
///
/// Today it picks the GPU scatter-add behind an embedding's backward pass: a sort that
/// sums each row's gradients in position order, or float atomics (three launches where
/// the sort needs about eighteen for large batches; the touched rows of the row-sparse
/// gradient then come in no fixed order, and a few bits of each sum can differ between
/// runs). CPU ops are always
/// deterministic. The atomic kernel keeps a map of 4 bytes per row of the largest table
/// it has seen on the device for the life of the process. It is new: checked against
/// the CPU under the kernel emulator, not yet run on a GPU (status in `kernels/NOTES.md`).
pub fn set_deterministic(on: bool) {
    DETERMINISTIC.store(on, Ordering::Relaxed);
}

/// Whether GPU kernels are bitwise reproducible; see [`set_deterministic`].
pub fn deterministic() -> bool {
    DETERMINISTIC.load(Ordering::Relaxed)
}
