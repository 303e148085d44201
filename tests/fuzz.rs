//! A mutation fuzzer on stable Rust for what users and clients hand the program: rating
//! files (every format, plain and gzip), model folders, checkpoints and HTTP requests.
//! Valid inputs are mutated (bit flips, byte edits, cut and repeated chunks, truncation)
//! and fed to the real code; an error is fine, a panic is a crash. The targets are
//! `#[ignore]`d so `cargo test` stays fast: `scripts/fuzz.sh` runs them with
//! BOSON_FUZZ_INPUTS inputs each. Each crash found is kept as a regression test below.

#![allow(dead_code)]

#[path = "common/skip.rs"]
#[macro_use]
mod skip;
include!("common/example_modules.rs");

use boson::ratings::{read_ratings_stream, DelimitedFormat, OnBadLine};
use boson::Device;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// How many inputs each target runs (BOSON_FUZZ_INPUTS, default 2,000).
fn inputs() -> u64 {
    std::env::var("BOSON_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// One random edit of `data`.
fn mutate(data: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut d = data.to_vec();
    let edits = 1 + rng.random_range(0..4);
    for _ in 0..edits {
        let len = d.len().max(1);
        match rng.random_range(0..7) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] = *[
                    b'\t', b',', b'\n', b'"', b'\r', 0, 0xff, b'-', b'9', b':', b'{', b'}',
                ]
                .get(rng.random_range(0..12))
                .unwrap_or(&0);
            }
            2 => {
                let i = rng.random_range(0..=d.len());
                d.insert(i, rng.random());
            }
            3 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                let n = rng.random_range(1..=(d.len() - i).min(64));
                d.drain(i..i + n);
            }
            4 if !d.is_empty() => {
                // Repeat a chunk (long lines, duplicated fields).
                let i = rng.random_range(0..d.len());
                let n = rng.random_range(1..=(d.len() - i).min(256));
                let chunk = d[i..i + n].to_vec();
                let times = rng.random_range(1..8);
                for _ in 0..times {
                    d.splice(i..i, chunk.iter().copied());
                }
            }
            5 => d.truncate(rng.random_range(0..=len.min(d.len()))),
            _ => {
                // A big or odd number where a digit was.
                if let Some(i) = d.iter().position(|b| b.is_ascii_digit()) {
                    let n = [
                        "18446744073709551615",
                        "-1",
                        "1e309",
                        "NaN",
                        "0",
                        "4294967296",
                    ][rng.random_range(0..6)];
                    d.splice(i..i + 1, n.bytes());
                }
            }
        }
    }
    d
}

/// Runs `target` on `inputs()` mutations of the seeds; returns (inputs, crashes) and
/// saves each crashing input under target/fuzz-crashes/.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut target: impl FnMut(&[u8])) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(0xF022);
    let (mut crashes, n) = (0u64, inputs());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for k in 0..n {
        let seed = &seeds[(k as usize) % seeds.len()];
        let input = mutate(seed, &mut rng);
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            crashes += 1;
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}-{k}")), &input).unwrap();
        }
    }
    std::panic::set_hook(quiet);
    let mut report = std::io::stderr();
    let _ = writeln!(report, "fuzz {name}: {n} inputs, {crashes} crashes");
    (n, crashes)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn rating_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let amazon = dir.path().join("a.tsv");
    let config = boson::ratings::SyntheticConfig {
        n_users: 20,
        n_items: 10,
        n_ratings: 30,
        ..Default::default()
    };
    boson::ratings::write_synthetic_amazon_tsv(&config, &amazon).unwrap();
    let amazon = std::fs::read(amazon).unwrap();
    let movielens =
        b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n".to_vec();
    let ml1m = b"1::1193::5::978300760\n1::661::3::978302109\n".to_vec();
    let csv =
        b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,\"3\",4.5,964981247\n".to_vec();
    let inter =
        b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n"
            .to_vec();
    let plain = b"user,item,rating\n\"u,1\",i1,4\nu2,\"say \"\"hi\"\"\",5\n".to_vec();
    let mut seeds = vec![amazon, movielens, ml1m, csv, inter, plain];
    let zipped: Vec<Vec<u8>> = seeds.iter().map(|s| gzip(s)).collect();
    seeds.extend(zipped);
    seeds
}

#[test]
#[ignore = "a fuzz target: scripts/fuzz.sh"]
fn fuzz_rating_readers() {
    let formats = [
        DelimitedFormat::amazon_reviews(),
        DelimitedFormat::movielens_100k(),
        DelimitedFormat::movielens_1m(),
        DelimitedFormat::movielens_csv(),
        DelimitedFormat::recbole_inter(),
        DelimitedFormat::csv("user", "item", "rating"),
    ];
    let (_, crashes) = fuzz("readers", &rating_seeds(), |input| {
        for format in &formats {
            for on_bad in [OnBadLine::Skip, OnBadLine::Fail] {
                if let Ok((ratings, _)) = read_ratings_stream(input, "fuzz", format, on_bad) {
                    // What was read goes on through the example's preparation.
                    let _ = ratings.summary();
                    let _ = ratings.dedup_keep_latest();
                    let _ = ratings.to_indexed().leave_last_two_out();
                }
            }
        }
    });
    assert_eq!(crashes, 0);
}

#[test]
#[ignore = "a fuzz target: scripts/fuzz.sh"]
fn fuzz_model_folders() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0/mfblock-model");
    let files = [
        "config.json",
        "users.json",
        "items.json",
        "model.safetensors",
    ];
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(source.join(f)).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut which = 0usize;
    // The seed names the file to damage; the others stay intact.
    let seeds: Vec<Vec<u8>> = originals.clone();
    let (_, crashes) = fuzz("model-folder", &seeds, |input| {
        for (f, original) in files.iter().zip(&originals) {
            std::fs::write(dir.path().join(f), original).unwrap();
        }
        let target = files
            .iter()
            .zip(&originals)
            .position(|(_, o)| o.len() / 2 < input.len() && input.len() < o.len() * 2 + 64)
            .unwrap_or(which % files.len());
        which += 1;
        std::fs::write(dir.path().join(files[target]), input).unwrap();
        if let Ok(loaded) = persist::load(dir.path(), None, Device::Cpu) {
            let service = serve::Service::new(loaded);
            let _ = service.handle(&serve::Request::new(
                "POST",
                "/invocations",
                br#"{"customer_id": ["10000000"], "product_id": ["B000000001"]}"#,
            ));
        }
    });
    assert_eq!(crashes, 0);
}

#[test]
#[ignore = "a fuzz target: scripts/fuzz.sh"]
fn fuzz_checkpoints() {
    use boson::estimator::{CheckpointHandler, Estimator, FitUntil, LogCapture};
    use boson::nn::{Dense, Initializer};
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0/mfblock-checkpoints");
    let dir = tempfile::tempdir().unwrap();
    // A tiny net and its own checkpoint; the fuzzer damages its .json and .params.
    let train = boson::data::DataLoader::builder(
        boson::data::ArrayDataset::new((vec![vec![1.0f32], vec![2.0]], vec![1.0f32, 2.0])).unwrap(),
    )
    .batch_size(1)
    .build()
    .unwrap();
    let fit = |resume: bool| -> boson::Result<()> {
        let net = std::sync::Arc::new(Dense::new(1).in_units(1));
        let mut est = Estimator::builder(net, boson::loss::L2Loss::new())
            .initializer(Initializer::Zero)
            .log_writer(LogCapture::new())
            .build()?;
        let mut ck = CheckpointHandler::new(dir.path()).resume_from_checkpoint(resume);
        est.fit(&train, None, FitUntil::Epochs(3), &mut [&mut ck])
    };
    fit(false).unwrap();
    let json = dir.path().join("model-epoch3batch6.json");
    let params = dir.path().join("model-epoch3batch6.params");
    let seeds = vec![
        std::fs::read(&json).unwrap(),
        std::fs::read(&params).unwrap(),
        std::fs::read(source.join("model-epoch1batch7.json")).unwrap(),
    ];
    let (good_json, good_params) = (seeds[0].clone(), seeds[1].clone());
    let (_, crashes) = fuzz("checkpoint", &seeds, |input| {
        std::fs::write(&json, &good_json).unwrap();
        std::fs::write(&params, &good_params).unwrap();
        let damaged = if input.first() == Some(&b'{') {
            &json
        } else {
            &params
        };
        std::fs::write(damaged, input).unwrap();
        let _ = fit(true);
    });
    assert_eq!(crashes, 0);
}

// Bytes on the wire through the real server (hyper, the endpoint, the model) over an
// in-memory connection; a panic in the connection's task, or no answer, is a crash.
#[test]
#[ignore = "a fuzz target: scripts/fuzz.sh"]
fn fuzz_requests() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0/mfblock-model");
    let mut service = serve::Service::new(persist::load(&dir, None, Device::Cpu).unwrap());
    service.limits.max_body = 1 << 20;
    let endpoint = server::Endpoint::new(std::sync::Arc::new(service));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seeds: Vec<Vec<u8>> = [
        &b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"customer_id\": [\"10000000\"], \"product_id\": [\"B000000001\"]}"[..],
        b"POST /invocations HTTP/1.1\r\nContent-Length: 34\r\n\r\n{\"customer_id\": [\"10000000\"], \"k\": 3}",
        b"POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nAccept: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n10000000,\r\nb\r\nB000000001\n\r\n0\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\nPOST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 39\r\n\r\ncustomer_id,product_id\n\"1,0\",B000000001",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    let (_, crashes) = fuzz("requests", &seeds, |input| {
        runtime.block_on(async {
            let (client, io) = tokio::io::duplex(1 << 16);
            let conn = tokio::spawn(server::connection(&endpoint, io));
            let (mut read, mut write) = tokio::io::split(client);
            let send = async {
                let _ = write.write_all(input).await;
                let _ = write.shutdown().await;
            };
            let mut answer = Vec::new();
            let receive = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                read.read_to_end(&mut answer),
            );
            let (_, received) = tokio::join!(send, receive);
            assert!(received.is_ok(), "no answer within 10 s");
            if let Err(e) = conn.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        });
        // The server answers a panicking handler with 500; call it directly to see one.
        if let Some(i) = input.windows(4).position(|w| w == b"\r\n\r\n") {
            for content_type in [None, Some("text/csv")] {
                let _ = endpoint.service.handle(&serve::Request {
                    content_type,
                    accept: Some("text/csv"),
                    ..serve::Request::new("POST", "/invocations", &input[i + 4..])
                });
            }
        }
    });
    assert_eq!(crashes, 0);
}
