//! A per-thread cache of CPU tensor buffers, as MXNet's CPU memory pool.
//!
//! Every op allocates its output, and a training step frees as many buffers as it
//! allocates, of the same sizes, step after step. glibc's allocator hands large freed
//! blocks back to the kernel (unmapping them or trimming the heap) and faults them in
//! again, zero-filled, on the next step: that tripled the recommender's step time. Here a
//! dropped tensor's f32 buffer is kept, keyed by its length, and the next output of that
//! length reuses it. Small buffers go straight to the allocator, which serves them well.
//!
//! A buffer freed on a thread that never asks for its length (a loader's batch, made by a
//! worker thread and dropped by the training thread) goes to one cache shared by all
//! threads instead, where the thread that makes such buffers finds it: otherwise each
//! batch would be fresh memory, faulted in and zeroed by the kernel (a tenth of a LeNet
//! epoch on 2 cores).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

/// Buffers shorter than this (16 KiB of f32) are not cached.
const MIN_LEN: usize = 1 << 12;
/// The most bytes one thread keeps. When a freed buffer does not fit, buffers of the
/// lengths used longest ago make room (a long-running program whose sizes drift keeps
/// the sizes it uses now).
const MAX_BYTES: usize = 256 << 20;
/// The most buffers of one length kept. Buffers made outside the cache (a user's
/// `from_vec`, a loader's batches) are recycled but never asked for again: without this
/// bound they would fill the cache while the allocator faults in fresh memory for the
/// next ones.
const MAX_PER_LEN: usize = 64;
/// The most lengths a thread remembers having asked for (empty buckets past it are
/// forgotten, so a program whose sizes drift does not grow the map without end).
const MAX_LENGTHS: usize = 1024;

#[derive(Default)]
struct Bucket {
    bufs: Vec<Vec<f32>>,
    /// `Cache::clock` when a buffer of this length was last taken or given back.
    last_used: u64,
    /// Whether this cache's thread has asked for this length.
    asked: bool,
}

#[derive(Default)]
struct Cache {
    by_len: HashMap<usize, Bucket>,
    bytes: usize,
    clock: u64,
}

impl Cache {
    fn take(&mut self, len: usize) -> Option<Vec<f32>> {
        self.clock += 1;
        if self.by_len.len() >= MAX_LENGTHS && !self.by_len.contains_key(&len) {
            self.by_len.retain(|_, b| !b.bufs.is_empty());
        }
        let b = self.by_len.entry(len).or_default();
        b.last_used = self.clock;
        b.asked = true;
        let v = b.bufs.pop()?;
        self.bytes -= len * 4;
        Some(v)
    }

    /// Whether this cache's thread has asked for buffers of `len` values.
    fn asks_for(&self, len: usize) -> bool {
        self.by_len.get(&len).is_some_and(|b| b.asked)
    }

    fn give(&mut self, v: Vec<f32>) {
        let len = v.len();
        self.clock += 1;
        let clock = self.clock;
        let b = self.by_len.entry(len).or_default();
        b.last_used = clock;
        if b.bufs.len() >= MAX_PER_LEN || len * 4 > MAX_BYTES {
            return;
        }
        while self.bytes + len * 4 > MAX_BYTES {
            // The least recently used other length gives up a buffer.
            let oldest = self
                .by_len
                .iter()
                .filter(|(&l, b)| l != len && !b.bufs.is_empty())
                .min_by_key(|(_, b)| b.last_used)
                .map(|(&l, _)| l);
            let Some(l) = oldest else { return };
            if let Some(b) = self.by_len.get_mut(&l) {
                b.bufs.pop();
                self.bytes -= l * 4;
                if b.bufs.is_empty() {
                    self.by_len.remove(&l);
                }
            }
        }
        self.bytes += len * 4;
        self.by_len.entry(len).or_default().bufs.push(v);
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Buffers given back on threads that do not use their length (at most `MAX_BYTES`).
static SHARED: Mutex<Option<Cache>> = Mutex::new(None);

fn with_shared<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    // A panic while holding the lock leaves a consistent cache (each method finishes its
    // bookkeeping before anything can panic), so a poisoned lock is still usable.
    let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Cache::default))
}

/// A cached buffer of exactly `len` values, if this thread or the shared cache has one.
fn reuse(len: usize) -> Option<Vec<f32>> {
    if len < MIN_LEN {
        return None;
    }
    let local = CACHE.try_with(|c| c.borrow_mut().take(len)).ok().flatten();
    local.or_else(|| with_shared(|s| s.take(len)))
}

/// `len` values whose contents are unspecified (a reused buffer keeps its old values):
/// for outputs whose every element the caller writes.
pub(crate) fn scratch(len: usize) -> Vec<f32> {
    reuse(len).unwrap_or_else(|| vec![0.0; len])
}

/// `len` copies of `value`.
pub(crate) fn filled(len: usize, value: f32) -> Vec<f32> {
    match reuse(len) {
        Some(mut v) => {
            v.fill(value);
            v
        }
        None => vec![value; len],
    }
}

/// An empty vector with room for `len` values, for outputs built by pushing.
pub(crate) fn with_capacity(len: usize) -> Vec<f32> {
    match reuse(len) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(len),
    }
}

/// Buffers from this size (64 MiB of f32) up are asked for transparent huge pages.
const HUGE_LEN: usize = 16 << 20;

/// An empty vector with room for `len` values, for a parameter or optimizer state: long
/// lived, and for an embedding table large and read and updated at scattered rows. With
/// 4 KiB pages nearly every such row is a TLB miss, so on Linux a buffer of 64 MiB or
/// more is marked for transparent huge pages before anything is written to it (a
/// 1e7-row embedding step: ≈ 430 → 310 µs). Fill it with `extend` or `resize`.
pub(crate) fn for_parameter(len: usize) -> Vec<f32> {
    let v = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    if len >= HUGE_LEN {
        let start = v.as_ptr() as usize;
        let page = 4096;
        let (lo, hi) = (
            start.next_multiple_of(page),
            (start + len * 4) / page * page,
        );
        if hi > lo {
            // SAFETY: the range lies inside this vector's allocation; the advice only
            // changes how the kernel backs the pages, never their contents. A refusal
            // (no THP support) is harmless, so the result is ignored.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    v
}

/// Keeps `v`'s memory for a later buffer of the same length (called when a CPU tensor's
/// storage is dropped).
pub(crate) fn recycle(mut v: Vec<f32>) {
    let len = v.capacity();
    if len < MIN_LEN {
        return;
    }
    // Every cached buffer is fully initialised, so `scratch` can hand it out as it is.
    v.resize(len, 0.0);
    // During thread teardown the cache may be gone: the buffer is then simply freed.
    let _ = CACHE.try_with(|c| {
        let mut c = c.borrow_mut();
        if c.asks_for(len) {
            c.give(v);
        } else {
            with_shared(|s| s.give(v));
        }
    });
}

/// Frees the CPU tensor buffers the calling thread keeps for reuse (at most 256 MiB per
/// thread are kept), and those kept for all threads (at most 256 MiB more). Useful after
/// training, before a memory-hungry phase.
pub fn release_cached_buffers() {
    let _ = CACHE.try_with(|c| *c.borrow_mut() = Cache::default());
    with_shared(|s| *s = Cache::default());
}

/// Bytes of CPU tensor buffers the calling thread keeps for reuse.
pub fn cached_bytes() -> usize {
    CACHE.try_with(|c| c.borrow().bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_length_and_bounded() {
        release_cached_buffers();
        let n = MIN_LEN * 2;
        let v = filled(n, 3.0);
        let ptr = v.as_ptr();
        recycle(v);
        assert_eq!(cached_bytes(), n * 4);
        // Another length does not take it; the same length does, with the asked contents.
        assert_eq!(filled(n + 1, 1.0).len(), n + 1);
        let w = filled(n, 7.0);
        assert_eq!(w.as_ptr(), ptr);
        assert!(w.iter().all(|&x| x == 7.0));
        assert_eq!(cached_bytes(), 0);
        let e = {
            recycle(w);
            with_capacity(n)
        };
        assert!(e.is_empty() && e.capacity() == n);
        // Small buffers are not kept, and the cache never holds more than MAX_PER_LEN
        // buffers of one length or MAX_BYTES in all.
        recycle(vec![0.0; 16]);
        assert_eq!(cached_bytes(), 0);
        let _ = reuse(MIN_LEN); // this thread now asks for MIN_LEN: it keeps them
        for _ in 0..MAX_PER_LEN + 5 {
            recycle(vec![0.0; MIN_LEN]);
        }
        assert_eq!(cached_bytes(), MAX_PER_LEN * MIN_LEN * 4);
        release_cached_buffers();
        // Over MAX_BYTES, the length used longest ago gives way to the new one.
        let big = MAX_BYTES / 4 / 3;
        let _ = (reuse(big), reuse(big - 8)); // asked for: kept on this thread
        for _ in 0..3 {
            recycle(vec![0.0; big]);
        }
        assert_eq!(cached_bytes(), 3 * big * 4);
        recycle(vec![0.0; big - 8]);
        assert_eq!(cached_bytes(), (2 * big + big - 8) * 4);
        assert!(reuse(big - 8).is_some());
        assert!(reuse(big).is_some() && reuse(big).is_some() && reuse(big).is_none());
        release_cached_buffers();
        assert_eq!(cached_bytes(), 0);
    }

    /// A buffer freed on a thread that never asks for its length (a loader's batch
    /// dropped by the training thread) is found by the thread that makes such buffers.
    #[test]
    fn buffers_of_lengths_a_thread_never_asks_for_go_to_the_other_threads() {
        // A length no other test uses, so the shared cache's contents are this test's.
        let len = MIN_LEN + 12_345;
        let made = std::thread::spawn(move || {
            let v = scratch(len);
            let ptr = v.as_ptr() as usize;
            (v, ptr)
        });
        let (v, ptr) = made.join().unwrap();
        let local_before = cached_bytes();
        recycle(v); // this thread has never asked for `len`
        assert_eq!(cached_bytes(), local_before);
        let again = std::thread::spawn(move || {
            let v = scratch(len);
            v.as_ptr() as usize
        });
        assert_eq!(
            again.join().unwrap(),
            ptr,
            "the other thread reuses the buffer"
        );
    }
}
