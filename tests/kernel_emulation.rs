//! boson's CUDA kernels run on the CPU under a small emulator (`tests/emu/cuda_emu.h`),
//! so their logic is checked on every machine, GPU or not: `kernels/*.cu` compiled as
//! C++20, launched with the grids `src/cuda/ops/` uses, on random inputs against
//! plain CPU loops (see `tests/emu/*.cpp`). Speed is not measured and the schedule is
//! one of those CUDA allows, not the hardware's; the GPU tests remain the final word.
//! Skips, saying why, where no C++20 compiler is found (`CXX`, else `c++`).

#[path = "emu/build.rs"]
mod build;

use boson::tensor::{BinaryOp, UnaryOp};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// Builds `tests/emu/<name>.cpp` and runs it; panics with its output if it fails.
fn compile_and_run(name: &str) {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("emu");
    // The parts generated from the Rust definitions (the element-wise ops' switches and
    // references).
    let generated = [
        ("unary_ops.cuh", UnaryOp::cuda_source()),
        ("unary_ref.h", UnaryOp::emulator_source()),
        ("binary_ops.cuh", BinaryOp::cuda_source()),
        ("binary_ref.h", BinaryOp::emulator_source()),
    ];
    let Some(exe) = build::build_driver(name, &out_dir, &generated) else {
        return;
    };
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

#[test]
fn elementwise_kernels_match_cpu_under_the_emulator() {
    compile_and_run("elementwise_emu");
}

#[test]
fn window_kernels_match_cpu_under_the_emulator() {
    compile_and_run("window_emu");
}

#[test]
fn a_users_custom_op_kernels_match_cpu_under_the_emulator() {
    compile_and_run("custom_kernel_emu");
}
