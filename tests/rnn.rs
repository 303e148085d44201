//! `LSTM` and `GRU` against PyTorch (tests/fixtures/torch/rnn.json, written by
//! scripts/torch_rnn_golden.py from torch.nn.LSTM / GRU with copied weights): outputs,
//! final states and the gradients of every weight and of the input; plus finite
//! differences, shapes and the errors for bad inputs.

#[macro_use]
mod common;

use boson::nn::{Block, Forward, Initializer, RnnLayout, GRU, LSTM};
use boson::{autograd, Device, Error, Result, Tensor};
use common::{
    assert_close_to, assert_param_grads, gradcheck, json_floats as floats, json_shape as shape,
    rand_tensor,
};
use serde_json::Value;

/// LSTM or GRU, behind one interface for the tests.
enum Net {
    Lstm(LSTM),
    Gru(GRU),
}

impl Net {
    fn from_case(c: &Value) -> Net {
        let (hidden, layers) = (
            c["hidden"].as_u64().unwrap() as usize,
            c["layers"].as_u64().unwrap() as usize,
        );
        let input = *shape(&c["input_shape"]).last().unwrap();
        let bidirectional = c["bidirectional"].as_bool().unwrap();
        let layout = match c["layout"].as_str().unwrap() {
            "TNC" => RnnLayout::Tnc,
            _ => RnnLayout::Ntc,
        };
        let net = match c["cell"].as_str().unwrap() {
            "lstm" => Net::Lstm(
                LSTM::new(hidden)
                    .num_layers(layers)
                    .bidirectional(bidirectional)
                    .input_size(input)
                    .layout(layout),
            ),
            _ => Net::Gru(
                GRU::new(hidden)
                    .num_layers(layers)
                    .bidirectional(bidirectional)
                    .input_size(input)
                    .layout(layout),
            ),
        };
        net.block()
            .initialize(&Initializer::Zero, Device::Cpu)
            .unwrap();
        let params = net.block().collect_params();
        let want = c["params"].as_object().unwrap();
        assert_eq!(params.len(), want.len(), "parameter count");
        for (name, p) in want {
            let param = params
                .get(name)
                .unwrap_or_else(|| panic!("no parameter {name}"));
            let t = Tensor::from_vec(floats(&p["values"]), &shape(&p["shape"])).unwrap();
            param.set_data(&t).unwrap();
        }
        net
    }

    fn block(&self) -> &dyn Block {
        match self {
            Net::Lstm(n) => n,
            Net::Gru(n) => n,
        }
    }

    fn run(&self, x: &Tensor, states: Option<&[Tensor]>) -> Result<(Tensor, Vec<Tensor>)> {
        match self {
            Net::Lstm(n) => n.forward_with_states(x, states),
            Net::Gru(n) => n.forward_with_states(x, states),
        }
    }
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_close_to(what, got, want, tol, "PyTorch")
}

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/torch/rnn.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn lstm_and_gru_match_pytorch_outputs_states_and_gradients() {
    let cases = fixture()["cases"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 6);
    for c in &cases {
        let label = format!(
            "{} layers {} bidirectional {} {}",
            c["cell"], c["layers"], c["bidirectional"], c["layout"]
        );
        let net = Net::from_case(c);
        let x = Tensor::from_vec(floats(&c["input"]), &shape(&c["input_shape"]))
            .unwrap()
            .attach_grad();
        let state_shape = {
            let mut s = vec![c["layers"].as_u64().unwrap() as usize];
            s[0] *= if c["bidirectional"].as_bool().unwrap() {
                2
            } else {
                1
            };
            let n = shape(&c["input_shape"])[if c["layout"] == "TNC" { 1 } else { 0 }];
            s.extend([n, c["hidden"].as_u64().unwrap() as usize]);
            s
        };
        let states: Vec<Tensor> = c["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Tensor::from_vec(floats(s), &state_shape).unwrap())
            .collect();
        let r = Tensor::from_vec(floats(&c["r"]), &shape(&c["output_shape"])).unwrap();
        let mut result = None;
        let loss = autograd::record(|| {
            let (out, fin) = net.run(&x, Some(&states))?;
            let loss = out.mul(&r)?.sum_all();
            result = Some((out, fin));
            loss
        })
        .unwrap();
        let (out, fin) = result.unwrap();
        assert_eq!(out.shape(), shape(&c["output_shape"]).as_slice(), "{label}");
        close(
            &format!("{label}: output"),
            &out.to_vec_f32().unwrap(),
            &floats(&c["output"]),
            1e-5,
        );
        for (k, (got, want)) in fin
            .iter()
            .zip(c["final_states"].as_array().unwrap())
            .enumerate()
        {
            close(
                &format!("{label}: final state {k}"),
                &got.to_vec_f32().unwrap(),
                &floats(want),
                1e-5,
            );
        }
        loss.backward().unwrap();
        close(
            &format!("{label}: input gradient"),
            &x.grad().unwrap().unwrap().to_vec_f32().unwrap(),
            &floats(&c["input_grad"]),
            1e-4,
        );
        let params = net.block().collect_params();
        assert_param_grads(&label, &params, &c["param_grads"], 1e-4, "PyTorch");
    }
}

// Finite differences through the time loop, for the input and the initial states of a
// two-layer bidirectional LSTM and GRU (weights from the fixture).
#[test]
fn gradients_through_time_match_finite_differences() {
    let cases = fixture()["cases"].as_array().unwrap().clone();
    for c in cases
        .iter()
        .filter(|c| c["bidirectional"].as_bool().unwrap())
    {
        let net = Net::from_case(c);
        let x = rand_tensor(&[3, 2, 5], -1.0, 1.0, 7);
        let n_states = c["states"].as_array().unwrap().len();
        let states: Vec<Tensor> = (0..n_states)
            .map(|k| rand_tensor(&[4, 2, 4], -1.0, 1.0, 11 + k as u64))
            .collect();
        let mut inputs = vec![x];
        inputs.extend(states);
        gradcheck(
            &inputs,
            |xs| {
                let (out, fin) = net.run(&xs[0], Some(&xs[1..]))?;
                // The output and every final state, so all of them carry gradient.
                let mut parts = vec![out.reshape(&[out.elem_count()])?];
                for f in fin {
                    parts.push(f.reshape(&[f.elem_count()])?);
                }
                Tensor::concat(&parts.iter().collect::<Vec<_>>(), 0)
            },
            1e-2,
            2e-3,
        );
    }
}

#[test]
fn shapes_layouts_deferred_input_size_and_parameter_names() {
    // NTC in, NTC out; zero states by default; Gluon's parameter names.
    let lstm = LSTM::new(6)
        .num_layers(2)
        .bidirectional(true)
        .layout(RnnLayout::Ntc);
    lstm.initialize(&Initializer::Uniform(0.1), Device::Cpu)
        .unwrap();
    let x = rand_tensor(&[2, 5, 3], -1.0, 1.0, 1);
    let (out, states) = lstm.forward_with_states(&x, None).unwrap();
    assert_eq!(out.shape(), &[2, 5, 12]);
    assert_eq!(states.len(), 2);
    for s in &states {
        assert_eq!(s.shape(), &[4, 2, 6]);
    }
    assert_eq!(
        lstm.forward(&x).unwrap().to_vec_f32().unwrap(),
        out.to_vec_f32().unwrap()
    );
    let names = lstm.collect_params().names();
    for want in [
        "l0_i2h_weight",
        "r0_h2h_bias",
        "l1_i2h_weight",
        "r1_h2h_weight",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    // Layer 0 learned its input size (3) at the first forward; layer 1 takes 2·6.
    let p = lstm.collect_params();
    assert_eq!(p.get("l0_i2h_weight").unwrap().shape(), vec![24, 3]);
    assert_eq!(p.get("l1_i2h_weight").unwrap().shape(), vec![24, 12]);
    // begin_state gives the zeros the default uses.
    let zeros = lstm.begin_state(2, Device::Cpu).unwrap();
    let (again, _) = lstm.forward_with_states(&x, Some(&zeros)).unwrap();
    assert_eq!(again.to_vec_f32().unwrap(), out.to_vec_f32().unwrap());
    let gru = GRU::new(4);
    gru.initialize(&Initializer::Uniform(0.1), Device::Cpu)
        .unwrap();
    let (out, states) = gru
        .forward_with_states(&rand_tensor(&[7, 3, 2], -1.0, 1.0, 2), None)
        .unwrap();
    assert_eq!(
        (out.shape(), states.len(), states[0].shape()),
        (&[7, 3, 4][..], 1, &[1, 3, 4][..])
    );
}

#[test]
fn bad_inputs_and_states_are_errors_naming_the_shape() {
    let lstm = LSTM::new(4).input_size(3);
    lstm.initialize(&Initializer::Uniform(0.1), Device::Cpu)
        .unwrap();
    let err = lstm
        .forward(&rand_tensor(&[5, 3], -1.0, 1.0, 1))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidShape { .. }) && err.to_string().contains("[5, 3]"),
        "{err}"
    );
    let err = lstm
        .forward(&rand_tensor(&[5, 2, 7], -1.0, 1.0, 1))
        .unwrap_err();
    assert!(
        err.to_string().contains("[5, 2, 7]") && err.to_string().contains("[16, 3]"),
        "{err}"
    );
    let x = rand_tensor(&[5, 2, 3], -1.0, 1.0, 1);
    let h = Tensor::zeros(&[1, 2, 4], Device::Cpu).unwrap();
    let err = lstm
        .forward_with_states(&x, Some(std::slice::from_ref(&h)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected 2 state tensor(s) of shape [1, 2, 4]"),
        "{err}"
    );
    let wrong = Tensor::zeros(&[1, 3, 4], Device::Cpu).unwrap();
    let err = lstm
        .forward_with_states(&x, Some(&[h, wrong]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[1, 3, 4]"), "{err}");
    let err = lstm
        .forward(&Tensor::zeros(&[0, 2, 3], Device::Cpu).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("at least one step"), "{err}");
}

/// The same LSTM and GRU on the GPU as on the CPU (output, states and input gradient).
/// Skips, saying why, without a usable GPU.
#[test]
fn lstm_and_gru_on_the_gpu_match_the_cpu() {
    let gpu = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            skip_note!("lstm_and_gru_on_the_gpu_match_the_cpu: skipped: {e}");
            return;
        }
    };
    let cases = fixture()["cases"].as_array().unwrap().clone();
    for c in &cases {
        let run = |device: Device| -> (Vec<f32>, Vec<Vec<f32>>, Vec<f32>) {
            let net = Net::from_case(c);
            net.block().collect_params().reset_device(device).unwrap();
            let x = Tensor::from_vec(floats(&c["input"]), &shape(&c["input_shape"]))
                .unwrap()
                .to_device(device)
                .unwrap()
                .attach_grad();
            let mut result = None;
            autograd::record(|| {
                let (out, fin) = net.run(&x, None)?;
                let loss = out.sum_all();
                result = Some((out, fin));
                loss
            })
            .unwrap()
            .backward()
            .unwrap();
            let (out, fin) = result.unwrap();
            (
                out.to_vec_f32().unwrap(),
                fin.iter().map(|s| s.to_vec_f32().unwrap()).collect(),
                x.grad().unwrap().unwrap().to_vec_f32().unwrap(),
            )
        };
        let (cpu, gpu_run) = (run(Device::Cpu), run(gpu));
        close("GPU output", &gpu_run.0, &cpu.0, 1e-4);
        for (g, c) in gpu_run.1.iter().zip(&cpu.1) {
            close("GPU final state", g, c, 1e-4);
        }
        close("GPU input gradient", &gpu_run.2, &cpu.2, 1e-4);
    }
}
