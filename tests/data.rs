//! Dataset, samplers and DataLoader behaviour, checked against Gluon's semantics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use boson::data::{
    ArrayDataset, BatchSampler, DataLoader, Dataset, FilterSampler, LastBatch, RandomSampler,
    Sampler, SequentialSampler, SimpleDataset, Stack,
};
use boson::error::{Error, Result};

/// A dataset whose samples are their own indices, so batches show the sampler's order.
fn indices(n: i64) -> SimpleDataset<i64> {
    SimpleDataset::new((0..n).collect())
}

/// One epoch of a loader over `indices(..)`, as plain index lists.
fn epoch<D>(loader: &DataLoader<D>) -> Vec<Vec<i64>>
where
    D: Dataset<Item = i64> + 'static,
{
    loader
        .iter()
        .map(|batch| batch.and_then(|t| t.to_vec_i64()))
        .collect::<Result<_>>()
        .expect("epoch loads")
}

fn loader(n: i64, batch_size: usize, last: LastBatch) -> DataLoader<SimpleDataset<i64>> {
    DataLoader::builder(indices(n))
        .batch_size(batch_size)
        .last_batch(last)
        .build()
        .expect("valid options")
}

#[test]
fn keep_returns_the_short_last_batch() {
    let l = loader(10, 4, LastBatch::Keep);
    assert_eq!(l.len(), 3); // ceil(10 / 4)
    let expected = vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]];
    assert_eq!(epoch(&l), expected);
    assert_eq!(epoch(&l), expected, "keep carries nothing over");
}

#[test]
fn discard_drops_the_short_last_batch() {
    let l = loader(10, 4, LastBatch::Discard);
    assert_eq!(l.len(), 2); // floor(10 / 4)
    let expected = vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]];
    assert_eq!(epoch(&l), expected);
    assert_eq!(epoch(&l), expected);
}

#[test]
fn rollover_carries_leftovers_to_the_front_of_the_next_epoch() {
    // Worked out by hand from Gluon's BatchSampler.__iter__ / __len__:
    // epoch 0: [0..3] [4..7], leftover [8, 9]        len = (0 + 10) // 4 = 2
    // epoch 1: [8 9 0 1] [2..5] [6..9], leftover []  len = (2 + 10) // 4 = 3
    // epoch 2: as epoch 0                            len = (0 + 10) // 4 = 2
    let l = loader(10, 4, LastBatch::Rollover);
    assert_eq!(l.len(), 2);
    assert_eq!(epoch(&l), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
    assert_eq!(l.len(), 3);
    assert_eq!(
        epoch(&l),
        vec![vec![8, 9, 0, 1], vec![2, 3, 4, 5], vec![6, 7, 8, 9]]
    );
    assert_eq!(l.len(), 2);
    assert_eq!(epoch(&l), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
}

#[test]
fn rollover_with_shuffle_starts_each_epoch_with_the_previous_leftover() {
    let l = DataLoader::builder(indices(10))
        .batch_size(3)
        .shuffle(true)
        .seed(11)
        .last_batch(LastBatch::Rollover)
        .build()
        .unwrap();
    let perm0 = RandomSampler::new(10, 11).indices(0);
    let perm1 = RandomSampler::new(10, 11).indices(1);
    let e0: Vec<i64> = epoch(&l).concat();
    assert_eq!(e0.len(), 9);
    let e0_expected: Vec<i64> = perm0[..9].iter().map(|&i| i as i64).collect();
    assert_eq!(e0, e0_expected);
    // epoch 1 = [perm0[9]] + perm1 = 11 indices -> 3 batches, 2 left over
    assert_eq!(l.len(), 3);
    let e1: Vec<i64> = epoch(&l).concat();
    let mut e1_expected = vec![perm0[9] as i64];
    e1_expected.extend(perm1[..8].iter().map(|&i| i as i64));
    assert_eq!(e1, e1_expected);
}

#[test]
fn batch_sampler_len_follows_gluon_per_mode() {
    for (n, bs) in [(0usize, 3usize), (3, 3), (7, 3), (8, 4), (9, 4)] {
        let keep = BatchSampler::new(SequentialSampler::new(n), bs, LastBatch::Keep).unwrap();
        assert_eq!(keep.len(), n.div_ceil(bs));
        let discard = BatchSampler::new(SequentialSampler::new(n), bs, LastBatch::Discard).unwrap();
        assert_eq!(discard.len(), n / bs);
        let mut roll =
            BatchSampler::new(SequentialSampler::new(n), bs, LastBatch::Rollover).unwrap();
        let mut carried = 0;
        for _ in 0..4 {
            assert_eq!(roll.len(), (carried + n) / bs);
            let batches = roll.next_epoch();
            assert_eq!(batches.len(), (carried + n) / bs);
            assert!(batches.iter().all(|b| b.len() == bs));
            carried = (carried + n) % bs;
        }
    }
}

#[test]
fn last_batch_parses_gluon_spelling() {
    assert_eq!(
        "rollover".parse::<LastBatch>().unwrap(),
        LastBatch::Rollover
    );
    assert_eq!("keep".parse::<LastBatch>().unwrap(), LastBatch::Keep);
    assert!("roll".parse::<LastBatch>().is_err());
}

#[test]
fn shuffle_is_deterministic_by_seed_and_differs_by_epoch() {
    let make = |seed| {
        DataLoader::builder(indices(50))
            .batch_size(8)
            .shuffle(true)
            .seed(seed)
            .build()
            .unwrap()
    };
    let (a, b, c) = (make(3), make(3), make(4));
    let a0 = epoch(&a);
    assert_eq!(a0, epoch(&b), "same seed, same epoch 0");
    assert_ne!(a0, epoch(&c), "another seed, another order");
    let a1 = epoch(&a);
    assert_ne!(a0, a1, "epoch 1 is reshuffled");
    for e in [a0, a1] {
        let mut all = e.concat();
        all.sort();
        assert_eq!(
            all,
            (0..50).collect::<Vec<_>>(),
            "each epoch is a permutation"
        );
    }
}

type Triples = ArrayDataset<(Vec<i64>, Vec<i64>, Vec<f32>)>;

fn triples(n: usize) -> Triples {
    let users = (0..n as i64).map(|i| i % 97).collect();
    let items = (0..n as i64).map(|i| (i * 31) % 1009).collect();
    let ratings = (0..n).map(|i| (i % 5) as f32 + 1.0).collect();
    ArrayDataset::new((users, items, ratings)).unwrap()
}

type Flat = (Vec<i64>, Vec<i64>, Vec<f32>);

fn run_triples(workers: usize, last: LastBatch, epochs: usize) -> Vec<Vec<Flat>> {
    let l = DataLoader::builder(triples(1000))
        .batch_size(64)
        .shuffle(true)
        .seed(5)
        .last_batch(last)
        .num_workers(workers)
        .build()
        .unwrap();
    (0..epochs)
        .map(|_| {
            l.iter()
                .map(|b| {
                    let (u, i, r) = b.unwrap();
                    assert_eq!(u.shape(), i.shape());
                    assert_eq!(u.shape(), r.shape());
                    (
                        u.to_vec_i64().unwrap(),
                        i.to_vec_i64().unwrap(),
                        r.to_vec_f32().unwrap(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn batches_are_identical_for_0_1_and_3_workers() {
    for last in [LastBatch::Keep, LastBatch::Discard, LastBatch::Rollover] {
        let serial = run_triples(0, last, 3);
        assert_eq!(
            serial[0].len(),
            if last == LastBatch::Keep { 16 } else { 15 }
        );
        assert_eq!(run_triples(1, last, 3), serial, "{last}: 1 worker");
        assert_eq!(run_triples(3, last, 3), serial, "{last}: 3 workers");
    }
}

#[test]
fn triple_batches_hold_the_right_rows() {
    let ds = triples(10);
    let l = DataLoader::builder(ds.clone())
        .batch_size(4)
        .build()
        .unwrap();
    let (u, i, r) = l.iter().nth(2).unwrap().unwrap();
    assert_eq!(u.shape(), &[2]);
    assert_eq!(u.to_vec_i64().unwrap(), vec![8, 9]);
    assert_eq!(
        i.to_vec_i64().unwrap(),
        vec![ds.get(8).unwrap().1, ds.get(9).unwrap().1]
    );
    assert_eq!(r.to_vec_f32().unwrap(), vec![4.0, 5.0]);
}

#[test]
fn empty_dataset_yields_no_batches() {
    for workers in [0, 2] {
        for last in [LastBatch::Keep, LastBatch::Discard, LastBatch::Rollover] {
            let l = DataLoader::builder(indices(0))
                .batch_size(4)
                .last_batch(last)
                .num_workers(workers)
                .build()
                .unwrap();
            assert!(l.is_empty());
            assert_eq!(l.iter().count(), 0);
            assert_eq!(l.iter().count(), 0);
        }
    }
}

#[test]
fn dataset_smaller_than_one_batch() {
    let keep = loader(3, 4, LastBatch::Keep);
    assert_eq!(epoch(&keep), vec![vec![0, 1, 2]]);
    // Discard and rollover would yield epochs without a batch: refused when built.
    for last in [LastBatch::Discard, LastBatch::Rollover] {
        let err = DataLoader::builder(indices(3))
            .batch_size(4)
            .last_batch(last)
            .build()
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("batch_size 4 is larger than the 3 samples") && err.contains("<= 3"),
            "{err}"
        );
    }
    let exact = loader(4, 4, LastBatch::Rollover);
    assert_eq!(epoch(&exact), vec![vec![0, 1, 2, 3]]);
}

#[test]
fn invalid_options_are_errors() {
    let bs = || BatchSampler::new(SequentialSampler::new(4), 2, LastBatch::Keep).unwrap();
    let cases: Vec<(&str, Result<DataLoader<SimpleDataset<i64>>>)> = vec![
        (
            "batch_size 0",
            DataLoader::builder(indices(4)).batch_size(0).build(),
        ),
        ("no batch_size", DataLoader::builder(indices(4)).build()),
        (
            "shuffle + sampler",
            DataLoader::builder(indices(4))
                .batch_size(2)
                .shuffle(true)
                .sampler(SequentialSampler::new(4))
                .build(),
        ),
        (
            "batch_sampler + batch_size",
            DataLoader::builder(indices(4))
                .batch_sampler(bs())
                .batch_size(2)
                .build(),
        ),
        (
            "batch_sampler + shuffle",
            DataLoader::builder(indices(4))
                .batch_sampler(bs())
                .shuffle(true)
                .build(),
        ),
        (
            "batch_sampler + last_batch",
            DataLoader::builder(indices(4))
                .batch_sampler(bs())
                .last_batch(LastBatch::Keep)
                .build(),
        ),
        (
            "batch_sampler + sampler",
            DataLoader::builder(indices(4))
                .batch_sampler(bs())
                .sampler(SequentialSampler::new(4))
                .build(),
        ),
    ];
    for (name, result) in cases {
        assert!(
            matches!(result, Err(Error::InvalidArgument(_))),
            "{name} must be rejected"
        );
    }
    assert!(BatchSampler::new(SequentialSampler::new(4), 0, LastBatch::Keep).is_err());
}

#[test]
fn batch_sampler_and_sampler_options_are_used() {
    let bs = BatchSampler::new(SequentialSampler::with_start(4, 2), 3, LastBatch::Keep).unwrap();
    let l = DataLoader::builder(indices(10))
        .batch_sampler(bs)
        .build()
        .unwrap();
    assert_eq!(epoch(&l), vec![vec![2, 3, 4], vec![5]]);

    let ds = indices(10);
    let odd = FilterSampler::new(&ds, |x| x % 2 == 1).unwrap();
    let l = DataLoader::builder(ds)
        .batch_size(2)
        .sampler(odd)
        .build()
        .unwrap();
    assert_eq!(epoch(&l), vec![vec![1, 3], vec![5, 7], vec![9]]);
}

/// Fails on one index, panics on another: both must come back as `Err` items.
struct Faulty {
    fail_at: usize,
    panic_at: usize,
}

impl Dataset for Faulty {
    type Item = i64;
    fn len(&self) -> usize {
        40
    }
    fn get(&self, i: usize) -> Result<i64> {
        if i == self.fail_at {
            return Err(Error::Data(format!("cannot read sample {i}")));
        }
        if i == self.panic_at {
            panic!("user code panicked on sample {i}");
        }
        Ok(i as i64)
    }
}

#[test]
fn worker_errors_and_panics_surface_as_err_items_and_the_epoch_goes_on() {
    let mut outcomes = Vec::new();
    for workers in [0, 1, 3] {
        let l = DataLoader::builder(Faulty {
            fail_at: 13,
            panic_at: 27,
        })
        .batch_size(8)
        .num_workers(workers)
        .build()
        .unwrap();
        let results: Vec<std::result::Result<Vec<i64>, String>> = l
            .iter()
            .map(|b| b.and_then(|t| t.to_vec_i64()).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(results.len(), 5, "the epoch goes on after an error");
        assert!(results[0].is_ok() && results[2].is_ok() && results[4].is_ok());
        let err1 = results[1].as_ref().unwrap_err();
        assert!(err1.contains("cannot read sample 13"), "{err1}");
        let err3 = results[3].as_ref().unwrap_err();
        assert!(
            err3.contains("panic") && err3.contains("sample 27"),
            "{err3}"
        );
        outcomes.push(results);
        // The loader still works for the next epoch.
        assert_eq!(l.iter().count(), 5);
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0], outcomes[2]);
}

#[test]
fn a_panicking_batchify_is_an_err_item() {
    let l = DataLoader::builder(indices(6))
        .batch_size(3)
        .num_workers(2)
        .batchify(|items: Vec<i64>| -> Result<i64> {
            if items.contains(&4) {
                panic!("batchify broke");
            }
            Ok(items.iter().sum())
        })
        .build()
        .unwrap();
    let out: Vec<_> = l.iter().collect();
    assert_eq!(out[0].as_ref().unwrap(), &3);
    assert!(out[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("batchify broke"));
}

#[test]
fn dropping_an_epoch_early_does_not_hang() {
    let l = DataLoader::builder(triples(100_000))
        .batch_size(16)
        .num_workers(3)
        .prefetch(2)
        .build()
        .unwrap();
    for _ in 0..3 {
        let mut e = l.iter();
        assert!(e.next().unwrap().is_ok());
        drop(e);
    }
    assert_eq!(l.epoch(), 3);
}

#[test]
fn user_batchify_sees_samples_in_order() {
    let l = DataLoader::builder(indices(7))
        .batch_size(3)
        .batchify(|items: Vec<i64>| Ok(items))
        .num_workers(2)
        .build()
        .unwrap();
    let batches: Vec<Vec<i64>> = l.iter().collect::<Result<_>>().unwrap();
    assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
}

#[test]
fn stack_shapes_and_ragged_error() {
    let t = <Vec<f32>>::stack(vec![vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]]).unwrap();
    assert_eq!(t.shape(), &[3, 2]);
    assert_eq!(t.to_vec_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(<Vec<f32>>::stack(vec![vec![1.0, 2.0], vec![3.0]]).is_err());
    let (a, b) = <(Vec<f32>, i64)>::stack(vec![(vec![1.0], 7), (vec![2.0], 8)]).unwrap();
    assert_eq!(a.shape(), &[2, 1]);
    assert_eq!(b.to_vec_i64().unwrap(), vec![7, 8]);
}

#[test]
fn array_dataset_checks_lengths_and_bounds() {
    assert!(matches!(
        ArrayDataset::new((vec![1i64, 2], vec![1.0f32])),
        Err(Error::Data(_))
    ));
    let single = ArrayDataset::new(vec![1.5f32, 2.5]).unwrap();
    assert_eq!(
        single.get(1).unwrap(),
        2.5,
        "a single column is not wrapped"
    );
    assert!(matches!(single.get(2), Err(Error::IndexOutOfRange { .. })));
}

#[test]
fn shard_sizes_and_contents() {
    let sizes: Vec<usize> = (0..3)
        .map(|i| indices(10).shard(3, i).unwrap().len())
        .collect();
    assert_eq!(sizes, vec![4, 3, 3]);
    let mut all = Vec::new();
    for i in 0..3 {
        let s = indices(10).shard(3, i).unwrap();
        all.extend((0..s.len()).map(|j| s.get(j).unwrap()));
        assert!(s.get(s.len()).is_err());
    }
    assert_eq!(
        all,
        (0..10).collect::<Vec<_>>(),
        "shards are contiguous and cover all"
    );
    assert_eq!(indices(2).shard(4, 3).unwrap().len(), 0);
    assert!(indices(10).shard(3, 3).is_err());
    assert!(indices(10).shard(0, 0).is_err());
}

#[test]
fn transform_is_lazy_and_transform_first_keeps_the_label() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let ds = indices(5).transform(move |x| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(x * 10)
    });
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing computed up front");
    assert_eq!(ds.get(3).unwrap(), 30);
    assert_eq!(ds.get(3).unwrap(), 30);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "computed on every read");

    let pairs = SimpleDataset::new(vec![(1.0f32, 0i64), (2.0, 1)]);
    let scaled = pairs.transform_first(|x| Ok(vec![x, x * 2.0]));
    assert_eq!(scaled.get(1).unwrap(), (vec![2.0, 4.0], 1));
}

#[test]
fn filter_take_and_sample() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let evens = indices(10)
        .filter(move |x| {
            counter.fetch_add(1, Ordering::SeqCst);
            x % 2 == 0
        })
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        10,
        "the predicate runs eagerly"
    );
    assert_eq!(evens.indices(), &[0, 2, 4, 6, 8]);
    assert_eq!(evens.get(2).unwrap(), 4);
    assert!(evens.get(5).is_err());

    let first = indices(10).take(3);
    assert_eq!(first.len(), 3);
    assert!(first.get(3).is_err());
    assert_eq!(indices(10).take(100).len(), 10);

    let sampled = indices(5)
        .sample(&SequentialSampler::with_start(2, 3))
        .unwrap();
    assert_eq!(sampled.get(1).unwrap(), 4);
    assert!(indices(4)
        .sample(&SequentialSampler::with_start(2, 3))
        .is_err());
}

#[test]
fn random_sampler_is_a_permutation_per_epoch() {
    let s = RandomSampler::new(100, 9);
    let e0 = s.indices(0);
    assert_eq!(e0, RandomSampler::new(100, 9).indices(0));
    assert_ne!(e0, s.indices(1));
    assert_ne!(e0, (0..100).collect::<Vec<_>>());
    let mut sorted = s.indices(5);
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
}
