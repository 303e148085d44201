//! Automatic differentiation with Gluon's semantics.
//!
//! Nothing is recorded outside [`record`]. Inside it, every op whose inputs reach a gradient
//! leaf remembers its inputs; [`Tensor::backward`](crate::tensor::Tensor::backward) walks that
//! graph once and writes each leaf's gradient according to its [`GradReq`].
//!
//! ```
//! use boson::{autograd, tensor::Tensor};
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3])?.attach_grad();
//! let y = autograd::record(|| x.square()?.sum_all())?;
//! y.backward()?;
//! assert_eq!(x.grad()?.unwrap().to_vec_f32()?, vec![2.0, 4.0, 6.0]);
//! # Ok::<(), boson::Error>(())
//! ```
//!
//! The layer is differentiation only: the gradient rule of each op and the backward walk
//! (`backward.rs`). What a tensor must hold to be differentiated later (the recording
//! scope, the op that made it, its gradient slot) and the [`CustomOp`] trait live in the
//! tensor layer below and are re-exported here under their Gluon names.

mod backward;

pub use crate::tensor::custom_op::CustomOp;
pub use crate::tensor::grad::{Grad, GradReq, GradSlot, RowSparse};
pub use crate::tensor::recording::{
    apply, is_recording, is_training, pause, predict_mode, record, record_with_mode, train_mode,
};
