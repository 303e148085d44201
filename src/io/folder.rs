//! Folders replaced as a whole: a model folder is always the old one or the new one,
//! never a mix, whenever the process is killed.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Writes the folder `dir` as one unit. `fill` writes every file into a fresh temporary
/// sibling (and may check it, e.g. by loading it back); the sibling is flushed to disk and
/// then takes `dir`'s place in one step. If `fill` fails, `dir` is untouched.
///
/// On Linux the swap is one `renameat2(RENAME_EXCHANGE)`. Where that is not available the
/// old folder is first renamed to `{dir}.prev` and removed once the new one is in place;
/// [`existing_folder`] finds `{dir}.prev` if the process died between the two renames.
/// Leftovers of killed saves (`.{name}.tmp-*`, a `{dir}.prev` beside `dir`) are removed at
/// the next save.
///
/// Saves into one folder are serialised, across threads and processes: each holds an
/// exclusive advisory lock (`flock` on Unix) on the file `.{name}.lock` beside `dir` from
/// before it looks for leftovers until the swap is flushed, and a second save waits for
/// it. The lock file stays (removing it could let two saves lock two different files);
/// the lock itself dies with its process, so a killed save never blocks the next one.
/// Readers take no lock: they see the old folder or the new one.
pub fn write_folder_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    write_folder_atomic_observed(dir, fill, |_| {})
}

/// The points a folder save passes, in order; [`write_folder_atomic_observed`] reports
/// each as it is reached, so a crash test can stop the process exactly there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveStep {
    /// Every file is in the temporary sibling; nothing is flushed yet.
    Filled,
    /// The temporary sibling is flushed to disk; `dir` is still the old folder.
    Flushed,
    /// Only where folders cannot be swapped in one step: the old folder is `{dir}.prev`
    /// and `dir` does not exist.
    MovedAside,
    /// The new folder is `dir`; the old one (if any) is not removed yet.
    Swapped,
    /// The old folder is removed.
    OldRemoved,
    /// The parent folder is flushed: the save is complete.
    Done,
}

/// [`write_folder_atomic`], calling `on_step` at each [`SaveStep`] reached.
pub fn write_folder_atomic_observed(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
    mut on_step: impl FnMut(SaveStep),
) -> Result<()> {
    let (parent, name) = split(dir)?;
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    // Held until this function returns: another save's leftovers are only leftovers once
    // it has ended.
    let _lock = lock_saves(&parent, &name)?;
    remove_leftovers(&parent, &name)?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let written = fill(&tmp).and_then(|()| {
        on_step(SaveStep::Filled);
        sync_folder(&tmp)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    on_step(SaveStep::Flushed);
    let io = |e| Error::io(dir, e);
    if dir.exists() {
        if exchange(&tmp, dir).map_err(io)? {
            on_step(SaveStep::Swapped);
            // `tmp` now holds the previous folder.
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        } else {
            let prev = prev_of(dir);
            if prev.exists() {
                std::fs::remove_dir_all(&prev).map_err(|e| Error::io(&prev, e))?;
            }
            std::fs::rename(dir, &prev).map_err(io)?;
            on_step(SaveStep::MovedAside);
            std::fs::rename(&tmp, dir).map_err(io)?;
            on_step(SaveStep::Swapped);
            std::fs::remove_dir_all(&prev).map_err(|e| Error::io(&prev, e))?;
        }
        on_step(SaveStep::OldRemoved);
    } else {
        std::fs::rename(&tmp, dir).map_err(io)?;
        on_step(SaveStep::Swapped);
    }
    sync_dir(&parent).map_err(|e| Error::io(&parent, e))?;
    on_step(SaveStep::Done);
    Ok(())
}

/// `dir`, or `{dir}.prev` when a save was killed after moving `dir` aside (only where
/// [`write_folder_atomic`] cannot swap folders in one step).
pub fn existing_folder(dir: &Path) -> PathBuf {
    let prev = prev_of(dir);
    if !dir.exists() && prev.is_dir() {
        prev
    } else {
        dir.to_path_buf()
    }
}

fn split(dir: &Path) -> Result<(PathBuf, String)> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} is not a folder path", dir.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((parent, name))
}

fn prev_of(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".prev");
    PathBuf::from(s)
}

/// Opens `.{name}.lock` in `parent` and locks it exclusively, waiting for a save that
/// holds it; closing the returned file releases the lock.
fn lock_saves(parent: &Path, name: &str) -> Result<std::fs::File> {
    let path = parent.join(format!(".{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    loop {
        match file.lock() {
            Ok(()) => return Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Format {
                    path,
                    msg: format!(
                        "cannot lock the save lock file ({e}): saves into one folder must not \
                         overlap, so nothing was written; save to a local file system"
                    ),
                })
            }
        }
    }
}

/// Removes what killed saves of `name` left in `parent`: temporary folders, and a
/// `.prev` folder once the folder itself is back.
fn remove_leftovers(parent: &Path, name: &str) -> Result<()> {
    let tmp = format!(".{name}.tmp-");
    let prev = format!("{name}.prev");
    let has_folder = parent.join(name).is_dir();
    let entries = std::fs::read_dir(parent).map_err(|e| Error::io(parent, e))?;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&tmp) || (has_folder && file_name == prev) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Flushes every file in `dir` and the folder itself.
fn sync_folder(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(dir).map_err(|e| Error::io(dir, e))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

/// Swaps two folders in one step; `Ok(false)` where the system cannot.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EXDEV) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<bool> {
    Ok(false)
}
