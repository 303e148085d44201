//! `Conv2D`, `Conv2DTranspose`, `MaxPool2D` and `AvgPool2D` against PyTorch
//! (tests/fixtures/torch/vision.json, written by scripts/torch_vision_golden.py): values
//! and the gradients of the input, weight and bias, for groups, strides, padding,
//! dilation, output padding, `ceil_mode` and `count_include_pad`.

mod common;

use boson::nn::{AvgPool2D, Block, Conv2D, Conv2DTranspose, Forward, Initializer, MaxPool2D};
use boson::{autograd, Device, Tensor};
use common::{assert_close_to, json_floats, json_shape};
use serde_json::Value;

fn pair(v: &Value) -> [usize; 2] {
    let s = json_shape(v);
    [s[0], s[1]]
}

fn tensor(v: &Value) -> Tensor {
    Tensor::from_vec(json_floats(&v["values"]), &json_shape(&v["shape"])).unwrap()
}

/// The layer of a case, with the fixture's weight and bias copied in.
fn layer(case: &Value) -> Box<dyn Forward<Input = Tensor>> {
    let (args, t) = (&case["args"], &case["tensors"]);
    let has_bias = t.get("bias").is_some();
    let groups = || args["groups"].as_u64().unwrap() as usize;
    let layer: Box<dyn Forward<Input = Tensor>> = match case["op"].as_str().unwrap() {
        "conv2d" => {
            let w = json_shape(&t["weight"]["shape"]);
            Box::new(
                Conv2D::new(w[0], [w[2], w[3]])
                    .strides(pair(&args["stride"]))
                    .padding(pair(&args["padding"]))
                    .dilation(pair(&args["dilation"]))
                    .groups(groups())
                    .use_bias(has_bias)
                    .in_channels(w[1] * groups()),
            )
        }
        "conv_transpose2d" => {
            let w = json_shape(&t["weight"]["shape"]);
            Box::new(
                Conv2DTranspose::new(w[1] * groups(), [w[2], w[3]])
                    .strides(pair(&args["stride"]))
                    .padding(pair(&args["padding"]))
                    .output_padding(pair(&args["output_padding"]))
                    .dilation(pair(&args["dilation"]))
                    .groups(groups())
                    .use_bias(has_bias)
                    .in_channels(w[0]),
            )
        }
        "max_pool2d" => Box::new(
            MaxPool2D::new(pair(&args["pool"]))
                .strides(pair(&args["stride"]))
                .padding(pair(&args["padding"]))
                .ceil_mode(args["ceil_mode"].as_bool().unwrap()),
        ),
        _ => Box::new(
            AvgPool2D::new(pair(&args["pool"]))
                .strides(pair(&args["stride"]))
                .padding(pair(&args["padding"]))
                .ceil_mode(args["ceil_mode"].as_bool().unwrap())
                .count_include_pad(args["count_include_pad"].as_bool().unwrap()),
        ),
    };
    layer.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    let params = layer.collect_params();
    for name in ["weight", "bias"] {
        if let Some(v) = t.get(name) {
            params.get(name).unwrap().set_data(&tensor(v)).unwrap();
        }
    }
    layer
}

#[test]
fn convolution_and_pooling_match_pytorch_values_and_gradients() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch/vision.json"
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let label = format!("{} {}", case["op"], case["args"]);
        let net = layer(case);
        let x = tensor(&case["tensors"]["x"]).attach_grad();
        let r =
            Tensor::from_vec(json_floats(&case["r"]), &json_shape(&case["output_shape"])).unwrap();
        let mut out = None;
        autograd::record(|| {
            let y = net.forward(&x)?;
            out = Some(y.clone());
            y.mul(&r)?.sum_all()
        })
        .unwrap()
        .backward()
        .unwrap();
        let out = out.unwrap();
        assert_eq!(
            out.shape(),
            json_shape(&case["output_shape"]).as_slice(),
            "{label}"
        );
        let check = |what: &str, got: Vec<f32>, want: &Value| {
            assert_close_to(
                &format!("{label}: {what}"),
                &got,
                &json_floats(want),
                1e-5,
                "PyTorch",
            )
        };
        check("output", out.to_vec_f32().unwrap(), &case["output"]);
        check(
            "input gradient",
            x.grad().unwrap().unwrap().to_vec_f32().unwrap(),
            &case["grads"]["x"],
        );
        let params = net.collect_params();
        for name in ["weight", "bias"] {
            if let Some(want) = case["grads"].get(name) {
                let g = params
                    .get(name)
                    .unwrap()
                    .grad()
                    .unwrap()
                    .to_dense()
                    .unwrap();
                check(&format!("{name} gradient"), g.to_vec_f32().unwrap(), want);
            }
        }
    }
}
