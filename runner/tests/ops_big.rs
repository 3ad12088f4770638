//! A queue of 100,000 entries: compact plus batched refeed while a live runner delivers
//! into Postfix's smtp-sink, and what a bloated directory costs. Prints a table of
//! times and directory sizes (the README's numbers). Slow: `#[ignore]`d, run by the
//! slow tier of tests/all.sh (`cargo test -- --ignored`).
mod support;

use mailqueue_pickle::Value;
use mailqueue_queue::area;
use mailqueue_queue::entry::{version_str, with_field, QueueEntry};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ENTRIES: usize = 100_000;
const M3: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";

/// `count` entries in `dir`: a real Mailman 3 entry with one recipient (one SMTP
/// transaction each), under distinct names spread over every slice (written without
/// fsync: a fixture, not live mail).
fn fill(dir: &Path, count: usize) {
    let entry = QueueEntry::read(&support::vectors_dir().join(M3)).expect("vector");
    let one = Value::List(vec![version_str(entry.version(), "rcpt@example.com")]);
    let bytes = entry.rewritten(&with_field(entry.metadata(), entry.version(), "recipients", one)).expect("rewrite");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        // splitmix64: well-spread digests from a counter.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in 0..count {
        let digest = format!("{:016x}{:016x}{:08x}", next(), next(), next() as u32);
        let name = format!("{}.{:06}+{digest}.pck", 1_700_000_000 + i / 1000, i % 1000);
        std::fs::write(dir.join(name), &bytes).expect("write entry");
    }
}

/// Mean time of one create (`.pck.tmp` written) plus rename to `.pck` in `dir` over 500
/// entries (removed afterwards).
fn create_rename(dir: &Path) -> Duration {
    let name = |i: usize| format!("9{i:09}.5+{:040x}.pck", i + 1);
    let start = Instant::now();
    for i in 0..500 {
        let tmp = dir.join(format!("{}.tmp", name(i)));
        std::fs::write(&tmp, b"x").expect("create");
        std::fs::rename(&tmp, dir.join(name(i))).expect("rename");
    }
    let took = start.elapsed() / 500;
    for i in 0..500 {
        std::fs::remove_file(dir.join(name(i))).expect("clean up");
    }
    took
}

/// Time of one listing of `dir` (what every runner does before each batch).
fn listing(dir: &Path) -> Duration {
    let start = Instant::now();
    let n = area::entries(dir).expect("list").len();
    assert!(n <= ENTRIES);
    start.elapsed()
}

/// Size, create+rename and listing time of each directory: medians of 9 rounds, the
/// directories taking turns within each round so that the machine's load falls on all
/// of them alike.
fn measure(dirs: &[&Path]) -> Vec<(u64, Duration, Duration)> {
    settle();
    let mut samples: Vec<(Vec<Duration>, Vec<Duration>)> = vec![(Vec::new(), Vec::new()); dirs.len()];
    for _ in 0..9 {
        for (dir, (cr, list)) in dirs.iter().zip(samples.iter_mut()) {
            cr.push(create_rename(dir));
            list.push(listing(dir));
        }
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    dirs.iter().zip(samples).map(|(dir, (cr, list))| (dir_size(dir), median(cr), median(list))).collect()
}

/// Flushes pending writes (the fixture's 100,000 files, or their removal) so that they
/// are not measured along with what follows.
fn settle() {
    let _ = Command::new("sync").status();
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::metadata(dir).expect("stat").size()
}

fn smtp_sink(port: u16) -> Option<Child> {
    let path = std::env::var("MQ_SMTP_SINK").ok().or_else(|| {
        let out =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/smtp-sink.sh")).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|s| !s.is_empty())
    })?;
    let mut cmd = Command::new(path);
    if nix::unistd::geteuid().is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.arg(format!("127.0.0.1:{port}")).arg("1000").stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().ok()
}

#[test]
#[ignore = "slow: 100,000 entries (run by tests/all.sh's slow tier)"]
fn compact_and_batched_refeed_of_100000_entries_leave_a_small_directory() {
    let q = support::qfiles();
    let out = q.path().join("out");
    let port = support::smtp::free_port();
    let mut sink = smtp_sink(port).expect("Postfix smtp-sink is needed (tests/tools/smtp-sink.sh installs it)");
    assert!(support::wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()));

    let start = Instant::now();
    fill(&out, ENTRIES);
    let filled = start.elapsed();
    let full = measure(&[&out])[0];

    // A directory that held as many and was emptied: it keeps its size.
    let emptied_dir = q.path().join("emptied");
    std::fs::create_dir(&emptied_dir).unwrap();
    fill(&emptied_dir, ENTRIES);
    for name in area::entries(&emptied_dir).unwrap() {
        std::fs::remove_file(emptied_dir.join(name.to_string())).unwrap();
    }

    let mut runner = support::run_cmd(q.path(), &format!("127.0.0.1:{port}"), &["--slices", "4", "--connections", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(q.path().join("runner.log")).unwrap()))
        .spawn()
        .expect("runner");
    assert!(support::wait_until(Duration::from_secs(60), || (0..4)
        .all(|i| q.path().join(format!(".mailqueue/out-{i}-of-4.json")).exists())));

    let start = Instant::now();
    let compact = Command::new(support::runner_bin())
        .args([
            "compact",
            "--queue",
            "out",
            "--wait-drain",
            "--batch",
            "1000",
            "--interval",
            "0",
            "--max-depth",
            "5000",
            "--json",
            "--qfiles",
        ])
        .arg(q.path())
        .stderr(Stdio::null())
        .output()
        .expect("compact");
    let compact_took = start.elapsed();
    assert!(compact.status.success(), "{}", String::from_utf8_lossy(&compact.stdout));
    let report: serde_json::Value = serde_json::from_slice(&compact.stdout).unwrap();
    assert_eq!(report["result"]["done"], true);
    let moved = report["result"]["moved"].as_u64().unwrap_or(0);
    assert!(moved > 0 && moved <= ENTRIES as u64, "{report}");
    let during = dir_size(&out);

    let drained = support::wait_until(Duration::from_secs(1800), || area::depth(&out).map(|d| d == 0).unwrap_or(false));
    let all_took = start.elapsed();
    let _ = kill(Pid::from_raw(runner.id() as i32), Signal::SIGTERM);
    let _ = runner.wait();
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(drained, "the runner did not deliver everything");
    for other in ["retry", "bad", "shunt"] {
        assert_eq!(area::entries(&q.path().join(other)).unwrap().len(), 0, "entries ended in {other}/");
    }
    let after = measure(&[&emptied_dir, &out]);
    let (emptied, compacted) = (after[0], after[1]);
    assert!(compacted.0 < full.0 / 10, "compacted directory is small: {} bytes vs {}", compacted.0, full.0);

    eprintln!("\n100,000 entries, {} filesystem", fs_type(q.path()));
    eprintln!("fill (fixture, no fsync): {filled:.1?}");
    eprintln!("compact --wait-drain --batch 1000 --interval 0 --max-depth 5000 with 1 runner (4 slices x 4 connections) delivering into smtp-sink:");
    eprintln!("  compact command (drain, swap, refeed {moved} entries): {compact_took:.1?}");
    eprintln!("  until every entry was delivered: {all_took:.1?}; out/ size during refeed {during} bytes");
    eprintln!("{:<42} {:>12} {:>16} {:>12}", "directory", "size bytes", "create+rename", "listing");
    for (what, (size, cr, list)) in [
        ("bloated, holding 100,000 entries", full),
        ("bloated, emptied (held 100,000)", emptied),
        ("compacted, empty", compacted),
    ] {
        eprintln!("{what:<42} {size:>12} {:>16} {:>12}", format!("{cr:.1?}"), format!("{list:.2?}"));
    }
}

fn fs_type(p: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(p)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
