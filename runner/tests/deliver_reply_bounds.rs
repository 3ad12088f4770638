//! A relay whose replies never end: one line without an end (at the greeting, or in
//! reply to MAIL), or a multi-line reply that goes on forever. The runner must drop the
//! session after a bounded amount (smtplib's 8,192-byte line), long before its command
//! timeout, and keep the entry: queued when no session could be had, in `retry` when
//! the session broke mid-transaction.
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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
    connections: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(mode: Endless) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let written = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, c, n, s) = (written.clone(), closed.clone(), connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                n.fetch_add(1, Ordering::Relaxed);
                let (w, c, s) = (w.clone(), c.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = session(conn, mode, &w, &s);
                    c.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        Relay { port, written, closed, connections, stop }
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
    support::add_vector(q.path(), "out", M3_FIVE);
    let smtp = format!("127.0.0.1:{}", relay.port);
    // Timeouts far beyond the test's patience: only the bounds can end these sessions.
    let mut cmd = support::run_cmd(
        q.path(),
        &smtp,
        &["--command-timeout", "600", "--connect-timeout", "600", "--connections", "1", "--stop-grace", "3"],
    );
    let log_path = q.path().join("runner.log");
    cmd.stderr(std::process::Stdio::from(std::fs::File::create(&log_path).expect("log")))
        .stdout(std::process::Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    // The runner drops each session it opens; wait for two (a retry) to be dropped.
    let dropped = support::wait_until(Duration::from_secs(20), || relay.closed.load(Ordering::Relaxed) >= 2);
    let took = started.elapsed();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let status = support::wait_child(&mut child, Duration::from_secs(10));
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let written = relay.written.load(Ordering::Relaxed);
    assert!(dropped, "sessions not dropped within {took:?} ({} opened, {written} bytes sent):\n{logs}", relay.connections.load(Ordering::Relaxed));
    // Socket buffers on loopback hold a few MiB; the runner itself reads at most 16 KiB.
    assert!(written < 64 << 20, "the relay got {written} bytes in");
    assert!(status.is_some(), "runner did not stop");
    assert!(logs.contains("broke the protocol"), "{logs}");
    // Nothing lost, nothing set aside as broken.
    assert!(support::files(q.path(), "bad", "psv").is_empty(), "{logs}");
    let kept = support::files(q.path(), "out", "pck").len() + support::files(q.path(), "retry", "pck").len();
    assert_eq!(kept, 1, "{logs}");
    assert!(support::files(q.path(), "out", "bak").is_empty(), "{logs}");
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
