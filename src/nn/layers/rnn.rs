//! `LSTM` and `GRU`: Gluon's `gluon.rnn` recurrent layers (multi-layer, optionally
//! bidirectional, `TNC` or `NTC` layout), written with tensor ops so that autograd
//! differentiates them and they run on every device.
//!
//! Shapes and parameter names are Gluon's: input `[T, N, C]` (`TNC`, the default) or
//! `[N, T, C]`; output `[T, N, D·H]` with D = 2 when bidirectional; states
//! `[L·D, N, H]` (LSTM: `h` and `c`; GRU: `h`); per layer `l` and direction (`l` forward,
//! `r` reverse) `l0_i2h_weight [G·H, C]`, `l0_h2h_weight [G·H, H]`, `l0_i2h_bias`,
//! `l0_h2h_bias [G·H]`, the G gates stacked as MXNet and PyTorch stack them (LSTM: input,
//! forget, cell, output; GRU: reset, update, new), so weights copy over from either.
//! Not supported yet: Gluon's `projection_size`, `state_clip_*` and
//! `use_sequence_length`.

use crate::error::{Error, Result};
use crate::nn::{join_path, Block, Dropout, Forward, Initializer, Parameter, Visitor};
use crate::tensor::Tensor;

/// The order of the input's axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnLayout {
    /// `[time, batch, channels]` (Gluon's default).
    Tnc,
    /// `[batch, time, channels]` (PyTorch's `batch_first=True`).
    Ntc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
    fn states(self) -> usize {
        match self {
            Cell::Lstm => 2,
            Cell::Gru => 1,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
        }
    }
}

/// The four parameters of one direction of one layer.
struct Direction {
    i2h_weight: Parameter,
    h2h_weight: Parameter,
    i2h_bias: Parameter,
    h2h_bias: Parameter,
}

/// What `LSTM` and `GRU` share: the stack of layers and directions, and the time loop.
struct Recurrent {
    cell: Cell,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
    layout: RnnLayout,
    input_size: usize,
    dropout: f32,
    /// Layer `l`, direction `d` at `l · D + d`.
    directions: Vec<Direction>,
    /// Between layers (`layers − 1` of them), in training only.
    dropouts: Vec<Dropout>,
}

impl Recurrent {
    fn new(cell: Cell, hidden: usize) -> Recurrent {
        let mut r = Recurrent {
            cell,
            hidden,
            layers: 1,
            bidirectional: false,
            layout: RnnLayout::Tnc,
            input_size: 0,
            dropout: 0.0,
            directions: Vec::new(),
            dropouts: Vec::new(),
        };
        r.rebuild();
        r
    }

    fn num_directions(&self) -> usize {
        1 + usize::from(self.bidirectional)
    }

    /// Parameters for the current sizes (input size 0: inferred at the first forward).
    fn rebuild(&mut self) {
        let (g, h, d) = (
            self.cell.gates() * self.hidden,
            self.hidden,
            self.num_directions(),
        );
        self.directions = (0..self.layers * d)
            .map(|k| {
                let input = if k < d { self.input_size } else { d * h };
                Direction {
                    i2h_weight: Parameter::new("i2h_weight", &[g, input], None),
                    h2h_weight: Parameter::new("h2h_weight", &[g, h], None),
                    i2h_bias: Parameter::new("i2h_bias", &[g], Some(Initializer::Zero)),
                    h2h_bias: Parameter::new("h2h_bias", &[g], Some(Initializer::Zero)),
                }
            })
            .collect();
        self.dropouts = (1..self.layers)
            .map(|_| Dropout::new(self.dropout))
            .collect();
    }

    fn visit(&self, path: &str, visitor: &mut dyn Visitor) {
        let d = self.num_directions();
        for (k, dir) in self.directions.iter().enumerate() {
            let prefix = format!("{}{}_", if k % d == 0 { "l" } else { "r" }, k / d);
            for (name, p) in [
                ("i2h_weight", &dir.i2h_weight),
                ("h2h_weight", &dir.h2h_weight),
                ("i2h_bias", &dir.i2h_bias),
                ("h2h_bias", &dir.h2h_bias),
            ] {
                visitor.param(&join_path(path, &format!("{prefix}{name}")), p);
            }
        }
        for (l, drop) in self.dropouts.iter().enumerate() {
            drop.visit(&join_path(path, &format!("dropout{l}")), visitor);
        }
    }

    /// Zero states for a batch of `batch`: `[L·D, N, H]` each.
    fn begin_state(&self, batch: usize, device: crate::Device) -> Result<Vec<Tensor>> {
        let shape = [self.layers * self.num_directions(), batch, self.hidden];
        (0..self.cell.states())
            .map(|_| Tensor::zeros(&shape, device))
            .collect()
    }

    fn forward(&self, x: &Tensor, states: Option<&[Tensor]>) -> Result<(Tensor, Vec<Tensor>)> {
        let op = self.cell.name();
        if x.rank() != 3 {
            let layout = match self.layout {
                RnnLayout::Tnc => "[time, batch, channels] (TNC)",
                RnnLayout::Ntc => "[batch, time, channels] (NTC)",
            };
            return Err(Error::InvalidShape {
                op,
                msg: format!("input must be {layout}, got {:?}", x.shape()),
            });
        }
        let x = match self.layout {
            RnnLayout::Tnc => x.clone(),
            RnnLayout::Ntc => x.transpose(0, 1)?,
        };
        let (steps, batch) = (x.shape()[0], x.shape()[1]);
        if steps == 0 || batch == 0 {
            return Err(Error::InvalidShape {
                op,
                msg: format!(
                    "input needs at least one step and one sample, got {:?}",
                    x.shape()
                ),
            });
        }
        let d = self.num_directions();
        let state_shape = [self.layers * d, batch, self.hidden];
        let states = match states {
            Some(s) => {
                if s.len() != self.cell.states() || s.iter().any(|t| t.shape() != state_shape) {
                    return Err(Error::InvalidArgument(format!(
                        "{op}: expected {} state tensor(s) of shape {state_shape:?} (layers × \
                         directions, batch, hidden), got {:?}",
                        self.cell.states(),
                        s.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>()
                    )));
                }
                s.to_vec()
            }
            None => self.begin_state(batch, x.device())?,
        };
        let mut input = x;
        let mut last: Vec<Vec<Tensor>> = vec![Vec::new(); self.cell.states()];
        for layer in 0..self.layers {
            if layer > 0 {
                input = self.dropouts[layer - 1].forward(&input)?;
            }
            let mut outputs = Vec::with_capacity(d);
            for dir in 0..d {
                let k = layer * d + dir;
                let init: Vec<Tensor> = states
                    .iter()
                    .map(|s| s.slice_axis(0, k, k + 1)?.reshape(&[batch, self.hidden]))
                    .collect::<Result<_>>()?;
                let (out, fin) = self.run_direction(&self.directions[k], &input, init, dir == 1)?;
                outputs.push(out);
                for (s, f) in last.iter_mut().zip(fin) {
                    s.push(f.reshape(&[1, batch, self.hidden])?);
                }
            }
            input = match outputs.len() {
                1 => outputs.remove(0),
                _ => Tensor::concat(&outputs.iter().collect::<Vec<_>>(), 2)?,
            };
        }
        let output = match self.layout {
            RnnLayout::Tnc => input,
            RnnLayout::Ntc => input.transpose(0, 1)?,
        };
        let states = last
            .iter()
            .map(|parts| Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0))
            .collect::<Result<_>>()?;
        Ok((output, states))
    }

    /// One direction over the whole sequence `x: [T, N, C]` from `init` states `[N, H]`;
    /// returns the outputs `[T, N, H]` and the final states.
    fn run_direction(
        &self,
        dir: &Direction,
        x: &Tensor,
        init: Vec<Tensor>,
        reverse: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (steps, batch, channels) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let (h, g) = (self.hidden, self.cell.gates() * self.hidden);
        dir.i2h_weight.finish_deferred_init(&[g, channels])?;
        let w_ih = dir.i2h_weight.data()?;
        if w_ih.shape()[1] != channels {
            return Err(Error::ShapeMismatch {
                op: "recurrent layer input [T, N, C] vs i2h_weight [gates·hidden, C]",
                lhs: x.shape().to_vec(),
                rhs: w_ih.shape().to_vec(),
            });
        }
        // Every step's input projection in one product: [T·N, C] × [C, G·H].
        let projected = x
            .reshape(&[steps * batch, channels])?
            .matmul_t(&w_ih, false, true)?
            .add(&dir.i2h_bias.data()?)?;
        let w_hh = dir.h2h_weight.data()?;
        let b_hh = dir.h2h_bias.data()?;
        let gate = |t: &Tensor, k: usize| t.slice_axis(1, k * h, (k + 1) * h);
        let mut state = init;
        let mut outputs: Vec<Option<Tensor>> = vec![None; steps];
        for s in 0..steps {
            let t = if reverse { steps - 1 - s } else { s };
            let xp = projected.slice_axis(0, t * batch, (t + 1) * batch)?;
            let hp = state[0].matmul_t(&w_hh, false, true)?.add(&b_hh)?;
            state = match self.cell {
                Cell::Lstm => {
                    let z = xp.add(&hp)?;
                    let i = gate(&z, 0)?.sigmoid()?;
                    let f = gate(&z, 1)?.sigmoid()?;
                    let c_new = gate(&z, 2)?.tanh()?;
                    let o = gate(&z, 3)?.sigmoid()?;
                    let c = f.mul(&state[1])?.add(&i.mul(&c_new)?)?;
                    vec![o.mul(&c.tanh()?)?, c]
                }
                Cell::Gru => {
                    let r = gate(&xp, 0)?.add(&gate(&hp, 0)?)?.sigmoid()?;
                    let z = gate(&xp, 1)?.add(&gate(&hp, 1)?)?.sigmoid()?;
                    let n = gate(&xp, 2)?.add(&r.mul(&gate(&hp, 2)?)?)?.tanh()?;
                    // (1 − z) · n + z · h, written as n + z · (h − n).
                    vec![n.add(&z.mul(&state[0].sub(&n)?)?)?]
                }
            };
            outputs[t] = Some(state[0].reshape(&[1, batch, h])?);
        }
        let outputs: Vec<Tensor> = outputs.into_iter().flatten().collect();
        let out = Tensor::concat(&outputs.iter().collect::<Vec<_>>(), 0)?;
        Ok((out, state))
    }
}

macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $ty:ident, $cell:expr, $kind:literal) => {
        $(#[$doc])*
        pub struct $ty(Recurrent);

        impl $ty {
            /// `hidden_size` units, one layer, one direction, `TNC`, input size inferred
            /// at the first forward pass.
            pub fn new(hidden_size: usize) -> $ty {
                $ty(Recurrent::new($cell, hidden_size))
            }

            /// Stacks `n` layers (default 1; 0 is taken as 1).
            pub fn num_layers(mut self, n: usize) -> $ty {
                self.0.layers = n.max(1);
                self.0.rebuild();
                self
            }

            /// Runs a second direction over the reversed sequence and concatenates the
            /// two outputs (`[.., 2·H]`).
            pub fn bidirectional(mut self, on: bool) -> $ty {
                self.0.bidirectional = on;
                self.0.rebuild();
                self
            }

            /// Fixes the input size (no deferred initialisation).
            pub fn input_size(mut self, n: usize) -> $ty {
                self.0.input_size = n;
                self.0.rebuild();
                self
            }

            /// The input's axis order (default `TNC`).
            pub fn layout(mut self, layout: RnnLayout) -> $ty {
                self.0.layout = layout;
                self
            }

            /// Dropout on each layer's output but the last's, in training (default 0).
            pub fn dropout(mut self, rate: f32) -> $ty {
                self.0.dropout = rate;
                self.0.rebuild();
                self
            }

            /// Zero initial states for a batch of `batch` (Gluon's `begin_state`).
            pub fn begin_state(&self, batch: usize, device: crate::Device) -> Result<Vec<Tensor>> {
                self.0.begin_state(batch, device)
            }

            /// The output and the final states from `states` (zeros when `None`), each
            /// `[layers · directions, batch, hidden]`.
            pub fn forward_with_states(
                &self,
                x: &Tensor,
                states: Option<&[Tensor]>,
            ) -> Result<(Tensor, Vec<Tensor>)> {
                self.0.forward(x, states)
            }
        }

        impl Block for $ty {
            fn visit(&self, path: &str, visitor: &mut dyn Visitor) {
                self.0.visit(path, visitor)
            }
            fn kind(&self) -> &'static str {
                $kind
            }
        }

        impl Forward for $ty {
            type Input = Tensor;
            /// The output from zero initial states.
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                Ok(self.0.forward(x, None)?.0)
            }
        }
    };
}

recurrent_layer!(
    /// Long short-term memory (Gluon's `rnn.LSTM`): per step `i, f, o = σ(·)`,
    /// `g = tanh(·)` of `W_ih x + b_ih + W_hh h + b_hh`, `c' = f ⊙ c + i ⊙ g`,
    /// `h' = o ⊙ tanh(c')`. States: `[h, c]`.
    LSTM, Cell::Lstm, "lstm"
);
recurrent_layer!(
    /// Gated recurrent unit (Gluon's `rnn.GRU`, the cuDNN form PyTorch uses too):
    /// `r, z = σ(W_i x + b_i + W_h h + b_h)`, `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`,
    /// `h' = (1 − z) ⊙ n + z ⊙ h`. States: `[h]`.
    GRU, Cell::Gru, "gru"
);
