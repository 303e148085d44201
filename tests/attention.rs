//! `MultiHeadAttention`, `TransformerEncoderLayer` and `PositionalEmbedding`: against
//! PyTorch (tests/fixtures/torch/attention.json, written by
//! scripts/torch_attention_golden.py with copied weights), finite differences, masks and
//! the errors for bad inputs.

#[macro_use]
mod common;

use boson::nn::{
    AttentionMask, Block, Forward, Initializer, MultiHeadAttention, PositionalEmbedding,
    TransformerEncoderLayer,
};
use boson::{autograd, Device, Error, Tensor};
use common::{
    assert_close_to, assert_param_grads, gradcheck, json_floats as floats, json_shape as shape,
    rand_tensor,
};
use serde_json::Value;

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_close_to(what, got, want, tol, "PyTorch")
}

fn tensor(v: &Value) -> Tensor {
    Tensor::from_vec(floats(&v["values"]), &shape(&v["shape"])).unwrap()
}

fn load_params(block: &dyn Block, case: &Value) {
    block.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    let params = block.collect_params();
    let want = case["params"].as_object().unwrap();
    assert_eq!(params.len(), want.len(), "{:?}", params.names());
    for (name, p) in want {
        params
            .get(name)
            .unwrap_or_else(|| panic!("no parameter {name} in {:?}", params.names()))
            .set_data(&tensor(p))
            .unwrap();
    }
}

#[test]
fn attention_and_the_encoder_layer_match_pytorch_values_and_gradients() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch/attention.json"
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (units, heads, hidden) = (
        fixture["units"].as_u64().unwrap() as usize,
        fixture["heads"].as_u64().unwrap() as usize,
        fixture["hidden"].as_u64().unwrap() as usize,
    );
    for case in fixture["cases"].as_array().unwrap() {
        let label = format!("{} {}", case["layer"], case["kind"]);
        let inputs: Vec<(String, Tensor)> = case["inputs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), tensor(v).attach_grad()))
            .collect();
        let input = |name: &str| &inputs.iter().find(|(k, _)| k == name).unwrap().1;
        let first = &inputs[0].1;
        let batch = first.shape()[0];
        let keys = input(if case["kind"] == "cross" { "kv" } else { "x" }).shape()[1];
        let keep = Tensor::from_vec(floats(&case["key_padding"]), &[batch, keys]).unwrap();
        let mask = AttentionMask {
            causal: case["causal"].as_bool().unwrap(),
            key_padding: Some(&keep),
        };
        let r = Tensor::from_vec(floats(&case["r"]), &shape(&case["output_shape"])).unwrap();
        let attention = MultiHeadAttention::new(units, heads).unwrap();
        let encoder = TransformerEncoderLayer::new(units, heads, hidden).unwrap();
        let mut output = None;
        let loss = match case["layer"].as_str().unwrap() {
            "attention" => {
                // Infer the input size first, then copy PyTorch's weights in.
                attention
                    .initialize(&Initializer::Zero, Device::Cpu)
                    .unwrap();
                attention.forward(first).unwrap();
                load_params(&attention, case);
                autograd::record(|| {
                    let out = match case["kind"].as_str().unwrap() {
                        "cross" => {
                            attention.attend(input("query"), input("kv"), input("kv"), mask)?
                        }
                        _ => attention.attend(input("x"), input("x"), input("x"), mask)?,
                    };
                    output = Some(out.clone());
                    out.mul(&r)?.sum_all()
                })
            }
            _ => {
                load_params(&encoder, case);
                autograd::record(|| {
                    let out = encoder.forward_masked(input("x"), mask)?;
                    output = Some(out.clone());
                    out.mul(&r)?.sum_all()
                })
            }
        }
        .unwrap();
        let out = output.unwrap();
        assert_eq!(
            out.shape(),
            shape(&case["output_shape"]).as_slice(),
            "{label}"
        );
        close(
            &format!("{label}: output"),
            &out.to_vec_f32().unwrap(),
            &floats(&case["output"]),
            1e-5,
        );
        loss.backward().unwrap();
        for (name, t) in &inputs {
            close(
                &format!("{label}: {name} gradient"),
                &t.grad().unwrap().unwrap().to_vec_f32().unwrap(),
                &floats(&case["input_grads"][name]),
                1e-4,
            );
        }
        let block: &dyn Block = if case["layer"] == "attention" {
            &attention
        } else {
            &encoder
        };
        assert_param_grads(
            &label,
            &block.collect_params(),
            &case["param_grads"],
            1e-4,
            "PyTorch",
        );
    }
}

// Finite differences for the query, key and value inputs under both masks, and through
// the encoder layer (GELU, layer norms, residuals).
#[test]
fn gradients_match_finite_differences() {
    let attention = MultiHeadAttention::new(6, 3).unwrap();
    attention
        .initialize(&Initializer::Uniform(0.5), Device::Cpu)
        .unwrap();
    let keep = Tensor::from_vec(vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0], &[2, 4]).unwrap();
    let mask = AttentionMask {
        causal: true,
        key_padding: Some(&keep),
    };
    let x = rand_tensor(&[2, 4, 5], -1.0, 1.0, 3);
    let kv = rand_tensor(&[2, 4, 5], -1.0, 1.0, 4);
    gradcheck(
        &[x.clone(), kv.clone()],
        |v| attention.attend(&v[0], &v[1], &v[1], mask),
        1e-2,
        2e-3,
    );
    let encoder = TransformerEncoderLayer::new(6, 2, 8).unwrap();
    encoder
        .initialize(&Initializer::Uniform(0.5), Device::Cpu)
        .unwrap();
    let y = rand_tensor(&[2, 4, 6], -1.0, 1.0, 5);
    gradcheck(
        std::slice::from_ref(&y),
        |v| encoder.forward_masked(&v[0], mask),
        1e-2,
        2e-3,
    );
}

#[test]
fn a_causal_query_ignores_later_keys_and_padding_ignores_padded_ones() {
    let attention = MultiHeadAttention::new(4, 2).unwrap();
    attention
        .initialize(&Initializer::Uniform(0.5), Device::Cpu)
        .unwrap();
    let x = rand_tensor(&[1, 5, 4], -1.0, 1.0, 6);
    let causal = AttentionMask {
        causal: true,
        key_padding: None,
    };
    let full = attention
        .attend(&x, &x, &x, causal)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    // Changing the last step changes only the last output under the causal mask.
    let mut changed = x.to_vec_f32().unwrap();
    for v in &mut changed[16..20] {
        *v += 1.0;
    }
    let x2 = Tensor::from_vec(changed, &[1, 5, 4]).unwrap();
    let other = attention
        .attend(&x2, &x2, &x2, causal)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(full[..16], other[..16]);
    assert_ne!(full[16..], other[16..]);
    // A padded key's values do not matter.
    let keep = Tensor::from_vec(vec![1.0, 1.0, 1.0, 1.0, 0.0], &[1, 5]).unwrap();
    let padded = AttentionMask {
        causal: false,
        key_padding: Some(&keep),
    };
    let a = attention
        .attend(&x, &x, &x, padded)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let b = attention
        .attend(&x, &x2, &x2, padded)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    close("padded key", &b, &a, 1e-6);
}

#[test]
fn positional_embedding_adds_its_rows_and_checks_the_length() {
    let pos = PositionalEmbedding::new(6, 3);
    pos.initialize(&Initializer::Uniform(1.0), Device::Cpu)
        .unwrap();
    let table = pos.weight.data().unwrap().to_vec_f32().unwrap();
    let x = rand_tensor(&[2, 4, 3], -1.0, 1.0, 7);
    let y = pos.forward(&x).unwrap().to_vec_f32().unwrap();
    let xs = x.to_vec_f32().unwrap();
    for n in 0..2 {
        for t in 0..4 {
            for c in 0..3 {
                let k = (n * 4 + t) * 3 + c;
                assert_eq!(y[k], xs[k] + table[t * 3 + c]);
            }
        }
    }
    // Right-aligned: step t of 4 takes row 6 - 4 + t, the last step the last row.
    let y = pos.forward_right_aligned(&x).unwrap().to_vec_f32().unwrap();
    for n in 0..2 {
        for t in 0..4 {
            for c in 0..3 {
                let k = (n * 4 + t) * 3 + c;
                assert_eq!(y[k], xs[k] + table[(2 + t) * 3 + c]);
            }
        }
    }
    assert!(pos
        .forward_right_aligned(&rand_tensor(&[1, 7, 3], -1.0, 1.0, 8))
        .is_err());
    let err = pos
        .forward(&rand_tensor(&[1, 7, 3], -1.0, 1.0, 8))
        .unwrap_err();
    assert!(
        err.to_string().contains("time <= 6") && err.to_string().contains("[1, 7, 3]"),
        "{err}"
    );
}

#[test]
fn bad_sizes_shapes_and_masks_are_errors() {
    let err = MultiHeadAttention::new(6, 4).err().unwrap().to_string();
    assert!(
        err.contains("units (6)") && err.contains("heads (4)"),
        "{err}"
    );
    assert!(MultiHeadAttention::new(6, 0).is_err());
    assert!(TransformerEncoderLayer::new(6, 2, 0).is_err());
    let attention = MultiHeadAttention::new(4, 2).unwrap();
    attention
        .initialize(&Initializer::Uniform(0.5), Device::Cpu)
        .unwrap();
    let x = rand_tensor(&[2, 3, 4], -1.0, 1.0, 9);
    let err = attention
        .forward(&rand_tensor(&[3, 4], -1.0, 1.0, 9))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidShape { .. }) && err.to_string().contains("[3, 4]"),
        "{err}"
    );
    let kv = rand_tensor(&[2, 5, 4], -1.0, 1.0, 10);
    let causal = AttentionMask {
        causal: true,
        key_padding: None,
    };
    let err = attention
        .attend(&x, &kv, &kv, causal)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 and 5"), "{err}");
    let keep = Tensor::from_vec(vec![1.0; 6], &[2, 3]).unwrap();
    let padded = AttentionMask {
        causal: false,
        key_padding: Some(&keep),
    };
    let err = attention
        .attend(&x, &kv, &kv, padded)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[2, 5]") && err.contains("[2, 3]"), "{err}");
    let err = attention
        .attend(
            &x,
            &kv,
            &rand_tensor(&[2, 4, 4], -1.0, 1.0, 11),
            AttentionMask::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("one length"), "{err}");
}

/// The encoder layer on the GPU as on the CPU (output and input gradient, both masks).
/// Skips, saying why, without a usable GPU.
#[test]
fn the_encoder_layer_on_the_gpu_matches_the_cpu() {
    let gpu = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            skip_note!("the_encoder_layer_on_the_gpu_matches_the_cpu: skipped: {e}");
            return;
        }
    };
    let run = |device: Device| -> (Vec<f32>, Vec<f32>) {
        boson::rng::seed(3);
        let encoder = TransformerEncoderLayer::new(8, 2, 16).unwrap();
        encoder
            .initialize(&Initializer::Uniform(0.5), device)
            .unwrap();
        let x = rand_tensor(&[2, 5, 8], -1.0, 1.0, 12)
            .to_device(device)
            .unwrap()
            .attach_grad();
        let keep = Tensor::from_vec(
            vec![1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            &[2, 5],
        )
        .unwrap()
        .to_device(device)
        .unwrap();
        let mask = AttentionMask {
            causal: true,
            key_padding: Some(&keep),
        };
        let mut out = None;
        autograd::record(|| {
            let y = encoder.forward_masked(&x, mask)?;
            out = Some(y.clone());
            y.sum_all()
        })
        .unwrap()
        .backward()
        .unwrap();
        (
            out.unwrap().to_vec_f32().unwrap(),
            x.grad().unwrap().unwrap().to_vec_f32().unwrap(),
        )
    };
    let (cpu, on_gpu) = (run(Device::Cpu), run(gpu));
    close("GPU output", &on_gpu.0, &cpu.0, 1e-4);
    close("GPU input gradient", &on_gpu.1, &cpu.1, 1e-4);
}
