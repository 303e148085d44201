//! SHA-256 of files and of JSON descriptions, so a file changed after it was written
//! (a flipped bit on disk, an edit, a copy from another folder) is refused by name
//! instead of loading as different numbers. The hashes are the ones `sha256sum` prints.
//!
//! They are stored beside the files they cover, so they catch damage and accidental
//! edits, not a deliberate change that also rewrites the recorded hashes.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The SHA-256 of the file at `path`, as 64 lowercase hex digits (what `sha256sum`
/// prints).
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Checks that the file at `path` still has the SHA-256 `expected` recorded when it was
/// written. A missing file or other contents is an `Error::Format` naming the file;
/// `advice` says what to do about it (e.g. "re-save the model").
pub fn verify_file_sha256(path: &Path, expected: &str, advice: &str) -> Result<()> {
    if !path.is_file() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: format!("the file is missing, but it was written with this folder; {advice}"),
        });
    }
    let found = file_sha256(path)?;
    if !found.eq_ignore_ascii_case(expected) {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: format!(
                "its contents do not match the SHA-256 recorded when it was written \
                 (recorded {expected}, now {found}): the file was damaged or modified after \
                 it was written; {advice}"
            ),
        });
    }
    Ok(())
}

/// The SHA-256 of a JSON object's contents without its field `skip` (where a description
/// records its own hash). The text is read and written back compactly first, so the hash
/// depends on the values, not on spacing; `text` must be a JSON object.
pub fn json_sha256_without(text: &[u8], skip: &str) -> std::result::Result<String, String> {
    let mut value: serde_json::Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| "not a JSON object".to_string())?;
    object.remove(skip);
    let canonical = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    Ok(sha256_hex(&canonical))
}
