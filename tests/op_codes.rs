//! The op codes shared by Rust, the CUDA kernels and the kernel emulator's references are
//! numbers in three languages: each `case N:` of the kernels' and references' switches is
//! named in a comment (`case 3:  // Div`), and this test fails when a name's number
//! differs from the Rust code of the op of that name, or a Rust op has no case. The
//! element-wise ops' switches are generated from their definitions (src/tensor/unary.rs
//! and binary.rs), so for them it checks that every op has a CUDA form and a code of its
//! own.

use boson::tensor::row_update::GeneralRule;
use boson::tensor::{BinaryOp, UnaryOp};
use std::path::Path;

/// `(name, code)` of every `case N: ... // Name` line of the switch that follows
/// `marker` in `file`, up to `end`.
fn cases(file: &str, marker: &str, end: &str) -> Vec<(String, i32)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{file}: no {marker:?}"));
    let body = &text[start..];
    let body = &body[..body
        .find(end)
        .unwrap_or_else(|| panic!("{file}: no {end:?}"))];
    body.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("case ")?;
            let (code, after) = rest.split_once(':')?;
            let (_, comment) = after.split_once("//")?;
            let name: String = comment
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            Some((name, code.trim().parse().ok()?))
        })
        .collect()
}

/// The Debug name of a variant, without its parameters.
fn name(op: impl std::fmt::Debug) -> String {
    let full = format!("{op:?}");
    full.split('(').next().unwrap().to_string()
}

fn check(what: &str, found: &[(String, i32)], rust: &[(String, i32)]) {
    assert!(!found.is_empty(), "{what}: no named cases found");
    for (n, code) in found {
        let want = rust.iter().find(|(r, _)| r == n);
        assert_eq!(
            want.map(|w| w.1),
            Some(*code),
            "{what}: case {code} is named {n}, whose Rust code is {want:?}"
        );
    }
    for (n, code) in rust {
        assert!(
            found.iter().any(|(f, _)| f == n),
            "{what}: Rust op {n} (code {code}) has no named case"
        );
    }
}

#[test]
fn rust_cuda_and_the_emulator_agree_on_op_codes() {
    let rules: Vec<(String, i32)> = [
        GeneralRule::Nag,
        GeneralRule::AdamW,
        GeneralRule::RmsProp,
        GeneralRule::RmsPropCentered,
        GeneralRule::Ftrl,
    ]
    .iter()
    .map(|r| (name(r), r.code()))
    .collect();
    check(
        "optimizer rules, kernel",
        &cases("kernels/optim.cu", "switch (rule)", "\n    }\n}"),
        &rules,
    );
}

// The check itself: a misnumbered case is caught.
#[test]
fn a_misnumbered_case_is_caught() {
    let found = vec![("Add".to_string(), 0), ("Sub".to_string(), 2)];
    let rust = vec![("Add".to_string(), 0), ("Sub".to_string(), 1)];
    let caught = std::panic::catch_unwind(|| check("test", &found, &rust));
    assert!(caught.is_err());
}

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
