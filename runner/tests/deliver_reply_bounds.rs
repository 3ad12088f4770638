//! A relay whose replies never end: one line without an end (at the greeting, or in
//! reply to MAIL), or a multi-line reply that goes on forever. The runner must drop the
//! session after a bounded amount (smtplib's 8,192-byte line), long before its command
//! timeout, and keep the entry: queued when no session could be had, in `retry` when
//! the session broke mid-transaction. The same over TLS, from the first byte and after
//! STARTTLS: the bounds apply to the decrypted replies.
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";

#[derive(Clone, Copy, PartialEq)]
enum Endless {
    /// `220 ` and then no end of line, ever.
    GreetingLine,
    /// A normal greeting and EHLO; `250 ` and no end of line in reply to MAIL.
    MailLine,
    /// `250-...` lines for ever in reply to MAIL.
    MailMultiline,
}

struct Relay {
    port: u16,
    written: Arc<AtomicU64>,
    /// Every connection so far was closed by the runner.
    closed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(mode: Endless) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let written = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, c, s) = (written.clone(), closed.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (w, c, s) = (w.clone(), c.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = session(conn, mode, &w, &s);
                    c.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        Relay { port, written, closed, stop }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn session(conn: TcpStream, mode: Endless, written: &AtomicU64, stop: &AtomicBool) -> std::io::Result<()> {
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let flood = |w: &mut TcpStream, chunk: &[u8]| -> std::io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            w.write_all(chunk)?;
            written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    };
    if mode == Endless::GreetingLine {
        w.write_all(b"220 ")?;
        return flood(&mut w, &[b'A'; 65536]);
    }
    w.write_all(b"220 endless.test ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(b"250-endless.test\r\n250 8BITMIME\r\n")?;
        } else if upper.starts_with("MAIL") {
            if mode == Endless::MailLine {
                w.write_all(b"250 ")?;
                return flood(&mut w, &[b'A'; 65536]);
            }
            let mut chunk = Vec::new();
            while chunk.len() < 65536 {
                chunk.extend_from_slice(b"250-this reply goes on and on\r\n");
            }
            return flood(&mut w, &chunk);
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            w.write_all(b"250 ok\r\n")?;
        }
    }
}

fn endless(mode: Endless) {
    let relay = Relay::start(mode);
    let q = support::qfiles();
    let (closed, written) = (relay.closed.clone(), relay.written.clone());
    let logs =
        cut_and_kept(q.path(), &format!("127.0.0.1:{}", relay.port), &[], &|| closed.load(Ordering::Relaxed), || {
            written.load(Ordering::Relaxed)
        });
    assert!(logs.contains("broke the protocol"), "{logs}");
}

/// Runs the runner on one entry against a relay that never ends a reply (reached at
/// `smtp`, with `extra` flags), until the relay saw two of its sessions `closed` (a retry);
/// asserts the entry was kept. The runner's log.
fn cut_and_kept(
    qfiles: &Path,
    smtp: &str,
    extra: &[&str],
    closed: &dyn Fn() -> u64,
    written: impl Fn() -> u64,
) -> String {
    support::add_vector(qfiles, "out", M3_FIVE);
    // Timeouts far beyond the test's patience: only the bounds can end these sessions.
    let mut args =
        vec!["--command-timeout", "600", "--connect-timeout", "600", "--connections", "1", "--stop-grace", "3"];
    args.extend_from_slice(extra);
    let mut cmd = support::run_cmd(qfiles, smtp, &args);
    let log_path = qfiles.join("runner.log");
    cmd.stderr(std::process::Stdio::from(std::fs::File::create(&log_path).expect("log")))
        .stdout(std::process::Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    // The runner drops each session it opens; wait for two (a retry) to be dropped.
    let dropped = support::wait_until(Duration::from_secs(20), || closed() >= 2);
    let took = started.elapsed();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let status = support::wait_child(&mut child, Duration::from_secs(10));
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let written = written();
    assert!(dropped, "sessions not dropped within {took:?} ({} closed, {written} bytes sent):\n{logs}", closed());
    // Socket buffers on loopback hold a few MiB; the runner itself reads at most 16 KiB.
    assert!(written < 64 << 20, "the relay got {written} bytes in");
    assert!(status.is_some(), "runner did not stop");
    // Nothing lost, nothing set aside as broken.
    assert!(support::files(qfiles, "bad", "psv").is_empty(), "{logs}");
    let kept = support::files(qfiles, "out", "pck").len() + support::files(qfiles, "retry", "pck").len();
    assert_eq!(kept, 1, "{logs}");
    assert!(support::files(qfiles, "out", "bak").is_empty(), "{logs}");
    logs
}

/// The same relays over TLS (`endless_tls_smtp.py`, a real TLS server on loopback): the
/// bounds apply to the decrypted replies, with TLS from the first byte and after STARTTLS,
/// and name the bound that was passed.
fn endless_tls(tls: &str, endless: &str, bound: &str) {
    let q = support::qfiles();
    support::tls::certificate(q.path());
    let mut peer = support::tls::start("endless_tls_smtp.py", q.path(), ["--tls", tls, "--endless", endless]);
    let (closed, written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut out = peer.stdout.take().expect("the peer's stdout");
    let (c, w) = (closed.clone(), written.clone());
    std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).is_ok_and(|n| n > 0) {
            if let Some(bytes) = line.trim().strip_prefix("closed ").and_then(|b| b.parse::<u64>().ok()) {
                w.fetch_add(bytes, Ordering::Relaxed);
                c.fetch_add(1, Ordering::Relaxed);
            }
            line.clear();
        }
    });
    let security = if tls == "implicit" { "tls" } else { "starttls" };
    let ca = q.path().join("cert.pem").display().to_string();
    let logs = cut_and_kept(
        q.path(),
        &format!("localhost:{}", peer.port),
        &["--smtp-security", security, "--smtp-tls-ca", &ca],
        &|| closed.load(Ordering::Relaxed),
        || written.load(Ordering::Relaxed),
    );
    assert!(logs.contains("broke the protocol") && logs.contains(bound), "{logs}");
}

#[test]
fn a_greeting_line_that_never_ends_is_cut_and_the_entry_stays_queued() {
    endless(Endless::GreetingLine);
}

#[test]
fn a_reply_line_that_never_ends_is_cut_and_the_entry_kept() {
    endless(Endless::MailLine);
}

#[test]
fn a_multiline_reply_that_never_ends_is_cut_and_the_entry_kept() {
    endless(Endless::MailMultiline);
}

#[test]
fn over_implicit_tls_a_greeting_line_that_never_ends_is_cut() {
    endless_tls("implicit", "greeting", "SMTP reply line longer than 8192 bytes");
}

#[test]
fn over_implicit_tls_a_multiline_reply_that_never_ends_is_cut() {
    endless_tls("implicit", "mail-multiline", "SMTP multi-line reply longer than");
}

#[test]
fn after_starttls_an_ehlo_line_that_never_ends_is_cut() {
    endless_tls("starttls", "ehlo-line", "SMTP reply line longer than 8192 bytes");
}

#[test]
fn after_starttls_a_reply_line_that_never_ends_is_cut() {
    endless_tls("starttls", "mail-line", "SMTP reply line longer than 8192 bytes");
}
