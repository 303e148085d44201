//! The element types a tensor can hold.

/// Element types a tensor can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: all values and gradients.
    F32,
    /// 64-bit signed integer: indices and labels.
    I64,
    /// IEEE half: compact embedding tables.
    F16,
    /// bfloat16: compact embedding tables.
    BF16,
}

impl DType {
    /// The name used in error messages and parameter files.
    pub fn as_str(&self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
