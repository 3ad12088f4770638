//! The endpoint for Prometheus and probes: `/metrics`, `/healthz` (the process answers),
//! `/readyz` (every slice acquired and recovered, and the queue's filesystem not full).
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

/// At most this many connections are served at once; more wait in the kernel's accept
/// queue, costing the runner no file descriptor.
pub const MAX_CONNECTIONS: usize = 32;

/// A connection must deliver its request and take its answer within this time, and is
/// closed after it.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` (so a taken port fails the start, not later) and returns the serving
/// future. Idle or slow clients cannot hold the runner's descriptors: connections are
/// capped and each has one deadline for its whole life; an accept error (EMFILE) pauses
/// axum's accept loop instead of spinning it.
pub async fn bind(addr: SocketAddr, endpoint: Endpoint) -> io::Result<impl Future<Output = ()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        // One request per connection: a kept-alive connection would hold one of the few
        // slots until its deadline.
        .layer(axum::middleware::map_response(|mut response: Response| async move {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }))
        .with_state(Arc::new(endpoint));
    let listener = Capped { listener, slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)) };
    Ok(async move {
        // axum's serve only returns on an error it cannot retry, which a TCP listener has not.
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    })
}

async fn metrics(State(endpoint): State<Arc<Endpoint>>) -> Response {
    match endpoint.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response(),
    }
}

async fn ready(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, &'static str) {
    if endpoint.metrics.disk_full() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the queue's filesystem is full; nothing is claimed until space returns\n",
        )
    } else if endpoint.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: slices not yet acquired and recovered\n")
    }
}

/// A listener that accepts only while fewer than `MAX_CONNECTIONS` of its connections are
/// open. axum's serve offers neither a connection cap nor hyper's header read timeout, and
/// a request timeout layer only starts once a request has been read: a client trickling
/// one byte at a time would hold its descriptor for ever.
struct Capped {
    listener: TcpListener,
    slots: Arc<Semaphore>,
}

impl axum::serve::Listener for Capped {
    type Io = Bounded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Bounded, SocketAddr) {
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(slot) => slot,
            // Never closed: nothing calls `close` on the semaphore.
            Err(_) => return std::future::pending().await,
        };
        // Logs an accept error (EMFILE) and sleeps a second before the next try.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        (Bounded { stream, deadline: Box::pin(tokio::time::sleep(REQUEST_DEADLINE)), _slot: slot }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An accepted connection: reads and writes fail once its deadline has passed (hyper then
/// closes it), and its slot is given back when it is dropped.
struct Bounded {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl Bounded {
    /// Polling the deadline also arms it, so that an idle connection is woken to fail.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the metrics connection outlived its deadline")
}

impl AsyncRead for Bounded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(timed_out()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
