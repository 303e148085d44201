//! The library's pieces for ranking recommenders: seen items, the negative sampler,
//! the ranking losses, full-catalogue scoring and the ranking metrics over it.

use boson::data::{ArrayDataset, Batchify, DataLoader};
use boson::loss::{BprLoss, Loss, SoftmaxCrossEntropyLoss};
use boson::metric::{HitRate, Metric, Mrr, Ndcg};
use boson::nn::{Block, Embedding, Forward, Initializer};
use boson::ratings::{
    best_k, evaluate_ranking, item_counts, FactorScorer, FullRanking, ItemPop, NegativeSampler,
    PairRanking, RatingsDataset, SeenItems,
};
use boson::{Error, Result, Tensor};
use std::sync::Arc;

#[test]
fn seen_items_sort_dedup_and_reject_items_outside_the_catalogue() {
    let seen = SeenItems::new(5, vec![vec![4, 1, 4], vec![], vec![0]]).unwrap();
    assert_eq!(seen.of(0), &[1, 4]);
    assert_eq!(seen.of(1), &[] as &[u32]);
    assert_eq!(seen.of(9), &[] as &[u32]);
    assert!(seen.contains(2, 0) && !seen.contains(2, 1));
    let err = SeenItems::new(5, vec![vec![5]]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IndexOutOfRange {
                index: 5,
                size: 5,
                ..
            }
        ),
        "{err}"
    );

    let train = ArrayDataset::new((vec![0i64, 1], vec![3i64, 2], vec![4.0f32, 1.0])).unwrap();
    let val = ArrayDataset::new((vec![0i64], vec![1i64], vec![2.0f32])).unwrap();
    let both = SeenItems::from_datasets(&[&train, &val], 2, 4).unwrap();
    assert_eq!(both.lists(), &[vec![1, 3], vec![2]]);
    let err = SeenItems::from_datasets(&[&train], 1, 4).unwrap_err();
    assert!(err.to_string().contains("user"), "{err}");
}

fn sampler(num_items: usize, per_user: Vec<Vec<u32>>, n: usize) -> NegativeSampler {
    NegativeSampler::new(
        Arc::new(SeenItems::new(num_items, per_user).unwrap()),
        n,
        11,
    )
    .unwrap()
}

#[test]
fn negatives_are_unseen_uniform_and_reproducible() {
    // User 0 has seen few items (rejection path), user 1 most of them (list path); 50
    // rows of each, 40 negatives per row.
    let s = sampler(50, vec![vec![0, 1, 2], (0..45).collect()], 40);
    let users: Vec<i64> = [0, 1].iter().flat_map(|&u| [u; 50]).collect();
    let positives: Vec<i64> = [1, 3].iter().flat_map(|&i| [i; 50]).collect();
    let draws = s.sample(&users, &positives).unwrap();
    assert_eq!(draws.len(), 4000);
    let (a, b) = draws.split_at(2000);
    assert!(a.iter().all(|&i| (3..50).contains(&i)));
    assert!(b.iter().all(|&i| (45..50).contains(&i)));
    // Uniform: each of user 1's 5 unseen items about 400 times of 2000.
    for item in 45..50 {
        let c = b.iter().filter(|&&i| i == item).count();
        assert!((300..500).contains(&c), "item {item} drawn {c} times");
    }
    // The same batch draws the same; another batch (the next epoch's order) draws anew.
    assert_eq!(s.sample(&users, &positives).unwrap(), draws);
    let (mut u2, mut p2) = (users.clone(), positives.clone());
    u2.reverse();
    p2.reverse();
    assert_ne!(s.sample(&u2, &p2).unwrap(), draws);
}

#[test]
fn negatives_must_be_fewer_than_the_items_and_a_batch_of_them_fit_the_limit() {
    let seen = |items: usize| Arc::new(SeenItems::new(items, vec![vec![0], vec![]]).unwrap());
    for negatives in [30, 100, 1_000_000_000, usize::MAX] {
        let err = NegativeSampler::new(seen(30), negatives, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "{negatives} negatives per positive in a catalogue of 30"
            )) && err.contains("fewer than 30 (at most 29)"),
            "{err}"
        );
    }
    let err = NegativeSampler::new(seen(30), 0, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 1 negative"), "{err}");
    // 29 of 30: a user who has seen all but one item gets it as every negative.
    let s = NegativeSampler::new(seen(30), 29, 1).unwrap();
    let one_left = Arc::new(SeenItems::new(30, vec![(0..29).collect()]).unwrap());
    let s2 = NegativeSampler::new(one_left, 29, 1).unwrap();
    assert_eq!(s2.sample(&[0], &[3]).unwrap(), vec![29; 29]);
    let c = s.candidates(&[0, 1], &[0, 5]).unwrap();
    assert_eq!(c.shape(), &[2, 30]);
    assert!(s.check_batch(1024).is_ok());
    // A batch whose candidates exceed the allocation limit (here this machine's memory:
    // 2^31 negatives × 1024 rows × 8 bytes = 16 TiB) is an error before allocating,
    // from check_batch and from each batch.
    let huge = Arc::new(SeenItems::new(u32::MAX as usize, vec![vec![]; 1024]).unwrap());
    let s = NegativeSampler::new(huge, 1 << 31, 1).unwrap();
    let err = s.check_batch(1024).unwrap_err().to_string();
    assert!(
        err.contains("a batch of 1024 positives × (1 + 2147483648 negatives)")
            && err.contains("exceed the allocation limit"),
        "{err}"
    );
    let users: Vec<i64> = (0..1024).collect();
    let err = s.candidates(&users, &users).unwrap_err().to_string();
    assert!(err.contains("exceed the allocation limit"), "{err}");
    let err = s.sample(&users, &users).unwrap_err().to_string();
    assert!(err.contains("exceed the allocation limit"), "{err}");
    // A batch size whose candidate count overflows usize.
    let err = s.check_batch(usize::MAX / 2).unwrap_err().to_string();
    assert!(err.contains("overflows usize"), "{err}");
    // More items than u32 indices hold.
    let err = SeenItems::new(u32::MAX as usize + 1, vec![]).unwrap_err();
    assert!(err.to_string().contains("4294967296 items"), "{err}");
}

#[test]
fn negative_sampler_errors_name_the_bad_value() {
    let s = sampler(3, vec![vec![0, 1, 2], vec![0]], 1);
    let err = s.sample(&[0], &[1]).unwrap_err();
    assert!(
        err.to_string().contains("user 0 has seen all 3 items"),
        "{err}"
    );
    let err = s.sample(&[7], &[1]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IndexOutOfRange {
                index: 7,
                size: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = s.sample(&[1, 1], &[1]).unwrap_err();
    assert!(err.to_string().contains("2 users but 1 positive"), "{err}");
    let seen = Arc::new(SeenItems::new(3, vec![]).unwrap());
    assert!(NegativeSampler::new(seen, 0, 1).is_err());
}

#[test]
fn negative_sampler_batches_put_the_positive_first_whatever_the_workers() {
    let n_users = 40;
    let per_user: Vec<Vec<u32>> = (0..n_users)
        .map(|u| vec![u as u32, (u + 1) as u32])
        .collect();
    let users: Vec<i64> = (0..n_users as i64).collect();
    let items: Vec<i64> = users.clone();
    let rows = ArrayDataset::new((users, items, vec![1.0f32; n_users])).unwrap();
    let batches = |workers: usize| -> Vec<Vec<i64>> {
        let loader = DataLoader::builder(rows.clone())
            .batch_size(8)
            .shuffle(true)
            .seed(3)
            .num_workers(workers)
            .batchify(sampler(100, per_user.clone(), 4))
            .build()
            .unwrap();
        (0..2)
            .flat_map(|_| loader.iter().collect::<Vec<_>>())
            .map(|b| {
                let (u, c, label) = b.unwrap();
                assert_eq!(c.shape(), &[8, 5]);
                assert_eq!(label.to_vec_f32().unwrap(), vec![0.0; 8]);
                let (u, c) = (u.to_vec_i64().unwrap(), c.to_vec_i64().unwrap());
                for (row, &user) in c.chunks(5).zip(&u) {
                    assert_eq!(row[0], user, "the positive is column 0");
                    assert!(row[1..].iter().all(|&i| i != user && i != user + 1));
                }
                c
            })
            .collect()
    };
    let one = batches(0);
    assert_eq!(one, batches(2));
    // Epoch 2 draws other negatives than epoch 1.
    assert_ne!(one[..5], one[5..]);
    let empty: Vec<(i64, i64, f32)> = vec![(0, 0, 1.0)];
    let seen_all = sampler(3, vec![vec![0, 1, 2]], 2);
    assert!(seen_all.batchify(empty).is_err());
}

#[test]
fn bpr_loss_matches_its_formula_and_checks_its_inputs() {
    let pred = Tensor::from_vec(vec![1.0, 3.0, 0.0, 2.0, 0.5, -1.0], &[2, 3]).unwrap();
    let label = Tensor::from_vec(vec![0.0, 2.0], &[2]).unwrap();
    let l = BprLoss::new()
        .forward(&pred, &label, None)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let sp = |x: f32| (1.0 + x.exp()).ln();
    let want = [
        (sp(3.0 - 1.0) + sp(0.0 - 1.0)) / 2.0,
        (sp(2.0 + 1.0) + sp(0.5 + 1.0)) / 2.0,
    ];
    for (g, w) in l.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
    let weighted = BprLoss::with_weight(2.0)
        .forward(&pred, &label, None)
        .unwrap();
    assert!((weighted.to_vec_f32().unwrap()[0] - 2.0 * want[0]).abs() < 1e-5);
    let err = BprLoss::new()
        .forward(
            &pred,
            &Tensor::from_vec(vec![0.0, 3.0], &[2]).unwrap(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::IndexOutOfRange {
                index: 3,
                size: 3,
                ..
            }
        ),
        "{err}"
    );
    let one_column = Tensor::from_vec(vec![1.0, 2.0], &[2, 1]).unwrap();
    assert!(BprLoss::new().forward(&one_column, &label, None).is_err());
    assert!(BprLoss::new()
        .forward(&pred, &Tensor::from_vec(vec![0.0], &[1]).unwrap(), None)
        .is_err());
}

#[test]
fn softmax_cross_entropy_ignores_masked_classes() {
    let inf = f32::NEG_INFINITY;
    let pred = Tensor::from_vec(vec![1.0, inf, 2.0, inf], &[1, 4]).unwrap();
    let label = Tensor::from_vec(vec![2.0], &[1]).unwrap();
    let l = SoftmaxCrossEntropyLoss::new()
        .forward(&pred, &label, None)
        .unwrap();
    let want = -(2f32.exp() / (1f32.exp() + 2f32.exp())).ln();
    assert!((l.to_vec_f32().unwrap()[0] - want).abs() < 1e-6);
}

/// `score(u, i) = <p_u, q_i> + 0.5`.
#[derive(Block)]
struct Mf {
    users: Embedding,
    items: Embedding,
}

impl FactorScorer for Mf {
    fn user_factors(&self, users: &Tensor) -> Result<Tensor> {
        self.users.forward(users)
    }
    fn item_factors(&self, items: &Tensor) -> Result<Tensor> {
        self.items.forward(items)
    }
    fn offset(&self) -> f32 {
        0.5
    }
}

#[test]
fn full_ranking_scores_every_unseen_item_as_the_pairwise_dot_product() {
    let (nu, ni, d) = (7, 30, 4);
    let mf = Mf {
        users: Embedding::new(nu, d),
        items: Embedding::new(ni, d),
    };
    mf.initialize(&Initializer::Normal(1.0), boson::Device::Cpu)
        .unwrap();
    let p = mf.users.weight.data().unwrap().to_vec_f32().unwrap();
    let q = mf.items.weight.data().unwrap().to_vec_f32().unwrap();
    let seen: Vec<Vec<u32>> = (0..nu as u32).map(|u| vec![u, u + 10]).collect();
    let ranking = FullRanking::new(Arc::new(mf), Arc::new(SeenItems::new(ni, seen).unwrap()));
    let users = Tensor::from_vec_i64((0..nu as i64).collect(), &[nu]).unwrap();
    let scores = ranking.forward(&users).unwrap();
    assert_eq!(scores.shape(), &[nu, ni]);
    let s = scores.to_vec_f32().unwrap();
    let brute = |u: usize, i: usize| -> f32 {
        (0..d).map(|k| p[u * d + k] * q[i * d + k]).sum::<f32>() + 0.5
    };
    for u in 0..nu {
        for i in 0..ni {
            let got = s[u * ni + i];
            if i == u || i == u + 10 {
                assert_eq!(got, f32::NEG_INFINITY);
            } else {
                assert!((got - brute(u, i)).abs() < 1e-5);
            }
        }
        // top-k against a brute-force sort of the unseen items.
        let mut want: Vec<(usize, f32)> = (0..ni)
            .filter(|&i| i != u && i != u + 10)
            .map(|i| (i, brute(u, i)))
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top = ranking
            .top_k(&Tensor::from_vec_i64(vec![u as i64], &[1]).unwrap(), 5)
            .unwrap();
        let got: Vec<usize> = top[0].iter().map(|x| x.0).collect();
        let want: Vec<usize> = want[..5].iter().map(|x| x.0).collect();
        assert_eq!(got, want);
    }
    // The held-out item's rank over every unseen item: item 20 for each user.
    let mut hit = HitRate::new(10).unwrap();
    let mut ndcg = Ndcg::new(10).unwrap();
    let label = Tensor::from_vec(vec![20.0; nu], &[nu]).unwrap();
    hit.update(&label, &scores).unwrap();
    ndcg.update(&label, &scores).unwrap();
    let (mut hits, mut gain) = (0.0, 0.0);
    for u in 0..nu {
        let target = brute(u, 20);
        let rank = (0..ni)
            .filter(|&i| i != 20 && i != u && i != u + 10 && brute(u, i) >= target)
            .count();
        if rank < 10 {
            hits += 1.0;
            gain += 1.0 / ((rank + 2) as f64).log2();
        }
    }
    assert!((f64::from(hit.get().1) - hits / nu as f64).abs() < 1e-6);
    assert!((f64::from(ndcg.get().1) - gain / nu as f64).abs() < 1e-6);
    let err = ranking
        .forward(&Tensor::from_vec_i64(vec![nu as i64], &[1]).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::IndexOutOfRange { .. }), "{err}");
}

#[test]
fn best_k_skips_masked_items_and_breaks_ties_by_index() {
    let inf = f32::NEG_INFINITY;
    assert_eq!(
        best_k(&[1.0, inf, 3.0, 1.0, inf], 3),
        vec![(2, 3.0), (0, 1.0), (3, 1.0)]
    );
    assert_eq!(best_k(&[inf, 2.0], 5), vec![(1, 2.0)]);
    assert_eq!(best_k(&[1.0, f32::NAN, 2.0], 1)[0].0, 1, "NaN ranks first");
    // Against a full sort, on rows with many ties and masked items; the answer holds
    // k entries, not the row's length (a top-10 of a large catalogue stays small).
    let row: Vec<f32> = (0..5000u32)
        .map(|i| match i % 7 {
            0 => inf,
            r => (i.wrapping_mul(2654435761) % 97) as f32 + r as f32,
        })
        .collect();
    for k in [0, 1, 10, 999, 4285, 4286, 10_000] {
        let mut all: Vec<(usize, f32)> = row
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, s)| *s != inf)
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        let got = best_k(&row, k);
        assert_eq!(got, all, "k = {k}");
        assert!(
            got.capacity() <= k + 1,
            "k = {k}: capacity {}",
            got.capacity()
        );
    }
}

// The test-time evaluator against a brute-force ranking: ItemPop over a small catalogue,
// every figure (HitRate, NDCG, MRR, coverage, candidates) recomputed by hand.
#[test]
fn evaluate_ranking_reports_what_a_brute_force_ranking_says() {
    let ni = 12;
    // Item i was rated (i * 7) % 13 times: distinct counts, so no ties.
    let (mut users, mut items) = (Vec::new(), Vec::new());
    for i in 0..ni {
        for r in 0..(i * 7) % 13 {
            users.push((r % 5) as i64);
            items.push(i as i64);
        }
    }
    let train =
        RatingsDataset::new((users.clone(), items.clone(), vec![1.0; users.len()])).unwrap();
    let counts = item_counts(&train, ni).unwrap();
    let pop = Arc::new(ItemPop::from_dataset(&train, ni).unwrap());
    // Five users, each has seen two items; held-out items chosen across the ranking.
    let seen_lists: Vec<Vec<u32>> = (0..5u32).map(|u| vec![u, (u + 6) % 12]).collect();
    let seen = Arc::new(SeenItems::new(ni, seen_lists.clone()).unwrap());
    let ranking = FullRanking::new(pop, seen);
    let test_users = [0i64, 1, 2, 3, 4];
    let held_out = [11i64, 3, 9, 2, 7];
    let k = 3;
    let report = evaluate_ranking(&ranking, &test_users, &held_out, k, boson::Device::Cpu).unwrap();

    let (mut hits, mut ndcg, mut mrr) = (0.0, 0.0, 0.0);
    let mut covered = std::collections::BTreeSet::new();
    let mut candidates = 0;
    for (&u, &h) in test_users.iter().zip(&held_out) {
        let unseen: Vec<usize> = (0..ni)
            .filter(|i| !seen_lists[u as usize].contains(&(*i as u32)))
            .collect();
        candidates += unseen.len();
        let mut order = unseen.clone();
        order.sort_by_key(|&i| std::cmp::Reverse(counts[i]));
        covered.extend(order[..k].iter().copied());
        let rank = order.iter().position(|&i| i == h as usize).unwrap();
        if rank < k {
            hits += 1.0;
            ndcg += 1.0 / ((rank + 2) as f64).log2();
            mrr += 1.0 / (rank + 1) as f64;
        }
    }
    let n = test_users.len() as f64;
    assert_eq!((report.k, report.users), (k, 5));
    assert!((report.hit_rate - hits / n).abs() < 1e-6, "{report:?}");
    assert!((report.ndcg - ndcg / n).abs() < 1e-6, "{report:?}");
    assert!((report.mrr - mrr / n).abs() < 1e-6, "{report:?}");
    assert!(
        hits > 0.0 && hits < n,
        "the case should have hits and misses: {report:?}"
    );
    assert!((report.coverage - covered.len() as f64 / ni as f64).abs() < 1e-12);
    assert!((report.mean_candidates - candidates as f64 / n).abs() < 1e-12);
    // The metric on its own agrees.
    let scores = ranking
        .forward(&Tensor::from_vec_i64(test_users.to_vec(), &[5]).unwrap())
        .unwrap();
    let mut m = Mrr::new(k).unwrap();
    let labels = Tensor::from_vec(held_out.iter().map(|&i| i as f32).collect(), &[5]).unwrap();
    m.update(&labels, &scores).unwrap();
    assert!((f64::from(m.get().1) - mrr / n).abs() < 1e-6);

    // Bad inputs are errors naming what is wrong.
    let err = evaluate_ranking(&ranking, &[0, 1], &[1], k, boson::Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("2 users but 1 held-out items"),
        "{err}"
    );
    let err = evaluate_ranking(&ranking, &[0], &[12], k, boson::Device::Cpu).unwrap_err();
    assert!(
        matches!(err, Error::IndexOutOfRange { index: 12, .. }),
        "{err}"
    );
    assert!(evaluate_ranking(&ranking, &[0], &[1], 0, boson::Device::Cpu).is_err());
    let bad = RatingsDataset::new((vec![0], vec![ni as i64], vec![1.0])).unwrap();
    let err = item_counts(&bad, ni).unwrap_err();
    assert!(
        matches!(err, Error::IndexOutOfRange { index: 12, .. }),
        "{err}"
    );
}

/// `Mf` as a model of (user, item) pairs: `<p_u, q_i> + 0.5` per pair.
impl Forward for Mf {
    type Input = (Tensor, Tensor);
    fn forward(&self, (users, items): &(Tensor, Tensor)) -> Result<Tensor> {
        self.users
            .forward(users)?
            .mul(&self.items.forward(items)?)?
            .sum_axis(1, false)?
            .add_scalar(0.5)
    }
}

/// A pair model that returns one score too few.
#[derive(boson::nn::Block)]
struct Short;
impl Forward for Short {
    type Input = (Tensor, Tensor);
    fn forward(&self, (users, _): &(Tensor, Tensor)) -> Result<Tensor> {
        Tensor::zeros(&[users.elem_count() - 1], users.device())
    }
}

// Any pair model ranks as a dot-product model does: the same model through PairRanking
// (several forward passes, a few users each) and FullRanking (one GEMM) gives the same
// scores, masks and evaluation.
#[test]
fn pair_ranking_of_a_dot_product_model_equals_full_ranking() {
    let (nu, ni, d) = (7, 30, 4);
    let mf = Arc::new(Mf {
        users: Embedding::new(nu, d),
        items: Embedding::new(ni, d),
    });
    mf.initialize(&Initializer::Normal(1.0), boson::Device::Cpu)
        .unwrap();
    let seen: Vec<Vec<u32>> = (0..nu as u32).map(|u| vec![u, u + 10]).collect();
    let seen = Arc::new(SeenItems::new(ni, seen).unwrap());
    let full = FullRanking::new(mf.clone(), seen.clone());
    // 70 pairs a pass: 2 users at a time, the last pass with 1.
    let pairs = PairRanking::new(mf, seen.clone()).max_pairs(70);
    let users = Tensor::from_vec_i64((0..nu as i64).collect(), &[nu]).unwrap();
    let (a, b) = (
        full.forward(&users).unwrap().to_vec_f32().unwrap(),
        pairs.forward(&users).unwrap().to_vec_f32().unwrap(),
    );
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() < 1e-5 || (x.is_infinite() && x == y),
            "score {k}: {x} vs {y}"
        );
    }
    let held_out: Vec<i64> = (0..nu as i64).map(|u| 20 + u).collect();
    let users: Vec<i64> = (0..nu as i64).collect();
    let r1 = evaluate_ranking(&full, &users, &held_out, 5, boson::Device::Cpu).unwrap();
    let r2 = evaluate_ranking(&pairs, &users, &held_out, 5, boson::Device::Cpu).unwrap();
    assert_eq!(
        (r1.hit_rate, r1.ndcg, r1.mrr, r1.coverage),
        (r2.hit_rate, r2.ndcg, r2.mrr, r2.coverage)
    );
    // A model that does not give one score per pair, and an unknown user, are errors.
    let short = PairRanking::new(Arc::new(Short), seen);
    let err = short
        .forward(&Tensor::from_vec_i64(vec![0], &[1]).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = pairs
        .forward(&Tensor::from_vec_i64(vec![nu as i64], &[1]).unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::IndexOutOfRange { .. }), "{err}");
}
