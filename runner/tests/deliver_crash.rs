//! Crash test (slow, `#[ignore]`; run with `cargo test -p mailqueue-runner --test
//! deliver_crash -- --ignored --nocapture`, as tests/all.sh does): `kill -9` the runner
//! at random moments while it drains thousands of real Mailman 3 entries, restart it,
//! repeat, then let it finish. Every recipient of every entry must have been accepted by
//! the SMTP server or still be queued (or in bad/ after three crashes while in flight),
//! counted exactly; duplicates may only come from transactions in flight at a kill.
mod support;

use mailqueue_queue::entry::QueueEntry;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::smtp::Server;

const ENTRIES: usize = 3000;
const RECIPIENTS: usize = 2;
const SLICES: usize = 4;
const CONNECTIONS: usize = 4;

/// Recipients of the entries in a directory, by extension.
fn recipients_in(dir: &Path, ext: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
        .flat_map(|e| QueueEntry::read(&e.path()).expect("queued entry readable").recipients().expect("recipients"))
        .collect()
}

/// A small deterministic generator for the kill moments (xorshift64).
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

#[test]
#[ignore = "slow: kill -9 loops over thousands of entries"]
fn kill_minus_nine_at_random_moments_loses_nothing() {
    let env = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/python-env.sh"))
        .output()
        .expect("python-env.sh");
    assert!(env.status.success(), "tests/tools/python-env.sh failed: {}", String::from_utf8_lossy(&env.stderr));
    let env = String::from_utf8_lossy(&env.stdout);
    let py3 = env.lines().find_map(|l| l.strip_prefix("export MQ_PY3=")).expect("MQ_PY3 from python-env.sh").to_owned();

    let q = support::qfiles();
    let gen = Command::new(&py3)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/gen-queue.py"))
        .args(["--dir", &q.path().join("out").to_string_lossy()])
        .args([
            "--count",
            &ENTRIES.to_string(),
            "--recipients",
            &RECIPIENTS.to_string(),
            "--unique-recipients",
            "--seed",
            "7",
        ])
        .output()
        .expect("gen-queue.py");
    assert!(gen.status.success(), "gen-queue.py: {}", String::from_utf8_lossy(&gen.stderr));
    let all: Vec<String> = recipients_in(&q.path().join("out"), ".pck");
    assert_eq!(all.len(), ENTRIES * RECIPIENTS);

    let server = Server::start();
    let mut moments = Moments(0x9E37_79B9_7F4A_7C15);
    let mut kills = 0;
    let common = ["--slices", "4", "--connections", "4"];
    loop {
        let queued = support::files(q.path(), "out", "pck").len() + support::files(q.path(), "out", "bak").len();
        if queued == 0 || kills >= 60 {
            break;
        }
        let mut child = support::run_cmd(q.path(), &server.smtp_arg(), &common)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(moments.next_ms(100, 700)));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill -9");
        child.wait().expect("reap");
        kills += 1;
    }
    // Finish the queue without interruptions.
    let out = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &[&common[..], &["--exit-when-empty"]].concat()),
        Duration::from_secs(600),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut accepted: HashMap<String, usize> = HashMap::new();
    for c in server.captured() {
        for r in c.rcpts {
            *accepted.entry(r).or_default() += 1;
        }
    }
    let still_queued = recipients_in(&q.path().join("out"), ".pck");
    let in_bad = recipients_in(&q.path().join("bad"), ".psv");
    let retried = recipients_in(&q.path().join("retry"), ".pck");
    let mut lost = Vec::new();
    let mut duplicates = 0;
    for r in &all {
        let n = accepted.get(r).copied().unwrap_or(0)
            + usize::from(still_queued.contains(r))
            + usize::from(in_bad.contains(r));
        if n == 0 && !retried.contains(r) {
            lost.push(r.clone());
        }
        duplicates += n.saturating_sub(1);
    }
    let unknown: Vec<&String> = accepted.keys().filter(|r| !all.contains(r)).collect();
    eprintln!(
        "crash test: {ENTRIES} entries x {RECIPIENTS} recipients, {kills} kill -9s; accepted {} recipient deliveries, \
         {duplicates} duplicates, {} still queued, {} in bad/ (three crashes in flight), {} in retry",
        accepted.values().sum::<usize>(),
        still_queued.len(),
        in_bad.len(),
        retried.len()
    );
    assert!(lost.is_empty(), "lost recipients: {lost:?}");
    assert!(unknown.is_empty(), "the server got recipients nobody queued: {unknown:?}");
    assert!(still_queued.is_empty(), "the final run drained the queue");
    assert!(support::files(q.path(), "out", "bak").is_empty());
    // At a kill at most one entry per SMTP session is between the relay's acceptance of
    // a transaction and the entry's removal; all its recipients may be sent again.
    assert!(duplicates <= kills * SLICES * CONNECTIONS * RECIPIENTS, "{duplicates} duplicates for {kills} kills");
}
