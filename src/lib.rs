//! boson: a Gluon-style deep learning library for Rust.

pub mod data;
pub mod error;
pub mod ratings;
pub mod tensor;
