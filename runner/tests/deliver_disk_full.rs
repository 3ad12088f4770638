//! A full queue filesystem (a real tmpfs filled to the last byte): the runner stops
//! claiming when a write the queue needs fails, keeps what it delivered (no duplicate
//! once space returns), reports it (/readyz, /metrics), resumes by itself; recovery
//! works on a full disk; a stop with entries still claimed exits non-zero.
mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::smtp::{Faults, Server};

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallFs {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl SmallFs {
    fn mount() -> Option<SmallFs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: cannot mount a tmpfs; skipped");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(&root)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount tmpfs failed");
        for q in ["out", "retry", "shunt", "bad"] {
            std::fs::create_dir(root.join(q)).expect("mkdir");
        }
        Some(SmallFs { _dir: dir, root })
    }

    /// Fills the filesystem to the last byte with one file; returns its path.
    fn fill(&self) -> PathBuf {
        let filler = self.root.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.write_all(&[0u8; 1]);
        // Small files too, until not even an inode's worth of data fits.
        let mut n = 0;
        while std::fs::write(self.root.join(format!("filler.{n}")), b"x").is_ok() {
            n += 1;
        }
        filler
    }

    fn free(&self) {
        for e in std::fs::read_dir(&self.root).expect("read_dir").flatten() {
            if e.file_name().to_string_lossy().starts_with("filler") {
                std::fs::remove_file(e.path()).expect("rm filler");
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.root).status();
    }
}

struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn add(q: &Path, time: u64) -> String {
    let name = format!("{time}.5+{:040x}.pck", time);
    std::fs::copy(support::vectors_dir().join(M3_FIVE), q.join("out").join(&name)).expect("copy");
    name
}

fn bob_busy() -> Server {
    let server = Server::start();
    let mut rcpt = HashMap::new();
    rcpt.insert("bob@example.org".to_owned(), (450, "4.2.1 try later".to_owned()));
    server.set_faults(Faults { rcpt, ..Faults::default() });
    server
}

fn delivered_to(server: &Server) -> Vec<String> {
    let mut v: Vec<String> = server.captured().into_iter().flat_map(|c| c.rcpts).collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_stops_claiming_keeps_what_was_delivered_and_resumes_when_space_returns() {
    let Some(fs) = SmallFs::mount() else { return };
    let q = fs.root.clone();
    let server = bob_busy();
    let first = add(&q, 1_600_000_000);
    let second = add(&q, 1_600_000_100);
    let filler = fs.fill();
    assert!(filler.exists());

    let port = support::smtp::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = std::env::temp_dir().join(format!("mq-disk-full-{}.log", std::process::id()));
    let mut cmd = support::run_cmd(
        &q,
        &server.smtp_arg(),
        &["--metrics-addr", &addr, "--connections", "1", "--bounce-log", "/dev/null"],
    );
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).expect("log"))).stdout(Stdio::null());
    let mut child = Running(cmd.spawn().expect("spawn"));
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The first entry is delivered to four recipients; bob's retry entry cannot be
    // written: the runner says so and claims nothing more.
    let reported = support::wait_until(Duration::from_secs(20), || {
        get(port, "/metrics").is_some_and(|m| m.contains("mailqueue_disk_full{queue=\"out\"} 1"))
    });
    assert!(reported, "disk full not reported:\n{}", logs());
    assert!(get(port, "/readyz").is_some_and(|b| b.contains("503")), "still ready");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(delivered_to(&server).len(), 4, "{}", logs());
    assert!(q.join("out").join(first.replace(".pck", ".bak")).exists(), "the delivered entry is kept claimed");
    assert!(q.join("out").join(&second).exists(), "claimed while the disk is full:\n{}", logs());

    // Space returns: the retry entry is written, the first entry finished, the second
    // delivered; nobody got anything twice.
    fs.free();
    let resumed = support::wait_until(Duration::from_secs(20), || {
        support::files(&q, "out", "pck").is_empty()
            && support::files(&q, "out", "bak").is_empty()
            && support::files(&q, "retry", "pck").len() == 2
    });
    assert!(resumed, "did not resume:\n{}", logs());
    assert!(get(port, "/readyz").is_some_and(|b| b.contains("200 OK")));
    let to = delivered_to(&server);
    let mut once = to.clone();
    once.dedup();
    assert_eq!(to.len(), 8, "{to:?}");
    assert_eq!(once.len(), 4, "each of four recipients twice (two entries), never more: {to:?}");
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("signal");
    let status = support::wait_child(&mut child.0, Duration::from_secs(10)).expect("stopped");
    assert!(status.success(), "{}", logs());
    let _ = std::fs::remove_file(&log_path);
}

#[test]
fn a_stop_while_entries_wait_for_space_exits_non_zero() {
    let Some(fs) = SmallFs::mount() else { return };
    let q = fs.root.clone();
    let server = bob_busy();
    add(&q, 1_600_000_000);
    fs.fill();
    let log_path = std::env::temp_dir().join(format!("mq-disk-stop-{}.log", std::process::id()));
    let mut cmd = support::run_cmd(&q, &server.smtp_arg(), &["--exit-when-empty", "--bounce-log", "/dev/null"]);
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).expect("log"))).stdout(Stdio::null());
    let mut child = Running(cmd.spawn().expect("spawn"));
    assert!(support::wait_until(Duration::from_secs(20), || delivered_to(&server).len() == 4));
    std::thread::sleep(Duration::from_secs(2));
    // --exit-when-empty does not take "nothing to claim" for done while an entry waits.
    assert!(child.0.try_wait().expect("try_wait").is_none(), "exited with the entry stuck");
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("signal");
    let status = support::wait_child(&mut child.0, Duration::from_secs(10)).expect("stopped");
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    assert!(!status.success(), "exit 0 with an entry stuck:\n{logs}");
    assert!(logs.contains("could not be written (filesystem full)"), "{logs}");
    assert_eq!(support::files(&q, "out", "bak").len(), 1, "kept for recovery");
}

#[test]
fn recovery_works_on_a_full_disk() {
    let Some(fs) = SmallFs::mount() else { return };
    let q = fs.root.clone();
    let server = Server::start();
    let name = add(&q, 1_600_000_000);
    std::fs::rename(q.join("out").join(&name), q.join("out").join(name.replace(".pck", ".bak"))).expect("rename");
    fs.fill();
    let out = support::run_to_end(
        support::run_cmd(&q, &server.smtp_arg(), &["--exit-when-empty", "--bounce-log", "/dev/null"]),
        Duration::from_secs(30),
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(logs.contains("without counting the recovery"), "{logs}");
    assert_eq!(delivered_to(&server).len(), 5);
    assert!(support::files(&q, "out", "bak").is_empty() && support::files(&q, "bad", "psv").is_empty());
}
