//! Ops defined outside the crate, with their own backward (Gluon's `CustomOp`, PyTorch's
//! `autograd.Function`, candle's `CustomOp1`).
//!
//! An op is a forward over its inputs and a backward that maps the output's gradient to
//! the inputs' gradients. [`apply`] runs the forward without recording the ops inside it
//! and records the op itself, so backward calls the op's own [`CustomOp::backward`]
//! instead of differentiating its forward. The forward may use any tensor ops (they run
//! on the inputs' device, the GPU included) or compute on the host
//! (`to_vec_f32` / `Tensor::from_vec`).
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

use super::{is_recording, ScopeGuard};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::sync::Arc;

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

/// Runs `op` on `inputs`; inside [`record`](super::record) the result's backward is the
/// op's [`CustomOp::backward`].
pub fn apply(op: Arc<dyn CustomOp>, inputs: &[&Tensor]) -> Result<Tensor> {
    let owned: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let out = {
        // Not recorded inside; training mode (dropout, batch norm) is left as it is.
        let _no_record = ScopeGuard::set(Some(false), None);
        op.forward(&owned)?
    };
    if !is_recording() || !owned.iter().any(Tensor::tracks_grad) {
        return Ok(out);
    }
    Ok(out.share_storage(
        out.shape().to_vec(),
        Some(super::Op::Custom { op, inputs: owned }),
    ))
}

/// The inputs' gradients from `op`'s backward, checked: one per input, each of its
/// input's shape (errors name the op).
pub(crate) fn input_grads(
    op: &Arc<dyn CustomOp>,
    inputs: &[Tensor],
    output: &Tensor,
    grad: &Tensor,
) -> Result<Vec<(Tensor, Tensor)>> {
    let grads = op.backward(inputs, output, grad)?;
    if grads.len() != inputs.len() {
        return Err(Error::InvalidArgument(format!(
            "custom op '{}': backward returned {} gradients for {} inputs (one per input, \
             None for an input without one)",
            op.name(),
            grads.len(),
            inputs.len()
        )));
    }
    let mut out = Vec::new();
    for (k, (input, g)) in inputs.iter().zip(grads).enumerate() {
        let Some(g) = g else { continue };
        if g.shape() != input.shape() {
            return Err(Error::InvalidArgument(format!(
                "custom op '{}': backward returned a gradient of shape {:?} for input {k} \
                 of shape {:?}",
                op.name(),
                g.shape(),
                input.shape()
            )));
        }
        out.push((input.clone(), g));
    }
    Ok(out)
}
