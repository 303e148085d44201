//! The backward pass: a reverse topological walk applying one gradient rule per primitive.
//!
//! Rules are written with tensor ops themselves, so they run on whatever device the
//! forward pass ran on. They run inside `pause`, so backward records nothing.

use crate::error::{Error, Result};
use crate::tensor::grad::{Grad, Op, RowSparse};
use crate::tensor::{window, Tensor, TensorId};
use std::collections::{HashMap, HashSet};

/// Tensors reachable from `root` through recorded ops, inputs before outputs.
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative DFS: deep graphs (long recurrences) must not overflow the stack.
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(op) = &t.0.op {
            for input in op.inputs() {
                if input.tracks_grad() && !seen.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}

impl Tensor {
    /// Computes gradients of this tensor with respect to every leaf it was recorded from,
    /// with a head gradient of ones (Gluon's `backward()`), and stores them in the leaves.
    pub fn backward(&self) -> Result<()> {
        self.backward_with(&self.ones_like()?)
    }

    /// Like [`Tensor::backward`] with an explicit head gradient of this tensor's shape.
    pub fn backward_with(&self, head: &Tensor) -> Result<()> {
        if head.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward head gradient",
                lhs: self.shape().to_vec(),
                rhs: head.shape().to_vec(),
            });
        }
        if !self.tracks_grad() {
            return Err(Error::InvalidArgument(
                "backward on a tensor that was not recorded: compute it inside \
                 autograd::record from parameters or attach_grad leaves"
                    .to_string(),
            ));
        }
        crate::autograd::pause(|| self.run_backward(head))
    }

    fn run_backward(&self, head: &Tensor) -> Result<()> {
        let order = topo_order(self);
        let mut grads: HashMap<TensorId, Grad> = HashMap::new();
        grads.insert(self.id(), Grad::Dense(head.clone()));
        for node in order.iter().rev() {
            let Some(g) = grads.remove(&node.id()) else {
                continue;
            };
            match &node.0.op {
                Some(op) => {
                    let g = g.to_dense()?;
                    for (input, ig) in input_grads(node, op, &g)? {
                        if !input.tracks_grad() {
                            continue;
                        }
                        let merged = match grads.remove(&input.id()) {
                            Some(old) => old.add(&ig)?,
                            None => ig,
                        };
                        grads.insert(input.id(), merged);
                    }
                }
                None => {
                    if let Some(slot) = node.grad_slot() {
                        slot.receive(g)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sums a broadcast gradient back to `shape` (the inverse of broadcasting).
pub(crate) fn sum_to(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let lead = g.rank() - shape.len();
    let mut axes: Vec<usize> = (0..lead).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[lead + i] != 1 {
            axes.push(lead + i);
        }
    }
    g.sum_axes(&axes, true)?.reshape(shape)
}

fn dense(t: Tensor) -> Grad {
    Grad::Dense(t)
}

/// The gradient of each input of `node` (= `op(inputs)`), given `g` = d(out)/d(node).
fn input_grads(node: &Tensor, op: &Op, g: &Tensor) -> Result<Vec<(Tensor, Grad)>> {
    Ok(match op {
        Op::Unary(x, u) => vec![(x.clone(), dense(u.grad(g, x, node)?))],
        Op::Binary(a, b, bop) => {
            // Constants (labels, dropout masks, scalars) need no gradient: skip their side.
            let (ga, gb) = bop.grads(g, a, b, node, (a.tracks_grad(), b.tracks_grad()))?;
            let mut out = Vec::with_capacity(2);
            if let Some(ga) = ga {
                out.push((a.clone(), dense(sum_to(&ga, a.shape())?)));
            }
            if let Some(gb) = gb {
                out.push((b.clone(), dense(sum_to(&gb, b.shape())?)));
            }
            out
        }
        Op::SumAxis(x) => vec![(x.clone(), dense(g.broadcast_to(x.shape())?))],
        Op::MaxAxis(x) => {
            // The gradient goes to every position equal to the maximum.
            let mask = x.eq(&node.broadcast_to(x.shape())?)?;
            vec![(x.clone(), dense(g.broadcast_to(x.shape())?.mul(&mask)?))]
        }
        Op::FillAt { input, positions } => vec![(input.clone(), dense(g.fill_at(positions, 0.0)?))],
        Op::Softmax { input, log } => vec![(input.clone(), dense(node.softmax_grad(g, *log)?))],
        Op::Matmul {
            a,
            b,
            trans_a,
            trans_b,
        } => {
            // C = op(A)·op(B), G = dC. Each gradient is one product with transpose flags;
            // nothing is transposed in memory.
            let (ga, gb): (&dyn Fn() -> Result<Tensor>, &dyn Fn() -> Result<Tensor>) =
                match (*trans_a, *trans_b) {
                    (false, false) => (&|| g.matmul_t(b, false, true), &|| {
                        a.matmul_t(g, true, false)
                    }),
                    (false, true) => (&|| g.matmul_t(b, false, false), &|| {
                        g.matmul_t(a, true, false)
                    }),
                    (true, false) => (&|| b.matmul_t(g, false, true), &|| {
                        a.matmul_t(g, false, false)
                    }),
                    (true, true) => (&|| b.matmul_t(g, true, true), &|| g.matmul_t(a, true, true)),
                };
            let mut out = Vec::with_capacity(2);
            if a.tracks_grad() {
                out.push((a.clone(), dense(ga()?)));
            }
            if b.tracks_grad() {
                out.push((b.clone(), dense(gb()?)));
            }
            out
        }
        Op::Reshape(x) => vec![(x.clone(), dense(g.reshape(x.shape())?))],
        Op::Permute(x, perm) => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            vec![(x.clone(), dense(g.permute(&inv)?))]
        }
        Op::Broadcast(x) => vec![(x.clone(), dense(sum_to(g, x.shape())?))],
        Op::Concat(parts, axis) => {
            let mut start = 0;
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                let len = p.shape()[*axis];
                out.push((p.clone(), dense(g.slice_axis(*axis, start, start + len)?)));
                start += len;
            }
            out
        }
        Op::Slice { input, axis, start } => {
            // Pad the gradient back to the input's extent with zeros on both sides.
            let (axis, start) = (*axis, *start);
            let len = g.shape()[axis];
            let total = input.shape()[axis];
            let mut pieces = Vec::new();
            let zeros_of = |n: usize| -> Result<Tensor> {
                let mut s = input.shape().to_vec();
                s[axis] = n;
                Tensor::zeros(&s, g.device())
            };
            if start > 0 {
                pieces.push(zeros_of(start)?);
            }
            pieces.push(g.clone());
            if start + len < total {
                pieces.push(zeros_of(total - start - len)?);
            }
            let refs: Vec<&Tensor> = pieces.iter().collect();
            vec![(input.clone(), dense(Tensor::concat(&refs, axis)?))]
        }
        Op::Conv2d {
            input,
            weight,
            bias,
            relu,
            window,
            groups,
        } => {
            // Through the ReLU first: its output is positive exactly where its input is.
            let relu_g;
            let g = if *relu {
                relu_g = g.where_positive(node)?;
                &relu_g
            } else {
                g
            };
            let mut out = Vec::with_capacity(3);
            if let Some(b) = bias.as_ref().filter(|b| b.tracks_grad()) {
                out.push((b.clone(), dense(window::conv_grad_bias(g)?)));
            }
            if input.tracks_grad() {
                let gx = window::conv_grad_input(g, weight, window, *groups)?;
                out.push((input.clone(), dense(gx)));
            }
            if weight.tracks_grad() {
                let gw = window::conv_grad_weight(input, g, window, *groups, weight.shape())?;
                out.push((weight.clone(), dense(gw)));
            }
            out
        }
        // y = conv_grad_input(x, w): x's gradient is the convolution of g, w's the
        // convolution's weight gradient with g as the image and x as the output gradient.
        Op::ConvTranspose2d {
            input,
            weight,
            window,
            groups,
        } => {
            let mut out = Vec::with_capacity(2);
            if input.tracks_grad() {
                let gx = window::conv_forward(g, weight, None, false, window, *groups)?;
                out.push((input.clone(), dense(gx)));
            }
            if weight.tracks_grad() {
                let gw = window::conv_grad_weight(g, input, window, *groups, weight.shape())?;
                out.push((weight.clone(), dense(gw)));
            }
            out
        }
        Op::Pool2d {
            input,
            window,
            kind,
        } => vec![(input.clone(), dense(input.pool2d_grad(g, window, *kind)?))],
        Op::Custom { op, inputs } => custom_grads(op.as_ref(), inputs, node, g)?,
        Op::Take {
            table,
            indices,
            sparse,
        } => {
            let dim = table.shape()[1];
            let n = indices.elem_count();
            let rows = g.reshape(&[n, dim])?;
            let flat = indices.reshape(&[n])?;
            let rs = Tensor::coalesce_rows(&flat, &rows, table.shape().to_vec())?;
            let grad = if *sparse {
                Grad::RowSparse(rs)
            } else {
                Grad::Dense(rs.to_dense()?)
            };
            vec![(table.clone(), grad)]
        }
    })
}

impl Tensor {
    /// Sums rows sharing an index into a row-sparse gradient of a table of `shape`.
    pub(crate) fn coalesce_rows(
        indices: &Tensor,
        rows: &Tensor,
        shape: Vec<usize>,
    ) -> Result<RowSparse> {
        let dim = shape.get(1).copied().unwrap_or(1);
        let (u, s) = crate::tensor::storage::Storage::coalesce_rows(
            &indices.storage(),
            &rows.storage(),
            dim,
            shape.first().copied().unwrap_or(0),
        )?;
        let k = u.len();
        Ok(RowSparse {
            indices: Tensor::from_storage(u, vec![k], None),
            values: Tensor::from_storage(s, vec![k, dim], None),
            shape,
        })
    }
}

/// The inputs' gradients from a custom op's backward, checked: one per input, each of
/// its input's shape (errors name the op).
fn custom_grads(
    op: &dyn super::CustomOp,
    inputs: &[Tensor],
    output: &Tensor,
    grad: &Tensor,
) -> Result<Vec<(Tensor, Grad)>> {
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
        out.push((input.clone(), dense(g)));
    }
    Ok(out)
}
