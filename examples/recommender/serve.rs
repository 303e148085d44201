//! Deploy: what the SageMaker hosting contract answers, without the network.
//!
//! - `GET /ping` → 200 `{"status":"ok"}` (the server only listens once the model is loaded).
//! - `POST /invocations` with `{"customer_id": [...], "product_id": [...]}` (ids as strings
//!   or integers, lists of equal length), or `text/csv` lines `customer_id,product_id` →
//!   200 `{"predictions": [4.1, 3.7, ...], "cold_start": [false, true, ...]}`.
//!   A pair whose customer or product the model has not seen gets the train global mean
//!   and `cold_start: true`.
//! - `POST /invocations` with `{"customer_id": [...], "k": 10}` → each customer's top 10
//!   items, scored in one pass over the catalogue; an unseen customer gets the most
//!   rated items, flagged `cold_start`.
//! - `Accept: text/csv` answers in CSV without a header: `prediction,cold_start` per pair,
//!   `customer_id,product_id,score,cold_start` per recommended item;
//!   `application/json` (the default) in JSON; anything else → 406.
//! - Malformed JSON or CSV, missing fields, mismatched lengths → 400; an oversized body →
//!   413; a `Content-Type` other than JSON or CSV → 415; unknown path → 404; wrong method
//!   → 405. Every error body is `{"error": "..."}`, whatever the `Accept`.
//!
//! [`Service::handle`] is the whole logic; `server.rs` carries it over HTTP/1.1.

use crate::model::predict;
use crate::persist::LoadedModel;
use boson::ratings::{best_k, FullRanking, SeenItems};
use boson::Tensor;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// SageMaker's own limit for a real-time invocation payload.
pub const DEFAULT_MAX_BODY: usize = 6 * 1024 * 1024;

/// What the transport may accept from clients.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request body, in bytes; a larger one gets 413.
    pub max_body: usize,
    /// How long a client has for a request's line and headers, and how long an idle
    /// keep-alive connection stays open; a slower client's connection is closed.
    pub header_timeout: Duration,
    /// How long a client has to send a request's body, however steadily it trickles
    /// bytes; a slower one gets 408.
    pub body_timeout: Duration,
    /// How long a client may leave an answer unread (no byte of it taken) before the
    /// connection is closed and its scoring slot freed.
    pub write_timeout: Duration,
    /// Requests being scored or answered at once (slots are taken once a body has
    /// arrived, so slow uploads do not hold them); one more gets 503 at once.
    pub max_in_flight: usize,
    /// Requests sending their bodies at once; one more gets 503 at once.
    pub max_reading: usize,
    /// Customers in one top-k request; more get 413.
    pub max_customers: usize,
    /// The largest `k` of a top-k request; larger gets 400.
    pub max_k: usize,
    /// Pairs in one scoring request; more get 413.
    pub max_pairs: usize,
    /// The largest answer, in bytes; a request whose answer would pass it gets 413.
    pub max_answer_bytes: usize,
    /// One line per request on stdout: method, path, status, bytes, milliseconds.
    pub access_log: bool,
    /// After SIGTERM, how long in-flight requests have to finish before the server exits.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: DEFAULT_MAX_BODY,
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_in_flight: 128,
            max_reading: 1024,
            max_customers: 10_000,
            max_k: 1000,
            max_pairs: 1_000_000,
            max_answer_bytes: 64 << 20,
            access_log: true,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// One request as the logic sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The `Content-Type` header; none reads the body as JSON.
    pub content_type: Option<&'a str>,
    /// The `Accept` header; none answers JSON.
    pub accept: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A request with a JSON body (or none) and no `Accept`.
    pub fn new(method: &'a str, path: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            path,
            content_type: None,
            accept: None,
            body,
        }
    }
}

/// The two media types the endpoint reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv",
        }
    }
}

/// An HTTP answer: status, the body as written, and its format.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    /// [`Format::Csv`] only for a successful answer to a client that asked for CSV.
    pub format: Format,
    /// The body, written once (answers can be large: no JSON tree is built for them).
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON (`Null` for a CSV answer): for errors and tests.
    #[allow(dead_code)] // the example itself only writes bodies
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An error answer, always JSON.
pub fn error(status: u16, msg: impl Into<String>) -> Response {
    Response {
        status,
        format: Format::Json,
        body: json!({ "error": msg.into() }).to_string().into_bytes(),
    }
}

/// An answer written straight to bytes, refused (413) once it passes `limit` bytes.
struct Answer {
    out: Vec<u8>,
    format: Format,
    limit: usize,
}

impl Answer {
    fn new(format: Format, limit: usize) -> Answer {
        Answer {
            out: Vec::new(),
            format,
            limit,
        }
    }

    /// Appends `text` as it is.
    fn push(&mut self, text: &str) -> Result<(), Response> {
        self.out.extend_from_slice(text.as_bytes());
        self.check()
    }

    /// Appends a score as JSON and CSV write it (f32 widened to f64, as the answers
    /// always had it; scores are finite by now).
    fn number(&mut self, x: f32) -> Result<(), Response> {
        serde_json::to_writer(&mut self.out, &f64::from(x))
            .map_err(|e| error(500, format!("could not write a score: {e}")))?;
        self.check()
    }

    /// Appends an id: a JSON string literal, or a CSV field (quoted when it holds a
    /// comma, quote or line break).
    fn id(&mut self, id: &str) -> Result<(), Response> {
        match self.format {
            Format::Json => serde_json::to_writer(&mut self.out, id)
                .map_err(|e| error(500, format!("could not write an id: {e}")))?,
            Format::Csv if id.contains([',', '"', '\n', '\r']) => {
                self.out.push(b'"');
                self.out
                    .extend_from_slice(id.replace('"', "\"\"").as_bytes());
                self.out.push(b'"');
            }
            Format::Csv => self.out.extend_from_slice(id.as_bytes()),
        }
        self.check()
    }

    fn check(&self) -> Result<(), Response> {
        if self.out.len() > self.limit {
            return Err(error(
                413,
                format!(
                    "the answer would pass {} bytes, the server's limit \
                     (--max-answer-bytes): ask for fewer customers, pairs or a smaller k",
                    self.limit
                ),
            ));
        }
        Ok(())
    }

    fn done(self) -> Response {
        Response {
            status: 200,
            format: self.format,
            body: self.out,
        }
    }
}

/// The model behind the endpoint.
pub struct Service {
    pub model: LoadedModel,
    pub limits: Limits,
    /// Every item by its count of ratings, most first: the cold-start recommendations.
    by_popularity: Vec<(usize, f32)>,
    /// Each user's rated items (excluded from recommendations by default), and no items
    /// (for `"exclude_rated": false`); `None` without interactions.safetensors.
    exclusions: Option<[Arc<SeenItems>; 2]>,
    /// The catalogue's factor rows, computed by the first top-k request: the model does
    /// not change while served.
    catalogue: OnceLock<Tensor>,
}

impl Service {
    pub fn new(model: LoadedModel) -> Service {
        let by_popularity = match &model.interactions {
            Some(i) => {
                let counts: Vec<f32> = i.item_counts.iter().map(|&c| c as f32).collect();
                best_k(&counts, counts.len())
            }
            None => Vec::new(),
        };
        // The loader checked every rated item against the catalogue, so these succeed.
        let n = model.config.model.num_items;
        let exclusions = model.interactions.as_ref().and_then(|i| {
            let rated = SeenItems::new(n, i.rated.clone()).ok()?;
            let nothing = SeenItems::new(n, vec![Vec::new(); i.rated.len()]).ok()?;
            Some([Arc::new(rated), Arc::new(nothing)])
        });
        Service {
            exclusions,
            model,
            limits: Limits::default(),
            by_popularity,
            catalogue: OnceLock::new(),
        }
    }

    /// Answers one request. Never panics on any input.
    pub fn handle(&self, req: &Request) -> Response {
        let path = req.path.split('?').next().unwrap_or("");
        match (req.method, path) {
            ("GET" | "HEAD", "/ping") => Response {
                status: 200,
                format: Format::Json,
                body: br#"{"status":"ok"}"#.to_vec(),
            },
            ("POST", "/invocations") => {
                let body = req.body;
                if body.len() > self.limits.max_body {
                    return error(
                        413,
                        format!(
                            "body of {} bytes exceeds the limit of {} bytes",
                            body.len(),
                            self.limits.max_body
                        ),
                    );
                }
                let answer_in = match req.accept.map(accepted).unwrap_or(Ok(Format::Json)) {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                let answer = match req
                    .content_type
                    .map(content_format)
                    .unwrap_or(Ok((Format::Json, CsvHeader::Detect)))
                {
                    Ok((Format::Json, _)) => self.invoke(body, answer_in),
                    Ok((Format::Csv, header)) => {
                        csv_pairs(body, header).and_then(|(customers, products)| {
                            self.pairs(&customers, &products, answer_in)
                        })
                    }
                    Err(r) => Err(r),
                };
                answer.unwrap_or_else(|r| r)
            }
            (_, "/ping") | (_, "/invocations") => {
                error(405, format!("method {} not allowed on {path}", req.method))
            }
            _ => error(
                404,
                format!("no route {path}: use GET /ping or POST /invocations"),
            ),
        }
    }

    fn invoke(&self, body: &[u8], answer_in: Format) -> Result<Response, Response> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| error(400, format!("malformed JSON: {e}")))?;
        if v.get("k").is_some() {
            if v.get("product_id").is_some() {
                return Err(error(
                    400,
                    "a request has either \"product_id\" (score these pairs) or \"k\" \
                     (each customer's top k items), not both",
                ));
            }
            return self.recommend(&v, answer_in);
        }
        let customers = id_list(&v, "customer_id")?;
        let products = id_list(&v, "product_id")?;
        self.pairs(&customers, &products, answer_in)
    }

    /// Each (customer, product) pair's predicted score.
    fn pairs(
        &self,
        customers: &[String],
        products: &[String],
        answer_in: Format,
    ) -> Result<Response, Response> {
        if customers.len() != products.len() {
            return Err(error(
                400,
                format!(
                    "customer_id has {} entries but product_id has {}; they must pair up",
                    customers.len(),
                    products.len()
                ),
            ));
        }
        if customers.len() > self.limits.max_pairs {
            return Err(error(
                413,
                format!(
                    "{} pairs in one request; the server scores at most {} (--max-pairs): \
                     split the request",
                    customers.len(),
                    self.limits.max_pairs
                ),
            ));
        }
        let m = &self.model;
        let mut known = Vec::new();
        let (mut us, mut is) = (Vec::new(), Vec::new());
        for (k, (c, p)) in customers.iter().zip(products).enumerate() {
            if let (Some(&u), Some(&i)) = (m.users.get(c), m.items.get(p)) {
                known.push(k);
                us.push(u);
                is.push(i);
            }
        }
        let global_mean = m.config.model.global_mean;
        let mut predictions = vec![global_mean; customers.len()];
        let mut cold = vec![true; customers.len()];
        let scores = predict(m.model.as_ref(), &us, &is, m.device)
            .map_err(|e| error(500, format!("prediction failed: {e}")))?;
        for (&k, s) in known.iter().zip(scores) {
            if !s.is_finite() {
                return Err(error(
                    500,
                    format!(
                        "the model predicts {s} for customer {} and product {}: its weights \
                         are not finite; retrain or reload a good model folder",
                        customers[k], products[k]
                    ),
                ));
            }
            predictions[k] = s;
            cold[k] = false;
        }
        let mut out = Answer::new(answer_in, self.limits.max_answer_bytes);
        match answer_in {
            Format::Json => {
                out.push("{\"cold_start\":[")?;
                for (k, c) in cold.iter().enumerate() {
                    out.push(if k > 0 { "," } else { "" })?;
                    out.push(if *c { "true" } else { "false" })?;
                }
                out.push("],\"predictions\":[")?;
                for (k, &p) in predictions.iter().enumerate() {
                    out.push(if k > 0 { "," } else { "" })?;
                    out.number(p)?;
                }
                out.push("]}")?;
            }
            Format::Csv => {
                for (&p, c) in predictions.iter().zip(&cold) {
                    out.number(p)?;
                    out.push(if *c { ",true\n" } else { ",false\n" })?;
                }
            }
        }
        Ok(out.done())
    }
}

impl Service {
    /// `{"customer_id": [...], "k": 10, "exclude_rated": true}`: each customer's top k
    /// items with scores, from one scoring pass over the catalogue per block of
    /// customers, written as each block is scored; a customer the model has not seen gets
    /// the most rated items, flagged `cold_start`.
    fn recommend(&self, v: &Value, answer_in: Format) -> Result<Response, Response> {
        let m = &self.model;
        let customers = id_list(v, "customer_id")?;
        if customers.len() > self.limits.max_customers {
            return Err(error(
                413,
                format!(
                    "{} customers in one top-k request; the server ranks at most {} \
                     (--max-customers): split the request",
                    customers.len(),
                    self.limits.max_customers
                ),
            ));
        }
        let num_items = m.config.model.num_items;
        let max_k = self.limits.max_k;
        let k = v["k"]
            .as_u64()
            .filter(|&k| (1..=max_k as u64).contains(&k))
            .ok_or_else(|| {
                error(
                    400,
                    format!(
                        "\"k\" must be an integer from 1 to {max_k} (--max-k), got {}",
                        v["k"]
                    ),
                )
            })?
            .min(num_items as u64) as usize;
        let exclude_rated = match v.get("exclude_rated") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(error(
                    400,
                    format!("\"exclude_rated\" must be true or false, got {other}"),
                ))
            }
        };
        let Some([rated, nothing]) = &self.exclusions else {
            return Err(error(
                400,
                "this model folder has no interactions.safetensors (written before \
                 recommendations were served): retrain it to serve top-k requests",
            ));
        };
        let exclude = if exclude_rated { rated } else { nothing };
        let ranking = FullRanking::new(m.model.clone(), exclude.clone());
        let failed = |e: boson::Error| error(500, format!("scoring failed: {e}"));
        let factors = self.catalogue(&ranking).map_err(failed)?;
        let popular = &self.by_popularity[..k.min(self.by_popularity.len())];
        let ids = &m.item_ids;
        let mut out = Answer::new(answer_in, self.limits.max_answer_bytes);
        if answer_in == Format::Json {
            out.push("{\"recommendations\":[")?;
        }
        // Blocks of customers in request order: one GEMM each, written before the next.
        for (b, block) in customers.chunks(256).enumerate() {
            let known: Vec<i64> = block
                .iter()
                .filter_map(|c| m.users.get(c).copied())
                .collect();
            let n = known.len();
            let tops = Tensor::from_vec_i64(known, &[n])
                .and_then(|u| u.to_device(m.device))
                .and_then(|u| ranking.top_k_with(&u, factors, k))
                .map_err(failed)?;
            let mut tops = tops.iter();
            for (j, c) in block.iter().enumerate() {
                let (items, cold) = match m.users.contains_key(c) {
                    true => (tops.next().map_or(&[][..], |t| t.as_slice()), false),
                    false => (popular, true),
                };
                if answer_in == Format::Json {
                    out.push(if b + j > 0 { "," } else { "" })?;
                    out.push(if cold {
                        "{\"cold_start\":true"
                    } else {
                        "{\"cold_start\":false"
                    })?;
                    out.push(",\"customer_id\":")?;
                    out.id(c)?;
                    out.push(",\"items\":[")?;
                }
                for (r, &(i, score)) in items.iter().enumerate() {
                    if !score.is_finite() {
                        return Err(error(
                            500,
                            format!("the model scores item {} as {score} for {c}: its weights are not finite", ids[i]),
                        ));
                    }
                    // Cold-start items are scored by their count of ratings.
                    match answer_in {
                        Format::Json => {
                            out.push(if r > 0 {
                                ",{\"product_id\":"
                            } else {
                                "{\"product_id\":"
                            })?;
                            out.id(&ids[i])?;
                            out.push(",\"score\":")?;
                            out.number(score)?;
                            out.push("}")?;
                        }
                        Format::Csv => {
                            out.id(c)?;
                            out.push(",")?;
                            out.id(&ids[i])?;
                            out.push(",")?;
                            out.number(score)?;
                            out.push(if cold { ",true\n" } else { ",false\n" })?;
                        }
                    }
                }
                if answer_in == Format::Json {
                    out.push("]}")?;
                }
            }
        }
        if answer_in == Format::Json {
            out.push("]}")?;
        }
        Ok(out.done())
    }
}

impl Service {
    fn catalogue<S: ?Sized + boson::ratings::FactorScorer>(
        &self,
        ranking: &FullRanking<S>,
    ) -> boson::Result<&Tensor> {
        if let Some(factors) = self.catalogue.get() {
            return Ok(factors);
        }
        // Two first requests at once both compute it; one result is kept.
        let factors = ranking.all_item_factors(self.model.device)?;
        Ok(self.catalogue.get_or_init(|| factors))
    }
}

/// The ids under `key`: a list of strings or integers (the notebook sends pandas ints).
fn id_list(v: &Value, key: &str) -> Result<Vec<String>, Response> {
    let list = v
        .get(key)
        .ok_or_else(|| error(400, format!("missing field \"{key}\" (expected {{\"customer_id\": [...], \"product_id\": [...]}})")))?
        .as_array()
        .ok_or_else(|| error(400, format!("\"{key}\" must be a list")))?;
    list.iter()
        .map(|x| match x {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            other => Err(error(
                400,
                format!("\"{key}\" entries must be strings or integers, got {other}"),
            )),
        })
        .collect()
}

/// The answer's format for an `Accept` header: the acceptable range of highest quality.
fn accepted(accept: &str) -> Result<Format, Response> {
    if accept.trim().is_empty() {
        return Ok(Format::Json);
    }
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        let format = match media.as_str() {
            "application/json" | "application/*" | "*/*" => Format::Json,
            "text/csv" | "text/*" => Format::Csv,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f).ok_or_else(|| {
        error(
            406,
            format!("cannot answer in {accept:?}: send Accept: application/json or text/csv"),
        )
    })
}

/// Whether a CSV body's first line is a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvHeader {
    /// `text/csv; header=present`: the first line is a header, whatever it says.
    Present,
    /// `text/csv; header=absent`: every line is a pair.
    Absent,
    /// No parameter: the first line is a header when it names the two columns
    /// ([`CSV_HEADER_NAMES`]).
    Detect,
}

/// The column names a CSV body's header line may use, case-insensitively.
pub const CSV_HEADER_NAMES: [(&str, &str); 5] = [
    ("customer_id", "product_id"),
    ("customer", "product"),
    ("user_id", "item_id"),
    ("user", "item"),
    ("userid", "itemid"),
];

/// The body's format for a `Content-Type` header (RFC 4180's `header` parameter read
/// for CSV; others such as `charset` ignored).
fn content_format(content_type: &str) -> Result<(Format, CsvHeader), Response> {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("");
    let header = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("header"))
        .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
    match media.trim().to_ascii_lowercase().as_str() {
        "application/json" => Ok((Format::Json, CsvHeader::Detect)),
        "text/csv" => match header.as_deref() {
            None => Ok((Format::Csv, CsvHeader::Detect)),
            Some("present") => Ok((Format::Csv, CsvHeader::Present)),
            Some("absent") => Ok((Format::Csv, CsvHeader::Absent)),
            Some(other) => Err(error(
                400,
                format!("text/csv; header={other:?}: the header parameter is present or absent"),
            )),
        },
        _ => Err(error(
            415,
            format!("unsupported Content-Type {content_type:?}: send application/json or text/csv"),
        )),
    }
}

/// `customer_id,product_id` records, one per line (RFC 4180 quoting; an optional header
/// line first, see [`CsvHeader`]; empty lines skipped).
fn csv_pairs(body: &[u8], header: CsvHeader) -> Result<(Vec<String>, Vec<String>), Response> {
    use csv_core::ReadRecordResult;
    let mut reader = csv_core::Reader::new();
    let (mut customers, mut products) = (Vec::new(), Vec::new());
    let (mut out, mut ends) = (vec![0u8; 256], [0usize; 2]);
    let (mut out_len, mut ends_len) = (0, 0);
    let mut input = body;
    let (mut record, mut line) = (0usize, 1);
    loop {
        if out_len == 0 && ends_len == 0 {
            line = reader.line();
        }
        let (result, read, wrote, ended) =
            reader.read_record(input, &mut out[out_len..], &mut ends[ends_len..]);
        input = &input[read..];
        out_len += wrote;
        ends_len += ended;
        match result {
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
            ReadRecordResult::OutputEndsFull => return Err(csv_error(line, "more than 2 fields")),
            ReadRecordResult::Record => {
                if ends_len == 1 && ends[0] == 0 {
                    // An empty line.
                    (out_len, ends_len) = (0, 0);
                    continue;
                }
                record += 1;
                if ends_len != 2 {
                    return Err(csv_error(line, "1 field"));
                }
                let field = |a: usize, b: usize| {
                    std::str::from_utf8(&out[a..b])
                        .map(|f| f.trim().to_string())
                        .map_err(|_| error(400, format!("CSV line {line}: not UTF-8")))
                };
                let (c, p) = (field(0, ends[0])?, field(ends[0], ends[1])?);
                let is_header = record == 1
                    && match header {
                        CsvHeader::Present => true,
                        CsvHeader::Absent => false,
                        CsvHeader::Detect => CSV_HEADER_NAMES
                            .iter()
                            .any(|(a, b)| c.eq_ignore_ascii_case(a) && p.eq_ignore_ascii_case(b)),
                    };
                if !is_header {
                    customers.push(c);
                    products.push(p);
                }
                (out_len, ends_len) = (0, 0);
            }
            ReadRecordResult::End => return Ok((customers, products)),
        }
    }
}

fn csv_error(line: u64, got: &str) -> Response {
    error(
        400,
        format!("CSV line {line}: expected 2 fields, customer_id,product_id; got {got}"),
    )
}
