//! One SMTP session with the relay: connect (TLS, STARTTLS, AUTH), then any number of
//! mail transactions, each reporting what happened to every recipient as Python's
//! `smtplib.sendmail` does for Mailman.
use super::outcome::{Refusal, TxOutcome};
use super::reply_limit::BoundedReplies;
use super::tls::{self, Detachable};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Security {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Plain connect, then STARTTLS; refuse to go on if the server does not offer it.
    Starttls,
    /// STARTTLS when the relay offers it, plain SMTP otherwise (AUTH is then refused: a
    /// password never goes out in the clear).
    StarttlsOpportunistic,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Everything needed to open a session.
#[derive(Clone, Debug)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// PEM file of an extra CA to trust (a site's own relay certificate).
    pub tls_ca_pem: Option<Vec<u8>>,
    pub tls_accept_invalid_certs: bool,
    pub credentials: Option<(String, String)>,
    pub helo: String,
    pub connect_timeout: Duration,
    /// Bound on each command's reply (MAIL, RCPT, DATA, RSET).
    pub command_timeout: Duration,
    /// Bound on sending the message and reading the reply to the final dot.
    pub data_timeout: Duration,
}

/// Failure to get a session ready for mail.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to the SMTP relay {addr}: {error}")]
    Tcp { addr: String, error: std::io::Error },
    #[error("cannot connect to the SMTP relay {addr}: {error}")]
    Connect { addr: String, error: lettre::transport::smtp::Error },
    #[error("SMTP relay {addr} did not answer {stage} within {secs} s")]
    Timeout { addr: String, stage: &'static str, secs: u64 },
    #[error("STARTTLS with the SMTP relay {addr} failed: {error}")]
    Starttls { addr: String, error: lettre::transport::smtp::Error },
    #[error("the SMTP relay {addr} does not offer STARTTLS, and --smtp-security starttls requires it")]
    NoStarttls { addr: String },
    #[error("TLS settings for {addr} are unusable: {error}")]
    TlsSettings { addr: String, error: lettre::transport::smtp::Error },
    /// The relay broke the protocol: a reply line or reply over the bounds.
    #[error("SMTP relay {addr} broke the protocol: {error}")]
    Protocol { addr: String, error: lettre::transport::smtp::Error },
    #[error("the SMTP relay {addr} does not offer STARTTLS, and SMTP AUTH is never sent in the clear: use --smtp-security starttls or tls")]
    AuthInClear { addr: String },
    #[error("SMTP authentication with {addr} failed: {error}")]
    Auth { addr: String, error: lettre::transport::smtp::Error },
}

/// Why a session cannot be used any more; the transaction it was in is unfinished.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionBroken {
    #[error("no reply from the SMTP relay within {0} s")]
    Timeout(u64),
    #[error("connection to the SMTP relay lost: {0}")]
    Network(String),
    /// A reply over the bounds (`reply_limit`): the session is dropped.
    #[error("SMTP relay broke the protocol: {0}")]
    Protocol(String),
}

impl ConnectError {
    pub fn is_protocol(&self) -> bool {
        matches!(self, ConnectError::Protocol { .. })
    }
}

impl Settings {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn tls_parameters(&self) -> Result<TlsParameters, ConnectError> {
        let tls_err = |error| ConnectError::TlsSettings { addr: self.addr(), error };
        let mut builder =
            TlsParameters::builder(self.host.clone()).dangerous_accept_invalid_certs(self.tls_accept_invalid_certs);
        if let Some(pem) = &self.tls_ca_pem {
            builder = builder.add_root_certificate(Certificate::from_pem(pem).map_err(tls_err)?);
        }
        builder.build().map_err(tls_err)
    }

    fn client_id(&self) -> ClientId {
        match self.helo.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => ClientId::Ipv4(a),
            Ok(std::net::IpAddr::V6(a)) => ClientId::Ipv6(a),
            Err(_) => ClientId::Domain(self.helo.clone()),
        }
    }
}

/// An open, greeted (and if asked, encrypted and authenticated) SMTP session.
pub struct Session {
    conn: AsyncSmtpConnection,
    /// Set by the transport when the relay passed a reply bound (see `reply_limit`).
    overflow: Arc<AtomicBool>,
    command_timeout: Duration,
    data_timeout: Duration,
    /// The message and its final dot went out in the current transaction: from here
    /// on the relay may have accepted it even if we never read its reply.
    dot_sent: bool,
    /// The relay offers PIPELINING (RFC 2920): MAIL, RCPTs and DATA go in one write.
    pipelining: bool,
}

impl Session {
    pub async fn open(settings: &Settings) -> Result<Session, ConnectError> {
        let addr = settings.addr();
        let implicit_tls = match settings.security {
            Security::Tls => Some(settings.tls_parameters()?),
            _ => None,
        };
        let hello = settings.client_id();
        // The greeting and EHLO are bounded here too, so a relay that accepts and then
        // says nothing cannot hang us.
        let connect = async {
            let tcp_err = |error| ConnectError::Tcp { addr: addr.clone(), error };
            let tcp = tokio::net::TcpStream::connect((settings.host.as_str(), settings.port)).await.map_err(tcp_err)?;
            // lettre writes the message and its final dot separately; with Nagle on, the
            // dot waits for the peer's delayed ACK (40 ms per message).
            tcp.set_nodelay(true).map_err(tcp_err)?;
            let peer = tcp.peer_addr().map_err(tcp_err)?;
            // Either way the reply bounds see the plain SMTP text (see `tls`).
            match implicit_tls {
                Some(tls) => {
                    let encrypted = tls::encrypt(tcp, tls)
                        .await
                        .map_err(|error| ConnectError::Connect { addr: addr.clone(), error })?;
                    let (bounded, flag) = BoundedReplies::new(encrypted, peer);
                    let conn = AsyncSmtpConnection::connect_with_transport(Box::new(bounded), &hello)
                        .await
                        .map_err(|error| connect_error(&addr, &flag, error))?;
                    Ok((conn, flag, None))
                }
                None => {
                    // Kept so that STARTTLS can take the connection back from lettre.
                    let plain = Detachable::new(tcp);
                    let (bounded, flag) = BoundedReplies::new(plain.clone(), peer);
                    let conn = AsyncSmtpConnection::connect_with_transport(Box::new(bounded), &hello)
                        .await
                        .map_err(|error| connect_error(&addr, &flag, error))?;
                    Ok((conn, flag, Some(plain)))
                }
            }
        };
        let (conn, overflow, plain) =
            bounded(settings.connect_timeout, connect).await.ok_or(ConnectError::Timeout {
                addr: addr.clone(),
                stage: "the greeting and EHLO",
                secs: settings.connect_timeout.as_secs(),
            })??;
        let mut conn = conn;
        let starttls = match settings.security {
            Security::Starttls if !conn.can_starttls() => {
                conn.abort().await;
                return Err(ConnectError::NoStarttls { addr });
            }
            Security::Starttls => true,
            Security::StarttlsOpportunistic => conn.can_starttls(),
            Security::None | Security::Tls => false,
        };
        if settings.security == Security::StarttlsOpportunistic && !starttls && settings.credentials.is_some() {
            conn.abort().await;
            return Err(ConnectError::AuthInClear { addr });
        }
        // `plain` is there for every mode but implicit TLS, the one mode without STARTTLS.
        let (mut conn, overflow) = match (starttls, plain) {
            (true, Some(plain)) => {
                let params = settings.tls_parameters()?;
                bounded(settings.connect_timeout, starttls_upgrade(conn, plain, params, &hello, &addr)).await.ok_or(
                    ConnectError::Timeout {
                        addr: addr.clone(),
                        stage: "STARTTLS",
                        secs: settings.connect_timeout.as_secs(),
                    },
                )??
            }
            _ => (conn, overflow),
        };
        if let Some((user, pass)) = &settings.credentials {
            let creds = Credentials::new(user.clone(), pass.clone());
            bounded(settings.command_timeout, conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds))
                .await
                .ok_or(ConnectError::Timeout {
                    addr: addr.clone(),
                    stage: "AUTH",
                    secs: settings.command_timeout.as_secs(),
                })?
                .map_err(|error| ConnectError::Auth { addr: addr.clone(), error })?;
        }
        // lettre keeps only the EHLO keywords it knows, and PIPELINING is not one: ask
        // again (EHLO may be repeated; it only resets the session state).
        let ehlo = bounded(settings.command_timeout, conn.command(format!("EHLO {hello}\r\n"))).await.ok_or(
            ConnectError::Timeout { addr: addr.clone(), stage: "EHLO", secs: settings.command_timeout.as_secs() },
        )?;
        let pipelining = ehlo.is_ok_and(|r| r.message().any(|line| line.trim().eq_ignore_ascii_case("PIPELINING")));
        Ok(Session {
            conn,
            overflow,
            command_timeout: settings.command_timeout,
            data_timeout: settings.data_timeout,
            dot_sent: false,
            pipelining,
        })
    }

    /// One mail transaction, with `smtplib.sendmail`'s rules: a refused sender or DATA
    /// refuses every recipient with that reply; refused RCPTs are reported one by one
    /// and the rest still get the message; if none is accepted the transaction is reset.
    /// `data` is the message as Mailman hands it to smtplib (ending in CRLF, not yet
    /// dot-stuffed). `Err` means the session is gone mid-transaction: nothing in this
    /// transaction was accepted.
    pub async fn transaction(&mut self, from: &str, rcpts: &[String], data: &[u8]) -> Result<TxOutcome, SessionBroken> {
        let mut outcome = TxOutcome::default();
        let started = Instant::now();
        self.dot_sent = false;
        let envelope = if self.pipelining {
            self.envelope_pipelined(from, rcpts).await?
        } else {
            self.envelope_in_turn(from, rcpts).await?
        };
        let mut accepted = Vec::with_capacity(rcpts.len());
        if let Some(refusal) = envelope.mail {
            outcome.refuse_all(rcpts, &refusal);
        } else {
            for (rcpt, reply) in rcpts.iter().zip(envelope.rcpts) {
                match reply {
                    None => accepted.push(rcpt.clone()),
                    Some(refusal) => outcome.refused.push((rcpt.clone(), refusal)),
                }
            }
        }
        if accepted.is_empty() {
            if envelope.data == Some(None) {
                // A pipelined DATA was accepted although nothing else was: end it empty.
                self.end_data(b"").await?;
            }
            self.reset().await?;
            return Ok(outcome);
        }
        let data_reply = match envelope.data {
            Some(reply) => reply,
            None => self.command("DATA\r\n", "DATA").await?,
        };
        if let Some(refusal) = data_reply {
            self.reset().await?;
            outcome.refuse_all(&accepted, &refusal);
            return Ok(outcome);
        }
        self.dot_sent = true;
        match self.end_data(data).await? {
            None => outcome.accepted = accepted,
            Some(refusal) => outcome.refuse_all(&accepted, &refusal),
        }
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// MAIL, each RCPT and (only when some recipient was accepted) nothing more, one
    /// command per reply, as smtplib does.
    async fn envelope_in_turn(&mut self, from: &str, rcpts: &[String]) -> Result<Envelope, SessionBroken> {
        let mail = self.command(&format!("MAIL FROM:<{}>\r\n", clean(from)), "MAIL").await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        if mail.is_none() {
            for rcpt in rcpts {
                replies.push(self.command(&format!("RCPT TO:<{}>\r\n", clean(rcpt)), "RCPT").await?);
            }
        }
        Ok(Envelope { mail, rcpts: replies, data: None })
    }

    /// MAIL, RCPTs and DATA in one write, then their replies in order (RFC 2920): one
    /// round trip instead of one per command. The replies mean the same as in turn.
    async fn envelope_pipelined(&mut self, from: &str, rcpts: &[String]) -> Result<Envelope, SessionBroken> {
        let mut batch = format!("MAIL FROM:<{}>\r\n", clean(from));
        for rcpt in rcpts {
            batch.push_str(&format!("RCPT TO:<{}>\r\n", clean(rcpt)));
        }
        batch.push_str("DATA\r\n");
        let mail = self.command(&batch, "MAIL").await?;
        let mut replies = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            replies.push(self.reply("RCPT").await?);
        }
        let data = self.reply("DATA").await?;
        Ok(Envelope { mail, rcpts: replies, data: Some(data) })
    }

    /// Sends the message (dot-stuffed as smtplib does, in chunks: never a whole
    /// stuffed copy in memory) and the final dot; the reply to the dot.
    async fn end_data(&mut self, data: &[u8]) -> Result<Option<Refusal>, SessionBroken> {
        let reply = bounded(self.data_timeout, self.conn.message_iter(StuffChunks::new(data)))
            .await
            .ok_or(SessionBroken::Timeout(self.data_timeout.as_secs()))?;
        self.classify(reply, "message")
    }

    /// The next reply of a pipelined batch.
    async fn reply(&mut self, stage: &'static str) -> Result<Option<Refusal>, SessionBroken> {
        let reply = bounded(self.command_timeout, self.conn.read_response())
            .await
            .ok_or(SessionBroken::Timeout(self.command_timeout.as_secs()))?;
        self.classify(reply, stage)
    }

    /// After a broken transaction: could the relay have accepted the message?
    pub fn maybe_accepted(&self) -> bool {
        self.dot_sent
    }

    /// Ends the session politely (best effort).
    pub async fn quit(mut self) {
        let _ = bounded(self.command_timeout, self.conn.quit()).await;
    }

    /// `Ok(None)` for a positive reply, `Ok(Some(refusal))` for a negative one.
    async fn command(&mut self, line: &str, stage: &'static str) -> Result<Option<Refusal>, SessionBroken> {
        let reply = bounded(self.command_timeout, self.conn.command(line))
            .await
            .ok_or(SessionBroken::Timeout(self.command_timeout.as_secs()))?;
        self.classify(reply, stage)
    }

    /// [`classify`], with a broken reply bound reported as a protocol error.
    fn classify(
        &self,
        reply: Result<Response, lettre::transport::smtp::Error>,
        stage: &'static str,
    ) -> Result<Option<Refusal>, SessionBroken> {
        classify(reply, stage).map_err(|e| match e {
            SessionBroken::Network(m) if self.overflow.load(Ordering::Relaxed) => SessionBroken::Protocol(m),
            _ => e,
        })
    }

    async fn reset(&mut self) -> Result<(), SessionBroken> {
        // A refused RSET leaves the session in an unknown state: treat it as lost.
        match self.command("RSET\r\n", "RSET").await? {
            None => Ok(()),
            Some(r) => Err(SessionBroken::Network(format!("RSET refused: {} {}", r.code, r.message))),
        }
    }
}

/// A session that failed before it was ready: a protocol error if the relay passed a
/// reply bound (`flag`), else a failure to connect.
fn connect_error(addr: &str, flag: &AtomicBool, error: lettre::transport::smtp::Error) -> ConnectError {
    if flag.load(Ordering::Relaxed) {
        ConnectError::Protocol { addr: addr.to_owned(), error }
    } else {
        ConnectError::Connect { addr: addr.to_owned(), error }
    }
}

/// STARTTLS on the plain session `conn`, whose connection is `plain`: once the relay says
/// go ahead, the connection is taken back from lettre, encrypted, and the session starts
/// over on it (EHLO again, as RFC 3207 asks), bounded like the plain one.
async fn starttls_upgrade(
    mut conn: AsyncSmtpConnection,
    plain: Detachable<tokio::net::TcpStream>,
    params: TlsParameters,
    hello: &ClientId,
    addr: &str,
) -> Result<(AsyncSmtpConnection, Arc<AtomicBool>), ConnectError> {
    let failed = |error| ConnectError::Starttls { addr: addr.to_owned(), error };
    conn.command("STARTTLS\r\n").await.map_err(failed)?;
    // Whatever the relay sent after its go-ahead is dropped with lettre's buffer, unread:
    // nothing said in the clear may pass for part of the encrypted session.
    drop(conn);
    let tcp = plain.take_back().ok_or_else(|| ConnectError::Tcp {
        addr: addr.to_owned(),
        error: std::io::Error::new(std::io::ErrorKind::NotConnected, "the connection was already taken for TLS"),
    })?;
    let peer = tcp.peer_addr().map_err(|error| ConnectError::Tcp { addr: addr.to_owned(), error })?;
    let encrypted = tls::encrypt(tcp, params).await.map_err(failed)?;
    let (bounded, flag) = BoundedReplies::resumed(encrypted, peer);
    let conn = AsyncSmtpConnection::connect_with_transport(Box::new(bounded), hello).await.map_err(|error| {
        if flag.load(Ordering::Relaxed) {
            ConnectError::Protocol { addr: addr.to_owned(), error }
        } else {
            failed(error)
        }
    })?;
    Ok((conn, flag))
}

/// The replies to a transaction's envelope. `data` is `None` when DATA was not sent
/// yet (in turn), `Some(reply)` when it went with the envelope (pipelined).
struct Envelope {
    mail: Option<Refusal>,
    rcpts: Vec<Option<Refusal>>,
    data: Option<Option<Refusal>>,
}

async fn bounded<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, fut).await.ok()
}

/// Maps lettre's reply-or-error into our three cases.
fn classify(
    reply: Result<Response, lettre::transport::smtp::Error>,
    stage: &'static str,
) -> Result<Option<Refusal>, SessionBroken> {
    match reply {
        Ok(_) => Ok(None),
        Err(e) => match e.status() {
            Some(code) => Ok(Some(Refusal { code: u16::from(code), message: reply_text(&e), stage })),
            None => Err(SessionBroken::Network(e.to_string())),
        },
    }
}

fn reply_text(e: &lettre::transport::smtp::Error) -> String {
    // lettre renders "permanent error (550): text"; keep just the server's text.
    let s = e.to_string();
    match s.split_once("): ") {
        Some((_, text)) => text.to_owned(),
        None => s,
    }
}

/// Addresses come from queue files; a CR, LF or angle bracket in one must not become a
/// second SMTP command.
fn clean(addr: &str) -> String {
    addr.chars().filter(|c| !matches!(c, '\r' | '\n' | '<' | '>')).collect()
}

/// Dot-stuffing as Python's smtplib does it (`^.` after every LF, lone LFs included),
/// minus the final CRLF, which lettre writes together with the terminating dot.
/// lettre's own stuffing only acts after a CRLF, so the extra dots after lone LFs are
/// added here and lettre leaves them alone (they are mid-line for it). Yields the result
/// in chunks of about [`STUFF_CHUNK`] bytes.
struct StuffChunks<'a> {
    rest: &'a [u8],
    prev: Option<u8>,
    before_prev: Option<u8>,
}

const STUFF_CHUNK: usize = 64 * 1024;

impl<'a> StuffChunks<'a> {
    fn new(data: &'a [u8]) -> StuffChunks<'a> {
        StuffChunks { rest: data.strip_suffix(b"\r\n").unwrap_or(data), prev: None, before_prev: None }
    }
}

impl Iterator for StuffChunks<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.rest.is_empty() {
            return None;
        }
        let (chunk, rest) = self.rest.split_at(self.rest.len().min(STUFF_CHUNK));
        self.rest = rest;
        let mut out = Vec::with_capacity(chunk.len() + 16);
        for &b in chunk {
            if b == b'.' && self.prev == Some(b'\n') && self.before_prev != Some(b'\r') {
                out.push(b'.');
            }
            out.push(b);
            self.before_prev = self.prev;
            self.prev = Some(b);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_error_names_its_cause_once_in_a_chain() {
        let e = ConnectError::Tcp { addr: "mta:25".into(), error: std::io::Error::other("connection refused") };
        assert_eq!(
            format!("{:#}", anyhow::Error::from(e)),
            "cannot connect to the SMTP relay mta:25: connection refused"
        );
    }

    fn stuff_like_smtplib(data: &[u8]) -> Vec<u8> {
        StuffChunks::new(data).flatten().collect()
    }

    #[test]
    fn stuffing_adds_dots_only_after_lone_lf_and_drops_final_crlf() {
        assert_eq!(stuff_like_smtplib(b"a\r\n.b\r\n"), b"a\r\n.b");
        assert_eq!(stuff_like_smtplib(b"a\n.b\r\n"), b"a\n..b");
        assert_eq!(stuff_like_smtplib(b"a\r\n"), b"a");
        assert_eq!(stuff_like_smtplib(b"a"), b"a");
        assert_eq!(stuff_like_smtplib(b""), b"");
    }

    #[test]
    fn stuffing_is_the_same_across_chunk_boundaries() {
        // A lone LF as the last byte of one chunk and a dot as the first of the next.
        let mut data = vec![b'x'; STUFF_CHUNK - 1];
        data.extend_from_slice(b"\n.y\r\n");
        let mut want = vec![b'x'; STUFF_CHUNK - 1];
        want.extend_from_slice(b"\n..y");
        assert_eq!(stuff_like_smtplib(&data), want);
        assert_eq!(StuffChunks::new(&data).count(), 2);
    }

    #[test]
    fn addresses_cannot_inject_commands() {
        assert_eq!(clean("a@b>\r\nRSET"), "a@bRSET");
    }
}
