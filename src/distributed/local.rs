//! Ranks as threads of one process: every collective is an all-gather through shared
//! memory, reduced in rank order so every rank computes the same sums.

use super::Communicator;
use crate::error::{Error, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A group of in-process ranks: [`LocalGroup::new`] returns one [`LocalCommunicator`] per
/// rank, to move into that rank's thread.
pub struct LocalGroup;

impl LocalGroup {
    /// `size` ranks; an error for `size == 0`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(size: usize) -> Result<Vec<LocalCommunicator>> {
        if size == 0 {
            return Err(Error::InvalidArgument(
                "LocalGroup::new(0): a group needs at least one rank".into(),
            ));
        }
        let shared = Arc::new(Shared {
            round: Mutex::new(Round {
                generation: 0,
                slots: vec![None; size],
                arrived: 0,
                result: None,
                readers_left: 0,
                gone: None,
            }),
            changed: Condvar::new(),
        });
        Ok((0..size)
            .map(|rank| LocalCommunicator {
                rank,
                size,
                shared: Arc::clone(&shared),
                timeout: Duration::from_secs(300),
            })
            .collect())
    }
}

#[derive(Clone, Debug)]
enum Payload {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

struct Round {
    generation: u64,
    slots: Vec<Option<Payload>>,
    arrived: usize,
    /// The last completed round's payloads, until every rank has read them.
    result: Option<Arc<Vec<Payload>>>,
    readers_left: usize,
    /// The first rank whose communicator was dropped (it stopped or panicked).
    gone: Option<usize>,
}

struct Shared {
    round: Mutex<Round>,
    changed: Condvar,
}

/// One rank of a [`LocalGroup`].
pub struct LocalCommunicator {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
    timeout: Duration,
}

impl LocalCommunicator {
    /// How long a collective waits for the other ranks before failing (default 300 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        self.shared.round.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a change; an error when a rank is gone or the deadline has passed.
    /// Callers loop on their condition, so a round that completed just before a rank
    /// left still succeeds.
    fn wait<'a>(
        &self,
        g: MutexGuard<'a, Round>,
        deadline: Instant,
        what: &str,
    ) -> Result<MutexGuard<'a, Round>> {
        if let Some(r) = g.gone {
            return Err(gone(self.rank, r, what));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::InvalidArgument(format!(
                "rank {}: {what} waited {:?} for the other ranks; one of them is stuck or \
                 calls a different collective",
                self.rank, self.timeout
            )));
        }
        let (g, _) = self
            .shared
            .changed
            .wait_timeout(g, left)
            .unwrap_or_else(|p| p.into_inner());
        Ok(g)
    }

    /// Every rank's payload, in rank order.
    fn exchange(&self, mine: Payload, what: &str) -> Result<Arc<Vec<Payload>>> {
        let deadline = Instant::now() + self.timeout;
        let mut g = self.lock();
        // The previous round's result is still being read by some rank.
        while g.readers_left > 0 {
            g = self.wait(g, deadline, what)?;
        }
        g.slots[self.rank] = Some(mine);
        g.arrived += 1;
        let generation = g.generation;
        if g.arrived == self.size {
            let all: Vec<Payload> = g.slots.iter_mut().filter_map(Option::take).collect();
            g.result = Some(Arc::new(all));
            g.readers_left = self.size;
            g.arrived = 0;
            g.generation += 1;
            self.shared.changed.notify_all();
        } else {
            while g.generation == generation {
                g = self.wait(g, deadline, what)?;
            }
        }
        let result = g.result.clone().expect("set by the last rank to arrive");
        g.readers_left -= 1;
        if g.readers_left == 0 {
            g.result = None;
            self.shared.changed.notify_all();
        }
        Ok(result)
    }

    fn f32s(&self, mine: Vec<f32>, what: &str) -> Result<Vec<Vec<f32>>> {
        self.exchange(Payload::F32(mine), what)?
            .iter()
            .map(|p| match p {
                Payload::F32(v) => Ok(v.clone()),
                Payload::I64(_) => Err(mismatch(what)),
            })
            .collect()
    }

    fn same_lengths(&self, all: &[Vec<f32>], what: &str) -> Result<()> {
        let len = all[self.rank].len();
        match all.iter().position(|v| v.len() != len) {
            Some(r) => Err(Error::InvalidArgument(format!(
                "{what}: rank {} passed {} values but rank {r} passed {}; every rank must \
                 pass the same length",
                self.rank,
                len,
                all[r].len()
            ))),
            None => Ok(()),
        }
    }
}

fn gone(me: usize, r: usize, what: &str) -> Error {
    Error::InvalidArgument(format!(
        "rank {me}: {what} cannot complete: rank {r} stopped (its communicator was dropped)"
    ))
}

fn mismatch(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "{what}: the ranks called different collectives at the same point"
    ))
}

impl Drop for LocalCommunicator {
    fn drop(&mut self) {
        let mut g = self.lock();
        if g.gone.is_none() {
            g.gone = Some(self.rank);
        }
        self.shared.changed.notify_all();
    }
}

impl Communicator for LocalCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<()> {
        let all = self.f32s(values.to_vec(), "all_reduce_sum")?;
        self.same_lengths(&all, "all_reduce_sum")?;
        values.fill(0.0);
        // Rank order: every rank adds the same numbers in the same order.
        for v in &all {
            for (acc, x) in values.iter_mut().zip(v) {
                *acc += x;
            }
        }
        Ok(())
    }

    fn all_gather_f32(&self, values: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.f32s(values.to_vec(), "all_gather_f32")
    }

    fn all_gather_i64(&self, values: &[i64]) -> Result<Vec<Vec<i64>>> {
        self.exchange(Payload::I64(values.to_vec()), "all_gather_i64")?
            .iter()
            .map(|p| match p {
                Payload::I64(v) => Ok(v.clone()),
                Payload::F32(_) => Err(mismatch("all_gather_i64")),
            })
            .collect()
    }

    fn broadcast(&self, values: &mut [f32], root: usize) -> Result<()> {
        if root >= self.size {
            return Err(Error::InvalidArgument(format!(
                "broadcast from rank {root} in a group of {}",
                self.size
            )));
        }
        let all = self.f32s(values.to_vec(), "broadcast")?;
        self.same_lengths(&all, "broadcast")?;
        values.copy_from_slice(&all[root]);
        Ok(())
    }
}
