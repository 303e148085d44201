//! The recommender's HTTP server on loopback ports, spoken to over raw sockets: the
//! SageMaker contract, keep-alive and pipelining, chunked and CSV bodies, content
//! negotiation, slow clients, the in-flight cap, and draining on SIGTERM.

// Not every helper of the example is used by these tests.
#![allow(dead_code)]

#[path = "common/skip.rs"]
#[macro_use]
mod skip;
include!("common/example_modules.rs");

use boson::Device;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A saved model folder (no interactions: pairs only). Customer "10000000" and product
/// "B000000001" are in it.
fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0/mfblock-model")
}

const PAIR: &str =
    r#"{"customer_id": ["10000000", "nobody"], "product_id": ["B000000001", "B000000001"]}"#;

/// Serves the fixture on a free loopback port (until the test process ends).
fn start(limits: impl FnOnce(&mut serve::Limits)) -> SocketAddr {
    let mut service = serve::Service::new(persist::load(&fixture(), None, Device::Cpu).unwrap());
    limits(&mut service.limits);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Arc::new(service);
    std::thread::spawn(move || server::serve_until(listener, service, std::future::pending()));
    addr
}

/// One response as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Reads one Content-Length-framed response; `None` when the server closed first.
fn read_reply(r: &mut impl BufRead) -> Option<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = reply
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    reply.body = vec![0; len];
    r.read_exact(&mut reply.body).ok()?;
    Some(reply)
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

/// One request on a new connection; its response.
fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut c = connect(addr);
    c.get_mut().write_all(request).unwrap();
    read_reply(&mut c).expect("an answer")
}

fn post(content_type: &str, accept: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nAccept: {accept}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn post_json(body: &str) -> Vec<u8> {
    post("application/json", "application/json", body)
}

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";

/// Starts a JSON pair request that stays in flight: its headers ask for
/// `100-continue`, which the server sends once it has admitted the request and begins
/// reading the body (so no sleep has to guess when that is); all of the body but its last
/// 10 bytes follows. Returns the connection and the bytes still to send.
fn start_in_flight(addr: SocketAddr) -> (BufReader<TcpStream>, Vec<u8>) {
    let request = String::from_utf8(post_json(PAIR)).unwrap().replacen(
        "\r\n\r\n",
        "\r\nExpect: 100-continue\r\n\r\n",
        1,
    );
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    let mut c = connect(addr);
    c.get_mut()
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    c.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line:?}");
    line.clear();
    c.read_line(&mut line).unwrap();
    assert_eq!(line, "\r\n");
    let body = body.as_bytes();
    c.get_mut().write_all(&body[..body.len() - 10]).unwrap();
    (c, body[body.len() - 10..].to_vec())
}

#[test]
fn server_follows_the_sagemaker_contract() {
    let loaded = persist::load(&fixture(), None, Device::Cpu).unwrap();
    let mean = loaded.config.model.global_mean;
    let (u, i) = (loaded.users["10000000"], loaded.items["B000000001"]);
    let expected = model::predict(loaded.model.as_ref(), &[u], &[i], Device::Cpu).unwrap()[0];
    let mut service = serve::Service::new(loaded);
    service.limits.max_body = 4096;
    // The logic without the network.
    let handle = |m, p| service.handle(&serve::Request::new(m, p, b"")).status;
    assert_eq!(handle("GET", "/ping"), 200);
    assert_eq!(handle("GET", "/nope"), 404);
    assert_eq!(handle("GET", "/invocations"), 405);

    let addr = start(|l| l.max_body = 4096);
    let r = exchange(addr, PING);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    assert_eq!(r.header("content-type"), Some("application/json"));

    // A known pair, an unseen customer, and an integer id.
    let r = exchange(
        addr,
        &post_json(
            r#"{"customer_id": ["10000000", "nobody", 10000000], "product_id": ["B000000001", "B000000001", "B000000001"]}"#,
        ),
    );
    assert_eq!(r.status, 200, "{:?}", r.text());
    let body = r.json();
    let p: Vec<f64> = body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!((p[0] - f64::from(expected)).abs() < 1e-5);
    assert_eq!(p[0], p[2]);
    assert!((p[1] - f64::from(mean)).abs() < 1e-6);
    assert_eq!(body["cold_start"], serde_json::json!([false, true, false]));

    for bad in [
        "{not json",
        r#"{"customer_id": ["a"], "product_id": ["b", "c"]}"#,
        r#"{"customer_id": ["a"]}"#,
        r#"{"customer_id": [1.5], "product_id": ["b"]}"#,
        r#"[1, 2]"#,
    ] {
        let r = exchange(addr, &post_json(bad));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    let big = format!(
        r#"{{"customer_id": ["{}"], "product_id": ["x"]}}"#,
        "9".repeat(5000)
    );
    let r = exchange(addr, &post_json(&big));
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("4096"));
    // A lying Content-Length beyond the limit is refused before any body is read.
    let r = exchange(
        addr,
        b"POST /invocations HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{}",
    );
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("99999999999"));
    // Not HTTP at all: hyper's own 400.
    assert_eq!(exchange(addr, b"GARBAGE\r\n\r\n").status, 400);
    // Headers beyond 64 KiB: 431.
    let huge = format!(
        "GET /ping HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_eq!(exchange(addr, huge.as_bytes()).status, 431);
    // Still alive after all of that.
    assert_eq!(exchange(addr, PING).status, 200);
}

#[test]
fn one_connection_carries_many_requests_and_pipelined_ones_in_order() {
    let addr = start(|_| {});
    let mut c = connect(addr);
    for _ in 0..5 {
        c.get_mut().write_all(&post_json(PAIR)).unwrap();
        let r = read_reply(&mut c).expect("keep-alive answers every request");
        assert_eq!(r.status, 200);
        assert_ne!(r.header("connection"), Some("close"));
    }
    // Three requests in one write; three answers, in order.
    let mut burst = PING.to_vec();
    burst.extend(post_json(PAIR));
    burst.extend(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    c.get_mut().write_all(&burst).unwrap();
    let statuses: Vec<u16> = (0..3).map(|_| read_reply(&mut c).unwrap().status).collect();
    assert_eq!(statuses, [200, 200, 404]);
    // An error answer keeps the connection too.
    c.get_mut().write_all(&post_json("{bad")).unwrap();
    assert_eq!(read_reply(&mut c).unwrap().status, 400);
    c.get_mut().write_all(PING).unwrap();
    assert_eq!(read_reply(&mut c).unwrap().status, 200);
}

#[test]
fn chunked_bodies_are_read_and_bounded() {
    let addr = start(|l| l.max_body = 1000);
    let plain = exchange(addr, &post_json(PAIR)).json();
    let (a, b) = PAIR.split_at(17);
    let chunked = format!(
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let r = exchange(addr, chunked.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), plain);
    // Chunks past the limit: 413, however the body is framed.
    let chunk = "x".repeat(600);
    let over = format!(
        "POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let r = exchange(addr, over.as_bytes());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("1000"));
}

#[test]
fn csv_in_and_out_and_unknown_types_refused() {
    let addr = start(|_| {});
    let json = exchange(addr, &post_json(PAIR)).json();
    let csv = "customer_id,product_id\n10000000,B000000001\r\n\n\"nobody\",B000000001\n";
    // CSV in, JSON out (the default).
    let r = exchange(addr, &post("text/csv; charset=utf-8", "*/*", csv));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json);
    // CSV out: prediction,cold_start per line.
    let r = exchange(addr, &post("text/csv", "text/csv", csv));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv"));
    let want = format!(
        "{},false\n{},true\n",
        json["predictions"][0], json["predictions"][1]
    );
    assert_eq!(r.text(), want);
    // Preferences by quality: CSV wins over JSON here.
    let r = exchange(
        addr,
        &post("application/json", "application/json;q=0.5, text/csv", PAIR),
    );
    assert_eq!(r.text(), want);
    // Bad CSV names its line.
    let r = exchange(
        addr,
        &post("text/csv", "text/csv", "10000000,B000000001\nonly-one\n"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("line 2") && msg.contains("customer_id,product_id"),
        "{msg}"
    );
    let r = exchange(addr, &post("text/csv", "*/*", "a,b,c\n"));
    assert!(r.json()["error"].as_str().unwrap().contains("more than 2"));
    // A header naming the columns otherwise (user,item) is a header, not a pair; RFC
    // 4180's header parameter decides where names cannot.
    let pairs = "10000000,B000000001\nnobody,B000000001\n";
    let r = exchange(
        addr,
        &post("text/csv", "text/csv", &format!("User,Item\n{pairs}")),
    );
    assert_eq!(r.text(), want);
    let r = exchange(
        addr,
        &post(
            "text/csv; header=present",
            "text/csv",
            &format!("a,b\n{pairs}"),
        ),
    );
    assert_eq!(r.text(), want);
    let r = exchange(addr, &post("text/csv; header=absent", "text/csv", pairs));
    assert_eq!(r.text(), want);
    let r = exchange(addr, &post("text/csv; header=maybe", "text/csv", pairs));
    assert_eq!(r.status, 400);
    // A compressed body is refused, not misread.
    let gzipped = String::from_utf8(post_json(PAIR)).unwrap().replacen(
        "\r\n\r\n",
        "\r\nContent-Encoding: gzip\r\n\r\n",
        1,
    );
    let r = exchange(addr, gzipped.as_bytes());
    assert_eq!(r.status, 415);
    assert!(r.json()["error"].as_str().unwrap().contains("gzip"));
    // HEAD /ping: the health check's headers, no body.
    let mut c = connect(addr);
    c.get_mut()
        .write_all(b"HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut status = String::new();
    c.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Types it cannot read or write.
    let r = exchange(
        addr,
        &post("application/x-www-form-urlencoded", "*/*", "a=b"),
    );
    assert_eq!(r.status, 415);
    assert!(r.json()["error"].as_str().unwrap().contains("text/csv"));
    let r = exchange(addr, &post("application/json", "image/png", PAIR));
    assert_eq!(r.status, 406);
    assert!(r.json()["error"].as_str().unwrap().contains("image/png"));
}

// A client trickling its body a byte at a time gets 408 at the body deadline; one
// trickling its headers is disconnected at the header deadline; others are served all
// along, on the same threads.
#[test]
fn slow_clients_time_out_without_holding_up_others() {
    let addr = start(|l| {
        l.body_timeout = Duration::from_millis(600);
        l.header_timeout = Duration::from_millis(600);
    });
    let body_first = post_json(PAIR);
    let split = body_first
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4;
    let mut slow_body = connect(addr);
    slow_body.get_mut().write_all(&body_first[..split]).unwrap();
    let mut slow_head = connect(addr);
    let mut sent = 0;
    // 1.5 s of trickling (15 bytes each), well past both deadlines.
    while sent < 15 {
        let _ = slow_body
            .get_mut()
            .write_all(&body_first[split + sent..split + sent + 1]);
        let _ = slow_head.get_mut().write_all(&PING[sent..sent + 1]);
        sent += 1;
        assert_eq!(exchange(addr, PING).status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = read_reply(&mut slow_body).expect("a 408");
    assert_eq!(r.status, 408);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("did not arrive in time"));
    assert!(
        read_reply(&mut slow_head).is_none(),
        "closed without an answer"
    );
}

// `--port 0`: the system picks a free port, and the server reports that one (it printed
// port 0 before), which answers.
#[test]
fn port_zero_binds_a_free_port_and_reports_it() {
    let (listener, bound) = server::bind("127.0.0.1", 0).unwrap();
    assert_ne!(bound.port(), 0);
    let service = Arc::new(serve::Service::new(
        persist::load(&fixture(), None, Device::Cpu).unwrap(),
    ));
    std::thread::spawn(move || server::serve_until(listener, service, std::future::pending()));
    assert_eq!(exchange(bound, PING).status, 200);
}

// With room for one request sending its body, a second one gets 503 at once; health
// checks are never refused; then the first completes.
#[test]
fn requests_beyond_the_reading_cap_get_503() {
    let addr = start(|l| l.max_reading = 1);
    let (mut first, rest) = start_in_flight(addr);
    let r = exchange(addr, &post_json(PAIR));
    assert_eq!(r.status, 503);
    assert!(r.json()["error"].as_str().unwrap().contains("retry"));
    assert_eq!(exchange(addr, PING).status, 200);
    first.get_mut().write_all(&rest).unwrap();
    assert_eq!(read_reply(&mut first).unwrap().status, 200);
    assert_eq!(exchange(addr, &post_json(PAIR)).status, 200);
}

// Slow uploads do not hold scoring slots: with the default 128 slots, 130 clients
// trickling their bodies leave the endpoint open to a normal request (it used to get
// 503 until their bodies arrived or timed out).
#[test]
fn slow_uploads_do_not_shut_the_endpoint() {
    let addr = start(|_| {});
    let uploads: Vec<_> = (0..130).map(|_| start_in_flight(addr)).collect();
    let r = exchange(addr, &post_json(PAIR));
    assert_eq!(r.status, 200, "{}", r.text());
    for (mut c, rest) in uploads {
        c.get_mut().write_all(&rest).unwrap();
        assert_eq!(read_reply(&mut c).unwrap().status, 200);
    }
}

/// Sets a socket's receive buffer (SO_RCVBUF), which bounds what the peer can send
/// ahead of the reader.
fn set_receive_buffer(s: &TcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a c_int option value that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

// A client that never reads its answer holds its scoring slot only until the write
// deadline: then its connection is closed (its answer cut short) and the slot serves
// the next request.
#[test]
fn an_unread_answer_frees_its_slot_at_the_write_deadline() {
    let addr = start(|l| {
        l.max_in_flight = 1;
        l.max_body = 64 << 20;
        l.write_timeout = Duration::from_millis(300);
    });
    // A million pairs: a 10 MB answer, more than the socket buffers hold (the client's
    // receive buffer is made small).
    let n = 1_000_000;
    let body = serde_json::json!({
        "customer_id": vec!["10000000"; n],
        "product_id": vec!["B000000001"; n],
    })
    .to_string();
    let s = TcpStream::connect(addr).unwrap();
    set_receive_buffer(&s, 4096);
    let mut stuck = BufReader::new(s);
    stuck.get_mut().write_all(&post_json(&body)).unwrap();
    // Its answer has begun: it holds the only slot, and leaves the rest unread.
    let mut status = String::new();
    stuck.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // The slot comes back once the deadline closes the stuck connection.
    let mut answered = None;
    for _ in 0..600 {
        let r = exchange(addr, &post_json(PAIR));
        if r.status == 200 {
            answered = Some(r);
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered.is_some(), "the slot never came back");
    // Only the deadline could free the slot: the answer cannot have fit in the
    // sockets' buffers (the server's send buffer grows to at most tcp_wmem's maximum, the
    // client's receive buffer is 4 KiB), so hyper was still writing it.
    if let Ok(wmem) = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem") {
        let max: usize = wmem.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(
            10 * n > max + (1 << 20),
            "tcp_wmem max {max}: make the answer larger"
        );
    }
}

/// The server process of `sigterm_drains_in_flight_requests`: serves until SIGTERM
/// (only when that test starts it; a plain `--ignored` run returns at once).
#[test]
#[ignore = "run as a child process by sigterm_drains_in_flight_requests"]
fn sigterm_child() {
    if std::env::var_os("BOSON_SIGTERM_CHILD").is_none() {
        return;
    }
    let service = serve::Service::new(persist::load(&fixture(), None, Device::Cpu).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    server::serve(listener, Arc::new(service)).unwrap();
    println!("drained");
}

// SIGTERM: the server stops accepting, closes idle connections, finishes the request in
// flight, and exits cleanly.
#[test]
fn sigterm_drains_in_flight_requests() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigterm_child", "--ignored", "--nocapture"])
        .env("BOSON_SIGTERM_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child exited");
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            break a.parse().unwrap();
        }
    };
    let mut idle = connect(addr);
    idle.get_mut().write_all(PING).unwrap();
    assert_eq!(read_reply(&mut idle).unwrap().status, 200);
    let (mut in_flight, rest) = start_in_flight(addr);
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    // The server stops accepting (however long the signal takes to be handled); the
    // connections made before it notices are idle and closed by the drain.
    while TcpStream::connect(addr).is_ok() {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(read_reply(&mut idle).is_none(), "idle connection closed");
    assert!(child.try_wait().unwrap().is_none(), "still draining");
    in_flight.get_mut().write_all(&rest).unwrap();
    let r = read_reply(&mut in_flight).expect("the in-flight request is answered");
    assert_eq!(r.status, 200, "{}", r.text());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("drained"), "{rest}");
    // The access log: a line per request (method, path, status, bytes, milliseconds).
    assert!(rest.contains("POST /invocations 200 "), "{rest}");
}
