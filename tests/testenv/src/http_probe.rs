//! A bare HTTP/1.0 GET for health and readiness checks, so probing a plain-HTTP
//! endpoint (etcd, a pod's readiness probe) needs no HTTP client stack.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The status code of `GET path`, or `None` if the server could not be reached or
/// did not answer in time.
pub(crate) async fn get_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: mailqueue-testenv\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::new();
        let mut buf = [0u8; 256];
        // The status line is all that matters: "HTTP/1.x NNN ...".
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(buf.get(..n)?);
        }
        let line = String::from_utf8_lossy(&head);
        line.split_whitespace().nth(1)?.parse().ok()
    })
    .await
    .ok()
    .flatten()
}

/// Whether a TCP connection to `addr` is accepted.
pub(crate) async fn tcp_open(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, TcpStream::connect(addr)).await, Ok(Ok(_)))
}
