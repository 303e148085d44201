//! How large one tensor may be: allocations over the limit are an error naming the size,
//! not an abort inside the allocator.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// 0: the default, the memory the operating system reports as available.
static MAX_TENSOR_BYTES: AtomicU64 = AtomicU64::new(0);

/// Below this size an allocation is not checked against available memory (reading it
/// costs a few file reads).
const CHECK_ABOVE_BYTES: u64 = 64 << 20;

/// Sets the largest host allocation one tensor may make, in bytes; `None` restores the
/// default: the memory available when the allocation is made, where the OS reports it,
/// the least of `MemAvailable`, the address-space limit (`RLIMIT_AS`, `ulimit -v`) less
/// the address space in use, and the memory cgroup's limit (a container's `--memory`)
/// less its usage.
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
                "the memory available now: the least of MemAvailable, RLIMIT_AS and the \
                 cgroup memory limit"
            } else {
                "set_max_tensor_bytes"
            }
        ))),
        _ => Ok(()),
    }
}

/// The memory one allocation may take now, in bytes: the smallest of what applies of
/// `MemAvailable` (/proc/meminfo), the address-space limit (`RLIMIT_AS`) less the address
/// space in use (`VmSize`), and each enclosing cgroup's memory limit less its usage
/// (cgroup v2 `memory.max` − `memory.current`, v1 `memory.limit_in_bytes` −
/// `memory.usage_in_bytes`, for the process's cgroup and its ancestors; the inactive file
/// cache, which the kernel reclaims before failing, is not counted as used). `None` when
/// none of them is known.
fn available_memory() -> Option<u64> {
    MemoryFacts::read().headroom()
}

/// What the memory guard reads, as the files' text, so that the arithmetic is a pure
/// function of it.
#[derive(Clone, Debug, Default, PartialEq)]
struct MemoryFacts {
    /// /proc/meminfo.
    meminfo: Option<String>,
    /// The soft `RLIMIT_AS` in bytes; `None` when unlimited.
    rlimit_as: Option<u64>,
    /// /proc/self/status (for `VmSize`).
    status: Option<String>,
    /// The memory controller's files of the process's cgroup and each ancestor.
    cgroups: Vec<CgroupMemory>,
}

/// One cgroup's memory limit, usage and statistics, as read.
#[derive(Clone, Debug, PartialEq)]
struct CgroupMemory {
    /// v1 (`memory.limit_in_bytes`, `memory.usage_in_bytes`, `total_inactive_file`) or v2
    /// (`memory.max`, `memory.current`, `inactive_file`).
    v1: bool,
    limit: String,
    usage: String,
    stat: Option<String>,
}

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The deepest cgroup path walked (real ones are a few levels).
const MAX_CGROUP_DEPTH: usize = 32;

impl MemoryFacts {
    /// Reads this process's facts.
    fn read() -> MemoryFacts {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let cgroups = read("/proc/self/cgroup")
            .map(|text| read_cgroups(&text, std::path::Path::new(CGROUP_ROOT)))
            .unwrap_or_default();
        MemoryFacts {
            meminfo: read("/proc/meminfo"),
            rlimit_as: rlimit_as(),
            status: read("/proc/self/status"),
            cgroups,
        }
    }

    /// The smallest headroom among the known limits.
    fn headroom(&self) -> Option<u64> {
        let available = self
            .meminfo
            .as_deref()
            .and_then(|t| kib_field(t, "MemAvailable:"));
        let address_space = self.rlimit_as.map(|limit| {
            let in_use = self.status.as_deref().and_then(|t| kib_field(t, "VmSize:"));
            limit.saturating_sub(in_use.unwrap_or(0))
        });
        [available, address_space]
            .into_iter()
            .chain(self.cgroups.iter().map(CgroupMemory::headroom))
            .flatten()
            .min()
    }
}

impl CgroupMemory {
    /// The limit less the usage (less the inactive file cache); `None` for no limit
    /// ("max", or v1's near-2^63 "unlimited", which the min ignores anyway) or unreadable
    /// values.
    fn headroom(&self) -> Option<u64> {
        let limit: u64 = self.limit.trim().parse().ok()?;
        let usage: u64 = self.usage.trim().parse().ok()?;
        let key = if self.v1 {
            "total_inactive_file"
        } else {
            "inactive_file"
        };
        let inactive = self
            .stat
            .as_deref()
            .and_then(|stat| {
                stat.lines().find_map(|line| {
                    let (k, v) = line.split_once(' ')?;
                    (k == key).then(|| v.trim().parse::<u64>().ok())?
                })
            })
            .unwrap_or(0);
        Some(limit.saturating_sub(usage.saturating_sub(inactive)))
    }
}

/// A `Name:   123 kB` line of /proc/meminfo or /proc/self/status, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The memory controller's cgroup paths in /proc/self/cgroup: `(v1, path)` for the v2
/// line `0::/path` and the v1 line whose controllers include `memory`.
fn cgroup_paths(proc_self_cgroup: &str) -> Vec<(bool, String)> {
    proc_self_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if id == "0" && controllers.is_empty() {
                Some((false, path.to_string()))
            } else if controllers.split(',').any(|c| c == "memory") {
                Some((true, path.to_string()))
            } else {
                None
            }
        })
        .collect()
}

/// The memory files of each cgroup from the process's up to the hierarchy's root, under
/// `root` (v2 at `root`, v1 at `root/memory`). A path the mount does not show (a
/// container that sees only its own cgroup at the root) leaves the levels that exist,
/// the root among them.
fn read_cgroups(proc_self_cgroup: &str, root: &std::path::Path) -> Vec<CgroupMemory> {
    let mut out = Vec::new();
    for (v1, path) in cgroup_paths(proc_self_cgroup) {
        let (base, files) = if v1 {
            (
                root.join("memory"),
                ["memory.limit_in_bytes", "memory.usage_in_bytes"],
            )
        } else {
            (root.to_path_buf(), ["memory.max", "memory.current"])
        };
        let mut dir = std::path::Path::new(path.trim_start_matches('/'));
        for _ in 0..MAX_CGROUP_DEPTH {
            let at = base.join(dir);
            let read = |name: &str| std::fs::read_to_string(at.join(name)).ok();
            if let (Some(limit), Some(usage)) = (read(files[0]), read(files[1])) {
                out.push(CgroupMemory {
                    v1,
                    limit,
                    usage,
                    stat: read("memory.stat"),
                });
            }
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
    }
    out
}

/// The soft `RLIMIT_AS` in bytes, `None` when unlimited or unknown.
#[cfg(target_os = "linux")]
fn rlimit_as() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(not(target_os = "linux"))]
fn rlimit_as() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn meminfo(available_kib: u64) -> Option<String> {
        Some(format!(
            "MemTotal:       32000000 kB\nMemFree:         1000000 kB\n\
             MemAvailable:   {available_kib} kB\nBuffers:          100 kB\n"
        ))
    }

    fn v2(limit: &str, usage: u64, inactive_file: u64) -> CgroupMemory {
        CgroupMemory {
            v1: false,
            limit: format!("{limit}\n"),
            usage: format!("{usage}\n"),
            stat: Some(format!(
                "anon 1000\nfile 5000\nactive_file 10\ninactive_file {inactive_file}\n"
            )),
        }
    }

    #[test]
    fn the_guard_takes_the_smallest_limit_that_applies() {
        // MemAvailable only.
        let mut facts = MemoryFacts {
            meminfo: meminfo(8 << 20),
            ..MemoryFacts::default()
        };
        assert_eq!(facts.headroom(), Some(8 * GIB));
        // RLIMIT_AS of 3 GiB with 1 GiB of address space in use: 2 GiB left.
        facts.rlimit_as = Some(3 * GIB);
        facts.status = Some("Name:\tx\nVmPeak:\t 9999999 kB\nVmSize:\t 1048576 kB\n".into());
        assert_eq!(facts.headroom(), Some(2 * GIB));
        // An address space already over the limit leaves nothing.
        facts.rlimit_as = Some(GIB / 2);
        assert_eq!(facts.headroom(), Some(0));
        facts.rlimit_as = None;
        // A v2 cgroup limit of 4 GiB with 3.5 GiB used, 1 GiB of it inactive file cache:
        // 1.5 GiB; an unlimited parent ("max") changes nothing.
        facts.cgroups = vec![
            v2(&(4 * GIB).to_string(), 3 * GIB + GIB / 2, GIB),
            v2("max", 20 * GIB, 0),
        ];
        assert_eq!(facts.headroom(), Some(GIB + GIB / 2));
        // A parent with a tighter limit wins.
        facts.cgroups.push(v2(&(6 * GIB).to_string(), 5 * GIB, 0));
        assert_eq!(facts.headroom(), Some(GIB));
        // v1: limit_in_bytes − (usage_in_bytes − total_inactive_file); "unlimited" is a
        // number near 2^63 that never wins.
        facts.cgroups = vec![
            CgroupMemory {
                v1: true,
                limit: "9223372036854771712\n".into(),
                usage: "123\n".into(),
                stat: None,
            },
            CgroupMemory {
                v1: true,
                limit: (2 * GIB).to_string(),
                usage: (2 * GIB).to_string(),
                stat: Some(format!(
                    "cache 5\ninactive_file 1\ntotal_inactive_file {GIB}\n"
                )),
            },
        ];
        assert_eq!(facts.headroom(), Some(GIB));
        // Usage over the limit leaves nothing; unreadable values are ignored.
        facts.cgroups = vec![v2("100", 200, 0), v2("garbage", 1, 0)];
        assert_eq!(facts.headroom(), Some(0));
        facts.cgroups = vec![v2("garbage", 1, 0)];
        assert_eq!(facts.headroom(), Some(8 * GIB));
        // Nothing known: no limit.
        assert_eq!(MemoryFacts::default().headroom(), None);
        // An RLIMIT_AS with no VmSize known counts from zero.
        let facts = MemoryFacts {
            rlimit_as: Some(GIB),
            ..MemoryFacts::default()
        };
        assert_eq!(facts.headroom(), Some(GIB));
    }

    #[test]
    fn the_memory_cgroup_is_found_for_v1_and_v2_and_walked_to_the_root() {
        let v2 = "0::/user.slice/user-0.slice/session-1.scope\n";
        assert_eq!(
            cgroup_paths(v2),
            vec![(
                false,
                "/user.slice/user-0.slice/session-1.scope".to_string()
            )]
        );
        let v1 = "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n1:name=systemd:/x\n";
        assert_eq!(cgroup_paths(v1), vec![(true, "/docker/abc".to_string())]);
        assert!(cgroup_paths("").is_empty());

        // A fake v2 hierarchy: the root (no limit files, as on a host), a slice with a
        // limit, and the process's cgroup with a tighter one.
        let root = tempfile::tempdir().unwrap();
        let leaf = root.path().join("a.slice/b.scope");
        std::fs::create_dir_all(&leaf).unwrap();
        let slice = root.path().join("a.slice");
        for (dir, max, current) in [(&slice, "5000", "1000"), (&leaf, "3000", "2500")] {
            std::fs::write(dir.join("memory.max"), max).unwrap();
            std::fs::write(dir.join("memory.current"), current).unwrap();
        }
        std::fs::write(leaf.join("memory.stat"), "inactive_file 100\n").unwrap();
        let found = read_cgroups("0::/a.slice/b.scope\n", root.path());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].headroom(), Some(600));
        assert_eq!(found[1].headroom(), Some(4000));
        // A path the mount does not show (the container's own cgroup at the root).
        std::fs::write(root.path().join("memory.max"), "700").unwrap();
        std::fs::write(root.path().join("memory.current"), "200").unwrap();
        let found = read_cgroups("0::/docker/elsewhere\n", root.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].headroom(), Some(500));
        // v1 under root/memory.
        let mem = root.path().join("memory/docker/abc");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(mem.join("memory.limit_in_bytes"), "1000").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "900").unwrap();
        std::fs::write(mem.join("memory.stat"), "total_inactive_file 50\n").unwrap();
        let found = read_cgroups("4:memory:/docker/abc\n", root.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].headroom(), Some(150));
    }
}
