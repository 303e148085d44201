//! Rating readers, summary, long-tail filter, indexing, splits and the generator.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use boson::data::Dataset;
use boson::error::Error;
use boson::ratings::{
    generate_ratings, read_ratings, read_ratings_stream, write_synthetic_amazon_tsv, BadLineReason,
    Column, DelimitedFormat, LongTailFilter, OnBadLine, Ratings, SyntheticConfig, TimestampKind,
    AMAZON_COLUMNS, DEFAULT_MAX_LINE_BYTES,
};

const DAY: i64 = 86_400;

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn gzip(content: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(content).unwrap();
    enc.finish().unwrap()
}

fn amazon_line(customer: &str, product: &str, stars: &str, date: &str) -> String {
    format!(
        "US\t{customer}\tR1\t{product}\t123\tA Title\tDigital_Video_Download\t{stars}\t0\t1\tN\tY\tGreat\tLiked it\t{date}\n"
    )
}

fn amazon_fixture() -> String {
    let mut s = AMAZON_COLUMNS.join("\t") + "\n";
    s += &amazon_line("111", "B01", "5", "2015-08-31");
    s += &amazon_line("222", "B01", "3", "2015-08-30");
    s += &amazon_line("111", "B02", "1", "1970-01-02");
    s
}

fn rows(r: &Ratings) -> Vec<(String, String, f32, Option<i64>)> {
    r.iter()
        .map(|x| {
            (
                x.user.to_string(),
                x.item.to_string(),
                x.rating,
                x.timestamp,
            )
        })
        .collect()
}

#[test]
fn amazon_tsv_plain_and_gzip_by_magic_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let text = amazon_fixture();
    let plain = write(dir.path(), "reviews.tsv", text.as_bytes());
    // No .gz in the name: the reader must look at the bytes.
    let gz = write(dir.path(), "reviews.data", &gzip(text.as_bytes()));
    let format = DelimitedFormat::amazon_reviews();
    let (a, report) = read_ratings(&plain, &format, OnBadLine::Fail).unwrap();
    assert_eq!(report.lines, 3);
    assert_eq!(report.kept, 3);
    assert_eq!(
        rows(&a),
        vec![
            ("111".into(), "B01".into(), 5.0, Some(16_678 * DAY)),
            ("222".into(), "B01".into(), 3.0, Some(16_677 * DAY)),
            ("111".into(), "B02".into(), 1.0, Some(DAY)),
        ]
    );
    assert_eq!((a.num_users(), a.num_items()), (2, 2));
    let (b, _) = read_ratings(&gz, &format, OnBadLine::Fail).unwrap();
    assert_eq!(a, b);
}

#[test]
fn truncated_gzip_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = amazon_fixture();
    for _ in 0..200 {
        text += &amazon_line("333", "B03", "4", "2010-01-01");
    }
    let bytes = gzip(text.as_bytes());
    let cut = write(dir.path(), "cut.tsv.gz", &bytes[..bytes.len() / 2]);
    for mode in [OnBadLine::Skip, OnBadLine::Fail] {
        let err = read_ratings(&cut, &DelimitedFormat::amazon_reviews(), mode).unwrap_err();
        assert!(err.to_string().contains("cut.tsv.gz"), "{err}");
    }
}

#[test]
fn amazon_header_must_have_the_named_columns() {
    let dir = tempfile::tempdir().unwrap();
    let text = amazon_fixture().replacen("customer_id", "customer", 1);
    let path = write(dir.path(), "bad_header.tsv", text.as_bytes());
    let err = read_ratings(&path, &DelimitedFormat::amazon_reviews(), OnBadLine::Skip).unwrap_err();
    assert!(matches!(err, Error::Format { .. }));
    assert!(err.to_string().contains("customer_id"), "{err}");
    let empty = write(dir.path(), "empty.tsv", b"");
    assert!(read_ratings(&empty, &DelimitedFormat::amazon_reviews(), OnBadLine::Skip).is_err());
}

#[test]
fn movielens_formats() {
    let dir = tempfile::tempdir().unwrap();
    let expected = vec![
        ("196".to_string(), "242".to_string(), 3.0, Some(881_250_949)),
        ("186".to_string(), "302".to_string(), 3.0, Some(891_717_742)),
    ];
    let udata = write(
        dir.path(),
        "u.data",
        b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
    );
    let dat = write(
        dir.path(),
        "ratings.dat",
        b"196::242::3::881250949\r\n186::302::3::891717742\r\n",
    );
    let csv = write(
        dir.path(),
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n196,242,3.0,881250949\n186,302,3.0,891717742\n1,1,0.5,5\n",
    );
    let (a, _) = read_ratings(&udata, &DelimitedFormat::movielens_100k(), OnBadLine::Fail).unwrap();
    assert_eq!(rows(&a), expected);
    let (b, _) = read_ratings(&dat, &DelimitedFormat::movielens_1m(), OnBadLine::Fail).unwrap();
    assert_eq!(rows(&b), expected);
    let (c, _) = read_ratings(&csv, &DelimitedFormat::movielens_csv(), OnBadLine::Fail).unwrap();
    assert_eq!(rows(&c)[..2], expected[..]);
    assert_eq!(c.ratings()[2], 0.5, "half stars are valid in ratings.csv");
    // 0.5 is out of range for the 1..5 formats.
    let half = write(dir.path(), "half.data", b"1\t1\t0.5\t5\n");
    let (_, report) =
        read_ratings(&half, &DelimitedFormat::movielens_100k(), OnBadLine::Skip).unwrap();
    assert_eq!(
        report.skipped.get(&BadLineReason::RatingOutOfRange),
        Some(&1)
    );
}

#[test]
fn generic_delimited_by_number_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let numbered = write(dir.path(), "n.txt", b"x|alice|book|4.5\ny|bob|pen|2\n");
    let format = DelimitedFormat::new(
        "|",
        false,
        Column::Index(1),
        Column::Index(2),
        Column::Index(3),
    );
    let (r, _) = read_ratings(&numbered, &format, OnBadLine::Fail).unwrap();
    assert_eq!(r.get(0).unwrap().user, "alice");
    assert_eq!(r.ratings(), &[4.5, 2.0]);
    assert_eq!(r.timestamps(), None);

    let named = write(
        dir.path(),
        "named.csv",
        b"when;score;who;what\n10;4;alice;book\n20;1;bob;pen\n",
    );
    let format = DelimitedFormat {
        timestamp: Some((Column::name("when"), TimestampKind::UnixSeconds)),
        ..DelimitedFormat::new(
            ";",
            true,
            Column::name("who"),
            Column::name("what"),
            Column::name("score"),
        )
    };
    let (r, _) = read_ratings(&named, &format, OnBadLine::Fail).unwrap();
    assert_eq!(rows(&r)[1], ("bob".into(), "pen".into(), 1.0, Some(20)));

    let no_header = DelimitedFormat::new(
        ";",
        false,
        Column::name("who"),
        Column::Index(1),
        Column::Index(2),
    );
    assert!(read_ratings(&named, &no_header, OnBadLine::Skip).is_err());
}

fn bad_lines_fixture(dir: &Path) -> PathBuf {
    let mut s = AMAZON_COLUMNS.join("\t") + "\n"; // line 1
    s += &amazon_line("1", "A", "5", "2015-01-01"); // 2 ok
    s += "US\t2\tR\tB\n"; // 3 wrong field count
    s += &amazon_line("3", "A", "five", "2015-01-01"); // 4 not a number
    s += &amazon_line("4", "A", "9", "2015-01-01"); // 5 out of range
    s += &amazon_line("5", "A", "4", "2015-02-30"); // 6 bad date
    s += &amazon_line("", "A", "4", "2015-01-01"); // 7 empty id
    s += "\n"; // 8 blank: ignored
    s += &amazon_line("6", "B", "2", "2015-01-02"); // 9 ok
    write(dir, "bad.tsv", s.as_bytes())
}

#[test]
fn bad_lines_are_counted_by_reason_when_lenient() {
    let dir = tempfile::tempdir().unwrap();
    let path = bad_lines_fixture(dir.path());
    let (r, report) =
        read_ratings(&path, &DelimitedFormat::amazon_reviews(), OnBadLine::Skip).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(report.lines, 7);
    assert_eq!(report.kept, 2);
    assert_eq!(report.total_skipped(), 5);
    for reason in [
        BadLineReason::WrongFieldCount,
        BadLineReason::BadRating,
        BadLineReason::RatingOutOfRange,
        BadLineReason::BadTimestamp,
        BadLineReason::EmptyId,
    ] {
        assert_eq!(report.skipped.get(&reason), Some(&1), "{reason}");
    }
    let lines: Vec<u64> = report.examples.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7]);
    assert!(report.to_string().contains("rating out of range: 1"));
}

#[test]
fn bad_lines_fail_with_file_line_and_reason_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    let path = bad_lines_fixture(dir.path());
    let err = read_ratings(&path, &DelimitedFormat::amazon_reviews(), OnBadLine::Fail).unwrap_err();
    let Error::Format { path: p, msg } = &err else {
        panic!("expected a format error, got {err}");
    };
    assert_eq!(p, &path);
    assert!(
        msg.contains("line 3") && msg.contains("wrong field count"),
        "{msg}"
    );
}

#[test]
fn a_file_that_ends_mid_line() {
    let dir = tempfile::tempdir().unwrap();
    // Last line complete but without a newline: kept.
    let whole = write(dir.path(), "whole.data", b"1\t10\t4\t100\n2\t20\t5\t200");
    let (r, report) =
        read_ratings(&whole, &DelimitedFormat::movielens_100k(), OnBadLine::Fail).unwrap();
    assert_eq!((r.len(), report.total_skipped()), (2, 0));
    // Cut inside the fields: counted as a truncated last line, or an error when strict.
    let cut = write(dir.path(), "cut.data", b"1\t10\t4\t100\n2\t20");
    let (r, report) =
        read_ratings(&cut, &DelimitedFormat::movielens_100k(), OnBadLine::Skip).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        report.skipped.get(&BadLineReason::TruncatedLastLine),
        Some(&1)
    );
    let err = read_ratings(&cut, &DelimitedFormat::movielens_100k(), OnBadLine::Fail).unwrap_err();
    assert!(
        err.to_string().contains("line 2: truncated last line"),
        "{err}"
    );
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn a_line_longer_than_the_limit_is_skipped_or_an_error_and_never_buffered() {
    use std::io::Read;
    let format = DelimitedFormat::amazon_reviews();
    assert_eq!(format.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
    assert_eq!(DEFAULT_MAX_LINE_BYTES, 1 << 20);
    let head = AMAZON_COLUMNS.join("\t") + "\n" + &amazon_line("1", "A", "5", "2015-01-01");
    let tail = amazon_line("2", "B", "4", "2015-01-02");
    // Line 3: 64 MiB without a newline, then the rest of the file. Strict: an error naming
    // the file, the line and the limit, having read little more than the limit.
    let long = || std::io::repeat(b'x').take(64 << 20);
    let stream = |read: &std::rc::Rc<std::cell::Cell<u64>>| Counting {
        inner: head
            .as_bytes()
            .chain(long())
            .chain(b"\n".as_slice())
            .chain(tail.as_bytes()),
        read: read.clone(),
    };
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let err = read_ratings_stream(stream(&read), "long.tsv", &format, OnBadLine::Fail)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("long.tsv: line 3: line too long: more than 1048576 bytes")
            && err.contains("max_line_bytes"),
        "{err}"
    );
    assert!(
        read.get() < (1 << 20) + (1 << 17),
        "read {} bytes",
        read.get()
    );
    // Lenient: skipped and counted, its rest read and dropped, the next line kept.
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let (r, report) =
        read_ratings_stream(stream(&read), "long.tsv", &format, OnBadLine::Skip).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(report.lines, 3);
    assert_eq!(report.skipped.get(&BadLineReason::LineTooLong), Some(&1));
    assert_eq!(report.examples[0].line, 3);
    assert!(report.to_string().contains("line too long: 1"), "{report}");

    // Gzip: an 8 MiB line compresses to a few KiB on disk.
    let dir = tempfile::tempdir().unwrap();
    let mut text = head.clone().into_bytes();
    text.extend(std::iter::repeat_n(b'y', 8 << 20));
    text.push(b'\n');
    text.extend(tail.as_bytes());
    let packed = gzip(&text);
    assert!(packed.len() < 1 << 20);
    let path = write(dir.path(), "long.tsv.gz", &packed);
    let err = read_ratings(&path, &format, OnBadLine::Fail).unwrap_err();
    assert!(
        matches!(&err, Error::Format { path: p, msg } if p == &path && msg.contains("line 3: line too long")),
        "{err}"
    );
    let (r, report) = read_ratings(&path, &format, OnBadLine::Skip).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(report.skipped.get(&BadLineReason::LineTooLong), Some(&1));

    // The limit is on the line without its ending: exactly the limit is read, one byte
    // more is not, with "\n" or "\r\n" and for the last line without a newline.
    let small = DelimitedFormat {
        max_line_bytes: 14,
        ..DelimitedFormat::movielens_100k()
    };
    let (fits, over) = ("1\t10\t4\t1000000", "1\t10\t4\t10000000");
    assert_eq!((fits.len(), over.len()), (14, 15));
    for ending in ["\n", "\r\n"] {
        for last in ["", ending] {
            let text = format!("{fits}{ending}2\t20\t5\t200{ending}{fits}{last}");
            let (r, report) =
                read_ratings_stream(text.as_bytes(), "fits", &small, OnBadLine::Fail).unwrap();
            assert_eq!((r.len(), report.total_skipped()), (3, 0), "{text:?}");
            let text = format!("{over}{ending}2\t20\t5\t200{ending}{over}{last}");
            let (r, report) =
                read_ratings_stream(text.as_bytes(), "over", &small, OnBadLine::Skip).unwrap();
            assert_eq!(r.len(), 1, "{text:?}");
            assert_eq!(report.lines, 3);
            assert_eq!(report.skipped.get(&BadLineReason::LineTooLong), Some(&2));
            let text = format!("2\t20\t5\t200{ending}{over}{last}");
            let err = read_ratings_stream(text.as_bytes(), "over", &small, OnBadLine::Fail)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("over: line 2: line too long: more than 14 bytes"),
                "{err}"
            );
        }
    }
    // A header over the limit is an error whatever the policy; a limit of 0 is refused.
    let tiny = DelimitedFormat {
        max_line_bytes: 20,
        ..DelimitedFormat::amazon_reviews()
    };
    let err = read_ratings_stream(head.as_bytes(), "h", &tiny, OnBadLine::Skip)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1: line too long") && err.contains("the header"),
        "{err}"
    );
    let zero = DelimitedFormat {
        max_line_bytes: 0,
        ..DelimitedFormat::amazon_reviews()
    };
    let err = read_ratings_stream(head.as_bytes(), "h", &zero, OnBadLine::Skip).unwrap_err();
    assert!(
        err.to_string()
            .contains("max_line_bytes must be at least 1"),
        "{err}"
    );
}

fn table(rows: &[(&str, &str, f32, i64)]) -> Ratings {
    let mut r = Ratings::new(true);
    for &(u, i, x, t) in rows {
        r.push(u, i, x, Some(t)).unwrap();
    }
    r
}

#[test]
fn summary_counts_histogram_and_quantiles() {
    let r = table(&[
        ("a", "x", 5.0, 1),
        ("a", "y", 5.0, 2),
        ("a", "z", 1.0, 3),
        ("b", "x", 3.0, 4),
    ]);
    let s = r.summary();
    assert_eq!((s.users, s.items, s.ratings), (2, 3, 4));
    assert!((s.mean_rating - 3.5).abs() < 1e-9);
    let hist: Vec<(f32, usize)> = s.histogram.iter().map(|b| (b.low, b.count)).collect();
    assert_eq!(hist, vec![(1.0, 1), (3.0, 1), (5.0, 2)]);
    assert_eq!((s.per_user.min, s.per_user.max), (1, 3));
    assert_eq!((s.per_item.min, s.per_item.max), (1, 2));
    let text = s.to_string();
    assert!(text.contains("4 ratings, 2 users, 3 items"), "{text}");
    assert!(text.contains("ratings per item"), "{text}");
}

#[test]
fn long_tail_filter_one_pass_and_until_stable() {
    // u1 rates x, y, z; u2 rates x, y; u3 rates x. Items: x 3, y 2, z 1.
    let r = table(&[
        ("u1", "x", 4.0, 1),
        ("u1", "y", 4.0, 2),
        ("u1", "z", 4.0, 3),
        ("u2", "x", 4.0, 4),
        ("u2", "y", 4.0, 5),
        ("u3", "x", 4.0, 6),
    ]);
    let one_pass = LongTailFilter {
        min_per_user: 2,
        min_per_item: 2,
        until_stable: false,
    };
    let kept = one_pass.apply(&r);
    // Counts taken once: u3 (1 rating) and z (1 rating) go; u1 keeps x, y.
    assert_eq!(kept.len(), 4);
    assert_eq!(kept.num_users(), 2);
    assert_eq!(kept.items().index_of("z"), None);

    let stricter = LongTailFilter {
        min_per_user: 3,
        min_per_item: 1,
        until_stable: false,
    };
    // One pass keeps u1's 3 rows; with min_per_item 2 afterwards u1 would drop to 2 ...
    assert_eq!(stricter.apply(&r).len(), 3);
    let cascade = LongTailFilter {
        min_per_user: 3,
        min_per_item: 2,
        until_stable: false,
    };
    // ... which one pass does not notice: u1 keeps x, y (2 < 3 ratings).
    let once = cascade.apply(&r);
    assert_eq!(once.len(), 2);
    let stable = LongTailFilter {
        until_stable: true,
        ..cascade
    }
    .apply(&r);
    assert!(stable.is_empty(), "iterating removes u1, then x and y");
    assert_eq!(LongTailFilter::default().min_per_user, 5);
    assert_eq!(LongTailFilter::default().min_per_item, 10);
}

#[test]
fn leave_last_out_holds_out_each_users_latest_rating() {
    // Timestamps are not in file order, so "latest" must come from them.
    let r = table(&[
        ("a", "i1", 1.0, 300),
        ("a", "i2", 2.0, 100),
        ("b", "i1", 3.0, 50),
        ("a", "i3", 3.0, 200),
        ("b", "i3", 4.0, 40),
        ("c", "i2", 5.0, 10), // single rating: stays in train
        ("b", "i2", 2.0, 50), // ties b's latest: the later line wins
    ]);
    let indexed = r.to_indexed();
    let split = indexed.leave_last_out().unwrap();
    assert_eq!(split.train.len() + split.test.len(), r.len());
    let test: Vec<(i64, i64, f32)> = (0..split.test.len())
        .map(|k| split.test.get(k).unwrap())
        .collect();
    let id = |m: &boson::ratings::IndexMap, s: &str| m.index_of(s).unwrap() as i64;
    assert_eq!(
        test,
        vec![
            (id(indexed.users(), "a"), id(indexed.items(), "i1"), 1.0),
            (id(indexed.users(), "b"), id(indexed.items(), "i2"), 2.0),
        ]
    );
}

#[test]
fn leave_last_out_without_timestamps_uses_file_order() {
    let mut r = Ratings::new(false);
    for (u, i) in [("a", "x"), ("a", "y"), ("b", "x"), ("a", "z"), ("b", "y")] {
        r.push(u, i, 3.0, None).unwrap();
    }
    let indexed = r.to_indexed();
    let split = indexed.leave_last_out().unwrap();
    let items: Vec<&str> = (0..split.test.len())
        .map(|k| {
            indexed
                .items()
                .id_of(split.test.get(k).unwrap().1 as usize)
                .unwrap()
        })
        .collect();
    assert_eq!(items, vec!["z", "y"]);
}

fn small_config() -> SyntheticConfig {
    SyntheticConfig {
        n_users: 2_000,
        n_items: 800,
        n_ratings: 30_000,
        rank: 4,
        seed: 9,
        ..SyntheticConfig::default()
    }
}

#[test]
fn filter_index_split_invariants_on_generated_data() {
    let ratings = generate_ratings(&small_config()).unwrap();
    let kept = LongTailFilter::default().apply(&ratings);
    assert!(kept.len() > 1000 && kept.len() < ratings.len());
    let indexed = kept.to_indexed();
    let (n_users, n_items) = (indexed.users().len() as i64, indexed.items().len() as i64);
    // Every kept id maps to an index and back.
    for (k, rec) in kept.iter().enumerate() {
        let u = indexed.users().index_of(rec.user).unwrap() as i64;
        assert_eq!(u, indexed.user_indices()[k]);
        assert_eq!(
            indexed.items().id_of(indexed.item_indices()[k] as usize),
            Some(rec.item)
        );
    }
    // The latest timestamp of each user, from the table itself.
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for rec in kept.iter() {
        let t = latest.entry(rec.user).or_insert(i64::MIN);
        *t = (*t).max(rec.timestamp.unwrap());
    }
    let split = indexed.leave_last_out().unwrap();
    assert_eq!(split.train.len() + split.test.len(), kept.len());
    let mut seen_users = std::collections::HashSet::new();
    for k in 0..split.test.len() {
        let (u, i, x) = split.test.get(k).unwrap();
        assert!((0..n_users).contains(&u) && (0..n_items).contains(&i));
        assert!(seen_users.insert(u), "one held-out rating per user");
        let user_id = indexed.users().id_of(u as usize).unwrap();
        let item_id = indexed.items().id_of(i as usize).unwrap();
        // The held-out rating is one of the user's ratings at their latest time.
        let matches_latest = kept.iter().any(|rec| {
            rec.user == user_id
                && rec.item == item_id
                && rec.rating == x
                && rec.timestamp == Some(latest[user_id])
        });
        assert!(
            matches_latest,
            "user {user_id}: held-out rating is not the latest"
        );
    }
    assert_eq!(
        split.test.len(),
        indexed.users().len(),
        "filtered users have >= 2 ratings"
    );

    let a = indexed.random_split(0.1, 3).unwrap();
    let b = indexed.random_split(0.1, 3).unwrap();
    let c = indexed.random_split(0.1, 4).unwrap();
    assert_eq!(a.test.len(), (kept.len() as f64 * 0.1).round() as usize);
    assert_eq!(a.train.len() + a.test.len(), kept.len());
    assert_eq!(a.test.columns(), b.test.columns(), "same seed, same split");
    assert_ne!(
        a.test.columns(),
        c.test.columns(),
        "another seed, another split"
    );
    let mut all: Vec<(i64, i64, u32)> = Vec::new();
    for ds in [&a.train, &a.test] {
        for k in 0..ds.len() {
            let (u, i, x) = ds.get(k).unwrap();
            all.push((u, i, x.to_bits()));
        }
    }
    let mut original: Vec<(i64, i64, u32)> = (0..indexed.len())
        .map(|k| {
            (
                indexed.user_indices()[k],
                indexed.item_indices()[k],
                indexed.ratings()[k].to_bits(),
            )
        })
        .collect();
    all.sort_unstable();
    original.sort_unstable();
    assert_eq!(all, original, "train + test is exactly the data");
    assert!(indexed.random_split(-0.1, 1).is_err());
}

#[test]
fn generated_file_reads_back_as_the_in_memory_ratings() {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticConfig {
        n_ratings: 2_000,
        ..small_config()
    };
    let path = dir.path().join("synthetic.tsv");
    write_synthetic_amazon_tsv(&config, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), AMAZON_COLUMNS.join("\t"));
    let first: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(first.len(), 15);
    assert_eq!(first[0], "US");
    assert_eq!(first[6], "Digital_Video_Download");
    assert!(!dir.path().join("synthetic.tsv.partial").exists());

    let (read, report) =
        read_ratings(&path, &DelimitedFormat::amazon_reviews(), OnBadLine::Fail).unwrap();
    assert_eq!(report.kept, 2_000);
    assert_eq!(read, generate_ratings(&config).unwrap());
    let times = read.timestamps().unwrap();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "dates never decrease"
    );
    assert!(times[times.len() - 1] - times[0] > 3000 * DAY);

    let gz = dir.path().join("synthetic.tsv.gz");
    write_synthetic_amazon_tsv(&config, &gz).unwrap();
    assert_eq!(&std::fs::read(&gz).unwrap()[..2], &[0x1f, 0x8b]);
    let (read_gz, _) =
        read_ratings(&gz, &DelimitedFormat::amazon_reviews(), OnBadLine::Fail).unwrap();
    assert_eq!(read_gz, read);
    let other_seed = SyntheticConfig { seed: 10, ..config };
    assert_ne!(generate_ratings(&other_seed).unwrap(), read);
}

#[test]
fn generated_ratings_carry_signal_beyond_the_global_mean() {
    // A bias-only baseline (user and item mean offsets, fit on train) must clearly beat
    // the global mean on the held-out ratings; a factor model does better still.
    let ratings = generate_ratings(&SyntheticConfig::default()).unwrap();
    let indexed = LongTailFilter::default().apply(&ratings).to_indexed();
    let split = indexed.leave_last_out().unwrap();
    let (tu, ti, tr) = split.train.columns();
    let mean = tr.iter().sum::<f32>() / tr.len() as f32;
    let fit = |keys: &Vec<i64>, n: usize, base: &dyn Fn(usize) -> f32| {
        let (mut sum, mut count) = (vec![0.0f32; n], vec![0.0f32; n]);
        for k in 0..tr.len() {
            sum[keys[k] as usize] += tr[k] - base(k);
            count[keys[k] as usize] += 1.0;
        }
        (0..n)
            .map(|j| sum[j] / (count[j] + 5.0))
            .collect::<Vec<f32>>()
    };
    let item_bias = fit(ti, indexed.items().len(), &|_| mean);
    let user_bias = fit(tu, indexed.users().len(), &|k| {
        mean + item_bias[ti[k] as usize]
    });
    let (vu, vi, vr) = split.test.columns();
    let rmse = |pred: &dyn Fn(usize) -> f32| {
        let se: f32 = (0..vr.len()).map(|k| (pred(k) - vr[k]).powi(2)).sum();
        (se / vr.len() as f32).sqrt()
    };
    let global = rmse(&|_| mean);
    let biased = rmse(&|k| mean + user_bias[vu[k] as usize] + item_bias[vi[k] as usize]);
    assert!(global > 0.8, "ratings must vary: global-mean RMSE {global}");
    eprintln!("global-mean RMSE {global}, bias baseline RMSE {biased}");
    assert!(
        biased < 0.9 * global,
        "bias baseline {biased} vs global mean {global}"
    );
    assert!(ratings
        .ratings()
        .iter()
        .all(|&x| [1.0, 2.0, 3.0, 4.0, 5.0].contains(&x)));
}

#[test]
fn csv_fields_are_unquoted_and_ratings_checked_against_the_scale() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "r.csv",
        b"\"user\",item,rating\n\
          \"u,1\",i1,4\n\
          \"say \"\"hi\"\"\",i2,5\n\
          u3,\"i3\",-3\n\
          u3,i3,0\n\
          u3,i3,100\n\
          u4,i4,2.5\n",
    );
    let format = DelimitedFormat::csv("user", "item", "rating");
    let (r, report) = read_ratings(&path, &format, OnBadLine::Skip).unwrap();
    assert_eq!(
        rows(&r),
        [
            ("u,1".to_string(), "i1".to_string(), 4.0, None),
            ("say \"hi\"".to_string(), "i2".to_string(), 5.0, None),
            ("u4".to_string(), "i4".to_string(), 2.5, None),
        ]
    );
    assert_eq!(report.skipped[&BadLineReason::RatingOutOfRange], 3);
    // Another scale is a field away.
    let wide = DelimitedFormat {
        rating_range: Some((-5.0, 100.0)),
        ..format.clone()
    };
    assert_eq!(
        read_ratings(&path, &wide, OnBadLine::Skip).unwrap().0.len(),
        6
    );
    // Quoting needs a one-byte delimiter.
    let bad = DelimitedFormat {
        delimiter: "::".into(),
        ..format
    };
    let e = read_ratings(&path, &bad, OnBadLine::Skip)
        .unwrap_err()
        .to_string();
    assert!(e.contains("one-byte delimiter"), "{e}");
}

#[test]
fn repeated_pairs_keep_the_latest_rating() {
    let mut r = Ratings::new(true);
    r.push("a", "x", 1.0, Some(30)).unwrap();
    r.push("b", "x", 2.0, Some(10)).unwrap();
    r.push("a", "x", 3.0, Some(20)).unwrap(); // older: dropped
    r.push("b", "x", 4.0, Some(10)).unwrap(); // same time, later row: kept
    let (kept, dropped) = r.dedup_keep_latest();
    assert_eq!(dropped, 2);
    assert_eq!(
        rows(&kept),
        [
            ("a".to_string(), "x".to_string(), 1.0, Some(30)),
            ("b".to_string(), "x".to_string(), 4.0, Some(10)),
        ]
    );
    // Without timestamps the last row wins.
    let mut r = Ratings::new(false);
    for (u, v) in [("a", 1.0), ("a", 2.0), ("c", 5.0)] {
        r.push(u, "y", v, None).unwrap();
    }
    let (kept, dropped) = r.dedup_keep_latest();
    assert_eq!((kept.ratings(), dropped), (&[2.0, 5.0][..], 1));
    assert_eq!(kept.num_users(), 2);
}

#[test]
fn item_columns_follow_their_items_through_filtering_and_renumbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amazon.tsv");
    let config = SyntheticConfig {
        n_users: 300,
        n_items: 80,
        n_ratings: 5000,
        ..Default::default()
    };
    write_synthetic_amazon_tsv(&config, &path).unwrap();
    let format = DelimitedFormat {
        item_columns: vec![Column::name("product_title")],
        ..DelimitedFormat::amazon_reviews()
    };
    let (ratings, _) = read_ratings(&path, &format, OnBadLine::Fail).unwrap();
    assert_eq!(ratings.item_info().columns(), ["product_title"]);
    // The generator titles item n "Synthetic Video n" and gives it the id B…n.
    let check = |ids: &boson::ratings::IndexMap, info: &boson::ratings::ItemInfo| {
        assert!(!ids.is_empty());
        for (i, id) in ids.ids().iter().enumerate() {
            let n: u64 = id
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap();
            assert_eq!(
                info.get("product_title", i),
                Some(format!("Synthetic Video {n}").as_str()),
                "item {i} ({id})"
            );
        }
    };
    check(ratings.items(), ratings.item_info());
    let kept = LongTailFilter {
        min_per_user: 5,
        min_per_item: 60,
        until_stable: false,
    }
    .apply(&ratings);
    assert!(kept.num_items() < ratings.num_items());
    check(kept.items(), kept.item_info());
    let by_activity = kept.to_indexed_by_activity();
    check(by_activity.items(), by_activity.item_info());
    assert_eq!(by_activity.item_info().get("nope", 0), None);
}
