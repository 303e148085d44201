//! The op codes shared by Rust, the CUDA kernels and the kernel emulator's references are
//! numbers in three languages: each `case N:` of the kernels' and references' switches is
//! named in a comment (`case 3:  // Div`), and this test fails when a name's number
//! differs from the Rust code of the op of that name, or a Rust op has no case.

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
    let unary: Vec<(String, i32)> = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Square,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Softplus,
        UnaryOp::Recip,
        UnaryOp::Sign,
        UnaryOp::Affine(1.0, 0.0),
        UnaryOp::Powf(1.0),
        UnaryOp::Clip(0.0, 1.0),
        UnaryOp::StepPos,
    ]
    .iter()
    .map(|op| (name(op), op.code().0))
    .collect();
    let binary: Vec<(String, i32)> = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Pow,
    ]
    .iter()
    .map(|op| (name(op), op.code()))
    .collect();
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
    let kernel = "kernels/elementwise.cu";
    let emulator = "tests/emu/elementwise_emu.cpp";
    check(
        "unary, kernel",
        &cases(kernel, "float unary_op(", "default:"),
        &unary,
    );
    check(
        "binary, kernel",
        &cases(kernel, "float binary_op(", "default:"),
        &binary,
    );
    check(
        "unary, emulator reference",
        &cases(emulator, "double unary_ref(", "return NAN;"),
        &unary,
    );
    check(
        "binary, emulator reference",
        &cases(emulator, "double binary_ref(", "return NAN;"),
        &binary,
    );
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
