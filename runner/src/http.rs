//! A minimal HTTP/1.1 endpoint for Prometheus and probes: `/metrics`, `/healthz`
//! (the process answers), `/readyz` (every slice acquired and recovered).
use crate::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub queue: String,
}

/// Binds `addr` (so a taken port fails the start, not later) and returns the serving
/// future.
pub async fn bind(
    addr: SocketAddr,
    endpoint: Endpoint,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    let endpoint = Arc::new(endpoint);
    Ok(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                // A scraper that hangs up early is not our problem.
                let _ = answer(stream, &endpoint).await;
            });
        }
    })
}

async fn answer(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Only the request line matters; read until the end of the headers (or 4 KiB).
    while len < buf.len() {
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read(&mut buf[len..]),
        )
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
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
