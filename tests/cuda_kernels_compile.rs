//! Compiles every `kernels/*.cu` to PTX for compute_90 with NVRTC (no GPU needed).
//! Fails on any compile error, printing NVRTC's log. Skips, saying why, only when
//! libnvrtc cannot be loaded (see scripts/ci-nvrtc.sh for how CI provides it).
#![cfg(feature = "cuda")]

#[path = "common/skip.rs"]
#[macro_use]
mod skip;
use boson::cuda::{compile_ptx, kernel_sources};

#[test]
fn every_kernel_file_compiles_for_compute_90() {
    // SAFETY: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        skip_note!("skipped: libnvrtc cannot be loaded (run scripts/ci-nvrtc.sh and export what it prints)");
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("kernels/ folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".cu"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no kernels/*.cu found");
    let mut failures = Vec::new();
    for name in &files {
        // The embedded copy must be the file on disk (include_str! of the same path).
        let embedded = kernel_sources().iter().find(|(n, _)| n == name);
        match embedded {
            None => failures.push(format!("{name}: not embedded in KERNEL_SOURCES")),
            Some((_, src)) => {
                let on_disk = std::fs::read_to_string(dir.join(name)).expect("read kernel");
                assert_eq!(
                    *src, on_disk,
                    "{name}: embedded source differs from the file"
                );
            }
        }
        match compile_ptx(name, "compute_90") {
            Ok(ptx) => {
                let text = ptx.to_src();
                assert!(text.contains(".entry"), "{name}: PTX has no kernel entry");
                eprintln!("compiled {name}: {} bytes of PTX", text.len());
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "kernel compile failures:\n{}",
        failures.join("\n")
    );
}
