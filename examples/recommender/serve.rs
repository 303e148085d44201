//! Deploy: the SageMaker hosting contract over plain HTTP/1.1.
//!
//! - `GET /ping` → 200 `{"status":"ok"}` (the server only listens once the model is loaded).
//! - `POST /invocations` with `{"customer_id": [...], "product_id": [...]}` (ids as strings
//!   or integers, lists of equal length) → 200
//!   `{"predictions": [4.1, 3.7, ...], "cold_start": [false, true, ...]}`.
//!   A pair whose customer or product the model has not seen gets the train global mean
//!   and `cold_start: true`.
//! - Malformed JSON, missing fields, mismatched lengths → 400; an oversized body → 413;
//!   unknown path → 404; wrong method → 405. Every error body is `{"error": "..."}`.
//!
//! [`Service::handle`] is the whole logic and needs no network; [`serve`] is a small
//! std `TcpListener` loop (one thread per connection, read timeouts, size limits) around it.

use crate::evaluate::top_k;
use crate::model::predict;
use crate::persist::LoadedModel;
use boson::ratings::{best_k, SeenItems};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// SageMaker's own limit for a real-time invocation payload.
pub const DEFAULT_MAX_BODY: usize = 6 * 1024 * 1024;
/// Request line + headers larger than this are refused.
const MAX_HEAD: usize = 16 * 1024;

/// An HTTP answer: status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

fn error(status: u16, msg: impl Into<String>) -> Response {
    Response {
        status,
        body: json!({ "error": msg.into() }),
    }
}

/// The model behind the endpoint.
pub struct Service {
    pub model: LoadedModel,
    pub max_body: usize,
    /// How long a client has to send its whole request (headers and body); a slower one
    /// gets 408, however steadily it trickles bytes.
    pub request_deadline: Duration,
    /// Every item by its count of ratings, most first: the cold-start recommendations.
    by_popularity: Vec<(usize, f32)>,
    /// Each user's rated items (excluded from recommendations by default), and no items
    /// (for `"exclude_rated": false`); `None` without interactions.safetensors.
    exclusions: Option<[Arc<SeenItems>; 2]>,
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
            max_body: DEFAULT_MAX_BODY,
            request_deadline: Duration::from_secs(60),
            by_popularity,
        }
    }

    /// Answers one request. Never panics on any input.
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let path = path.split('?').next().unwrap_or("");
        match (method, path) {
            ("GET", "/ping") => Response {
                status: 200,
                body: json!({ "status": "ok" }),
            },
            ("POST", "/invocations") => {
                if body.len() > self.max_body {
                    return error(
                        413,
                        format!(
                            "body of {} bytes exceeds the limit of {} bytes",
                            body.len(),
                            self.max_body
                        ),
                    );
                }
                match self.invoke(body) {
                    Ok(v) => Response {
                        status: 200,
                        body: v,
                    },
                    Err(r) => r,
                }
            }
            (_, "/ping") | (_, "/invocations") => {
                error(405, format!("method {method} not allowed on {path}"))
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
        for (k, (c, p)) in customers.iter().zip(&products).enumerate() {
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
        let tops = top_k(&m.model, &users, exclude, k, m.device)
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

/// Serves forever on `listener`, one thread per connection.
pub fn serve(listener: TcpListener, service: Arc<Service>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let service = Arc::clone(&service);
        let spawned = std::thread::Builder::new().spawn(move || {
            // A client that vanishes mid-request is its own problem; nothing to report.
            let _ = handle_connection(stream, &service);
        });
        // Out of threads or memory: this connection is dropped, the server goes on.
        if let Err(e) = spawned {
            eprintln!("serve: could not start a thread for a connection ({e}); dropped it");
        }
    }
}

/// Reads one request, answers it, closes the connection.
fn handle_connection(stream: TcpStream, service: &Service) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let deadline = Instant::now() + service.request_deadline;
    let mut reader = BufReader::new(Deadline {
        stream: stream.try_clone()?,
        at: deadline,
    });
    let response = match read_request(&mut reader, service.max_body) {
        Ok((method, path, body)) => service.handle(&method, &path, &body),
        Err(r) => r,
    };
    write_response(&stream, &response)?;
    if response.status != 200 {
        // The request may not have been read to its end (e.g. an oversized body). Closing
        // a socket with unread input sends a reset that can destroy the answer in flight,
        // so signal the end of the answer and drain a bounded amount of input first.
        stream.shutdown(std::net::Shutdown::Write)?;
        let raw = reader.into_inner().stream;
        raw.set_read_timeout(Some(Duration::from_secs(2)))?;
        let _ = std::io::copy(&mut raw.take(64 * 1024 * 1024), &mut std::io::sink());
    }
    Ok(())
}

/// A connection's reading side that fails with `TimedOut` once the request deadline has
/// passed, so a client trickling a byte at a time cannot hold a thread for longer.
struct Deadline {
    stream: TcpStream,
    at: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream
            .set_read_timeout(Some(left.min(Duration::from_secs(30))))?;
        self.stream.read(buf)
    }
}

/// A read error as a response: 408 when the client was too slow.
fn read_error(context: &str, e: std::io::Error) -> Response {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => error(
            408,
            format!("{context}: the request did not arrive in time"),
        ),
        _ => error(400, format!("{context}: {e}")),
    }
}

/// Parses the request line, headers and body; errors become 4xx responses.
pub fn read_request(
    reader: &mut impl BufRead,
    max_body: usize,
) -> Result<(String, String, Vec<u8>), Response> {
    let mut head = Vec::new();
    let mut content_length: Option<usize> = None;
    let mut first = String::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD + 1 - head.len().min(MAX_HEAD)) as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error("could not read request", e))?;
        if n == 0 {
            return Err(error(
                400,
                "connection closed before the end of the headers",
            ));
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(error(431, "request headers too large"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if first.is_empty() {
            first = text.to_string();
            continue;
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                let len = value
                    .trim()
                    .parse()
                    .map_err(|_| error(400, format!("bad Content-Length {:?}", value.trim())))?;
                content_length = Some(len);
            } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err(error(
                    411,
                    "chunked bodies are not supported; send Content-Length",
                ));
            }
        }
    }
    let mut parts = first.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(error(400, format!("bad request line {first:?}")));
    };
    let len = content_length.unwrap_or(0);
    // Refuse before reading, so a huge body costs nothing.
    if len > max_body {
        return Err(error(
            413,
            format!("body of {len} bytes exceeds the limit of {max_body} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .map_err(|e| read_error(&format!("body shorter than Content-Length {len}"), e))?;
    Ok((method.to_string(), path.to_string(), body))
}

fn write_response(mut stream: &TcpStream, r: &Response) -> std::io::Result<()> {
    let body = r.body.to_string();
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    write!(
        stream,
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        r.status,
        body.len()
    )?;
    stream.flush()
}
