//! Bounds on what an SMTP relay can make the runner buffer. lettre reads a reply line
//! whole before it checks its length, so a relay whose line never ends would be
//! buffered until the command timeout (gigabytes on loopback). This stream sits under
//! lettre and fails the read as soon as a reply line passes [`MAX_REPLY_LINE`] bytes
//! (Python's smtplib, which Mailman uses, stops at the same 8,192) or one multi-line
//! reply passes [`MAX_REPLY_BYTES`]. It always sees the plain SMTP text: with TLS it sits
//! above the encryption (`tls.rs` opens TLS sessions so that it can).
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest reply line, CRLF included (smtplib's `_MAXLINE`).
pub const MAX_REPLY_LINE: usize = 8192;
/// Longest reply, all its lines together (an EHLO reply is well under 1 KiB). Kept
/// small also because lettre parses a multi-line reply again after each line it reads.
pub const MAX_REPLY_BYTES: usize = 16 * 1024;
/// Most lines in one reply.
pub const MAX_REPLY_LINES: usize = 200;

#[derive(Debug)]
pub struct BoundedReplies<S> {
    inner: S,
    /// The relay's address, for lettre (the inner stream may be a TLS session).
    peer: SocketAddr,
    /// Set when a bound was passed: the session's error is a protocol error.
    overflowed: Arc<AtomicBool>,
    line_len: usize,
    /// The current line is a continuation (`250-...`).
    continued: bool,
    reply_len: usize,
    reply_lines: usize,
    /// Read before `inner`: the greeting of a session resumed after STARTTLS ([`Self::resumed`]).
    unread_greeting: &'static [u8],
}

/// What lettre reads as the greeting of a session resumed after STARTTLS.
const RESUMED_GREETING: &[u8] = b"220 TLS session established\r\n";

impl<S> BoundedReplies<S> {
    pub fn new(inner: S, peer: SocketAddr) -> (BoundedReplies<S>, Arc<AtomicBool>) {
        let overflowed = Arc::new(AtomicBool::new(false));
        let stream = BoundedReplies {
            inner,
            peer,
            overflowed: overflowed.clone(),
            line_len: 0,
            continued: false,
            reply_len: 0,
            reply_lines: 0,
            unread_greeting: b"",
        };
        (stream, overflowed)
    }

    /// `new`, for a session that starts over after STARTTLS: lettre reads a greeting first,
    /// and after STARTTLS the relay sends none (RFC 3207: the client speaks first, with
    /// EHLO), so this stream gives it [`RESUMED_GREETING`], which never went over the wire.
    pub fn resumed(inner: S, peer: SocketAddr) -> (BoundedReplies<S>, Arc<AtomicBool>) {
        let (mut stream, overflowed) = BoundedReplies::new(inner, peer);
        stream.unread_greeting = RESUMED_GREETING;
        (stream, overflowed)
    }

    fn account(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &b in bytes {
            if self.line_len == 3 {
                self.continued = b == b'-';
            }
            self.line_len += 1;
            self.reply_len += 1;
            if self.line_len > MAX_REPLY_LINE {
                return Err(self.overflow(format!("SMTP reply line longer than {MAX_REPLY_LINE} bytes")));
            }
            if self.reply_len > MAX_REPLY_BYTES {
                return Err(self.overflow(format!("SMTP multi-line reply longer than {MAX_REPLY_BYTES} bytes")));
            }
            if b == b'\n' {
                self.reply_lines += 1;
                if self.continued && self.reply_lines >= MAX_REPLY_LINES {
                    return Err(self.overflow(format!("SMTP multi-line reply longer than {MAX_REPLY_LINES} lines")));
                }
                if !self.continued {
                    self.reply_len = 0;
                    self.reply_lines = 0;
                }
                self.line_len = 0;
                self.continued = false;
            }
        }
        Ok(())
    }

    fn overflow(&self, message: String) -> io::Error {
        self.overflowed.store(true, Ordering::Relaxed);
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BoundedReplies<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread_greeting.is_empty() {
            let n = this.unread_greeting.len().min(buf.remaining());
            buf.put_slice(&this.unread_greeting[..n]);
            this.unread_greeting = &this.unread_greeting[n..];
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let filled = buf.filled()[before..].to_vec();
        Poll::Ready(this.account(&filled))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BoundedReplies<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S> lettre::transport::smtp::client::AsyncTokioStream for BoundedReplies<S>
where
    S: AsyncRead + AsyncWrite + Send + Sync + Unpin + std::fmt::Debug,
{
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (BoundedReplies<tokio::net::TcpStream>, Arc<AtomicBool>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let peer = c.peer_addr().unwrap();
        BoundedReplies::new(c, peer)
    }

    #[tokio::test]
    async fn a_resumed_session_reads_its_greeting_first() {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = l.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut server, b"250 ok\r\n").await.unwrap();
        let peer = c.peer_addr().unwrap();
        let (mut s, _) = BoundedReplies::resumed(c, peer);
        let mut got = vec![0; RESUMED_GREETING.len() + 8];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [RESUMED_GREETING, b"250 ok\r\n"].concat());
    }

    #[tokio::test]
    async fn lines_and_replies_are_bounded_and_a_final_line_resets_the_reply() {
        let (mut s, flag) = pair().await;
        let mut ehlo = Vec::new();
        for _ in 0..20 {
            ehlo.extend_from_slice(b"250-SOMETHING\r\n");
        }
        ehlo.extend_from_slice(b"250 OK\r\n");
        for _ in 0..100 {
            s.account(&ehlo).unwrap();
        }
        s.account(&vec![b'A'; MAX_REPLY_LINE - 2]).unwrap();
        s.account(b"\r\n").unwrap();
        assert!(s.account(&vec![b'A'; MAX_REPLY_LINE + 1]).is_err());
        assert!(flag.load(Ordering::Relaxed));

        let (mut s, _) = pair().await;
        let line = b"250-0123456789012345678901234567890123456789\r\n";
        let err = (0..MAX_REPLY_BYTES / line.len() + 1).map(|_| s.account(line)).find(Result::is_err);
        assert!(err.is_some(), "an endless multi-line reply must fail");
        let (mut s, _) = pair().await;
        let err = (0..MAX_REPLY_LINES).map(|_| s.account(b"250-\r\n")).find(Result::is_err);
        assert!(err.is_some(), "a reply of many short lines must fail");
    }
}
