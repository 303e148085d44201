//! Reading delimited rating files (plain or gzip) into [`Ratings`], with a per-line
//! policy for malformed lines.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};
use crate::ratings::dates::parse_date;
use crate::ratings::table::Ratings;

/// Where a field is: by header name, or by 0-based position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// A header name (the format must have a header).
    Name(String),
    /// A 0-based position.
    Index(usize),
}

impl Column {
    /// A column by header name.
    pub fn name(name: &str) -> Column {
        Column::Name(name.to_string())
    }
}

/// How a time column is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampKind {
    /// Integer seconds since 1970-01-01 UTC (MovieLens).
    UnixSeconds,
    /// `YYYY-MM-DD` (Amazon `review_date`), read as midnight UTC.
    Date,
    /// Either: integer or fractional Unix seconds (the fraction dropped), or
    /// `YYYY-MM-DD` (for files whose time column's kind is not known in advance).
    Auto,
}

/// The layout of a delimited rating file. Use a preset ([`amazon_reviews`],
/// [`movielens_100k`], [`movielens_1m`], [`movielens_csv`]) or build one.
///
/// [`amazon_reviews`]: Self::amazon_reviews
/// [`movielens_100k`]: Self::movielens_100k
/// [`movielens_1m`]: Self::movielens_1m
/// [`movielens_csv`]: Self::movielens_csv
///
/// ```
/// use boson::ratings::{Column, DelimitedFormat};
///
/// // user;item;score with no header and no time column, scores 0..=10
/// let format = DelimitedFormat {
///     rating_range: Some((0.0, 10.0)),
///     ..DelimitedFormat::new(";", false, Column::Index(0), Column::Index(1), Column::Index(2))
/// };
/// assert_eq!(format.delimiter, ";");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DelimitedFormat {
    /// The field separator (one or more bytes: `"\t"`, `","`, `"::"`).
    pub delimiter: String,
    /// Whether the first line is a header (needed for [`Column::Name`]).
    pub header: bool,
    /// The user id column.
    pub user: Column,
    /// The item id column.
    pub item: Column,
    /// The rating column.
    pub rating: Column,
    /// The time column and its kind, if any.
    pub timestamp: Option<(Column, TimestampKind)>,
    /// The exact number of fields a line must have. `None`: the header's count when
    /// there is a header, else just enough fields to reach every column used.
    pub fields: Option<usize>,
    /// Inclusive bounds for a valid rating; `None` accepts any finite number.
    pub rating_range: Option<(f32, f32)>,
    /// Fields may be quoted as in RFC 4180 CSV (`"a,b"`, `""` for a quote), parsed by
    /// csv-core; needs a one-byte delimiter. A quoted field cannot span lines.
    pub quoted: bool,
    /// Text columns to keep per item (e.g. `product_title`), the first value seen for
    /// each item: [`Ratings::item_info`].
    pub item_columns: Vec<Column>,
    /// The longest line the reader accepts, in bytes without its line ending (default
    /// [`DEFAULT_MAX_LINE_BYTES`], 1 MiB; at least 1). The reader never holds more of a
    /// line than this: a longer data line is skipped and counted as
    /// [`BadLineReason::LineTooLong`] under [`OnBadLine::Skip`] (its rest read and
    /// dropped) and an error naming the file, the line and the limit under
    /// [`OnBadLine::Fail`]; a longer header is always an error.
    pub max_line_bytes: usize,
}

/// The default [`DelimitedFormat::max_line_bytes`]: 1 MiB, far above real rating files'
/// lines (an Amazon review with its full text is a few KiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl DelimitedFormat {
    /// A format with the given columns, no time column, no field count, no range.
    pub fn new(delimiter: &str, header: bool, user: Column, item: Column, rating: Column) -> Self {
        DelimitedFormat {
            delimiter: delimiter.to_string(),
            header,
            user,
            item,
            rating,
            timestamp: None,
            fields: None,
            rating_range: None,
            quoted: false,
            item_columns: Vec::new(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// `user,item,rating` CSV with a header naming the columns, RFC 4180 quoting, ratings
    /// 1..=5 (set `rating_range` for another scale).
    pub fn csv(user: &str, item: &str, rating: &str) -> Self {
        DelimitedFormat {
            rating_range: Some((1.0, 5.0)),
            quoted: true,
            ..Self::new(
                ",",
                true,
                Column::name(user),
                Column::name(item),
                Column::name(rating),
            )
        }
    }

    /// The Amazon Customer Reviews TSV: 15 tab-separated columns with a header;
    /// `customer_id`, `product_id`, `star_rating` (1..=5), `review_date` (YYYY-MM-DD).
    pub fn amazon_reviews() -> Self {
        DelimitedFormat {
            timestamp: Some((Column::name("review_date"), TimestampKind::Date)),
            fields: Some(AMAZON_COLUMNS.len()),
            rating_range: Some((1.0, 5.0)),
            ..Self::new(
                "\t",
                true,
                Column::name("customer_id"),
                Column::name("product_id"),
                Column::name("star_rating"),
            )
        }
    }

    /// MovieLens 100K `u.data`: `user \t item \t rating \t timestamp`, no header.
    pub fn movielens_100k() -> Self {
        Self::movielens_plain("\t")
    }

    /// MovieLens 1M/10M `ratings.dat`: `user::item::rating::timestamp`, no header.
    pub fn movielens_1m() -> Self {
        Self::movielens_plain("::")
    }

    fn movielens_plain(delimiter: &str) -> Self {
        DelimitedFormat {
            timestamp: Some((Column::Index(3), TimestampKind::UnixSeconds)),
            fields: Some(4),
            rating_range: Some((1.0, 5.0)),
            ..Self::new(
                delimiter,
                false,
                Column::Index(0),
                Column::Index(1),
                Column::Index(2),
            )
        }
    }

    /// RecBole's atomic `.inter` files (e.g. `ml-100k.inter`, as PyPI's recbole wheel
    /// ships it): tab-separated, header `user_id:token  item_id:token  rating:float
    /// timestamp:float`, ratings 1..=5.
    pub fn recbole_inter() -> Self {
        DelimitedFormat {
            timestamp: Some((Column::name("timestamp:float"), TimestampKind::UnixSeconds)),
            rating_range: Some((1.0, 5.0)),
            ..Self::new(
                "\t",
                true,
                Column::name("user_id:token"),
                Column::name("item_id:token"),
                Column::name("rating:float"),
            )
        }
    }

    /// MovieLens `ratings.csv` (20M, 25M, latest): header
    /// `userId,movieId,rating,timestamp`, half-star ratings 0.5..=5.
    pub fn movielens_csv() -> Self {
        DelimitedFormat {
            timestamp: Some((Column::name("timestamp"), TimestampKind::UnixSeconds)),
            rating_range: Some((0.5, 5.0)),
            quoted: true,
            ..Self::new(
                ",",
                true,
                Column::name("userId"),
                Column::name("movieId"),
                Column::name("rating"),
            )
        }
    }
}

/// The 15 columns of the Amazon Customer Reviews TSV, in order.
pub const AMAZON_COLUMNS: [&str; 15] = [
    "marketplace",
    "customer_id",
    "review_id",
    "product_id",
    "product_parent",
    "product_title",
    "product_category",
    "star_rating",
    "helpful_votes",
    "total_votes",
    "vine",
    "verified_purchase",
    "review_headline",
    "review_body",
    "review_date",
];

/// What to do with a malformed line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnBadLine {
    /// Skip it and count it in the [`ReadReport`] (pandas' `error_bad_lines=False`,
    /// which the reference notebook used).
    #[default]
    Skip,
    /// Stop with an [`Error::Format`] naming the file, the line number and the reason.
    Fail,
}

/// Why a line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BadLineReason {
    /// Not the expected number of fields.
    WrongFieldCount,
    /// An empty user or item id.
    EmptyId,
    /// A needed field is not valid UTF-8.
    InvalidUtf8,
    /// The rating is not a finite number.
    BadRating,
    /// The rating is outside the format's range.
    RatingOutOfRange,
    /// The time field does not parse.
    BadTimestamp,
    /// The file ends without a newline and its last line is malformed (a cut-off
    /// download, typically).
    TruncatedLastLine,
    /// The line is longer than [`DelimitedFormat::max_line_bytes`].
    LineTooLong,
}

impl fmt::Display for BadLineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadLineReason::WrongFieldCount => "wrong field count",
            BadLineReason::EmptyId => "empty id",
            BadLineReason::InvalidUtf8 => "invalid UTF-8",
            BadLineReason::BadRating => "rating is not a number",
            BadLineReason::RatingOutOfRange => "rating out of range",
            BadLineReason::BadTimestamp => "bad timestamp",
            BadLineReason::TruncatedLastLine => "truncated last line",
            BadLineReason::LineTooLong => "line too long",
        })
    }
}

/// One skipped line, kept as an example in the [`ReadReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// The reason.
    pub reason: BadLineReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.reason, self.detail)
    }
}

/// How many examples of skipped lines a report keeps.
const MAX_EXAMPLES: usize = 10;

/// What a read did: lines seen, ratings kept, lines skipped by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// The file (or source name) read.
    pub path: PathBuf,
    /// Data lines seen (not counting the header or blank lines).
    pub lines: u64,
    /// Ratings kept.
    pub kept: u64,
    /// Skipped lines per reason.
    pub skipped: BTreeMap<BadLineReason, u64>,
    /// The first few skipped lines.
    pub examples: Vec<BadLine>,
}

impl ReadReport {
    /// The number of skipped lines.
    pub fn total_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }
}

impl fmt::Display for ReadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} lines, {} ratings kept, {} skipped",
            self.path.display(),
            self.lines,
            self.kept,
            self.total_skipped()
        )?;
        for (reason, count) in &self.skipped {
            write!(f, "\n  {reason}: {count}")?;
        }
        Ok(())
    }
}

/// Reads a rating file, plain or gzip (recognised by its magic bytes, not its name).
///
/// ```
/// use boson::ratings::{read_ratings, DelimitedFormat, OnBadLine};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("u.data");
/// std::fs::write(&path, "1\t10\t4\t881250949\n2\t10\t9\t881250950\n")?;
/// let (ratings, report) = read_ratings(&path, &DelimitedFormat::movielens_100k(), OnBadLine::Skip)?;
/// assert_eq!(ratings.len(), 1);
/// assert_eq!(report.total_skipped(), 1); // rating 9 is out of range
/// assert!(read_ratings(&path, &DelimitedFormat::movielens_100k(), OnBadLine::Fail).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_ratings(
    path: impl AsRef<Path>,
    format: &DelimitedFormat,
    on_bad_line: OnBadLine,
) -> Result<(Ratings, ReadReport)> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    read_ratings_stream(file, path, format, on_bad_line)
}

/// [`read_ratings`] from any reader (a file wrapped in a progress bar, a network
/// stream): plain or gzip, told apart by the magic bytes; `name` is used in errors and
/// the report.
pub fn read_ratings_stream(
    stream: impl Read,
    name: impl AsRef<Path>,
    format: &DelimitedFormat,
    on_bad_line: OnBadLine,
) -> Result<(Ratings, ReadReport)> {
    let name = name.as_ref();
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let magic = reader.fill_buf().map_err(|e| Error::io(name, e))?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        let gz = BufReader::with_capacity(1 << 16, MultiGzDecoder::new(reader));
        read_ratings_from(gz, name, format, on_bad_line)
    } else {
        read_ratings_from(reader, name, format, on_bad_line)
    }
}

/// Reads rating lines from any buffered reader; `name` is used in errors and the report.
pub fn read_ratings_from(
    mut reader: impl BufRead,
    name: impl AsRef<Path>,
    format: &DelimitedFormat,
    on_bad_line: OnBadLine,
) -> Result<(Ratings, ReadReport)> {
    let name = name.as_ref();
    let format_error = |msg: String| Error::Format {
        path: name.to_path_buf(),
        msg,
    };
    if format.delimiter.is_empty() {
        return Err(Error::InvalidArgument("empty delimiter".into()));
    }
    if format.max_line_bytes == 0 {
        return Err(Error::InvalidArgument(
            "DelimitedFormat::max_line_bytes must be at least 1, got 0".into(),
        ));
    }
    let max_line = format.max_line_bytes;
    let too_long = |line: u64| {
        format!(
            "line {line}: line too long: more than {max_line} bytes, the limit \
             (DelimitedFormat::max_line_bytes); check the format and the line endings, or \
             raise the limit"
        )
    };
    let mut splitter = Splitter::new(format)?;
    let mut report = ReadReport {
        path: name.to_path_buf(),
        ..ReadReport::default()
    };
    let mut buf = Vec::with_capacity(1024);
    let mut fields: Vec<(usize, usize)> = Vec::with_capacity(16);
    let mut line_number: u64 = 0;

    // Read one line into `buf` without its line ending, holding at most `max_line` bytes
    // of it (+2 for "\r\n"); Ok(None) at the end of the file, else whether it ended with
    // a newline, or Line::TooLong with `buf` empty (and the line's rest read and dropped
    // when `skip_rest`).
    let mut next_line =
        |buf: &mut Vec<u8>, line_number: &mut u64, skip_rest: bool| -> Result<Option<Line>> {
            buf.clear();
            let before = *line_number;
            let read_error =
                |e: std::io::Error| format_error(format!("read failed after line {before}: {e}"));
            let cap = u64::try_from(max_line).map_or(u64::MAX, |m| m.saturating_add(2));
            let n = (&mut reader)
                .take(cap)
                .read_until(b'\n', buf)
                .map_err(read_error)?;
            if n == 0 {
                return Ok(None);
            }
            *line_number += 1;
            let complete = buf.last() == Some(&b'\n');
            if complete {
                buf.pop();
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.len() > max_line {
                buf.clear();
                if skip_rest && !complete {
                    reader.skip_until(b'\n').map_err(read_error)?;
                }
                return Ok(Some(Line::TooLong));
            }
            Ok(Some(if complete {
                Line::Complete
            } else {
                Line::Unterminated
            }))
        };

    let header_fields: Option<Vec<String>> = if format.header {
        match next_line(&mut buf, &mut line_number, false)? {
            None => return Err(format_error("empty file: expected a header line".into())),
            Some(Line::TooLong) => {
                return Err(format_error(format!("{} (the header)", too_long(1))))
            }
            Some(_) => {}
        }
        let bytes = splitter.split(&buf, &mut fields);
        Some(
            fields
                .iter()
                .map(|&(s, e)| String::from_utf8_lossy(&bytes[s..e]).trim().to_string())
                .collect(),
        )
    } else {
        None
    };
    let layout = Layout::resolve(format, header_fields.as_deref()).map_err(format_error)?;
    let item_columns: Vec<String> = format
        .item_columns
        .iter()
        .map(|c| match c {
            Column::Name(name) => name.clone(),
            Column::Index(i) => format!("column {i}"),
        })
        .collect();
    let mut ratings = Ratings::with_item_columns(format.timestamp.is_some(), &item_columns);

    let skip = on_bad_line == OnBadLine::Skip;
    while let Some(line) = next_line(&mut buf, &mut line_number, skip)? {
        if line == Line::TooLong {
            report.lines += 1;
            if on_bad_line == OnBadLine::Fail {
                return Err(format_error(too_long(line_number)));
            }
            let bad = BadLine {
                line: line_number,
                reason: BadLineReason::LineTooLong,
                detail: format!("more than {max_line} bytes"),
            };
            *report.skipped.entry(bad.reason).or_insert(0) += 1;
            if report.examples.len() < MAX_EXAMPLES {
                report.examples.push(bad);
            }
            continue;
        }
        let complete = line == Line::Complete;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.lines += 1;
        let bytes = splitter.split(&buf, &mut fields);
        match layout.parse(bytes, &fields, format) {
            Ok(row) => {
                ratings.push(row.user, row.item, row.rating, row.timestamp)?;
                if !layout.extras.is_empty() {
                    let text = |&column: &usize| {
                        let (s, e) = fields[column];
                        std::str::from_utf8(&bytes[s..e]).unwrap_or("").trim()
                    };
                    let extras: Vec<&str> = layout.extras.iter().map(text).collect();
                    ratings.push_item_info(&extras)?;
                }
                report.kept += 1;
            }
            Err((reason, detail)) => {
                let bad = if complete {
                    BadLine {
                        line: line_number,
                        reason,
                        detail,
                    }
                } else {
                    BadLine {
                        line: line_number,
                        reason: BadLineReason::TruncatedLastLine,
                        detail: format!("no newline at end of file and {reason}: {detail}"),
                    }
                };
                if on_bad_line == OnBadLine::Fail {
                    return Err(format_error(bad.to_string()));
                }
                *report.skipped.entry(bad.reason).or_insert(0) += 1;
                if report.examples.len() < MAX_EXAMPLES {
                    report.examples.push(bad);
                }
            }
        }
    }
    Ok((ratings, report))
}

/// What the reader found of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// Ended by a newline.
    Complete,
    /// The file's last line, without a newline.
    Unterminated,
    /// Longer than `max_line_bytes` (not kept).
    TooLong,
}

/// How a line becomes fields: split on the delimiter, or parsed as quoted CSV.
enum Splitter {
    Plain(Vec<u8>),
    Quoted {
        parser: Box<csv_core::Reader>,
        unescaped: Vec<u8>,
    },
}

impl Splitter {
    fn new(format: &DelimitedFormat) -> Result<Splitter> {
        let delimiter = format.delimiter.as_bytes();
        match (format.quoted, delimiter) {
            (false, _) => Ok(Splitter::Plain(delimiter.to_vec())),
            (true, &[d]) => Ok(Splitter::Quoted {
                parser: Box::new(csv_core::ReaderBuilder::new().delimiter(d).build()),
                unescaped: Vec::new(),
            }),
            (true, _) => Err(Error::InvalidArgument(format!(
                "quoted fields need a one-byte delimiter, got {:?}",
                format.delimiter
            ))),
        }
    }

    /// Fills `fields` with (start, end) ranges into the returned bytes: the line itself,
    /// or its unescaped fields.
    fn split<'a>(&'a mut self, line: &'a [u8], fields: &mut Vec<(usize, usize)>) -> &'a [u8] {
        match self {
            Splitter::Plain(delimiter) => {
                split_fields(line, delimiter, fields);
                line
            }
            Splitter::Quoted { parser, unescaped } => {
                split_quoted(line, parser, unescaped, fields);
                unescaped
            }
        }
    }
}

/// Parses one CSV line with csv-core: unescaped fields go to `out`, their ranges to
/// `fields`.
fn split_quoted(
    line: &[u8],
    parser: &mut csv_core::Reader,
    out: &mut Vec<u8>,
    fields: &mut Vec<(usize, usize)>,
) {
    use csv_core::ReadFieldResult;
    parser.reset();
    fields.clear();
    // Unescaping never lengthens a field.
    out.clear();
    out.resize(line.len() + 1, 0);
    let (mut input, mut written, mut start) = (line, 0, 0);
    loop {
        let (result, read, wrote) = parser.read_field(input, &mut out[written..]);
        input = &input[read..];
        written += wrote;
        match result {
            // The line is consumed: the next call, with no input, ends the record.
            ReadFieldResult::InputEmpty => {}
            ReadFieldResult::OutputFull => out.resize(out.len() * 2, 0),
            ReadFieldResult::Field { record_end } => {
                fields.push((start, written));
                start = written;
                if record_end {
                    break;
                }
            }
            ReadFieldResult::End => break,
        }
    }
    out.truncate(written);
}

/// Splits `line` on `delimiter` into (start, end) byte ranges.
fn split_fields(line: &[u8], delimiter: &[u8], out: &mut Vec<(usize, usize)>) {
    out.clear();
    let mut start = 0;
    if let [single] = delimiter {
        for (i, &b) in line.iter().enumerate() {
            if b == *single {
                out.push((start, i));
                start = i + 1;
            }
        }
    } else {
        let mut i = 0;
        while i + delimiter.len() <= line.len() {
            if &line[i..i + delimiter.len()] == delimiter {
                out.push((start, i));
                i += delimiter.len();
                start = i;
            } else {
                i += 1;
            }
        }
    }
    out.push((start, line.len()));
}

/// A format with its columns resolved to positions.
struct Layout {
    user: usize,
    item: usize,
    rating: usize,
    timestamp: Option<(usize, TimestampKind)>,
    /// The kept item columns' positions.
    extras: Vec<usize>,
    /// Exact field count, or the minimum when `exact` is false.
    fields: usize,
    exact: bool,
}

struct Row<'a> {
    user: &'a str,
    item: &'a str,
    rating: f32,
    timestamp: Option<i64>,
}

type LineError = (BadLineReason, String);

impl Layout {
    fn resolve(
        format: &DelimitedFormat,
        header: Option<&[String]>,
    ) -> std::result::Result<Layout, String> {
        let position = |column: &Column| -> std::result::Result<usize, String> {
            match (column, header) {
                (Column::Index(i), _) => Ok(*i),
                (Column::Name(name), Some(header)) => header
                    .iter()
                    .position(|h| h == name)
                    .ok_or_else(|| format!("header has no column {name:?} (columns: {header:?})")),
                (Column::Name(name), None) => Err(format!(
                    "column {name:?} is named but the format has no header"
                )),
            }
        };
        let user = position(&format.user)?;
        let item = position(&format.item)?;
        let rating = position(&format.rating)?;
        let timestamp = match &format.timestamp {
            Some((column, kind)) => Some((position(column)?, *kind)),
            None => None,
        };
        let extras = format
            .item_columns
            .iter()
            .map(position)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let needed = 1 + [user, item, rating, timestamp.map_or(0, |t| t.0)]
            .into_iter()
            .chain(extras.iter().copied())
            .max()
            .unwrap_or(0);
        let (fields, exact) = match (format.fields, header) {
            (Some(n), _) => (n, true),
            (None, Some(h)) => (h.len(), true),
            (None, None) => (needed, false),
        };
        if let (Some(h), Some(n)) = (header, format.fields) {
            if h.len() != n {
                return Err(format!("header has {} columns, expected {n}", h.len()));
            }
        }
        if fields < needed {
            return Err(format!(
                "lines have {fields} fields but the columns need {needed}"
            ));
        }
        Ok(Layout {
            user,
            item,
            rating,
            timestamp,
            extras,
            fields,
            exact,
        })
    }

    fn parse<'a>(
        &self,
        line: &'a [u8],
        fields: &[(usize, usize)],
        format: &DelimitedFormat,
    ) -> std::result::Result<Row<'a>, LineError> {
        let count_ok = if self.exact {
            fields.len() == self.fields
        } else {
            fields.len() >= self.fields
        };
        if !count_ok {
            return Err((
                BadLineReason::WrongFieldCount,
                format!("{} fields, expected {}", fields.len(), self.fields),
            ));
        }
        let text = |column: usize, what: &str| -> std::result::Result<&'a str, LineError> {
            let (s, e) = fields[column];
            std::str::from_utf8(&line[s..e])
                .map(str::trim)
                .map_err(|_| (BadLineReason::InvalidUtf8, format!("{what} field")))
        };
        let user = text(self.user, "user")?;
        let item = text(self.item, "item")?;
        if user.is_empty() || item.is_empty() {
            return Err((
                BadLineReason::EmptyId,
                format!("user {user:?}, item {item:?}"),
            ));
        }
        let rating_text = text(self.rating, "rating")?;
        let rating: f32 = match rating_text.parse::<f32>() {
            Ok(r) if r.is_finite() => r,
            _ => return Err((BadLineReason::BadRating, format!("{rating_text:?}"))),
        };
        if let Some((low, high)) = format.rating_range {
            if !(low..=high).contains(&rating) {
                return Err((
                    BadLineReason::RatingOutOfRange,
                    format!("{rating} not in {low}..={high}"),
                ));
            }
        }
        let timestamp = match self.timestamp {
            None => None,
            Some((column, kind)) => {
                let t = text(column, "timestamp")?;
                let parsed = match kind {
                    TimestampKind::UnixSeconds => t.parse::<i64>().ok(),
                    TimestampKind::Date => parse_date(t),
                    TimestampKind::Auto => t
                        .parse::<i64>()
                        .ok()
                        .or_else(|| {
                            t.parse::<f64>()
                                .ok()
                                .filter(|x| x.is_finite() && x.abs() < 1e17)
                                .map(|x| x.floor() as i64)
                        })
                        .or_else(|| parse_date(t)),
                };
                match parsed {
                    Some(seconds) => Some(seconds),
                    None => return Err((BadLineReason::BadTimestamp, format!("{t:?}"))),
                }
            }
        };
        Ok(Row {
            user,
            item,
            rating,
            timestamp,
        })
    }
}
