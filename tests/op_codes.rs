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

// Every unary op runs on the GPU: an op defined with `cuda: None` fails here, by name,
// on any machine.
#[test]
fn every_unary_op_has_a_cuda_form_and_its_own_code() {
    let ops = UnaryOp::examples();
    let missing: Vec<&str> = ops
        .iter()
        .filter(|op| op.cuda_expr().is_none())
        .map(|op| op.name())
        .collect();
    assert!(
        missing.is_empty(),
        "unary ops without a CUDA form (add `cuda: Some(\"...\")` in src/tensor/unary.rs): {missing:?}"
    );
    let source = UnaryOp::cuda_source();
    for op in &ops {
        let (code, _, _) = op.code();
        let same: Vec<&str> = ops
            .iter()
            .filter(|o| o.code().0 == code)
            .map(|o| o.name())
            .collect();
        assert_eq!(same.len(), 1, "code {code} is used by {same:?}");
        assert!(
            source.contains(&format!("case {code}: return ")),
            "{}: no case in the generated kernel switch",
            op.name()
        );
    }
}

// The same for the binary ops.
#[test]
fn every_binary_op_has_a_cuda_form_and_its_own_code() {
    let missing: Vec<&str> = BinaryOp::ALL
        .iter()
        .filter(|op| op.cuda_expr().is_none())
        .map(|op| op.name())
        .collect();
    assert!(
        missing.is_empty(),
        "binary ops without a CUDA form (add `cuda: Some(\"...\")` in src/tensor/binary.rs): {missing:?}"
    );
    let source = BinaryOp::cuda_source();
    for op in BinaryOp::ALL {
        let same: Vec<&str> = BinaryOp::ALL
            .iter()
            .filter(|o| o.code() == op.code())
            .map(|o| o.name())
            .collect();
        assert_eq!(same.len(), 1, "code {} is used by {same:?}", op.code());
        assert!(
            source.contains(&format!("case {}: return ", op.code())),
            "{}: no case in the generated kernel switch",
            op.name()
        );
    }
}
