//! Explore and prepare: read (or generate) ratings, summarise them, drop the long tail,
//! number users and items, and hold out each user's last rating.

use boson::data::Dataset;
use boson::estimator::ProgressBarMode;
use boson::ratings::{
    generate_ratings, read_ratings, read_ratings_stream, Column, DelimitedFormat, IndexMap,
    ItemInfo, LongTailFilter, OnBadLine, Ratings, RatingsDataset, Summary, SyntheticConfig,
    TimestampKind,
};
use boson::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The file layouts `--format` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// Amazon Customer Reviews TSV (15 columns, header, `review_date` orders ratings).
    AmazonTsv,
    /// MovieLens: `u.data` (tab), `ratings.dat` (`::`), `ratings.csv` or RecBole's
    /// `ml-100k.inter`, chosen from the file's first line.
    Movielens,
    /// `user,item,rating[,timestamp]` with a header naming `user`, `item`, `rating`; a
    /// `timestamp`, `time` or `date` column (or `--time-column`) orders each user's
    /// ratings, else the file's order does.
    Csv,
}

/// Where the ratings come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The built-in generator (Amazon layout, ids as in the real file).
    Synthetic(SyntheticConfig),
    /// A rating file in one of the known layouts (gzip detected by its magic bytes).
    File(FileSource),
    /// The anchors' TSV (`user_id\titem_id\trating`, header, dense 0-based ids; test = last
    /// row of each user), read as is so boson trains on exactly the anchors' split.
    AnchorTsv(PathBuf),
}

/// A rating file and how to read it.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSource {
    pub path: PathBuf,
    pub format: FileFormat,
    /// The valid rating range, if not the layout's own.
    pub scale: Option<(f32, f32)>,
    /// A per-item text column to keep for printing (e.g. `product_title`).
    pub title_column: Option<String>,
    /// The CSV column that orders ratings in time, if not `timestamp`, `time` or `date`.
    pub time_column: Option<String>,
}

impl FileSource {
    /// `path` in `format` with the layout's own scale and no title column.
    pub fn new(path: impl Into<PathBuf>, format: FileFormat) -> FileSource {
        FileSource {
            path: path.into(),
            format,
            scale: None,
            title_column: None,
            time_column: None,
        }
    }
}

/// The default built-in data: sized so the default run takes about a minute on two cores.
pub fn default_synthetic(seed: u64) -> SyntheticConfig {
    SyntheticConfig {
        n_users: 20_000,
        n_items: 5_000,
        n_ratings: 500_000,
        seed,
        ..SyntheticConfig::default()
    }
}

/// The data summary saved in the model's config.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct DataSummary {
    pub source: String,
    pub ratings_read: usize,
    /// Ratings dropped because their (user, item) pair was rated again later.
    #[serde(default)]
    pub repeated_pairs: usize,
    pub ratings_kept: usize,
    pub users: usize,
    pub items: usize,
    pub train: usize,
    /// Held out of train to choose the epoch (each user's second-latest rating); 0 when
    /// the test split is used for that, as with the anchors' files.
    #[serde(default)]
    pub validation: usize,
    pub test: usize,
    pub min_user_ratings: usize,
    pub min_item_ratings: usize,
    /// Whether "latest" was decided by the order of the file's lines, the data having no
    /// time column (false in folders from before this was recorded).
    #[serde(default)]
    pub latest_by_file_order: bool,
}

/// Prepared data: the split plus the maps back to the original ids.
pub struct Prepared {
    pub users: IndexMap,
    pub items: IndexMap,
    pub train: RatingsDataset,
    /// What each epoch is validated on, and the best epoch chosen by.
    pub validation: RatingsDataset,
    pub test: RatingsDataset,
    /// Per-item text kept from the file (titles), by item index.
    pub item_info: ItemInfo,
    /// The mean of each rating's user's previous ratings (`DRIFT_WINDOW` of them), row
    /// by row beside train, validation and test (NaN for a user's first rating).
    pub recent: [Vec<f32>; 3],
    /// The items of each rating's user's previous ratings (up to `HISTORY_WINDOW`,
    /// oldest first), row by row beside train, validation and test: `SeqMf`'s input.
    pub history: [Vec<Vec<i64>>; 3],
    /// Each user's train items in time order, by user index: `SasRec`'s training
    /// sequences.
    pub sequences: Vec<Vec<i64>>,
    /// The summary of the ratings as read, before filtering (the exploration step).
    pub explored: Summary,
    pub summary: DataSummary,
}

impl Prepared {
    /// `recent − global_mean` for each side (0 where the user had no earlier rating):
    /// `DriftMf`'s input.
    pub fn drift_inputs(&self) -> [Vec<f32>; 3] {
        let mean = self.global_mean();
        self.recent.clone().map(|side| {
            side.into_iter()
                .map(|r| if r.is_nan() { 0.0 } else { r - mean })
                .collect()
        })
    }

    /// Each user's state just before their held-out `side` (1: validation, 2: test)
    /// rating, for the models that predict from it: the drift input and the latest items
    /// (0 and none for users without such a rating). Models validate with side 1, and
    /// are tested and saved with side 2.
    pub fn context(&self, side: usize) -> crate::model::UserContext {
        let rows = if side == 1 {
            &self.validation
        } else {
            &self.test
        };
        let mut drift = vec![0.0; self.summary.users];
        let mut history = vec![Vec::new(); self.summary.users];
        let inputs = self.drift_inputs();
        for (k, &u) in rows.columns().0.iter().enumerate() {
            drift[u as usize] = inputs[side][k];
            history[u as usize] = self.history[side][k].clone();
        }
        // Before the test rating come the train items and the validation one.
        let mut sequence = self.sequences.clone();
        if side == 2 && self.summary.validation > 0 {
            let (vu, vi, _) = self.validation.columns();
            for (&u, &i) in vu.iter().zip(vi) {
                sequence[u as usize].push(i);
            }
        }
        crate::model::UserContext {
            drift,
            history,
            sequence,
        }
    }

    /// The mean train rating (the global-mean baseline and the cold-start answer).
    pub fn global_mean(&self) -> f32 {
        let r = &self.train.columns().2;
        (r.iter().map(|&x| f64::from(x)).sum::<f64>() / r.len().max(1) as f64) as f32
    }
}

/// Reads the ratings from `source` (no filtering yet).
pub fn load(source: &Source, progress: ProgressBarMode) -> Result<Ratings> {
    match source {
        Source::Synthetic(config) => generate_ratings(config),
        Source::File(FileSource {
            path,
            format,
            scale,
            title_column,
            time_column,
        }) => {
            let mut format = file_format(path, *format, time_column.as_deref())?;
            if scale.is_some() {
                format.rating_range = *scale;
            }
            format.item_columns = title_column.iter().map(|c| Column::name(c)).collect();
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
            let bar = reading_bar(bytes, progress);
            // Real files have the odd bad line; skip them (the report counts them).
            let read = read_ratings_stream(bar.wrap_read(file), path, &format, OnBadLine::Skip);
            bar.finish_and_clear();
            let (ratings, report) = read?;
            if report.total_skipped() > 0 {
                eprintln!(
                    "note: skipped {} malformed lines of {} in {}",
                    report.total_skipped(),
                    report.lines,
                    path.display()
                );
            }
            Ok(ratings)
        }
        Source::AnchorTsv(path) => {
            let format = DelimitedFormat::new(
                "\t",
                true,
                Column::name("user_id"),
                Column::name("item_id"),
                Column::name("rating"),
            );
            // The anchors' files are generated, so a bad line means a wrong file: fail.
            Ok(read_ratings(path, &format, OnBadLine::Fail)?.0)
        }
    }
}

/// A bar over the bytes of a file being read (hidden unless `progress` says to draw).
fn reading_bar(bytes: u64, progress: ProgressBarMode) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let target = match progress {
        ProgressBarMode::Never => indicatif::ProgressDrawTarget::hidden(),
        ProgressBarMode::Auto if !std::io::stderr().is_terminal() => {
            indicatif::ProgressDrawTarget::hidden()
        }
        _ => indicatif::ProgressDrawTarget::stderr_with_hz(10),
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(bytes), target);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "reading {wide_bar} {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The time columns a CSV header may have, by the names tried in order.
const CSV_TIME_COLUMNS: [&str; 3] = ["timestamp", "time", "date"];

/// The reader layout for `format`; MovieLens is told apart by the file's first line, and
/// a CSV file's time column (`time_column`, else the first of [`CSV_TIME_COLUMNS`]) by
/// its header.
fn file_format(
    path: &Path,
    format: FileFormat,
    time_column: Option<&str>,
) -> Result<DelimitedFormat> {
    Ok(match format {
        FileFormat::AmazonTsv => DelimitedFormat::amazon_reviews(),
        FileFormat::Csv => {
            let header: Vec<String> = first_line(path)?
                .split(',')
                .map(|h| h.trim().trim_matches('"').to_string())
                .collect();
            let found = match time_column {
                Some(name) => Some(header.iter().find(|h| *h == name).ok_or_else(|| {
                    Error::Data(format!(
                        "{}: --time-column {name:?} is not in the header {header:?}",
                        path.display()
                    ))
                })?),
                None => CSV_TIME_COLUMNS
                    .iter()
                    .find_map(|t| header.iter().find(|h| h.eq_ignore_ascii_case(t))),
            };
            DelimitedFormat {
                timestamp: found.map(|h| (Column::name(h), TimestampKind::Auto)),
                ..DelimitedFormat::csv("user", "item", "rating")
            }
        }
        FileFormat::Movielens => {
            let first = first_line(path)?;
            if first.starts_with("userId,") {
                DelimitedFormat::movielens_csv()
            } else if first.starts_with("user_id:token") {
                DelimitedFormat::recbole_inter()
            } else if first.contains("::") {
                DelimitedFormat::movielens_1m()
            } else {
                DelimitedFormat::movielens_100k()
            }
        }
    })
}

/// The first line of a plain or gzip file (at most 4 KiB of it).
fn first_line(path: &Path) -> Result<String> {
    use std::io::{BufRead, BufReader, Read};
    let io = |e| Error::io(path, e);
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let gz = reader.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let mut inner: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < buf.len() {
        let got = inner.read(&mut buf[n..]).map_err(io)?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// How [`prepare`] turns ratings into splits.
#[derive(Clone, Copy, Debug)]
pub struct PrepareOptions {
    /// Drop users with fewer ratings (0 keeps everything).
    pub min_user: usize,
    /// Drop items with fewer ratings.
    pub min_item: usize,
    /// Hold each user's second-latest rating out of train for validation (choosing the
    /// epoch); else the test split doubles as validation (the anchors' and the reference
    /// notebook's protocol).
    pub validate: bool,
    /// Keep every rating of a pair rated more than once (as the reference notebook does);
    /// else only the latest.
    pub keep_repeated: bool,
    /// Number users and items by how many ratings they have, most first (the notebook's
    /// order), instead of by first appearance.
    pub by_activity: bool,
}

/// Explore → deduplicate → filter → index → split.
pub fn prepare(ratings: &Ratings, source_name: &str, options: PrepareOptions) -> Result<Prepared> {
    let PrepareOptions {
        min_user,
        min_item,
        validate,
        keep_repeated,
        by_activity,
    } = options;
    let explored = ratings.summary();
    // A pair rated twice keeps its latest rating, so a held-out pair is never also in
    // train.
    let (unique, repeated) = if keep_repeated {
        (ratings.clone(), 0)
    } else {
        ratings.dedup_keep_latest()
    };
    let filter = LongTailFilter {
        min_per_user: min_user,
        min_per_item: min_item,
        until_stable: false,
    };
    let kept = filter.apply(&unique);
    if kept.is_empty() {
        return Err(Error::Data(format!(
            "no ratings left after dropping users with < {min_user} and items with < {min_item} ratings ({} read)",
            ratings.len()
        )));
    }
    // Numbered by first appearance, or by activity as the notebook's value_counts() does.
    let indexed = match by_activity {
        true => kept.to_indexed_by_activity(),
        false => kept.to_indexed(),
    };
    let (train, validation, test) = if validate {
        let split = indexed.leave_last_two_out()?;
        (split.train, split.validation, split.test)
    } else {
        let split = indexed.leave_last_out()?;
        (split.train, split.test.clone(), split.test)
    };
    // The same rows as the datasets above, in the same (file) order.
    let recent_all = indexed.recent_mean(crate::model::DRIFT_WINDOW);
    let [mut train_rows, validation_rows, test_rows] = indexed.leave_last_two_out_rows()?;
    let validation_rows = if validate {
        validation_rows
    } else {
        train_rows.extend(validation_rows);
        train_rows.sort_unstable();
        test_rows.clone()
    };
    let pick = |rows: &[usize]| rows.iter().map(|&r| recent_all[r]).collect::<Vec<f32>>();
    let recent = [pick(&train_rows), pick(&validation_rows), pick(&test_rows)];
    let history_all = indexed.recent_items(crate::rank_models::HISTORY_WINDOW);
    let pick = |rows: &[usize]| rows.iter().map(|&r| history_all[r].clone()).collect();
    let history = [pick(&train_rows), pick(&validation_rows), pick(&test_rows)];
    let sequences = indexed.sequences(&train_rows)?;
    if test.is_empty() {
        return Err(Error::Data(
            "no user has two ratings, so there is nothing to hold out for testing".into(),
        ));
    }
    if validation.is_empty() {
        return Err(Error::Data(
            "no user has three ratings, so there is nothing to hold out for validation".into(),
        ));
    }
    let summary = DataSummary {
        source: source_name.to_string(),
        ratings_read: ratings.len(),
        repeated_pairs: repeated,
        ratings_kept: kept.len(),
        users: indexed.users().len(),
        items: indexed.items().len(),
        train: train.len(),
        validation: if validate { validation.len() } else { 0 },
        test: test.len(),
        min_user_ratings: min_user,
        min_item_ratings: min_item,
        latest_by_file_order: ratings.timestamps().is_none(),
    };
    Ok(Prepared {
        users: indexed.users().clone(),
        items: indexed.items().clone(),
        item_info: indexed.item_info().clone(),
        train,
        validation,
        test,
        recent,
        history,
        sequences,
        explored,
        summary,
    })
}
