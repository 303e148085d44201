//! The endpoint over HTTP/1.1: hyper on a tokio runtime around [`Service::handle`].
//!
//! - Keep-alive and pipelined requests on one connection, chunked request bodies.
//! - Slow clients: a request's line and headers must arrive within
//!   [`Limits::header_timeout`] (which also closes idle keep-alive connections), its body
//!   within [`Limits::body_timeout`] (408); a waiting connection costs a small task, not a
//!   thread.
//! - Admission in two stages, so slow uploads cannot shut the endpoint: at most
//!   [`Limits::max_reading`] requests sending their bodies, and at most
//!   [`Limits::max_in_flight`] being scored or answered (a slot is taken once the body
//!   has arrived and freed once hyper has taken the whole answer); one more at either
//!   stage gets 503 (`GET /ping` always answers).
//! - An answer the client does not read: after [`Limits::write_timeout`] without
//!   progress the connection is closed and its slot freed.
//! - A `Content-Encoding` other than `identity` gets 415 (bodies are read as sent).
//! - With [`Limits::access_log`], one line per request on stdout: method, path,
//!   status, bytes of the answer, milliseconds.
//! - Bodies beyond [`Limits::max_body`] get 413, refused by their `Content-Length` before
//!   anything is read.
//! - SIGTERM or Ctrl-C: stop accepting, let in-flight requests finish (up to
//!   [`Limits::shutdown_grace`]), then return.
//!
//! Requests hyper cannot parse as HTTP get hyper's own 400 or 431 with an empty body;
//! every request that is HTTP gets a JSON error body.

use crate::serve::{error, Request, Response, Service};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_ENCODING, CONTENT_TYPE};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Binds `host:port` (port 0: a free port the system picks) and returns the listener with
/// the address it is bound to, which is what to print and connect to.
pub fn bind(
    host: &str,
    port: u16,
) -> std::io::Result<(std::net::TcpListener, std::net::SocketAddr)> {
    let listener = std::net::TcpListener::bind((host, port))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves `listener` until SIGTERM or Ctrl-C, then drains in-flight requests.
pub fn serve(listener: std::net::TcpListener, service: Arc<Service>) -> std::io::Result<()> {
    serve_until(listener, service, terminated())
}

/// Serves `listener` until `shutdown` completes, then drains in-flight requests.
pub fn serve_until(
    listener: std::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Scoring threads: one per core. Tokio's default (up to 512, started whenever all
        // are busy) grew to 60 threads under 8 clients, each with its own tensor buffer
        // cache and allocator heap: 2 GB of RSS.
        .max_blocking_threads(cores)
        .build()?
        .block_on(accept_loop(listener, service, shutdown))
}

/// Resolves on SIGTERM (what SageMaker and `docker stop` send) or Ctrl-C.
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            eprintln!("serve: cannot watch for SIGTERM ({e}); Ctrl-C still stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let endpoint = Endpoint::new(service);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            // Shutdown first: its signal handler is then in place before the first
            // connection is served.
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = graceful.watch(connection(&endpoint, stream));
                    // A client that vanishes mid-request is its own problem.
                    tokio::spawn(async move { let _ = conn.await; });
                }
                Err(e) => {
                    // Out of file descriptors, say: existing connections go on; retry soon.
                    eprintln!("serve: accept failed ({e})");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let grace = endpoint.service.limits.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("serve: requests still in flight after {grace:?}; exiting anyway");
    }
    Ok(())
}

/// One client connection, served by hyper's HTTP/1.1 state machine.
pub fn connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    endpoint: &Endpoint,
    io: I,
) -> hyper::server::conn::http1::Connection<TokioIo<Lingering<I>>, Endpoint> {
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(endpoint.service.limits.header_timeout)
        // A request line and headers beyond 16 KiB get 431.
        .max_header_size(16 * 1024)
        // Not `pipeline_flush`: with it hyper 1.12 never sends its own 400 and 431 answers.
        .serve_connection(
            TokioIo::new(Lingering::new(io, endpoint.service.limits.write_timeout)),
            endpoint.clone(),
        )
}

/// The hyper service: one request → one response; cloned per connection.
#[derive(Clone)]
pub struct Endpoint {
    pub service: Arc<Service>,
    /// Slots of requests being scored or answered ([`Limits::max_in_flight`]).
    pub permits: Arc<Semaphore>,
    /// Slots of requests sending their bodies ([`Limits::max_reading`]).
    pub reading: Arc<Semaphore>,
}

impl Endpoint {
    /// An endpoint for `service` with its own admission bounds.
    pub fn new(service: Arc<Service>) -> Endpoint {
        Endpoint {
            permits: Arc::new(Semaphore::new(service.limits.max_in_flight)),
            reading: Arc::new(Semaphore::new(service.limits.max_reading)),
            service,
        }
    }
}

/// An answer's body holding its request's scoring slot until hyper asks for more after
/// the answer's bytes, which it does once it has written them to the connection.
pub struct Answer {
    bytes: Option<Bytes>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if let Some(bytes) = self.bytes.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes))));
        }
        self.slot = None;
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_none() && self.slot.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.bytes.as_ref().map_or(0, |b| b.len() as u64))
    }
}

type HttpResponse = hyper::Response<Answer>;

impl hyper::service::Service<hyper::Request<Incoming>> for Endpoint {
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let endpoint = self.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let (method, path) = (req.method().to_string(), req.uri().path().to_string());
            let (answer, slot) = endpoint.answer(req).await;
            if endpoint.service.limits.access_log {
                println!(
                    "{method} {path} {} {} {:.1}ms",
                    answer.status,
                    answer.body.len(),
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
            Ok(to_http(answer, slot))
        })
    }
}

impl Endpoint {
    /// The answer, and the scoring slot it holds (none for errors before scoring).
    async fn answer(
        &self,
        req: hyper::Request<Incoming>,
    ) -> (Response, Option<OwnedSemaphorePermit>) {
        let limits = &self.service.limits;
        let busy = |what: &str, limit: usize| {
            error(
                503,
                format!("the server has {limit} requests {what} already, its limit; retry shortly"),
            )
        };
        // Health checks are never refused: a busy server is not a broken one.
        if req.uri().path() == "/ping" {
            return (
                self.service
                    .handle(&Request::new(req.method().as_str(), "/ping", b"")),
                None,
            );
        }
        if let Some(encoding) = req.headers().get(CONTENT_ENCODING) {
            let encoding = encoding.to_str().unwrap_or("(not ASCII)");
            if !encoding.trim().eq_ignore_ascii_case("identity") {
                return (
                    error(
                        415,
                        format!(
                            "Content-Encoding {encoding:?} is not supported: send the body \
                             uncompressed"
                        ),
                    ),
                    None,
                );
            }
        }
        let (parts, body) = req.into_parts();
        // Refuse by Content-Length before reading, so a huge body costs nothing.
        if body.size_hint().lower() > limits.max_body as u64 {
            let msg = format!(
                "body of {} bytes exceeds the limit of {} bytes",
                body.size_hint().lower(),
                limits.max_body
            );
            return (error(413, msg), None);
        }
        let Ok(reading) = Arc::clone(&self.reading).try_acquire_owned() else {
            return (busy("sending their bodies", limits.max_reading), None);
        };
        let body = match tokio::time::timeout(
            limits.body_timeout,
            Limited::new(body, limits.max_body).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                let msg = format!("body exceeds the limit of {} bytes", limits.max_body);
                return (error(413, msg), None);
            }
            Ok(Err(e)) => return (error(400, format!("could not read the body: {e}")), None),
            Err(_) => {
                let msg = format!(
                    "the request body did not arrive in time ({:?})",
                    limits.body_timeout
                );
                return (error(408, msg), None);
            }
        };
        drop(reading);
        let Ok(slot) = Arc::clone(&self.permits).try_acquire_owned() else {
            return (busy("in flight", limits.max_in_flight), None);
        };
        let header = |name| {
            parts
                .headers
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap_or("(not ASCII)").to_string())
        };
        let (content_type, accept) = (header(CONTENT_TYPE), header(ACCEPT));
        let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
        let service = Arc::clone(&self.service);
        // Scoring is CPU work: off the runtime's threads, so other connections go on.
        let answer = tokio::task::spawn_blocking(move || {
            service.handle(&Request {
                content_type: content_type.as_deref(),
                accept: accept.as_deref(),
                ..Request::new(&method, &path, &body)
            })
        })
        .await
        .unwrap_or_else(|e| error(500, format!("the request failed: {e}")));
        (answer, Some(slot))
    }
}

fn to_http(r: Response, slot: Option<OwnedSemaphorePermit>) -> HttpResponse {
    let mime = r.format.mime();
    let status =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = hyper::Response::new(Answer {
        bytes: Some(Bytes::from(r.body)),
        slot,
    });
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    response
}

/// A connection that, when hyper closes it, first reads and discards what the client is
/// still sending (at most 2 s, 64 MiB): closing a socket with unread input sends a reset
/// that can destroy the answer in flight, e.g. a 413 to a client still sending its body.
///
/// It also bounds writes: a write that makes no progress for `write_timeout` (a client
/// that does not read its answer) fails, which closes the connection.
pub struct Lingering<I> {
    io: I,
    linger: Option<(Pin<Box<tokio::time::Sleep>>, u64)>,
    write_timeout: Duration,
    /// Running while a write waits for the client to read.
    write_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> Lingering<I> {
    fn new(io: I, write_timeout: Duration) -> Lingering<I> {
        Lingering {
            io,
            linger: None,
            write_timeout,
            write_deadline: None,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Lingering<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => {
                let timeout = this.write_timeout;
                let deadline = this
                    .write_deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the client read nothing of its answer for {timeout:?}"),
                    )));
                }
                Poll::Pending
            }
            done => {
                this.write_deadline = None;
                done
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            // Send our FIN: the client reads the whole answer, then its end of input.
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.linger = Some((
                Box::pin(tokio::time::sleep(Duration::from_secs(2))),
                64 << 20,
            ));
        }
        let (timer, budget) = this.linger.as_mut().expect("set above");
        let mut scratch = [0u8; 8192];
        loop {
            if timer.as_mut().poll(cx).is_ready() || *budget == 0 {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => *budget = budget.saturating_sub(buf.filled().len() as u64),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
