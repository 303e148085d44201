//! Convolution and pooling: values against direct loops, finite-difference gradients,
//! the layers' shapes and errors naming the bad shape.

mod common;
use boson::nn::{
    Activation, AvgPool1D, AvgPool2D, Block, Conv1D, Conv2D, Conv2DTranspose, Forward,
    GlobalAvgPool2D, GlobalMaxPool2D, Initializer, MaxPool1D, MaxPool2D,
};
use boson::tensor::{Conv2dParams, Pool2dParams};
use boson::{autograd, Device, Error, Tensor};
use common::{gradcheck, rand_tensor};

/// `x[b, c, y, x]` with out-of-range positions reading 0 (the padding).
fn at(x: &[f32], s: &[usize], b: usize, c: usize, y: isize, xx: isize) -> Option<f32> {
    let (h, w) = (s[2] as isize, s[3] as isize);
    (y >= 0 && y < h && xx >= 0 && xx < w)
        .then(|| x[((b * s[1] + c) * s[2] + y as usize) * s[3] + xx as usize])
}

/// The convolution by its definition, one output at a time.
fn conv_direct(x: &Tensor, w: &Tensor, p: &Conv2dParams) -> (Vec<f32>, Vec<usize>) {
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let (xv, wv) = (x.to_vec_f32().unwrap(), w.to_vec_f32().unwrap());
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let og = o / p.groups;
    let ext = |len: usize, a: usize, k: usize| {
        (len + 2 * p.padding[a] - p.dilation[a] * (k - 1) - 1) / p.strides[a] + 1
    };
    let (oh, ow) = (ext(xs[2], 0, kh), ext(xs[3], 1, kw));
    let mut out = vec![0.0; xs[0] * o * oh * ow];
    for b in 0..xs[0] {
        for oc in 0..o {
            let g = oc / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0f64;
                    for ci in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let y = (oy * p.strides[0] + i * p.dilation[0]) as isize
                                    - p.padding[0] as isize;
                                let xx = (ox * p.strides[1] + j * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                if let Some(v) = at(&xv, &xs, b, g * cg + ci, y, xx) {
                                    s += v as f64 * wv[((oc * cg + ci) * kh + i) * kw + j] as f64;
                                }
                            }
                        }
                    }
                    out[((b * o + oc) * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
    }
    (out, vec![xs[0], o, oh, ow])
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "element {i}: {a} vs {b}"
        );
    }
}

fn params(s: [usize; 2], p: [usize; 2], d: [usize; 2], groups: usize) -> Conv2dParams {
    Conv2dParams {
        strides: s,
        padding: p,
        dilation: d,
        groups,
    }
}

#[test]
fn conv2d_matches_the_definition() {
    let cases = [
        (
            [2, 3, 7, 6],
            [4, 3, 3, 3],
            params([1, 1], [0, 0], [1, 1], 1),
        ),
        (
            [2, 3, 7, 6],
            [4, 3, 3, 2],
            params([2, 1], [1, 2], [1, 1], 1),
        ),
        (
            [1, 2, 9, 9],
            [3, 2, 3, 3],
            params([2, 3], [2, 1], [2, 2], 1),
        ),
        (
            [2, 4, 5, 5],
            [6, 2, 3, 3],
            params([1, 1], [1, 1], [1, 1], 2),
        ),
        ([3, 1, 28, 28], [6, 1, 5, 5], Conv2dParams::default()),
        ([2, 5, 4, 4], [7, 5, 1, 1], Conv2dParams::default()),
        // Unit strides read the padded image at shifted offsets: more output channels
        // than one register block (packed strips), padding with dilation, and groups.
        (
            [2, 3, 10, 9],
            [14, 3, 3, 2],
            params([1, 1], [1, 2], [2, 1], 1),
        ),
        (
            [1, 4, 6, 40],
            [6, 2, 2, 3],
            params([1, 1], [0, 1], [1, 1], 2),
        ),
    ];
    for (k, (xs, ws, p)) in cases.into_iter().enumerate() {
        let x = rand_tensor(&xs, -1.0, 1.0, k as u64);
        let w = rand_tensor(&ws, -1.0, 1.0, 100 + k as u64);
        let y = x.conv2d(&w, None, &p).unwrap();
        let (want, shape) = conv_direct(&x, &w, &p);
        assert_eq!(y.shape(), &shape[..], "case {k}");
        assert_close(&y.to_vec_f32().unwrap(), &want, 1e-5);
    }
}

/// `<conv(x, w), y> = <x, conv_transpose(y, w)>`: the transposed convolution is the
/// convolution's adjoint, for every geometry.
#[test]
fn conv_transpose2d_is_the_adjoint_of_conv2d() {
    let cases = [
        (
            [2, 3, 7, 6],
            [4, 3, 3, 3],
            params([1, 1], [0, 0], [1, 1], 1),
            [0, 0],
        ),
        (
            [2, 3, 8, 7],
            [4, 3, 3, 2],
            params([2, 2], [1, 0], [1, 1], 1),
            [1, 1],
        ),
        (
            [1, 4, 9, 9],
            [6, 2, 3, 3],
            params([2, 1], [1, 1], [2, 1], 2),
            [1, 0],
        ),
    ];
    for (k, (xs, ws, p, op)) in cases.into_iter().enumerate() {
        let x = rand_tensor(&xs, -1.0, 1.0, k as u64);
        let w = rand_tensor(&ws, -1.0, 1.0, 10 + k as u64);
        let y = x.conv2d(&w, None, &p).unwrap();
        let r = rand_tensor(y.shape(), -1.0, 1.0, 20 + k as u64);
        // The transposed weight is [conv out, conv in / groups, kh, kw]: the same tensor.
        let back = r.conv_transpose2d(&w, &p, op).unwrap();
        // The output padding rows are beyond what the convolution read: crop them.
        let crop = back
            .slice_axis(2, 0, xs[2])
            .unwrap()
            .slice_axis(3, 0, xs[3])
            .unwrap();
        let dot = |a: &Tensor, b: &Tensor| -> f64 {
            let (a, b) = (a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
            a.iter().zip(&b).map(|(&u, &v)| u as f64 * v as f64).sum()
        };
        let (lhs, rhs) = (dot(&y, &r), dot(&x, &crop));
        assert!(
            (lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()),
            "case {k}: {lhs} vs {rhs}"
        );
        assert_eq!(back.shape()[..2], [xs[0], xs[1]], "case {k}");
        assert!(back.shape()[2] >= xs[2] && back.shape()[3] >= xs[3]);
    }
}

#[test]
fn conv_transpose2d_output_size_follows_the_formula() {
    let x = rand_tensor(&[1, 2, 5, 4], -1.0, 1.0, 3);
    let w = rand_tensor(&[2, 3, 3, 3], -1.0, 1.0, 4);
    let p = params([2, 2], [1, 1], [1, 1], 1);
    // (5 − 1)·2 − 2 + 2 + 1 + 1 = 10, (4 − 1)·2 − 2 + 2 + 0 + 1 = 7
    let y = x.conv_transpose2d(&w, &p, [1, 0]).unwrap();
    assert_eq!(y.shape(), &[1, 3, 10, 7]);
}

/// Pooling by its definition (MXNet's divisor for count_include_pad).
fn pool_direct(x: &Tensor, p: &Pool2dParams, avg: Option<bool>) -> (Vec<f32>, Vec<usize>) {
    let s = x.shape().to_vec();
    let xv = x.to_vec_f32().unwrap();
    let ext = |len: usize, a: usize| {
        let span = len + 2 * p.padding[a] - p.kernel[a];
        let mut o = if p.ceil_mode {
            span.div_ceil(p.strides[a])
        } else {
            span / p.strides[a]
        } + 1;
        if p.ceil_mode && (o - 1) * p.strides[a] >= len + p.padding[a] {
            o -= 1;
        }
        o
    };
    let (oh, ow) = (ext(s[2], 0), ext(s[3], 1));
    let mut out = Vec::new();
    for b in 0..s[0] {
        for c in 0..s[1] {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (ys, xs) = (
                        (oy * p.strides[0]) as isize - p.padding[0] as isize,
                        (ox * p.strides[1]) as isize - p.padding[1] as isize,
                    );
                    let vals: Vec<f32> = (0..p.kernel[0] as isize)
                        .flat_map(|i| (0..p.kernel[1] as isize).map(move |j| (i, j)))
                        .filter_map(|(i, j)| at(&xv, &s, b, c, ys + i, xs + j))
                        .collect();
                    out.push(match avg {
                        None => vals.iter().cloned().fold(f32::NEG_INFINITY, f32::max),
                        Some(include) => {
                            let div = if include {
                                let ye =
                                    (ys + p.kernel[0] as isize).min((s[2] + p.padding[0]) as isize);
                                let xe =
                                    (xs + p.kernel[1] as isize).min((s[3] + p.padding[1]) as isize);
                                ((ye - ys) * (xe - xs)) as f32
                            } else {
                                vals.len() as f32
                            };
                            vals.iter().sum::<f32>() / div
                        }
                    });
                }
            }
        }
    }
    (out, vec![s[0], s[1], oh, ow])
}

#[test]
fn pooling_matches_the_definition() {
    let x = rand_tensor(&[2, 3, 7, 8], -1.0, 1.0, 5);
    let cases = [
        Pool2dParams::new([2, 2]),
        Pool2dParams {
            kernel: [3, 3],
            strides: [2, 2],
            padding: [1, 1],
            ceil_mode: false,
        },
        Pool2dParams {
            kernel: [3, 2],
            strides: [2, 3],
            padding: [1, 0],
            ceil_mode: true,
        },
        Pool2dParams {
            kernel: [2, 2],
            strides: [2, 2],
            padding: [0, 0],
            ceil_mode: true,
        },
    ];
    for (k, p) in cases.iter().enumerate() {
        let (want, shape) = pool_direct(&x, p, None);
        let y = x.max_pool2d(p).unwrap();
        assert_eq!(y.shape(), &shape[..], "max case {k}");
        assert_close(&y.to_vec_f32().unwrap(), &want, 0.0);
        for include in [true, false] {
            let (want, _) = pool_direct(&x, p, Some(include));
            let y = x.avg_pool2d(p, include).unwrap();
            assert_close(&y.to_vec_f32().unwrap(), &want, 1e-6);
        }
    }
}

/// The gradients of `<conv(x, w), r>` by their definitions: `dx` gathers `r · w` at every
/// input position each window read, `dw` sums `r · x` over the batch and the pixels.
fn conv_grads_direct(x: &Tensor, w: &Tensor, r: &Tensor, p: &Conv2dParams) -> (Vec<f32>, Vec<f32>) {
    let (xs, ws, rs) = (x.shape().to_vec(), w.shape().to_vec(), r.shape().to_vec());
    let (xv, wv, rv) = (
        x.to_vec_f32().unwrap(),
        w.to_vec_f32().unwrap(),
        r.to_vec_f32().unwrap(),
    );
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let (oh, ow, og) = (rs[2], rs[3], o / p.groups);
    let (mut dx, mut dw) = (vec![0.0f64; xv.len()], vec![0.0f64; wv.len()]);
    for b in 0..xs[0] {
        for oc in 0..o {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let g = rv[((b * o + oc) * oh + oy) * ow + ox] as f64;
                for (ci, i, j) in
                    (0..cg).flat_map(|c| (0..kh).flat_map(move |i| (0..kw).map(move |j| (c, i, j))))
                {
                    let y =
                        (oy * p.strides[0] + i * p.dilation[0]) as isize - p.padding[0] as isize;
                    let xx =
                        (ox * p.strides[1] + j * p.dilation[1]) as isize - p.padding[1] as isize;
                    let c = oc / og * cg + ci;
                    if let Some(v) = at(&xv, &xs, b, c, y, xx) {
                        let wi = ((oc * cg + ci) * kh + i) * kw + j;
                        dw[wi] += g * v as f64;
                        let xi = ((b * xs[1] + c) * xs[2] + y as usize) * xs[3] + xx as usize;
                        dx[xi] += g * wv[wi] as f64;
                    }
                }
            }
        }
    }
    let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (f32s(dx), f32s(dw))
}

/// The input gradient runs as a convolution of `dy` with the flipped weight (unit
/// strides, 4+ channels per group, padding at most `(k − 1)·d`) or as columns scattered
/// back; the weight gradient on the shifted image (32+ output channels per group), as
/// long dot products (256+ pixels) or as packed products.
/// Each geometry below takes one of each pair, and all match the definitions.
#[test]
fn convolution_gradients_match_the_definitions_on_every_path() {
    let cases = [
        (
            [2, 16, 9, 8],
            [8, 16, 3, 3],
            params([1, 1], [1, 1], [1, 1], 1),
        ),
        (
            [1, 32, 10, 10],
            [6, 16, 3, 2],
            params([1, 1], [2, 1], [2, 1], 2),
        ),
        (
            [2, 16, 7, 7],
            [4, 16, 3, 3],
            params([1, 1], [3, 0], [1, 1], 1),
        ),
        (
            [1, 3, 20, 20],
            [4, 3, 3, 3],
            params([1, 1], [0, 0], [1, 1], 1),
        ),
        (
            [2, 16, 11, 9],
            [5, 16, 3, 3],
            params([2, 1], [1, 1], [1, 1], 1),
        ),
        (
            [1, 16, 19, 18],
            [3, 16, 1, 1],
            params([1, 1], [0, 0], [1, 1], 1),
        ),
        // 32+ output channels per group: the weight gradient on the shifted image.
        (
            [2, 4, 7, 6],
            [33, 4, 3, 2],
            params([1, 1], [1, 0], [1, 2], 1),
        ),
        (
            [1, 4, 6, 6],
            [64, 2, 3, 3],
            params([1, 1], [1, 1], [1, 1], 2),
        ),
    ];
    for (k, (xs, ws, p)) in cases.into_iter().enumerate() {
        let x = rand_tensor(&xs, -1.0, 1.0, 30 + k as u64).attach_grad();
        let w = rand_tensor(&ws, -1.0, 1.0, 40 + k as u64).attach_grad();
        let shape = x.conv2d(&w, None, &p).unwrap().shape().to_vec();
        let r = rand_tensor(&shape, -1.0, 1.0, 50 + k as u64);
        let y = boson::autograd::record(|| x.conv2d(&w, None, &p)?.mul(&r)?.sum_all()).unwrap();
        y.backward().unwrap();
        let (dx, dw) = conv_grads_direct(&x, &w, &r, &p);
        let grad = |t: &Tensor| t.grad().unwrap().unwrap().to_vec_f32().unwrap();
        assert_close(&grad(&x), &dx, 1e-4);
        assert_close(&grad(&w), &dw, 1e-4);
    }
}

const EPS: f32 = 1e-2;
const TOL: f32 = 2e-2;

#[test]
fn convolution_gradients_match_finite_differences() {
    let x = rand_tensor(&[2, 4, 6, 5], -1.0, 1.0, 7);
    let w = rand_tensor(&[4, 2, 3, 2], -1.0, 1.0, 8);
    for p in [
        params([1, 1], [0, 0], [1, 1], 1),
        params([2, 1], [1, 1], [1, 2], 2),
    ] {
        let w = if p.groups == 1 {
            rand_tensor(&[3, 4, 3, 2], -1.0, 1.0, 9)
        } else {
            w.clone()
        };
        let b = rand_tensor(&[w.shape()[0]], -1.0, 1.0, 15);
        gradcheck(
            &[x.clone(), w, b],
            |v| v[0].conv2d(&v[1], Some(&v[2]), &p),
            EPS,
            TOL,
        );
    }
    let w = rand_tensor(&[3, 4, 3, 2], -1.0, 1.0, 9);
    let b = rand_tensor(&[3], -1.0, 1.0, 15);
    let p = params([1, 1], [1, 0], [1, 1], 1);
    gradcheck(
        &[x.clone(), w, b],
        |v| v[0].conv2d_relu(&v[1], Some(&v[2]), &p),
        EPS,
        TOL,
    );
    let xt = rand_tensor(&[2, 3, 4, 3], -1.0, 1.0, 10);
    let wt = rand_tensor(&[3, 2, 3, 3], -1.0, 1.0, 11);
    let p = params([2, 2], [1, 0], [1, 1], 1);
    gradcheck(
        &[xt, wt],
        |v| v[0].conv_transpose2d(&v[1], &p, [1, 1]),
        EPS,
        TOL,
    );
}

/// The fused ReLU gives the values and gradients of a convolution followed by `relu`,
/// to the bit, with and without a bias, on the implicit and the column paths.
#[test]
fn conv2d_relu_is_conv2d_then_relu() {
    let cases = [
        (
            [3, 4, 7, 6],
            [5, 4, 3, 3],
            params([1, 1], [1, 1], [1, 1], 1),
        ),
        (
            [2, 4, 9, 8],
            [6, 2, 3, 2],
            params([2, 1], [0, 1], [1, 2], 2),
        ),
    ];
    for (k, (xs, ws, p)) in cases.into_iter().enumerate() {
        for with_bias in [true, false] {
            let seed = 40 + 4 * k as u64;
            let x = rand_tensor(&xs, -1.0, 1.0, seed).attach_grad();
            let w = rand_tensor(&ws, -1.0, 1.0, seed + 1).attach_grad();
            let b = rand_tensor(&[ws[0]], -1.0, 1.0, seed + 2).attach_grad();
            let bias = with_bias.then_some(&b);
            // Each backward writes (not adds) the leaves' gradients.
            let grads = |f: &dyn Fn() -> boson::Result<Tensor>| {
                let y = autograd::record(f).unwrap();
                let r = rand_tensor(y.shape(), -1.0, 1.0, seed + 3);
                let loss = autograd::record(|| y.mul(&r)?.sum_all()).unwrap();
                loss.backward().unwrap();
                let g = |t: &Tensor| t.grad().unwrap().map(|g| g.to_vec_f32().unwrap());
                (y.to_vec_f32().unwrap(), g(&x), g(&w), g(&b))
            };
            let want = grads(&|| x.conv2d(&w, bias, &p)?.relu());
            let got = grads(&|| x.conv2d_relu(&w, bias, &p));
            assert!(got.1.is_some() && got.2.is_some());
            assert_eq!(got.3.is_some(), with_bias);
            assert_eq!(got, want, "case {k}, bias {with_bias}");
        }
    }
}

#[test]
fn pooling_gradients_match_finite_differences() {
    // Distinct values a step apart, so the maximum does not switch within ±EPS.
    let n = 2 * 3 * 6 * 7;
    let mut v: Vec<f32> = (0..n).map(|i| (i * 37 % n) as f32 * 0.05).collect();
    v.reverse();
    let x = Tensor::from_vec(v, &[2, 3, 6, 7]).unwrap();
    let overlapping = Pool2dParams {
        kernel: [3, 3],
        strides: [2, 2],
        padding: [1, 1],
        ceil_mode: true,
    };
    for p in [Pool2dParams::new([2, 2]), overlapping] {
        gradcheck(std::slice::from_ref(&x), |v| v[0].max_pool2d(&p), EPS, TOL);
        gradcheck(
            std::slice::from_ref(&x),
            |v| v[0].avg_pool2d(&p, true),
            EPS,
            TOL,
        );
        gradcheck(
            std::slice::from_ref(&x),
            |v| v[0].avg_pool2d(&p, false),
            EPS,
            TOL,
        );
    }
}

fn init(b: &impl Block) {
    b.initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
}

#[test]
fn layers_infer_shapes_and_train() {
    let x = rand_tensor(&[2, 3, 10, 9], -1.0, 1.0, 12);
    let conv = Conv2D::new(8, [3, 3])
        .strides([2, 2])
        .padding([1, 1])
        .activation(Activation::Relu);
    init(&conv);
    assert_eq!(conv.forward(&x).unwrap().shape(), &[2, 8, 5, 5]);
    assert_eq!(conv.weight.shape(), vec![8, 3, 3, 3]);
    let grouped = Conv2D::new(6, [3, 3])
        .groups(3)
        .in_channels(3)
        .use_bias(false);
    init(&grouped);
    assert_eq!(grouped.weight.shape(), vec![6, 1, 3, 3]);
    assert_eq!(grouped.forward(&x).unwrap().shape(), &[2, 6, 8, 7]);
    let up = Conv2DTranspose::new(4, [4, 4])
        .strides([2, 2])
        .padding([1, 1]);
    init(&up);
    assert_eq!(up.forward(&x).unwrap().shape(), &[2, 4, 20, 18]);
    assert_eq!(up.weight.shape(), vec![3, 4, 4, 4]);

    let seq = rand_tensor(&[2, 3, 11], -1.0, 1.0, 13);
    let c1 = Conv1D::new(5, 3).padding(1).strides(2);
    init(&c1);
    assert_eq!(c1.forward(&seq).unwrap().shape(), &[2, 5, 6]);
    assert_eq!(c1.weight.shape(), vec![5, 3, 3]);
    assert_eq!(MaxPool1D::new(2).forward(&seq).unwrap().shape(), &[2, 3, 5]);
    assert_eq!(
        AvgPool1D::new(3)
            .strides(2)
            .padding(1)
            .forward(&seq)
            .unwrap()
            .shape(),
        &[2, 3, 6]
    );
    assert_eq!(
        MaxPool2D::new([2, 2]).forward(&x).unwrap().shape(),
        &[2, 3, 5, 4]
    );
    assert_eq!(
        MaxPool2D::new([2, 2])
            .ceil_mode(true)
            .forward(&x)
            .unwrap()
            .shape(),
        &[2, 3, 5, 5]
    );
    assert_eq!(
        AvgPool2D::new([3, 3]).forward(&x).unwrap().shape(),
        &[2, 3, 3, 3]
    );

    let g = GlobalAvgPool2D.forward(&x).unwrap();
    assert_eq!(g.shape(), &[2, 3, 1, 1]);
    let mean0: f32 = x
        .slice_axis(0, 0, 1)
        .unwrap()
        .slice_axis(1, 0, 1)
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((g.to_vec_f32().unwrap()[0] - mean0).abs() < 1e-6);
    let m = GlobalMaxPool2D.forward(&x).unwrap();
    assert_eq!(m.shape(), &[2, 3, 1, 1]);
    let v = x.to_vec_f32().unwrap();
    let max0 = v[..90].iter().cloned().fold(f32::MIN, f32::max);
    assert_eq!(m.to_vec_f32().unwrap()[0], max0);

    // Gradients reach every parameter through a small conv net.
    let y = boson::autograd::record(|| conv.forward(&x)?.sum_all()).unwrap();
    y.backward().unwrap();
    assert!(
        conv.weight
            .grad()
            .unwrap()
            .to_dense()
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
            > 0.0
    );
    assert!(
        conv.bias
            .as_ref()
            .unwrap()
            .grad()
            .unwrap()
            .to_dense()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
            > 0.0
    );
}

fn shape_error(r: boson::Result<Tensor>) -> String {
    match r {
        Err(
            e @ (Error::InvalidShape { .. }
            | Error::ShapeMismatch { .. }
            | Error::InvalidArgument(_)),
        ) => e.to_string(),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn bad_shapes_are_errors_naming_them() {
    let x = rand_tensor(&[2, 3, 5, 5], -1.0, 1.0, 14);
    let msg = shape_error(Conv2D::new(4, [3, 3]).forward(&rand_tensor(&[3, 5, 5], 0.0, 1.0, 1)));
    assert!(msg.contains("NCHW") && msg.contains("[3, 5, 5]"), "{msg}");
    let conv = Conv2D::new(4, [7, 7]);
    init(&conv);
    let msg = shape_error(conv.forward(&x));
    assert!(msg.contains("does not fit the padded 5×5"), "{msg}");
    let msg = shape_error(x.conv2d(
        &rand_tensor(&[4, 2, 3, 3], 0.0, 1.0, 2),
        None,
        &Conv2dParams::default(),
    ));
    assert!(msg.contains("[4, 2, 3, 3]"), "{msg}");
    let msg = shape_error(x.conv2d(
        &rand_tensor(&[4, 1, 3, 3], 0.0, 1.0, 2),
        None,
        &params([1, 1], [0, 0], [1, 1], 2),
    ));
    assert!(msg.contains("groups = 2"), "{msg}");
    let msg = shape_error(x.conv2d(
        &rand_tensor(&[4, 3, 3, 3], 0.0, 1.0, 2),
        None,
        &params([0, 1], [0, 0], [1, 1], 1),
    ));
    assert!(msg.contains("strides") && msg.contains("[0, 1]"), "{msg}");
    let msg = shape_error(x.conv2d(
        &rand_tensor(&[4, 3, 3, 3], 0.0, 1.0, 2),
        Some(&rand_tensor(&[3], 0.0, 1.0, 2)),
        &Conv2dParams::default(),
    ));
    assert!(msg.contains("bias") && msg.contains("[3]"), "{msg}");
    let msg = shape_error(x.max_pool2d(&Pool2dParams::new([6, 2])));
    assert!(
        msg.contains("[6, 2]") && msg.contains("[2, 3, 5, 5]"),
        "{msg}"
    );
    let msg = shape_error(x.max_pool2d(&Pool2dParams {
        kernel: [2, 2],
        strides: [2, 2],
        padding: [2, 0],
        ceil_mode: false,
    }));
    assert!(msg.contains("padding [2, 0]"), "{msg}");
    let msg = shape_error(MaxPool1D::new(2).forward(&x));
    assert!(msg.contains("NCW"), "{msg}");
    let msg = shape_error(x.conv_transpose2d(
        &rand_tensor(&[2, 3, 3, 3], 0.0, 1.0, 2),
        &Conv2dParams::default(),
        [0, 0],
    ));
    assert!(msg.contains("[2, 3, 3, 3]"), "{msg}");
    let msg = shape_error(x.conv_transpose2d(
        &rand_tensor(&[3, 3, 3, 3], 0.0, 1.0, 2),
        &Conv2dParams::default(),
        [1, 0],
    ));
    assert!(msg.contains("output_padding [1, 0]"), "{msg}");
}

/// A global maximum's gradient goes to its first position, as MaxPool2D's: ties (a
/// saturated image) must not multiply it.
#[test]
fn global_max_pool_sends_the_gradient_to_one_tied_position() {
    let x = Tensor::ones(&[1, 2, 3, 3], Device::Cpu)
        .unwrap()
        .attach_grad();
    let y = boson::autograd::record(|| GlobalMaxPool2D.forward(&x)?.sum_all()).unwrap();
    y.backward().unwrap();
    let g = x.grad().unwrap().unwrap().to_vec_f32().unwrap();
    assert_eq!(g.iter().sum::<f32>(), 2.0);
    assert_eq!((g[0], g[9]), (1.0, 1.0));
}

/// Channel counts that do not split into the groups, or do not match a fixed
/// `in_channels`, are errors before the weight's shape is fixed, so a later correct
/// input still works.
#[test]
fn layers_check_channels_before_fixing_their_weights() {
    let x3 = rand_tensor(&[2, 3, 6, 6], -1.0, 1.0, 20);
    let x4 = rand_tensor(&[2, 4, 6, 6], -1.0, 1.0, 21);
    let conv = Conv2D::new(4, [3, 3]).groups(2);
    init(&conv);
    let msg = shape_error(conv.forward(&x3));
    assert!(
        msg.contains("3 channels") && msg.contains("groups = 2"),
        "{msg}"
    );
    assert_eq!(conv.forward(&x4).unwrap().shape(), &[2, 4, 4, 4]);
    let fixed = Conv2D::new(4, [3, 3]).in_channels(4);
    init(&fixed);
    let msg = shape_error(fixed.forward(&x3));
    assert!(msg.contains("in_channels = 4"), "{msg}");
    let up = Conv2DTranspose::new(5, [3, 3]).groups(2);
    init(&up);
    let msg = shape_error(up.forward(&x4));
    assert!(
        msg.contains("5 output") && msg.contains("groups = 2"),
        "{msg}"
    );
}

/// Sizes that would overflow or exceed the allocation limit are errors naming them,
/// not an abort.
#[test]
fn huge_outputs_are_errors() {
    let x = rand_tensor(&[1, 1, 4, 4], -1.0, 1.0, 22);
    let w = rand_tensor(&[1, 1, 1, 1], -1.0, 1.0, 23);
    let p = params([1, 1], [1 << 20, 1 << 20], [1, 1], 1);
    let msg = shape_error(x.conv2d(&w, None, &p));
    assert!(
        msg.contains("conv2d output") && msg.contains("limit"),
        "{msg}"
    );
    let p = params([1, 1], [usize::MAX / 2, 0], [1, 1], 1);
    let msg = shape_error(x.conv2d(&w, None, &p));
    assert!(msg.contains("conv2d"), "{msg}");
    let p = params([usize::MAX / 2, 1], [0, 0], [1, 1], 1);
    let msg = shape_error(x.conv_transpose2d(&w, &p, [0, 0]));
    assert!(msg.contains("overflow"), "{msg}");
}

/// The 2 × 2 stride-2 fast path keeps the general rule: a window's value and gradient
/// are its first largest entry read row by row (ties go to the earlier one; a NaN counts
/// only in the first place), and a column or row no window covers gets no gradient.
#[test]
fn max_pool_2x2_ties_and_nan_follow_the_first_position() {
    let nan = f32::NAN;
    // One 2 × 5 plane: windows (cols 0–1) all equal, (cols 2–3) a tie of 3s in the
    // second and third place; column 4 is in no window.
    let x = Tensor::from_vec(
        vec![1.0, 1.0, 1.0, 3.0, 9.0, 1.0, 1.0, 3.0, 2.0, 9.0],
        &[1, 1, 2, 5],
    )
    .unwrap()
    .attach_grad();
    let p = Pool2dParams::new([2, 2]);
    let y = boson::autograd::record(|| x.max_pool2d(&p)?.mul_scalar(2.0)?.sum_all()).unwrap();
    y.backward().unwrap();
    assert_eq!(
        x.max_pool2d(&p).unwrap().to_vec_f32().unwrap(),
        vec![1.0, 3.0]
    );
    let g = x.grad().unwrap().unwrap().to_vec_f32().unwrap();
    assert_eq!(g, vec![2.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    // NaN first: the window's value is NaN and its gradient goes there; NaN later: ignored.
    let x = Tensor::from_vec(vec![nan, 5.0, 1.0, nan, 0.0, 2.0, 4.0, 3.0], &[1, 1, 2, 4])
        .unwrap()
        .attach_grad();
    let y = boson::autograd::record(|| x.max_pool2d(&p)).unwrap();
    let v = y.to_vec_f32().unwrap();
    assert!(v[0].is_nan() && v[1] == 4.0, "{v:?}");
    let loss = boson::autograd::record(|| {
        let w = Tensor::from_vec(vec![1.0, 1.0], &[1, 1, 1, 2])?;
        x.max_pool2d(&p)?.mul(&w)?.sum_all()
    })
    .unwrap();
    loss.backward().unwrap();
    let g = x.grad().unwrap().unwrap().to_vec_f32().unwrap();
    assert_eq!(g, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
}
