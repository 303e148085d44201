//! DataLoader throughput over 1M (user, item, rating) triples, and the cost of reading,
//! filtering and indexing a 1M-line Amazon-layout TSV.

use std::hint::black_box;
use std::time::Duration;

use boson::data::DataLoader;
use boson::ratings::{
    generate_ratings, read_ratings, write_synthetic_amazon_tsv, DelimitedFormat, LongTailFilter,
    OnBadLine, RatingsDataset, SyntheticConfig,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const N: usize = 1_000_000;

fn config() -> SyntheticConfig {
    SyntheticConfig {
        n_users: 100_000,
        n_items: 20_000,
        n_ratings: N,
        rank: 8,
        seed: 1,
        ..SyntheticConfig::default()
    }
}

fn triples() -> RatingsDataset {
    generate_ratings(&config())
        .and_then(|r| r.to_indexed().to_dataset())
        .expect("generate 1M ratings")
}

fn loader_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("dataloader_1M_triples_batch1024_shuffled");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(N as u64));
    for workers in [0, 1, 2] {
        let loader = DataLoader::builder(triples())
            .batch_size(1024)
            .shuffle(true)
            .num_workers(workers)
            .build()
            .expect("loader");
        group.bench_function(format!("workers_{workers}"), |b| {
            b.iter(|| {
                let mut rows = 0;
                for batch in &loader {
                    let (users, _, _) = batch.expect("batch");
                    rows += users.shape()[0];
                }
                black_box(rows)
            })
        });
    }
    group.finish();
}

fn tsv_pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("reviews_1M.tsv");
    let mut group = c.benchmark_group("amazon_tsv_1M_lines");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("generate_and_write", |b| {
        b.iter(|| write_synthetic_amazon_tsv(&config(), &path).expect("write"))
    });
    group.bench_function("read_filter_index", |b| {
        b.iter(|| {
            let (ratings, _) =
                read_ratings(&path, &DelimitedFormat::amazon_reviews(), OnBadLine::Fail)
                    .expect("read");
            let indexed = LongTailFilter::default().apply(&ratings).to_indexed();
            black_box(indexed.len())
        })
    });
    group.finish();
}

criterion_group!(benches, loader_throughput, tsv_pipeline);
criterion_main!(benches);
