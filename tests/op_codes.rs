//! The element-wise ops' codes are shared by Rust, the CUDA kernels and the kernel
//! emulator's references. Their switches are generated from the ops' definitions
//! (src/tensor/unary.rs and binary.rs), so this test checks that every op has a CUDA
//! form, a code of its own and a case in the generated switch. (The optimizer kernels
//! have no codes: each is launched by its name, which the emulator's driver looks up.)

use boson::tensor::{BinaryOp, UnaryOp};

/// Each op (name, code, whether it has a CUDA form) has a CUDA form, a code of its own
/// and a case in the generated kernel switch `source`; `file` is where ops are defined.
fn check_generated(file: &str, ops: &[(&str, i32, bool)], source: &str) {
    let missing: Vec<&str> = ops.iter().filter(|o| !o.2).map(|o| o.0).collect();
    assert!(
        missing.is_empty(),
        "ops without a CUDA form (add `cuda: Some(\"...\")` in {file}): {missing:?}"
    );
    for &(name, code, _) in ops {
        let same: Vec<&str> = ops.iter().filter(|o| o.1 == code).map(|o| o.0).collect();
        assert_eq!(same.len(), 1, "code {code} is used by {same:?}");
        assert!(
            source.contains(&format!("case {code}: return ")),
            "{name}: no case in the generated kernel switch"
        );
    }
}

// Every element-wise op runs on the GPU: an op defined with `cuda: None` fails here, by
// name, on any machine.
#[test]
fn every_unary_op_has_a_cuda_form_and_its_own_code() {
    let ops: Vec<(&str, i32, bool)> = UnaryOp::examples()
        .iter()
        .map(|op| (op.name(), op.code().0, op.cuda_expr().is_some()))
        .collect();
    check_generated("src/tensor/unary.rs", &ops, &UnaryOp::cuda_source());
}

#[test]
fn every_binary_op_has_a_cuda_form_and_its_own_code() {
    let ops: Vec<(&str, i32, bool)> = BinaryOp::ALL
        .iter()
        .map(|op| (op.name(), op.code(), op.cuda_expr().is_some()))
        .collect();
    check_generated("src/tensor/binary.rs", &ops, &BinaryOp::cuda_source());
}
