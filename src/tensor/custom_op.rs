//! Ops defined outside the crate, with their own backward (Gluon's `CustomOp`, PyTorch's
//! `autograd.Function`, candle's `CustomOp1`).
//!
//! An op is a forward over its inputs and a backward that maps the output's gradient to
//! the inputs' gradients. [`apply`](super::recording::apply) runs the forward without recording the ops inside it
//! and records the op itself, so backward calls the op's own [`CustomOp::backward`]
//! instead of differentiating its forward. The forward may use any tensor ops (they run
//! on the inputs' device, the GPU included) or compute on the host
//! (`to_vec_f32` / `Tensor::from_vec`); on a GPU it may also run CUDA C of its own,
//! element-wise kernels given as source ([`Tensor::map_kernel`]).
//!
//! ```
//! use boson::autograd::{self, CustomOp};
//! use boson::{Result, Tensor};
//! use std::sync::Arc;
//!
//! /// `x / (1 + |x|)`, whose derivative is `1 / (1 + |x|)²`.
//! struct Softsign;
//!
//! impl CustomOp for Softsign {
//!     fn name(&self) -> &str {
//!         "softsign"
//!     }
//!     fn forward(&self, inputs: &[Tensor]) -> Result<Tensor> {
//!         let x = &inputs[0];
//!         x.div(&x.abs()?.add_scalar(1.0)?)
//!     }
//!     fn backward(&self, inputs: &[Tensor], _: &Tensor, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
//!         let d = inputs[0].abs()?.add_scalar(1.0)?.square()?.recip()?;
//!         Ok(vec![Some(grad.mul(&d)?)])
//!     }
//! }
//!
//! let x = Tensor::from_vec(vec![-1.0, 0.0, 3.0], &[3])?.attach_grad();
//! let y = autograd::record(|| autograd::apply(Arc::new(Softsign), &[&x])?.sum_all())?;
//! y.backward()?;
//! assert_eq!(x.grad()?.unwrap().to_vec_f32()?, vec![0.25, 1.0, 0.0625]);
//! # Ok::<(), boson::Error>(())
//! ```

use super::Tensor;
use crate::error::Result;

/// An op with a forward and its own backward.
pub trait CustomOp: Send + Sync {
    /// A short name for errors (`softsign`).
    fn name(&self) -> &str;

    /// The output for `inputs` (computed without recording: only the op itself is).
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor>;

    /// The gradient of each input, given the forward's `inputs`, its `output` and the
    /// gradient of the loss with respect to the output; `None` for an input that has no
    /// gradient (an index, a label). One entry per input, each of its input's shape.
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>>;
}
