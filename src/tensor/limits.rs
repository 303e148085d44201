//! How large one tensor may be: allocations over the limit are an error naming the size,
//! not an abort inside the allocator.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// 0: the default, the memory the operating system reports as available.
static MAX_TENSOR_BYTES: AtomicU64 = AtomicU64::new(0);

/// Below this size an allocation is not checked against available memory (reading it
/// costs a file read).
const CHECK_ABOVE_BYTES: u64 = 64 << 20;

/// Sets the largest host allocation one tensor may make, in bytes; `None` restores the
/// default (the memory available when the allocation is made, where the OS reports it).
pub fn set_max_tensor_bytes(limit: Option<u64>) {
    MAX_TENSOR_BYTES.store(limit.unwrap_or(0), Ordering::Relaxed);
}

/// The current limit in bytes, `None` when there is none (no limit set and the OS does
/// not report available memory).
pub fn max_tensor_bytes() -> Option<u64> {
    match MAX_TENSOR_BYTES.load(Ordering::Relaxed) {
        0 => available_memory(),
        n => Some(n),
    }
}

/// Checks that `count` elements of `elem_bytes` each fit the limit; `what` names the
/// allocation in the error (called only then).
pub fn check_alloc(count: usize, elem_bytes: usize, what: impl FnOnce() -> String) -> Result<()> {
    let bytes = (count as u128) * (elem_bytes as u128);
    let set = MAX_TENSOR_BYTES.load(Ordering::Relaxed);
    if set == 0 && bytes <= u128::from(CHECK_ABOVE_BYTES) {
        return Ok(());
    }
    match max_tensor_bytes() {
        Some(limit) if bytes > u128::from(limit) => Err(Error::InvalidArgument(format!(
            "{}: {count} elements ({:.1} GiB) exceed the allocation limit of {:.1} GiB \
             ({}); use smaller sizes, or raise the limit with \
             boson::tensor::set_max_tensor_bytes",
            what(),
            bytes as f64 / (1u64 << 30) as f64,
            limit as f64 / (1u64 << 30) as f64,
            if set == 0 {
                "the memory available now"
            } else {
                "set_max_tensor_bytes"
            }
        ))),
        _ => Ok(()),
    }
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
