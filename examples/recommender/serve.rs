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
    /// Requests being read or scored at once; one more gets 503 at once.
    pub max_in_flight: usize,
    /// After SIGTERM, how long in-flight requests have to finish before the server exits.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: DEFAULT_MAX_BODY,
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_in_flight: 128,
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

/// An HTTP answer: status, JSON body, and the format it is written in.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    /// [`Format::Csv`] only for a successful answer to a client that asked for CSV.
    pub format: Format,
}

impl Response {
    fn ok(body: Value, format: Format) -> Response {
        Response {
            status: 200,
            body,
            format,
        }
    }

    /// The body as bytes in its format.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.format {
            Format::Json => self.body.to_string().into_bytes(),
            Format::Csv => to_csv(&self.body).into_bytes(),
        }
    }
}

/// An error answer, always JSON.
pub fn error(status: u16, msg: impl Into<String>) -> Response {
    Response {
        status,
        body: json!({ "error": msg.into() }),
        format: Format::Json,
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
            ("GET", "/ping") => Response::ok(json!({ "status": "ok" }), Format::Json),
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
                    .unwrap_or(Ok(Format::Json))
                {
                    Ok(Format::Json) => self.invoke(body),
                    Ok(Format::Csv) => csv_pairs(body)
                        .and_then(|(customers, products)| self.pairs(&customers, &products)),
                    Err(r) => Err(r),
                };
                match answer {
                    Ok(v) => Response::ok(v, answer_in),
                    Err(r) => r,
                }
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

    fn invoke(&self, body: &[u8]) -> Result<Value, Response> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| error(400, format!("malformed JSON: {e}")))?;
        if v.get("k").is_some() {
            return self.recommend(&v);
        }
        let customers = id_list(&v, "customer_id")?;
        let products = id_list(&v, "product_id")?;
        self.pairs(&customers, &products)
    }

    /// Each (customer, product) pair's predicted score.
    fn pairs(&self, customers: &[String], products: &[String]) -> Result<Value, Response> {
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
        Ok(json!({ "predictions": predictions, "cold_start": cold }))
    }
}

impl Service {
    /// `{"customer_id": [...], "k": 10, "exclude_rated": true}`: each customer's top k
    /// items with scores, from one scoring pass over the catalogue per block of
    /// customers; a customer the model has not seen gets the most rated items, flagged
    /// `cold_start`.
    fn recommend(&self, v: &Value) -> Result<Value, Response> {
        let m = &self.model;
        let customers = id_list(v, "customer_id")?;
        let num_items = m.config.model.num_items;
        let k = v["k"]
            .as_u64()
            .filter(|&k| k >= 1)
            .ok_or_else(|| {
                error(
                    400,
                    format!("\"k\" must be an integer >= 1, got {}", v["k"]),
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
        let known: Vec<(usize, i64)> = customers
            .iter()
            .enumerate()
            .filter_map(|(k, c)| m.users.get(c).map(|&u| (k, u)))
            .collect();
        let users: Vec<i64> = known.iter().map(|&(_, u)| u).collect();
        let exclude = if exclude_rated { rated } else { nothing };
        let ranking = FullRanking::new(m.model.clone(), exclude.clone());
        let tops = self
            .catalogue(&ranking)
            .and_then(|factors| {
                let n = users.len();
                let u = Tensor::from_vec_i64(users, &[n])?.to_device(m.device)?;
                ranking.top_k_with(&u, factors, k)
            })
            .map_err(|e| error(500, format!("scoring failed: {e}")))?;
        let popular = &self.by_popularity[..k.min(self.by_popularity.len())];
        let ids = &m.item_ids;
        let mut by_customer: Vec<Option<&Vec<(usize, f32)>>> = vec![None; customers.len()];
        for ((k, _), top) in known.iter().zip(&tops) {
            by_customer[*k] = Some(top);
        }
        let mut out = Vec::with_capacity(customers.len());
        for (c, top) in customers.iter().zip(by_customer) {
            let (items, cold) = match top {
                Some(top) => (top.as_slice(), false),
                None => (popular, true),
            };
            let mut list = Vec::with_capacity(items.len());
            for &(i, score) in items {
                if !score.is_finite() {
                    return Err(error(
                        500,
                        format!("the model scores item {} as {score} for {c}: its weights are not finite", ids[i]),
                    ));
                }
                // Cold-start items are scored by their count of ratings.
                list.push(json!({ "product_id": ids[i], "score": score }));
            }
            out.push(json!({ "customer_id": c, "cold_start": cold, "items": list }));
        }
        Ok(json!({ "recommendations": out }))
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

/// The body's format for a `Content-Type` header (parameters such as `charset` ignored).
fn content_format(content_type: &str) -> Result<Format, Response> {
    let media = content_type.split(';').next().unwrap_or("");
    match media.trim().to_ascii_lowercase().as_str() {
        "application/json" => Ok(Format::Json),
        "text/csv" => Ok(Format::Csv),
        _ => Err(error(
            415,
            format!("unsupported Content-Type {content_type:?}: send application/json or text/csv"),
        )),
    }
}

/// `customer_id,product_id` records, one per line (RFC 4180 quoting; an optional header
/// line of those two names first; empty lines skipped).
fn csv_pairs(body: &[u8]) -> Result<(Vec<String>, Vec<String>), Response> {
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
                let header = record == 1
                    && c.eq_ignore_ascii_case("customer_id")
                    && p.eq_ignore_ascii_case("product_id");
                if !header {
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

/// An answer's body as CSV lines without a header: `prediction,cold_start` per pair, or
/// `customer_id,product_id,score,cold_start` per recommended item.
fn to_csv(body: &Value) -> String {
    let mut out = String::new();
    let text = |v: &Value| match v {
        Value::String(s) => csv_field(s),
        other => other.to_string(),
    };
    if let (Some(p), Some(c)) = (
        body["predictions"].as_array(),
        body["cold_start"].as_array(),
    ) {
        for (p, c) in p.iter().zip(c) {
            out.push_str(&format!("{p},{c}\n"));
        }
    } else if let Some(recs) = body["recommendations"].as_array() {
        for rec in recs {
            for item in rec["items"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{},{},{},{}\n",
                    text(&rec["customer_id"]),
                    text(&item["product_id"]),
                    item["score"],
                    rec["cold_start"]
                ));
            }
        }
    } else {
        out = body.to_string();
    }
    out
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
