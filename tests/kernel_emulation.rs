//! boson's CUDA kernels run on the CPU under a small emulator (`tests/emu/cuda_emu.h`),
//! so their logic is checked on every machine, GPU or not: `kernels/*.cu` compiled as
//! C++20, launched with the grids `src/cuda/ops.rs` uses, on random inputs against
//! plain CPU loops (see `tests/emu/*.cpp`). Speed is not measured and the schedule is
//! one of those CUDA allows, not the hardware's; the GPU tests remain the final word.
//! Skips, saying why, where no C++20 compiler is found (`CXX`, else `c++`).

#[path = "common/skip.rs"]
#[macro_use]
mod skip;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `tests/emu/<name>.cpp` and runs it; panics with its output if it fails.
fn compile_and_run(name: &str) {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        skip_note!("{name}: skipped: no C++ compiler `{cxx}` (set CXX)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("emu");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(name);
    let build = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O2",
            "-DBOSON_EMU",
            "-Wall",
            "-Wno-unknown-pragmas",
        ])
        .arg("-I")
        .arg(root.join("tests/emu"))
        .arg(root.join(format!("tests/emu/{name}.cpp")))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running the C++ compiler");
    assert!(
        build.status.success(),
        "{name}: compiling under the emulator failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("running the emulated kernels");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(
        run.status.success(),
        "{name} failed ({}):\n{stdout}{stderr}",
        run.status
    );
    // Uncaptured, so `cargo test` shows how many checks ran.
    let _ = writeln!(std::io::stderr(), "{}", stdout.trim_end());
}

#[test]
fn embedding_kernels_match_cpu_under_the_emulator() {
    compile_and_run("embedding_emu");
}

#[test]
fn reduce_kernels_match_cpu_under_the_emulator() {
    compile_and_run("reduce_emu");
}
