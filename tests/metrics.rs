//! Metric values against hand-computed ones.

use boson::metric::{
    Accuracy, CompositeMetric, HitRate, Loss, Mae, Metric, Mse, Ndcg, PearsonCorrelation, Rmse,
    TopKAccuracy, F1,
};
use boson::Tensor;

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

fn close(a: f32, b: f32) {
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn regression_metrics_accumulate_over_batches() {
    let mut mse = Mse::new();
    let mut rmse = Rmse::new();
    let mut mae = Mae::new();
    // errors: 1, -2 | 3
    for (l, p) in [(vec![1.0, 2.0], vec![2.0, 0.0]), (vec![0.0], vec![3.0])] {
        let (l, p) = (t(&l, &[l.len()]), t(&p, &[p.len(), 1]));
        mse.update(&l, &p).unwrap();
        rmse.update(&l, &p).unwrap();
        mae.update(&l, &p).unwrap();
    }
    close(mse.get().1, 14.0 / 3.0);
    close(rmse.get().1, (14.0f32 / 3.0).sqrt());
    close(mae.get().1, 2.0);
    assert!(!rmse.higher_is_better());
    rmse.reset();
    assert!(rmse.get().1.is_nan());
    assert!(mse.update(&t(&[1.0], &[1]), &t(&[1.0, 2.0], &[2])).is_err());
}

#[test]
fn pearson_matches_hand_computation() {
    let mut m = PearsonCorrelation::new();
    m.update(&t(&[1.0, 2.0], &[2]), &t(&[2.0, 4.0], &[2]))
        .unwrap();
    m.update(&t(&[3.0], &[1]), &t(&[5.0], &[1])).unwrap();
    // x = 2,4,5; y = 1,2,3: cov = 3/3... r = 3 / sqrt(4.6667 * 2) = 0.98198
    close(m.get().1, 0.981_980_5);
    assert!(m.higher_is_better());
}

#[test]
fn accuracy_topk_and_f1() {
    let labels = t(&[0.0, 1.0, 2.0, 1.0], &[4]);
    let scores = t(
        &[
            0.9, 0.1, 0.0, /**/ 0.5, 0.3, 0.2, /**/ 0.1, 0.2, 0.7, /**/ 0.2, 0.5,
            0.3,
        ],
        &[4, 3],
    );
    let mut acc = Accuracy::new();
    acc.update(&labels, &scores).unwrap();
    close(acc.get().1, 0.75);
    let mut top2 = TopKAccuracy::new(2).unwrap();
    top2.update(&labels, &scores).unwrap();
    close(top2.get().1, 1.0);
    assert!(TopKAccuracy::new(0).is_err());

    // tp = 2, fp = 1, fn = 1 → F1 = 4 / 6
    let mut f1 = F1::new();
    f1.update(
        &t(&[1.0, 1.0, 0.0, 1.0, 0.0], &[5]),
        &t(&[0.9, 0.8, 0.7, 0.2, 0.1], &[5]),
    )
    .unwrap();
    close(f1.get().1, 2.0 / 3.0);
    assert!(f1.update(&t(&[2.0], &[1]), &t(&[0.9], &[1])).is_err());
}

#[test]
fn loss_metric_and_composite() {
    let mut l = Loss::new("l2loss");
    l.update(&t(&[0.0], &[1]), &t(&[1.0, 3.0], &[2])).unwrap();
    l.update(&t(&[0.0], &[1]), &t(&[5.0], &[1])).unwrap();
    close(l.get().1, 3.0);
    assert!(l.wants_loss());

    let mut c = CompositeMetric::new().with(Mae::new()).with(Mse::new());
    c.set_name("training composite".into());
    c.update(&t(&[0.0, 0.0], &[2]), &t(&[1.0, 3.0], &[2]))
        .unwrap();
    let all = c.get_all();
    assert_eq!(all[0].0, "training mae");
    close(all[0].1, 2.0);
    assert_eq!(all[1].0, "training mse");
    close(all[1].1, 5.0);
    assert!(c.is_composite());
}

#[test]
fn hit_rate_and_ndcg() {
    // Held-out item in column 0; three users with ranks 0, 2 and 3 (a tie counts ahead).
    let scores = t(
        &[
            0.9, 0.1, 0.2, 0.3, /**/ 0.5, 0.8, 0.6, 0.1, /**/ 0.4, 0.4, 0.9, 0.7,
        ],
        &[3, 4],
    );
    let labels = t(&[0.0, 0.0, 0.0], &[3]);
    let mut hr = HitRate::new(3).unwrap();
    hr.update(&labels, &scores).unwrap();
    close(hr.get().1, 2.0 / 3.0);
    assert_eq!(hr.get().0, "hit_rate@3");
    let mut ndcg = Ndcg::new(3).unwrap();
    ndcg.update(&labels, &scores).unwrap();
    close(ndcg.get().1, (1.0 + 1.0 / 4f32.log2()) / 3.0);
    // A label column outside the candidates is an error, not a panic.
    assert!(hr
        .update(&t(&[4.0], &[1]), &t(&[0.1, 0.2, 0.3, 0.4], &[1, 4]))
        .is_err());
    assert!(hr.update(&labels, &t(&[0.1; 4], &[4])).is_err());
}

#[test]
fn clone_empty_keeps_name_and_forgets_values() {
    let mut m = Rmse::new();
    m.set_name("training rmse".into());
    m.update(&t(&[1.0], &[1]), &t(&[2.0], &[1])).unwrap();
    let c = m.clone_empty();
    assert_eq!(c.name(), "training rmse");
    assert!(c.get().1.is_nan());
}

// Data-parallel ranks add up their metrics' running sums: two halves' sums, added and
// set, give the value of the whole.
#[test]
fn running_sums_of_two_halves_add_up_to_the_whole() {
    let labels = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
    let preds = [0.9, 0.2, 0.4, 0.7, 0.6, 0.8];
    let metrics: Vec<Box<dyn Fn() -> Box<dyn Metric>>> = vec![
        Box::new(|| Box::new(Mse::new())),
        Box::new(|| Box::new(Rmse::new())),
        Box::new(|| Box::new(Mae::new())),
        Box::new(|| Box::new(PearsonCorrelation::new())),
        Box::new(|| Box::new(F1::new())),
        Box::new(|| Box::new(Loss::new("loss"))),
    ];
    for make in &metrics {
        let (mut whole, mut a, mut b) = (make(), make(), make());
        whole.update(&t(&labels, &[6]), &t(&preds, &[6])).unwrap();
        a.update(&t(&labels[..2], &[2]), &t(&preds[..2], &[2]))
            .unwrap();
        b.update(&t(&labels[2..], &[4]), &t(&preds[2..], &[4]))
            .unwrap();
        let (sa, sb) = (a.sums().unwrap(), b.sums().unwrap());
        let summed: Vec<f64> = sa.iter().zip(&sb).map(|(x, y)| x + y).collect();
        a.set_sums(&summed).unwrap();
        close(a.get().1, whole.get().1);
        let e = a.set_sums(&summed[1..]).unwrap_err().to_string();
        assert!(e.contains(whole.name()), "{e}");
    }
    // A composite lays out its members' sums one after the other.
    let comp = || CompositeMetric::new().with(Mse::new()).with(Mae::new());
    let (mut whole, mut a, mut b) = (comp(), comp(), comp());
    whole.update(&t(&labels, &[6]), &t(&preds, &[6])).unwrap();
    a.update(&t(&labels[..3], &[3]), &t(&preds[..3], &[3]))
        .unwrap();
    b.update(&t(&labels[3..], &[3]), &t(&preds[3..], &[3]))
        .unwrap();
    let summed: Vec<f64> = a
        .sums()
        .unwrap()
        .iter()
        .zip(b.sums().unwrap())
        .map(|(x, y)| x + y)
        .collect();
    assert_eq!(summed.len(), 4);
    a.set_sums(&summed).unwrap();
    for ((_, x), (_, y)) in a.get_all().iter().zip(whole.get_all()) {
        close(*x, y);
    }
    assert!(a.set_sums(&summed[..3]).is_err());
    let mut acc = Accuracy::new();
    acc.update(&t(&[1.0], &[1]), &t(&[0.1, 0.9], &[1, 2]))
        .unwrap();
    let s = acc.sums().unwrap();
    acc.set_sums(&[s[0], s[1] + 1.0]).unwrap();
    close(acc.get().1, 0.5);
}
