//! TLS sessions with the relay that keep the reply bounds (`reply_limit`) on the plain
//! SMTP text. lettre, left to itself, puts TLS around whatever stream it is given (for
//! STARTTLS) or owns the socket (implicit TLS), so a bound under lettre would only see
//! ciphertext. Here the runner opens TLS itself, with lettre's own TLS code and the same
//! [`TlsParameters`] (trusted roots, `--smtp-tls-ca`, accepting invalid certificates), and
//! hands lettre a bounded stream over the encrypted one.
//!
//! For STARTTLS the plain part (greeting, EHLO, `STARTTLS`) runs on a [`Detachable`] stream
//! the runner takes back once the relay said go ahead; the SMTP session then starts over on
//! the encrypted stream. lettre always reads a greeting first, and after STARTTLS the relay
//! sends none (RFC 3207: the client speaks first, with EHLO), so the bounded stream gives
//! lettre one of our own that never went over the wire (`BoundedReplies::resumed`).
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use futures::io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use lettre::transport::smtp::client::TlsParameters;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The encrypted stream to the relay, in tokio's terms.
pub type Encrypted = FuturesIo<LettreStream>;

// lettre marks its network stream deprecated ("not meant to be made public"), but it is
// the only way to reuse lettre's TLS setup unchanged under our own bounded stream; the
// version is pinned in Cargo.lock, and a lettre without it fails to build, not to bound.
#[allow(deprecated)]
pub type LettreStream = lettre::transport::smtp::client::AsyncNetworkStream;

/// TLS over `tcp` (a fresh connection for implicit TLS, or one whose relay just accepted
/// STARTTLS), verified as lettre verifies it.
#[allow(deprecated)] // see `LettreStream`
pub async fn encrypt(tcp: TcpStream, tls: TlsParameters) -> Result<Encrypted, lettre::transport::smtp::Error> {
    let mut stream = LettreStream::use_existing_tokio1(Box::new(tcp));
    stream.upgrade_tls(tls).await?;
    Ok(FuturesIo(stream))
}

/// A `futures` I/O stream (lettre's) as a `tokio` one (what lettre takes as a transport).
#[derive(Debug)]
pub struct FuturesIo<T>(T);

impl<T: FuturesRead + Unpin> AsyncRead for FuturesIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = ready!(Pin::new(&mut self.get_mut().0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: FuturesWrite + Unpin> AsyncWrite for FuturesIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_close(cx)
    }
}

/// A stream lettre uses until the runner takes it back ([`Detachable::take_back`]); from then
/// on lettre's reads and writes fail, so nothing more goes over the plain connection.
#[derive(Debug)]
pub struct Detachable<S>(Arc<Mutex<Option<S>>>);

// By hand: the derive would ask `S: Clone`, and only the handle is cloned.
impl<S> Clone for Detachable<S> {
    fn clone(&self) -> Self {
        Detachable(self.0.clone())
    }
}

impl<S> Detachable<S> {
    pub fn new(inner: S) -> Detachable<S> {
        Detachable(Arc::new(Mutex::new(Some(inner))))
    }

    /// The stream back; `None` if it was taken already.
    pub fn take_back(&self) -> Option<S> {
        self.lock().take()
    }

    fn lock(&self) -> MutexGuard<'_, Option<S>> {
        // Only ever held within one poll: a poisoned lock still holds a usable stream.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(&self, op: impl FnOnce(Pin<&mut S>) -> Poll<io::Result<T>>) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match self.lock().as_mut() {
            Some(s) => op(Pin::new(s)),
            None => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "the connection was taken over for TLS")))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Detachable<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_read(cx, buf))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Detachable<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_taken_stream_is_closed_to_lettre() {
        let (a, mut b) = tokio::io::duplex(64);
        let shared = Detachable::new(a);
        let mut lettre_side = shared.clone();
        b.write_all(b"250 ok\r\n").await.unwrap();
        let mut got = [0; 8];
        lettre_side.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"250 ok\r\n");
        assert!(shared.take_back().is_some());
        assert_eq!(lettre_side.write(b"EHLO x\r\n").await.unwrap_err().kind(), io::ErrorKind::NotConnected);
        assert!(shared.take_back().is_none());
    }
}
