//! `Embedding`: a lookup table with row-sparse gradients.

use crate::error::Result;
use crate::nn::{Block, Forward, GradStype, Parameter};
use crate::tensor::{DType, Tensor};

/// A lookup table `[input_dim, output_dim]` mapping `i64` indices to rows. Its gradient is
/// row-sparse by default (`sparse_grad`), so a step costs O(batch × dim) whatever the
/// vocabulary size.
#[derive(Block)]
pub struct Embedding {
    /// `[input_dim, output_dim]`
    pub weight: Parameter,
    #[block(skip)]
    sparse_grad: bool,
}

impl Embedding {
    /// A table of `input_dim` rows of `output_dim` values, sparse gradients, f32.
    pub fn new(input_dim: usize, output_dim: usize) -> Embedding {
        Self::with_options(input_dim, output_dim, true, DType::F32)
    }

    /// A table with explicit gradient type and dtype (`F16`/`BF16` tables are read as f32).
    pub fn with_options(
        input_dim: usize,
        output_dim: usize,
        sparse_grad: bool,
        dtype: DType,
    ) -> Embedding {
        let stype = if sparse_grad {
            GradStype::RowSparse
        } else {
            GradStype::Default
        };
        Embedding {
            weight: Parameter::with_options("weight", &[input_dim, output_dim], None, dtype, stype),
            sparse_grad,
        }
    }
}

impl Forward for Embedding {
    type Input = Tensor;
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.weight.sharding() {
            // A table split over ranks: the rows come from their owners.
            Some(s) => crate::nn::sharded::forward(&self.weight, &s, x),
            None => self.weight.data()?.take(x, self.sparse_grad),
        }
    }
}
