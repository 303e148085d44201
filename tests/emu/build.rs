//! Builds one `tests/emu/<name>.cpp` kernel driver with the C++ compiler (`CXX`, else
//! `c++`). Shared by `tests/kernel_emulation.rs` and `src/optim/kernel_emulation_tests.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The executable built from `tests/emu/<name>.cpp` into `out_dir`, or `None` after a
/// note on stderr when there is no C++ compiler. `generated` are (header name, text)
/// pairs written to `out_dir` and on the include path: the parts of the kernels and
/// references generated from the Rust definitions (`UnaryOp::cuda_source`,
/// `UnaryOp::emulator_source`). Panics with the compiler's output if the driver does not
/// compile.
pub fn build_driver(name: &str, out_dir: &Path, generated: &[(&str, String)]) -> Option<PathBuf> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "{name}: skipped: no C++ compiler `{cxx}` (set CXX)"
        );
        return None;
    }
    let emu = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emu");
    std::fs::create_dir_all(out_dir).unwrap();
    for (header, text) in generated {
        std::fs::write(out_dir.join(header), text).unwrap();
    }
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
        .arg(&emu)
        .arg("-I")
        .arg(out_dir)
        .arg(emu.join(format!("{name}.cpp")))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running the C++ compiler");
    assert!(
        build.status.success(),
        "{name} does not compile under the emulator:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    Some(exe)
}
