//! The runner in a hostile or unlucky environment, through real parts: names swapped
//! under a live runner for links, fifos and devices; descriptors exhausted by idle
//! connections to the metrics endpoint; entries the runner's (unprivileged) user may
//! not read; a directory sitting at an entry's `.bak` name.
mod support;

use mailqueue_queue::entry::QueueEntry;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::smtp::Server;

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";
const M2_NOTICE: &str = "mailman2/out/1546304736.3356786+3a7bad312533d52b2e497cc0eaee2e1c652769da.pck";
const NOBODY: u32 = 65534;

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// `n` copies of vector `path` in `out/` under fresh names, oldest first.
fn add_copies(q: &Path, path: &str, n: usize, first_time: u64) -> Vec<String> {
    let src = support::vectors_dir().join(path);
    (0..n)
        .map(|i| {
            let name = format!("{}.5+{:040x}.pck", first_time + i as u64, first_time * 1000 + i as u64);
            std::fs::copy(&src, q.join("out").join(&name)).expect("copy");
            name
        })
        .collect()
}

/// Gives the queue tree to `nobody`, so a runner can run as that user.
fn chown_tree(dir: &Path) {
    std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).expect("chown");
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            chown_tree(&e.expect("dirent").path());
        }
    }
}

/// A runner killed when the test ends, failed or not.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn names_swapped_under_a_live_runner_are_never_followed_and_never_block_it() {
    let server = Server::start();
    let q = support::qfiles();
    // An entry outside the queue tree: a link to it must never get it delivered.
    let secret = q.path().join("secret.pck");
    std::fs::copy(support::vectors_dir().join(M2_NOTICE), &secret).expect("copy");
    let legit = support::vectors_dir().join(M3_FIVE);
    let rcpts = |p: &Path| QueueEntry::read(p).expect("entry").recipients().expect("recipients");
    let secret_rcpts = rcpts(&secret);
    assert!(secret_rcpts.iter().all(|r| !rcpts(&legit).contains(r)));

    let log_path = q.path().join("runner.log");
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--stop-grace", "4"]);
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).expect("log"))).stdout(Stdio::null());
    let mut child = Running(cmd.spawn().expect("spawn"));

    // Keep a name flipping between a regular entry and something else (each put in
    // place by one rename), behind a queue of regular entries that widens the gap
    // between a listing and the claim of that name. First a link to the secret, then a
    // fifo and a link to /dev/zero.
    let out = q.path().join("out");
    let swapped = out.join(format!("9999999999.5+{}.pck", "e".repeat(40)));
    let staging = out.join("swap.tmp");
    let mut round = 0u64;
    for phase in [&[0, 1][..], &[0, 2, 3][..]] {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if support::files(q.path(), "out", "pck").len() < 20 {
                add_copies(q.path(), M3_FIVE, 30, 1_000_000 + round * 100);
            }
            for &kind in phase {
                let _ = std::fs::remove_file(&staging);
                match kind {
                    0 => {
                        std::fs::copy(&legit, &staging).expect("copy");
                    }
                    1 => std::os::unix::fs::symlink(&secret, &staging).expect("symlink"),
                    2 => std::os::unix::fs::symlink("/dev/zero", &staging).expect("symlink"),
                    _ => {
                        nix::unistd::mkfifo(&staging, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo")
                    }
                }
                let _ = std::fs::rename(&staging, &swapped);
                std::thread::sleep(Duration::from_millis(2));
            }
            round += 1;
        }
    }
    let _ = std::fs::remove_file(&swapped);
    let _ = std::fs::remove_file(&staging);
    // No worker is stuck: what is queued now is delivered.
    let flowing = support::wait_until(Duration::from_secs(15), || {
        support::files(q.path(), "out", "pck").is_empty() && support::files(q.path(), "out", "bak").is_empty()
    });
    let stopped = Instant::now();
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("signal");
    let status = support::wait_child(&mut child.0, Duration::from_secs(10));
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let leaked = server.captured().iter().filter(|c| c.rcpts.iter().any(|r| secret_rcpts.contains(r))).count();
    assert_eq!(leaked, 0, "an entry outside the queue was delivered through a link");
    assert!(secret.exists(), "the link's target was moved");
    assert!(flowing, "delivery stopped (a worker blocked in open?):\n{}", tail(&logs));
    assert!(status.is_some(), "the runner ignored SIGTERM:\n{}", tail(&logs));
    assert!(stopped.elapsed() < Duration::from_secs(8), "took {:?} to stop", stopped.elapsed());
    assert!(support::files(q.path(), "bad", "psv").is_empty(), "{}", tail(&logs));
}

/// Recipients accepted by the server (each vector entry has five).
fn recipients(server: &Server) -> usize {
    server.captured().iter().map(|c| c.rcpts.len()).sum()
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn idle_metrics_connections_cannot_exhaust_the_runners_descriptors() {
    let server = Server::start();
    let q = support::qfiles();
    let port = support::smtp::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = q.path().join("runner.log");
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--metrics-addr", &addr]);
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).expect("log"))).stdout(Stdio::null());
    // 256 slice-lock descriptors, the runtime's few, and not much more. `pre_exec` is
    // unsafe by nature (it runs between fork and exec); the closure only calls setrlimit.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            let lim = nix::libc::rlimit { rlim_cur: 330, rlim_max: 330 };
            if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Running(cmd.spawn().expect("spawn"));
    assert!(support::wait_until(Duration::from_secs(20), || get(port, "/readyz").is_some_and(|b| b.contains("ready"))));

    // 200 clients that connect and then trickle a byte now and then, never finishing a request.
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            for _ in 0..200 {
                if let Ok(c) = TcpStream::connect(("127.0.0.1", port)) {
                    conns.push(c);
                }
            }
            while !stop.load(Ordering::Relaxed) {
                for c in &mut conns {
                    let _ = c.write_all(b"G");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            conns.len()
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let names = add_copies(q.path(), M3_FIVE, 20, 1_700_000_000);
    let delivered = support::wait_until(Duration::from_secs(20), || {
        support::files(q.path(), "out", "pck").is_empty() && support::files(q.path(), "out", "bak").is_empty()
    });
    stop.store(true, Ordering::Relaxed);
    let opened = trickler.join().expect("trickler");
    let _ = kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM);
    let _ = support::wait_child(&mut child.0, Duration::from_secs(10));
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(opened > 100, "only {opened} connections opened");
    assert!(delivered, "entries not delivered while idle clients held the endpoint:\n{}", tail(&logs));
    assert_eq!(recipients(&server), 5 * names.len(), "{}", tail(&logs));
    assert!(support::files(q.path(), "bad", "psv").is_empty(), "good entries set aside:\n{}", tail(&logs));
    // The accept loop pauses on errors instead of spinning through the log.
    assert!(logs.lines().count() < 500, "{} log lines", logs.lines().count());
}

#[test]
fn unreadable_and_blocked_entries_are_backed_off_logged_once_and_counted() {
    if !is_root() {
        eprintln!("not root: cannot run the runner as another user; skipped");
        return;
    }
    let server = Server::start();
    let q = support::qfiles();
    let good = add_copies(q.path(), M3_FIVE, 3, 1_700_000_000);
    // Mode 000 for the runner's user, and a directory at an entry's .bak name.
    let locked = add_copies(q.path(), M3_FIVE, 1, 1_600_000_000).remove(0);
    let blocked = add_copies(q.path(), M3_FIVE, 1, 1_600_000_100).remove(0);
    let blocked_bak = q.path().join("out").join(blocked.replace(".pck", ".bak"));
    std::fs::create_dir(&blocked_bak).expect("mkdir");
    std::fs::write(blocked_bak.join("x"), b"x").expect("file in dir");
    chown_tree(q.path());
    let locked_path = q.path().join("out").join(&locked);
    std::os::unix::fs::chown(&locked_path, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&locked_path, std::fs::Permissions::from_mode(0o000)).expect("chmod");

    // Running: both are counted as unclaimable and logged once each, however often the
    // slice lists them; the good entries are delivered.
    let port = support::smtp::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = std::env::temp_dir().join(format!("mq-unclaimable-{}.log", std::process::id()));
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--metrics-addr", &addr]);
    cmd.uid(NOBODY).gid(NOBODY);
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).expect("log"))).stdout(Stdio::null());
    let mut child = Running(cmd.spawn().expect("spawn"));
    let counted = support::wait_until(Duration::from_secs(20), || {
        get(port, "/metrics").is_some_and(|m| m.contains("mailqueue_unclaimable_entries{queue=\"out\",slice=\"0\"} 2"))
    });
    std::thread::sleep(Duration::from_secs(3));
    let _ = kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM);
    let _ = support::wait_child(&mut child.0, Duration::from_secs(10));
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    assert!(counted, "not counted as unclaimable:\n{}", tail(&logs));
    for name in [&locked, &blocked] {
        let lines = logs.lines().filter(|l| l.contains(name.as_str()) && l.contains("cannot claim")).count();
        assert_eq!(lines, 1, "{name} logged {lines} times:\n{}", tail(&logs));
    }
    assert!(logs.lines().count() < 200, "{} log lines", logs.lines().count());
    assert_eq!(recipients(&server), 5 * good.len());

    // --exit-when-empty finishes when only such entries are left, leaving them queued.
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty"]);
    cmd.uid(NOBODY).gid(NOBODY);
    let out = support::run_to_end(cmd, Duration::from_secs(20));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", tail(&logs));
    assert!(locked_path.exists() && q.path().join("out").join(&blocked).exists());
    assert!(support::files(q.path(), "bad", "psv").is_empty());
}

#[test]
fn an_io_error_is_not_corruption_at_recovery_or_in_the_retry_runner() {
    if !is_root() {
        eprintln!("not root: cannot run the runner as another user; skipped");
        return;
    }
    let server = Server::start();
    let q = support::qfiles();
    // A .bak left by a crash and a due retry entry, both unreadable for the runner's user.
    let bak = add_copies(q.path(), M3_FIVE, 1, 1_600_000_000).remove(0).replace(".pck", ".bak");
    std::fs::rename(q.path().join("out").join(bak.replace(".bak", ".pck")), q.path().join("out").join(&bak))
        .expect("rename");
    let retry_name = format!("1600000001.5+{}.pck", "ab".repeat(20));
    std::fs::copy(support::vectors_dir().join(M3_FIVE), q.path().join("retry").join(&retry_name)).expect("copy");
    chown_tree(q.path());
    for p in [q.path().join("out").join(&bak), q.path().join("retry").join(&retry_name)] {
        std::os::unix::fs::chown(&p, Some(0), Some(0)).expect("chown");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    for queue in ["out", "retry"] {
        let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--queue", queue, "--exit-when-empty"]);
        cmd.uid(NOBODY).gid(NOBODY);
        let out = support::run_to_end(cmd, Duration::from_secs(20));
        let logs = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{queue}: {}", tail(&logs));
        assert!(
            support::files(q.path(), "bad", "psv").is_empty(),
            "{queue}: a good entry went to bad/:\n{}",
            tail(&logs)
        );
    }
    // Recovery put the .bak back by rename, its count left for later; the retry entry waits.
    let pck = q.path().join("out").join(bak.replace(".bak", ".pck"));
    assert!(pck.exists());
    assert!(q.path().join("retry").join(&retry_name).exists());
    // Readable again (an admin fixed the mode): delivered, nothing lost.
    std::os::unix::fs::chown(&pck, Some(NOBODY), Some(NOBODY)).expect("chown");
    std::fs::set_permissions(&pck, std::fs::Permissions::from_mode(0o660)).expect("chmod");
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty"]);
    cmd.uid(NOBODY).gid(NOBODY);
    let out = support::run_to_end(cmd, Duration::from_secs(20));
    assert!(out.status.success(), "{}", tail(&String::from_utf8_lossy(&out.stderr)));
    assert_eq!(recipients(&server), 5);
}

#[test]
fn a_runner_whose_lock_file_vanished_stops_claiming_and_a_newcomer_leaves_its_entries_alone() {
    let server = Server::start();
    server.set_faults(support::smtp::Faults { slow_message: Some(Duration::from_secs(3)), ..Default::default() });
    let q = support::qfiles();
    let first = add_copies(q.path(), M3_FIVE, 1, 1_600_000_000).remove(0);
    let log_a = q.path().join("a.log");
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--connections", "1"]);
    cmd.stderr(Stdio::from(std::fs::File::create(&log_a).expect("log"))).stdout(Stdio::null());
    let mut a = Running(cmd.spawn().expect("spawn"));
    assert!(support::wait_until(Duration::from_secs(20), || support::files(q.path(), "out", "bak").len() == 1));

    // An admin removes the state directory while the entry is in flight.
    std::fs::remove_dir_all(q.path().join(".mailqueue")).expect("rm -r .mailqueue");
    // A second runner can take the slice now; its recovery must not requeue the entry
    // the first one is delivering.
    let out = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty"]),
        Duration::from_secs(30),
    );
    let logs_b = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}", tail(&logs_b));
    assert!(logs_b.contains("left_in_flight=1"), "{}", tail(&logs_b));

    // The first runner notices, stops claiming (a new entry stays queued) and exits
    // with an error once its entry is done.
    std::thread::sleep(Duration::from_secs(1));
    let second = add_copies(q.path(), M3_FIVE, 1, 1_600_000_100).remove(0);
    let status = support::wait_child(&mut a.0, Duration::from_secs(20));
    let logs_a = std::fs::read_to_string(&log_a).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the first runner went on:\n{}", tail(&logs_a)));
    assert!(!status.success(), "{}", tail(&logs_a));
    assert!(logs_a.contains("lock file is gone or replaced"), "{}", tail(&logs_a));
    assert_eq!(
        recipients(&server),
        5,
        "the in-flight entry was delivered twice:\nA:\n{}\nB:\n{}",
        tail(&logs_a),
        tail(&logs_b)
    );
    assert!(!q.path().join("out").join(&first).exists());
    assert!(q.path().join("out").join(&second).exists(), "claimed after the loss:\n{}", tail(&logs_a));
}
