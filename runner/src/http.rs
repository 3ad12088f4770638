//! A minimal HTTP/1.1 endpoint for Prometheus and probes: `/metrics`, `/healthz`
//! (the process answers), `/readyz` (every slice acquired and recovered).
use crate::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub queue: String,
}

/// At most this many connections are served at once; more wait in the kernel's accept
/// queue, costing the runner no file descriptor.
pub const MAX_CONNECTIONS: usize = 32;

/// A connection must deliver its request within this time, and is closed after it.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Binds `addr` (so a taken port fails the start, not later) and returns the serving
/// future. Idle or slow clients cannot hold the runner's descriptors: connections are
/// capped and each has one deadline for its whole request; an accept error (EMFILE)
/// pauses the loop instead of spinning it.
pub async fn bind(
    addr: SocketAddr,
    endpoint: Endpoint,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let endpoint = Arc::new(endpoint);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a metrics connection; pausing");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                // A scraper that hangs up early or too late is not our problem.
                let _ = tokio::time::timeout(REQUEST_DEADLINE, answer(stream, &endpoint)).await;
                drop(slot);
            });
        }
    })
}

async fn answer(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Only the request line matters; read until the end of the headers (or 4 KiB).
    while len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body, ctype) = match path {
        "/metrics" => (
            "200 OK",
            endpoint.metrics.render(&endpoint.queue),
            "text/plain; version=0.0.4",
        ),
        "/healthz" => ("200 OK", "ok\n".to_owned(), "text/plain"),
        "/readyz" if endpoint.metrics.disk_full.load(Ordering::Relaxed) => (
            "503 Service Unavailable",
            "not ready: the queue's filesystem is full; nothing is claimed until space returns\n".to_owned(),
            "text/plain",
        ),
        "/readyz" if endpoint.ready.load(Ordering::Relaxed) => {
            ("200 OK", "ready\n".to_owned(), "text/plain")
        }
        "/readyz" => (
            "503 Service Unavailable",
            "not ready: slices not yet acquired and recovered\n".to_owned(),
            "text/plain",
        ),
        _ => ("404 Not Found", "not found\n".to_owned(), "text/plain"),
    };
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
