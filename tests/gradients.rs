//! Finite-difference gradient checks for every differentiable op and layer.

mod common;
use boson::loss::*;
use boson::nn::{Activation, BatchNorm, Block, Dense, Forward, Initializer, LayerNorm};
use boson::{Device, Tensor};
use common::{gradcheck, rand_tensor};

const EPS: f32 = 1e-2;
const TOL: f32 = 2e-2;

#[test]
fn unary_ops() {
    let x = rand_tensor(&[3, 4], -2.0, 2.0, 1);
    let pos = rand_tensor(&[3, 4], 0.5, 2.0, 2);
    gradcheck(std::slice::from_ref(&x), |v| v[0].neg(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].exp(), EPS, TOL);
    gradcheck(std::slice::from_ref(&pos), |v| v[0].log(), EPS, TOL);
    gradcheck(std::slice::from_ref(&pos), |v| v[0].sqrt(), EPS, TOL);
    gradcheck(std::slice::from_ref(&pos), |v| v[0].neg()?.abs(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].square(), EPS, TOL);
    gradcheck(std::slice::from_ref(&pos), |v| v[0].relu(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].sigmoid(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].tanh(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].softrelu(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].softsign(), EPS, TOL);
    gradcheck(std::slice::from_ref(&pos), |v| v[0].recip(), EPS, TOL);
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].affine(-1.5, 0.3),
        EPS,
        TOL,
    );
    gradcheck(std::slice::from_ref(&pos), |v| v[0].powf(2.5), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].clip(-1.0, 1.0), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].erf(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].gelu(), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].gelu_grad(), EPS, TOL);
}

// Values of erf, the exact GELU (x·Φ(x)) and its derivative (Φ(x) + x·φ(x)) at known
// points (PyTorch's torch.special.erf and F.gelu give the same to f32 precision; the
// derivative from Python's math.erf).
#[test]
fn erf_and_gelu_values() {
    let x = boson::Tensor::from_vec(vec![-2.0, -0.5, 0.0, 0.5, 1.0, 3.0], &[6]).unwrap();
    let erf = [
        -0.995_322_3,
        -0.520_499_9,
        0.0,
        0.520_499_9,
        0.842_700_8,
        0.999_977_9,
    ];
    let gelu = [
        -0.045_500_26,
        -0.154_268_6,
        0.0,
        0.345_731_4,
        0.841_344_7,
        2.995_950_2,
    ];
    let gelu_grad = [
        -0.085_231_8,
        0.132_504_9,
        0.5,
        0.867_495_1,
        1.083_315_5,
        1.011_945_6,
    ];
    for (got, want) in [(x.erf(), erf), (x.gelu(), gelu), (x.gelu_grad(), gelu_grad)] {
        for (a, b) in got.unwrap().to_vec_f32().unwrap().iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let a = rand_tensor(&[3, 4], -2.0, 2.0, 3);
    let row = rand_tensor(&[4], 0.5, 2.0, 4);
    let col = rand_tensor(&[3, 1], 0.5, 2.0, 5);
    gradcheck(&[a.clone(), row.clone()], |v| v[0].add(&v[1]), EPS, TOL);
    gradcheck(&[a.clone(), col.clone()], |v| v[0].sub(&v[1]), EPS, TOL);
    gradcheck(&[a.clone(), row.clone()], |v| v[0].mul(&v[1]), EPS, TOL);
    gradcheck(&[a.clone(), col.clone()], |v| v[0].div(&v[1]), EPS, TOL);
    let b = rand_tensor(&[3, 4], -2.0, 2.0, 6);
    gradcheck(&[a.clone(), b.clone()], |v| v[0].maximum(&v[1]), EPS, TOL);
    gradcheck(&[a.clone(), b.clone()], |v| v[0].minimum(&v[1]), EPS, TOL);
    let base = rand_tensor(&[3, 4], 0.5, 2.0, 7);
    gradcheck(&[base, row.clone()], |v| v[0].pow(&v[1]), EPS, TOL);
    gradcheck(
        &[a.clone(), b.clone()],
        |v| v[0].where_positive(&v[1]),
        EPS,
        TOL,
    );
    gradcheck(
        &[a, col],
        |v| v[0].where_positive(&v[1].affine(1.0, -1.0)?),
        EPS,
        TOL,
    );
}

#[test]
fn reductions_and_shape_ops() {
    let x = rand_tensor(&[2, 3, 4], -2.0, 2.0, 8);
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].sum_axis(1, false),
        EPS,
        TOL,
    );
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].sum_axes(&[0, 2], true),
        EPS,
        TOL,
    );
    gradcheck(std::slice::from_ref(&x), |v| v[0].mean_all(), EPS, TOL);
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].max_axis(2, false),
        EPS,
        TOL,
    );
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].reshape(&[6, 4]),
        EPS,
        TOL,
    );
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].permute(&[2, 0, 1]),
        EPS,
        TOL,
    );
    gradcheck(std::slice::from_ref(&x), |v| v[0].transpose(0, 2), EPS, TOL);
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].slice_axis(1, 1, 3),
        EPS,
        TOL,
    );
    let small = rand_tensor(&[3, 1], -1.0, 1.0, 9);
    gradcheck(&[small], |v| v[0].broadcast_to(&[2, 3, 4]), EPS, TOL);
    let y = rand_tensor(&[2, 2, 4], -2.0, 2.0, 10);
    gradcheck(
        &[x.clone(), y],
        |v| Tensor::concat(&[&v[0], &v[1]], 1),
        EPS,
        TOL,
    );
    gradcheck(std::slice::from_ref(&x), |v| v[0].softmax(2), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].log_softmax(1), EPS, TOL);
    // pick: one entry per row of the last axis (x is [2, 3, 4]: six rows).
    let idx = Tensor::from_vec_i64(vec![0, 3, 1, 2, 2, 0], &[2, 3]).unwrap();
    gradcheck(std::slice::from_ref(&x), |v| v[0].pick(&idx), EPS, TOL);
    // fill_at: a constant at some positions (one repeated), no gradient there.
    let at = Tensor::from_vec_i64(vec![0, 5, 5, 23, 11], &[5]).unwrap();
    gradcheck(
        std::slice::from_ref(&x),
        |v| v[0].fill_at(&at, 0.5),
        EPS,
        TOL,
    );
    // where and tril: the gradient reaches the taken / kept elements only.
    let y = rand_tensor(&[2, 3, 4], -2.0, 2.0, 12);
    let cond = rand_tensor(&[2, 3, 4], -1.0, 1.0, 13)
        .gt_scalar(0.0)
        .unwrap();
    gradcheck(&[x.clone(), y], |v| v[0].where_(&cond, &v[1]), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].tril(0), EPS, TOL);
    gradcheck(std::slice::from_ref(&x), |v| v[0].tril(-1), EPS, TOL);
    // Dropout is a multiplication by a mask that depends only on the seed.
    gradcheck(&[x], |v| v[0].dropout(0.5, 7), EPS, TOL);
}

#[test]
fn matmul_2d_batched_and_folded() {
    let a = rand_tensor(&[3, 4], -1.0, 1.0, 11);
    let b = rand_tensor(&[4, 5], -1.0, 1.0, 12);
    gradcheck(&[a, b.clone()], |v| v[0].matmul(&v[1]), EPS, TOL);
    let a3 = rand_tensor(&[2, 3, 4], -1.0, 1.0, 13);
    let b3 = rand_tensor(&[2, 4, 5], -1.0, 1.0, 14);
    gradcheck(&[a3.clone(), b3], |v| v[0].matmul(&v[1]), EPS, TOL);
    gradcheck(&[a3, b], |v| v[0].matmul(&v[1]), EPS, TOL);
    // Transposed operands (read through strides, never copied), all four combinations.
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let a = rand_tensor(if ta { &[2, 4, 3] } else { &[2, 3, 4] }, -1.0, 1.0, 21);
        let b = rand_tensor(if tb { &[2, 5, 4] } else { &[2, 4, 5] }, -1.0, 1.0, 22);
        gradcheck(
            &[a.clone(), b.clone()],
            move |v| v[0].matmul_t(&v[1], ta, tb),
            EPS,
            TOL,
        );
        let a2 = a.reshape(&[2 * a.shape()[1], a.shape()[2]]).unwrap();
        let shape_b = if tb { [5, 4] } else { [4, 5] };
        let b2 = rand_tensor(&shape_b, -1.0, 1.0, 23);
        if !ta {
            gradcheck(
                &[a2, b2],
                move |v| v[0].matmul_t(&v[1], false, tb),
                EPS,
                TOL,
            );
        }
    }
}

#[test]
fn take_dense_and_sparse() {
    let table = rand_tensor(&[6, 3], -1.0, 1.0, 15);
    let idx = Tensor::from_vec_i64(vec![4, 1, 4, 0, 4], &[5]).unwrap();
    let i2 = idx.clone();
    gradcheck(
        std::slice::from_ref(&table),
        move |v| v[0].take(&i2, false),
        EPS,
        TOL,
    );
    gradcheck(&[table], move |v| v[0].take(&idx, true), EPS, TOL);
}

#[test]
fn layers() {
    let x = rand_tensor(&[4, 3], -1.0, 1.0, 16);
    let dense = Dense::new(2).activation(Activation::Tanh);
    dense
        .initialize(&Initializer::xavier(3.0), Device::Cpu)
        .unwrap();
    dense.forward(&x).unwrap();
    let w = dense.weight.data().unwrap();
    let b = dense.bias.as_ref().unwrap().data().unwrap();
    // Check the Dense math through its parameters as explicit inputs.
    gradcheck(
        &[x.clone(), w.copy().unwrap(), b.copy().unwrap()],
        |v| v[0].matmul(&v[1].transpose(0, 1)?)?.add(&v[2])?.tanh(),
        EPS,
        TOL,
    );
    // And the layer itself: gradient w.r.t. its input.
    gradcheck(std::slice::from_ref(&x), |v| dense.forward(&v[0]), EPS, TOL);
    let ln = LayerNorm::new(3);
    ln.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    gradcheck(std::slice::from_ref(&x), |v| ln.forward(&v[0]), EPS, 5e-2);
    let bn = BatchNorm::new(3);
    bn.initialize(&Initializer::Zero, Device::Cpu).unwrap();
    gradcheck(
        &[x],
        |v| boson::autograd::train_mode(|| bn.forward(&v[0])),
        EPS,
        5e-2,
    );
}

#[test]
fn losses() {
    let pred = rand_tensor(&[4, 3], -1.5, 1.5, 17);
    let target = rand_tensor(&[4, 3], -1.0, 1.0, 18);
    let prob = rand_tensor(&[4, 3], 0.1, 0.9, 19);
    let signed = Tensor::from_vec(
        vec![1., -1., 1., -1., 1., 1., -1., -1., 1., -1., 1., 1.],
        &[4, 3],
    )
    .unwrap();
    let t2 = target.clone();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| L2Loss::new().forward(&v[0], &t2, None),
        EPS,
        TOL,
    );
    let t2 = target.clone();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| L1Loss::new().forward(&v[0], &t2, None),
        EPS,
        TOL,
    );
    let t2 = target.clone();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| HuberLoss::new(0.5)?.forward(&v[0], &t2, None),
        EPS,
        TOL,
    );
    let p2 = prob.clone();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| SigmoidBinaryCrossEntropyLoss::new().forward(&v[0], &p2, None),
        EPS,
        TOL,
    );
    // With a per-class positive weight, from logits and from probabilities.
    let (p2, pw) = (
        prob.clone(),
        Tensor::from_vec(vec![0.5, 2.0, 3.0], &[3]).unwrap(),
    );
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| {
            SigmoidBinaryCrossEntropyLoss::new()
                .pos_weight(pw.clone())
                .weighted(1.5)
                .forward(&v[0], &p2, None)
        },
        EPS,
        TOL,
    );
    let (p2, pw) = (
        prob.clone(),
        Tensor::from_vec(vec![0.5, 2.0, 3.0], &[3]).unwrap(),
    );
    gradcheck(
        std::slice::from_ref(&target.affine(0.3, 0.5).unwrap()),
        move |v| {
            SigmoidBinaryCrossEntropyLoss::new()
                .from_sigmoid(true)
                .pos_weight(pw.clone())
                .forward(&v[0], &p2, None)
        },
        EPS,
        TOL,
    );
    // Classes along axis 1 of a [2, 3, 2] prediction (sparse labels [2, 2]).
    let cube = rand_tensor(&[2, 3, 2], -1.5, 1.5, 21);
    let cube_labels = Tensor::from_vec_i64(vec![0, 2, 1, 1], &[2, 2]).unwrap();
    gradcheck(
        &[cube],
        move |v| {
            SoftmaxCrossEntropyLoss::new()
                .axis(1)
                .forward(&v[0], &cube_labels, None)
        },
        EPS,
        TOL,
    );
    let labels = Tensor::from_vec_i64(vec![0, 2, 1, 2], &[4]).unwrap();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| SoftmaxCrossEntropyLoss::new().forward(&v[0], &labels, None),
        EPS,
        TOL,
    );
    let positives = Tensor::from_vec_i64(vec![0, 2, 1, 0], &[4]).unwrap();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| BprLoss::new().forward(&v[0], &positives, None),
        EPS,
        TOL,
    );
    let s2 = signed.clone();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| HingeLoss::new().forward(&v[0], &s2, None),
        EPS,
        TOL,
    );
    let s2 = signed.clone();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| LogisticLoss::new(LabelFormat::Signed).forward(&v[0], &s2, None),
        EPS,
        TOL,
    );
    let p2 = prob.clone();
    gradcheck(
        std::slice::from_ref(&pred),
        move |v| {
            KLDivLoss::new()
                .from_logits(false)
                .forward(&v[0], &p2, None)
        },
        EPS,
        TOL,
    );
    let lab = Tensor::from_vec(vec![1., -1., 1., -1.], &[4]).unwrap();
    gradcheck(
        &[pred.clone(), target.clone()],
        move |v| {
            CosineEmbeddingLoss::new()
                .margin(0.1)
                .forward(&v[0], &v[1], &lab, None)
        },
        EPS,
        5e-2,
    );
    let neg = rand_tensor(&[4, 3], -1.0, 1.0, 20);
    gradcheck(
        &[pred, target, neg],
        |v| TripletLoss::new().forward(&v[0], &v[1], &v[2], None),
        EPS,
        TOL,
    );
}

#[test]
fn pick_and_fused_softmax_match_their_definitions_on_long_rows() {
    // Large enough for the parallel row path: 300 rows of 2000.
    let x = rand_tensor(&[300, 2000], -8.0, 8.0, 21);
    let v = x.to_vec_f32().unwrap();
    let p = x.softmax(1).unwrap().to_vec_f32().unwrap();
    let lp = x.log_softmax(1).unwrap().to_vec_f32().unwrap();
    for r in [0, 151, 299] {
        let row = &v[r * 2000..(r + 1) * 2000];
        let m = row.iter().copied().fold(f32::MIN, f32::max) as f64;
        let s: f64 = row.iter().map(|&a| (a as f64 - m).exp()).sum();
        for j in [0, 999, 1999] {
            let want = (row[j] as f64 - m).exp() / s;
            assert!(
                (p[r * 2000 + j] as f64 - want).abs() < 1e-6,
                "softmax [{r},{j}]"
            );
            let lwant = row[j] as f64 - m - s.ln();
            assert!(
                (lp[r * 2000 + j] as f64 - lwant).abs() < 1e-4,
                "log_softmax [{r},{j}]"
            );
        }
    }
    // Masked entries (fill_at -inf) get probability 0 and no gradient.
    let masked = Tensor::from_vec_i64(vec![0, 1, 4001], &[3]).unwrap();
    let leaf = x.attach_grad();
    let y =
        boson::autograd::record(|| leaf.fill_at(&masked, f32::NEG_INFINITY)?.softmax(1)).unwrap();
    let pv = y.to_vec_f32().unwrap();
    assert_eq!((pv[0], pv[1], pv[4001]), (0.0, 0.0, 0.0));
    assert!((pv[..2000].iter().sum::<f32>() - 1.0).abs() < 1e-5);
    y.backward_with(&rand_tensor(&[300, 2000], -1.0, 1.0, 5))
        .unwrap();
    let g = leaf.grad().unwrap().unwrap().to_vec_f32().unwrap();
    assert_eq!((g[0], g[1], g[4001]), (0.0, 0.0, 0.0));
    assert!(g[2] != 0.0);
    let idx = Tensor::from_vec_i64((0..300).map(|r| (r * 7) % 2000).collect(), &[300]).unwrap();
    let picked = x.pick(&idx).unwrap().to_vec_f32().unwrap();
    for r in [0usize, 151, 299] {
        assert_eq!(picked[r], v[r * 2000 + (r * 7) % 2000]);
    }
}

#[test]
fn where_and_tril_values() {
    let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s).unwrap();
    // The side not taken may hold an infinity: it never reaches the output.
    let a = t(vec![1.0, f32::INFINITY, 3.0, 4.0], &[2, 2]);
    let b = t(vec![f32::NEG_INFINITY, 20.0, 30.0, 40.0], &[2, 2]);
    let cond = t(vec![1.0, 0.0, 1.0, 0.0], &[2, 2]);
    let w = a.where_(&cond, &b).unwrap().to_vec_f32().unwrap();
    assert_eq!(w, vec![1.0, 20.0, 3.0, 40.0]);
    let m = t((1..=12).map(|v| v as f32).collect(), &[3, 4]);
    let lower = m.tril(0).unwrap().to_vec_f32().unwrap();
    assert_eq!(
        lower,
        vec![1., 0., 0., 0., 5., 6., 0., 0., 9., 10., 11., 0.]
    );
    let strict = m.tril(-1).unwrap().to_vec_f32().unwrap();
    assert_eq!(
        strict,
        vec![0., 0., 0., 0., 5., 0., 0., 0., 9., 10., 0., 0.]
    );
    let wide = m.tril(1).unwrap().to_vec_f32().unwrap();
    assert_eq!(
        wide,
        vec![1., 2., 0., 0., 5., 6., 7., 0., 9., 10., 11., 12.]
    );
    // Errors name the shapes.
    assert!(a.where_(&t(vec![1.0], &[1]), &b).is_err());
    assert!(a.where_(&cond, &t(vec![1.0, 2.0], &[2])).is_err());
    let e = t(vec![1.0, 2.0], &[2]).tril(0).unwrap_err().to_string();
    assert!(e.contains("at least 2 axes"), "{e}");
}
