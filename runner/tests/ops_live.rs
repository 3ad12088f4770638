//! The queue operations against queues that live runners (the built binary) are
//! draining into a real SMTP server on loopback. Every entry gets its own recipient
//! (`u<N>@example.com`), so the census at the end can say, for each one, where it is or
//! that the server accepted it: exactly one place or one delivery, never both, never two.
mod support;

use mailqueue_pickle::Value;
use mailqueue_queue::entry::{version_str, with_field, QueueEntry};
use mailqueue_queue::switchboard::{NewEntry, Switchboard};
use mailqueue_queue::{EntryName, Ext};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::smtp::{Faults, Server, Stage};

const M3: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";
const M2: &str = "mailman2/out/1546301294.5+644a741cf1febdb8a75d18bfa8ce09baecd8d397.pck";
const LIMIT: Duration = Duration::from_secs(60);

/// Entry `id`: a Mailman 3 vector (even ids) or a Mailman 2.1 vector (odd ids) with its
/// recipients replaced by `u<id>@example.com`, enqueued into `dir` with `extra` metadata.
fn enqueue(dir: &Switchboard, id: usize, extra: &[(&str, &str)]) -> EntryName {
    let vector = support::vectors_dir().join(if id.is_multiple_of(2) { M3 } else { M2 });
    let entry = QueueEntry::read(&vector).expect("read vector");
    let v = entry.version();
    let key = if id.is_multiple_of(2) { "recipients" } else { "recips" };
    let mut metadata =
        with_field(entry.metadata(), v, key, Value::List(vec![version_str(v, &format!("u{id}@example.com"))]));
    for (k, val) in extra {
        metadata = with_field(&metadata, v, k, version_str(v, val));
    }
    dir.enqueue(NewEntry {
        message_pickle: entry.message_pickle(),
        metadata: &metadata,
        version: v,
        text: entry.is_text(),
    })
    .expect("enqueue")
}

fn fill(q: &Path, queue: &str, ids: std::ops::Range<usize>) -> Vec<EntryName> {
    let sb = Switchboard::open(q, queue).expect("open queue");
    ids.map(|id| enqueue(&sb, id, &[])).collect()
}

fn id_of(path: &Path) -> Option<usize> {
    let entry = QueueEntry::read(path).ok()?;
    let r = entry.recipients().ok()?;
    r.first()?.strip_prefix('u')?.strip_suffix("@example.com")?.parse().ok()
}

/// Every place an entry can be, by directory.
fn places(q: &Path) -> Vec<PathBuf> {
    let state = q.join(".mailqueue");
    let mut v: Vec<PathBuf> = ["out", "retry", "shunt", "bad"].iter().map(|d| q.join(d)).collect();
    for area in ["quarantine", "hold", "compact"] {
        v.push(state.join(area).join("out"));
    }
    v
}

/// Entry ids per place (`<dir>/<ext>`) and delivered ids, checked against `ids`:
/// each id in exactly one place or delivered exactly once.
fn census(q: &Path, accepted: &[&Server], ids: std::ops::Range<usize>) -> BTreeMap<String, usize> {
    let mut seen: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for dir in places(q) {
        for name in mailqueue_queue::area::entries(&dir).expect("list") {
            let at = format!("{}/{}", dir.strip_prefix(q).unwrap_or(&dir).display(), name.ext());
            let id = id_of(&dir.join(name.to_string())).unwrap_or_else(|| panic!("unreadable entry {at}/{name}"));
            seen.entry(id).or_default().push(at.clone());
            *count.entry(at).or_default() += 1;
        }
    }
    for server in accepted {
        for c in server.captured() {
            for r in c.rcpts {
                let id: usize =
                    r.trim_start_matches('u').trim_end_matches("@example.com").parse().expect("test recipient");
                seen.entry(id).or_default().push("delivered".into());
                *count.entry("delivered".into()).or_default() += 1;
            }
        }
    }
    for id in ids.clone() {
        let at = seen.remove(&id).unwrap_or_default();
        assert_eq!(at.len(), 1, "entry {id} must be in exactly one place or delivered once, found: {at:?}");
    }
    assert!(seen.is_empty(), "unexpected entries: {seen:?}");
    count
}

fn runner(q: &Path, server: &Server, extra: &[&str]) -> Child {
    let mut cmd = support::run_cmd(q, &server.smtp_arg(), extra);
    let log = std::fs::File::create(q.join(format!("runner-{}.log", server.addr.port()))).expect("log");
    cmd.stdout(Stdio::null()).stderr(Stdio::from(log));
    cmd.spawn().expect("spawn runner")
}

/// Waits until a runner of `slices` slices has published a heartbeat for each: it owns
/// them and has recovered them. (Operations hold free slices while they move entries,
/// so a runner starting at that very moment would find its slice taken.)
fn started(q: &Path, slices: u32) {
    let ok = support::wait_until(LIMIT, || {
        (0..slices).all(|i| q.join(".mailqueue").join(format!("out-{i}-of-{slices}.json")).exists())
    });
    assert!(ok, "the runner did not start");
}

fn stop(mut child: Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    assert!(support::wait_child(&mut child, Duration::from_secs(20)).is_some(), "runner did not stop");
}

/// Runs an operation to its end: output, exit code and the JSON it printed.
fn op(q: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let mut cmd = Command::new(support::runner_bin());
    cmd.arg(args[0]).arg("--qfiles").arg(q).args(&args[1..]).arg("--json");
    let out = support::run_to_end(cmd, LIMIT);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn n(v: &serde_json::Value, field: &str) -> u64 {
    v["result"][field].as_u64().unwrap_or_else(|| panic!("no {field} in {v}"))
}

fn balanced(v: &serde_json::Value) {
    let parts: u64 =
        ["moved", "skipped_in_flight", "skipped_gone", "remaining", "errors"].iter().map(|f| n(v, f)).sum();
    assert_eq!(n(v, "matched"), parts, "counts must balance: {v}");
}

fn files(q: &Path, ext: &str) -> usize {
    support::files(q, "out", ext).len()
}

fn wait_delivered(server: &Server, count: usize) {
    let ok = support::wait_until(LIMIT, || server.captured().iter().map(|c| c.rcpts.len()).sum::<usize>() >= count);
    assert!(ok, "only {} of {count} delivered", server.captured().len());
}

#[test]
fn quarantine_takes_stuck_bak_entries_and_never_one_in_flight() {
    let stalled = Server::start();
    stalled.set_faults(Faults { stall: Some(Stage::Message), ..Faults::default() });
    let q = support::qfiles();
    fill(q.path(), "out", 0..10);
    let live = runner(q.path(), &stalled, &["--connections", "2", "--data-timeout", "600", "--stop-grace", "2"]);
    assert!(support::wait_until(LIMIT, || files(q.path(), "bak") == 2), "two entries never got in flight");
    let in_flight = support::files(q.path(), "out", "bak");
    // Three entries stuck as `.bak` in the live runner's slice (a failed disposition
    // leaves exactly this): claimed by nobody.
    let pending = support::files(q.path(), "out", "pck");
    for name in pending.iter().take(3) {
        std::fs::rename(q.path().join("out").join(name), q.path().join("out").join(name.replace(".pck", ".bak")))
            .unwrap();
    }

    let (out, dry) = op(q.path(), &["quarantine", "--queue", "out", "--older-than", "0s", "--dry-run"]);
    assert!(out.status.success());
    assert_eq!((n(&dry, "moved"), n(&dry, "skipped_in_flight")), (3, 2), "{dry}");
    assert_eq!(files(q.path(), "bak"), 5, "a dry run moves nothing");

    // Not stale enough yet.
    let (_, young) = op(q.path(), &["quarantine", "--queue", "out", "--older-than", "1h"]);
    assert_eq!(n(&young, "matched"), 0);

    let (out, done) = op(q.path(), &["quarantine", "--queue", "out", "--older-than", "0s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((n(&done, "moved"), n(&done, "skipped_in_flight"), n(&done, "errors")), (3, 2, 0), "{done}");
    balanced(&done);
    assert_eq!(support::files(q.path(), "out", "bak"), in_flight, "the entries in flight stay where they are");
    assert_eq!(mailqueue_queue::area::entries(&q.path().join(".mailqueue/quarantine/out")).unwrap().len(), 3);
    let text = Command::new(support::runner_bin())
        .args(["quarantine", "--queue", "out", "--older-than", "0s", "--qfiles"])
        .arg(q.path())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(line.starts_with("quarantine out: moved 0, skipped 2 in flight, 0 errors (to "), "{line}");

    // Stop the stalled runner (its two entries go back to `.pck`), feed the quarantine
    // back, and deliver everything to a relay that works.
    stop(live);
    let fine = Server::start();
    let (out, back) =
        op(q.path(), &["requeue", "--from", "quarantine", "--queue", "out", "--batch", "2", "--interval", "0"]);
    assert!(out.status.success());
    assert_eq!(n(&back, "moved"), 3);
    assert_eq!(files(q.path(), "bak"), 0, "requeued as .pck");
    let end = support::run_to_end(support::run_cmd(q.path(), &fine.smtp_arg(), &["--exit-when-empty"]), LIMIT);
    assert!(end.status.success());
    let count = census(q.path(), &[&fine], 0..10);
    assert_eq!(count.get("delivered"), Some(&10), "{count:?}");
}

#[test]
fn held_entries_are_not_delivered_until_released_in_batches() {
    let server = Server::start();
    let q = support::qfiles();
    fill(q.path(), "out", 0..200);
    let (out, refused) = op_raw(q.path(), &["hold", "--queue", "out"]);
    assert!(!out.status.success());
    assert!(refused.contains("pass --all to take the whole queue"), "{refused}");

    let live = runner(q.path(), &server, &["--slices", "4", "--connections", "2"]);
    started(q.path(), 4);
    // Held while the runners claim: each entry is held or delivered, never both.
    let (out, held) = op(q.path(), &["hold", "--queue", "out", "--all"]);
    assert!(out.status.success());
    balanced(&held);
    let hold_dir = q.path().join(".mailqueue/hold/out");
    assert!(
        support::wait_until(LIMIT, || files(q.path(), "pck") + files(q.path(), "bak") == 0),
        "runners never emptied out/"
    );
    let held_ids: Vec<usize> = mailqueue_queue::area::entries(&hold_dir)
        .unwrap()
        .iter()
        .map(|e| id_of(&hold_dir.join(e.to_string())).unwrap())
        .collect();
    assert_eq!(held_ids.len() as u64, n(&held, "moved"));
    assert!(!held_ids.is_empty(), "nothing held: the runners were faster than the hold");
    census(q.path(), &[&server], 0..200);

    // Release a slice of them, then the rest, never more than 20 in out/.
    let (out, some) = op(
        q.path(),
        &[
            "release",
            "--queue",
            "out",
            "--slices",
            "2",
            "--slice",
            "0",
            "--batch",
            "7",
            "--interval",
            "0",
            "--max-depth",
            "20",
        ],
    );
    assert!(out.status.success());
    balanced(&some);
    let (out, rest) =
        op(q.path(), &["release", "--queue", "out", "--all", "--batch", "7", "--interval", "0", "--max-depth", "20"]);
    assert!(out.status.success());
    assert_eq!(n(&some, "moved") + n(&rest, "moved"), held_ids.len() as u64);
    wait_delivered(&server, 200);
    stop(live);
    let count = census(q.path(), &[&server], 0..200);
    assert_eq!(count.get("delivered"), Some(&200));
}

/// Like [`op`] for a command expected to fail: exit status and stderr.
fn op_raw(q: &Path, args: &[&str]) -> (Output, String) {
    let mut cmd = Command::new(support::runner_bin());
    cmd.arg(args[0]).arg("--qfiles").arg(q).args(&args[1..]);
    let out = support::run_to_end(cmd, LIMIT);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

/// Samples the depth of `out/` until told to stop; returns the largest seen.
fn watch_depth(q: &Path) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let done = Arc::new(AtomicBool::new(false));
    let (flag, dir) = (done.clone(), q.join("out"));
    let max = Arc::new(AtomicU64::new(0));
    let handle = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            if let Ok(d) = mailqueue_queue::area::depth(&dir) {
                max.fetch_max(d, Ordering::SeqCst);
            }
        }
        max.load(Ordering::SeqCst)
    });
    (done, handle)
}

#[test]
fn requeue_in_batches_stays_under_max_depth_and_resumes_after_an_interrupt() {
    let server = Server::start();
    let q = support::qfiles();
    let names = fill(q.path(), "out", 0..300);
    let quarantine = q.path().join(".mailqueue/quarantine/out");
    std::fs::create_dir_all(&quarantine).unwrap();
    for name in &names {
        let bak = name.with_ext(Ext::Bak).to_string();
        std::fs::rename(q.path().join("out").join(name.to_string()), quarantine.join(bak)).unwrap();
    }
    let live = runner(q.path(), &server, &["--slices", "2", "--connections", "2"]);
    started(q.path(), 2);
    let (stop_watch, watcher) = watch_depth(q.path());

    // Interrupted part-way (SIGINT, as Ctrl-C): it stops between two moves.
    let mut cmd = Command::new(support::runner_bin());
    cmd.args([
        "requeue",
        "--from",
        "quarantine",
        "--queue",
        "out",
        "--batch",
        "10",
        "--interval",
        "20ms",
        "--max-depth",
        "25",
        "--json",
        "--qfiles",
    ])
    .arg(q.path())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut first = cmd.spawn().unwrap();
    assert!(support::wait_until(LIMIT, || mailqueue_queue::area::entries(&quarantine).unwrap().len() < 200));
    kill(Pid::from_raw(first.id() as i32), Signal::SIGINT).unwrap();
    assert!(support::wait_child(&mut first, LIMIT).is_some());
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "interrupted with entries left: exit 2");
    let part: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    balanced(&part);
    let left = mailqueue_queue::area::entries(&quarantine).unwrap().len() as u64;
    assert_eq!(n(&part, "remaining"), left, "what it says is left is what is left: {part}");

    // Run again: it carries on with what is left.
    let (out, rest) = op(
        q.path(),
        &[
            "requeue",
            "--from",
            "quarantine",
            "--queue",
            "out",
            "--batch",
            "10",
            "--interval",
            "20ms",
            "--max-depth",
            "25",
        ],
    );
    assert!(out.status.success());
    assert_eq!(n(&rest, "moved"), left);
    wait_delivered(&server, 300);
    stop_watch.store(true, Ordering::SeqCst);
    let max = watcher.join().unwrap();
    stop(live);
    assert!(max <= 25, "out/ held {max} entries, over --max-depth 25");
    let count = census(q.path(), &[&server], 0..300);
    assert_eq!(count.get("delivered"), Some(&300));
    eprintln!("requeue of 300 with --max-depth 25: deepest out/ seen {max}");
}

#[test]
fn compact_refuses_live_owners_and_with_wait_drain_swaps_and_refeeds() {
    let server = Server::start();
    let q = support::qfiles();
    std::fs::set_permissions(q.path().join("out"), std::fs::Permissions::from_mode(0o2770)).unwrap();
    fill(q.path(), "out", 0..300);
    let live = runner(q.path(), &server, &["--slices", "4", "--connections", "2"]);
    started(q.path(), 4);

    let (out, err) = op_raw(q.path(), &["compact", "--queue", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("has live runners") && err.contains("--wait-drain"), "{err}");
    assert!(!q.path().join(".mailqueue/compact/out").exists(), "nothing moved");

    let (out, done) = op(
        q.path(),
        &["compact", "--queue", "out", "--wait-drain", "--batch", "20", "--interval", "0", "--max-depth", "40"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    balanced(&done);
    assert_eq!(done["result"]["done"], true);
    assert!(!q.path().join(".mailqueue/compact/out").exists(), "old directory removed");
    assert!(!q.path().join(".mailqueue/out.drain").exists(), "the drain it asked for is lifted");
    let mode = std::fs::metadata(q.path().join("out")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o2770, "recreated with the same mode");
    wait_delivered(&server, 300);
    stop(live);
    let count = census(q.path(), &[&server], 0..300);
    assert_eq!(count.get("delivered"), Some(&300));
}

#[test]
fn compact_interrupted_at_any_step_finishes_when_run_again() {
    let q = support::qfiles();
    fill(q.path(), "out", 0..400);
    std::fs::write(q.path().join("out").join("1.0+0123456789abcdef0123456789abcdef01234567.pck.tmp"), b"half").unwrap();

    // Killed (SIGKILL: no chance to clean up) while refeeding.
    let mut cmd = Command::new(support::runner_bin());
    cmd.args(["compact", "--queue", "out", "--batch", "20", "--interval", "50ms", "--qfiles"])
        .arg(q.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let aside = q.path().join(".mailqueue/compact/out");
    assert!(support::wait_until(LIMIT, || aside.exists() && files(q.path(), "pck") >= 40));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(aside.exists());
    census(q.path(), &[], 0..400);

    let (out, done) = op(q.path(), &["compact", "--queue", "out", "--batch", "100", "--interval", "0"]);
    assert!(out.status.success());
    assert_eq!(done["resumed"], true);
    assert_eq!(done["result"]["done"], true);
    let leftover = done["result"]["leftover"].as_str().expect("the .tmp file is kept aside");
    assert!(Path::new(leftover).join("1.0+0123456789abcdef0123456789abcdef01234567.pck.tmp").exists());
    let count = census(q.path(), &[], 0..400);
    assert_eq!(count.get("out/pck"), Some(&400));

    // A crash between the move aside and the new directory: run again, it recreates.
    std::fs::rename(q.path().join("out"), &aside).unwrap();
    let (out, done) = op(q.path(), &["compact", "--queue", "out", "--batch", "1000", "--interval", "0"]);
    assert!(out.status.success());
    assert_eq!(n(&done, "moved"), 400);
    assert!(!aside.exists());
    census(q.path(), &[], 0..400);
}

#[test]
fn unshunt_sends_entries_back_to_their_whichq() {
    let server = Server::start();
    let q = support::qfiles();
    let shunt = Switchboard::open(q.path(), "shunt").unwrap();
    for id in 0..60 {
        enqueue(&shunt, id, &[("whichq", "out")]);
    }
    enqueue(&shunt, 60, &[]);
    let live = runner(q.path(), &server, &["--slices", "2"]);
    started(q.path(), 2);
    let (out, done) = op(q.path(), &["unshunt", "--batch", "8", "--interval", "0", "--max-depth", "16"]);
    assert_eq!(out.status.code(), Some(1), "the entry without whichq is an error");
    balanced(&done);
    assert_eq!((n(&done, "moved"), n(&done, "errors")), (60, 1), "{done}");
    assert!(done["result"]["error_messages"][0].as_str().unwrap_or("").contains("no whichq"));
    wait_delivered(&server, 60);
    stop(live);
    let count = census(q.path(), &[&server], 0..61);
    assert_eq!((count.get("delivered"), count.get("shunt/pck")), (Some(&60), Some(&1)));
}

#[test]
fn drain_waits_for_entries_in_flight_and_resume_lets_runners_go_on() {
    let stalled = Server::start();
    stalled.set_faults(Faults { stall: Some(Stage::Message), ..Faults::default() });
    let q = support::qfiles();
    fill(q.path(), "out", 0..6);
    let live = runner(q.path(), &stalled, &["--connections", "2", "--data-timeout", "600", "--stop-grace", "2"]);
    assert!(support::wait_until(LIMIT, || files(q.path(), "bak") == 2));
    let (out, busy) = op(q.path(), &["drain", "--queue", "out", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1), "entries in flight: not drained");
    assert_eq!(busy["drained"], false);
    assert_eq!(busy["owners"].as_array().map(Vec::len), Some(1));
    stop(live);

    // Asked before the runner starts: it recovers, then claims nothing.
    let (out, asked) = op(q.path(), &["drain", "--queue", "out", "--no-wait"]);
    assert!(out.status.success(), "{asked}");
    let server = Server::start();
    let live = runner(q.path(), &server, &["--slices", "2"]);
    started(q.path(), 2);
    let (out, idle) = op(q.path(), &["drain", "--queue", "out", "--timeout", "30s"]);
    assert!(out.status.success(), "{idle}");
    assert_eq!(idle["drained"], true);
    assert!(server.captured().is_empty(), "a drained runner claims nothing");
    // As a Job runs it: the result also goes to the termination-message file.
    let job = tempfile::tempdir().unwrap();
    let result_file = job.path().join("termination-log");
    let result_arg = result_file.to_str().unwrap();
    let (out, resumed) = op(q.path(), &["drain", "--queue", "out", "--resume", "--result-file", result_arg]);
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&result_file).unwrap()).unwrap(), resumed);
    wait_delivered(&server, 6);
    stop(live);
    census(q.path(), &[&server], 0..6);
}

#[test]
fn an_idle_retry_runner_acknowledges_a_drain_between_passes() {
    // The retry runner passes over its queue every 15 minutes by default; a drain must
    // not wait for the next pass to be acknowledged.
    let server = Server::start();
    let q = support::qfiles();
    std::fs::create_dir_all(q.path().join("retry")).expect("retry dir");
    let live = runner(q.path(), &server, &["--queue", "retry"]);
    let heartbeat = q.path().join(".mailqueue/retry-0-of-1.json");
    assert!(support::wait_until(LIMIT, || heartbeat.exists()), "the retry runner did not start");
    let (out, drained) = op(q.path(), &["drain", "--queue", "retry", "--timeout", "30s"]);
    assert!(out.status.success(), "{drained}");
    assert_eq!(drained["drained"], true);
    stop(live);
}

#[test]
fn moves_across_filesystems_are_refused_and_nothing_moves() {
    let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
        panic!("this test needs /dev/shm (a tmpfs) as a second filesystem");
    };
    let q = support::qfiles();
    let dev = |p: &Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(p).unwrap());
    assert_ne!(dev(other.path()), dev(q.path()), "/dev/shm must be another filesystem than the temp dir");
    std::fs::create_dir(other.path().join("out")).unwrap();
    fill(other.path(), "out", 0..3);
    let from = other.path().join("out");
    let (out, err) = op_raw(q.path(), &["requeue", "--from", from.to_str().unwrap(), "--queue", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("are on different filesystems"), "{err}");
    assert_eq!(mailqueue_queue::area::entries(&from).unwrap().len(), 3, "nothing moved, nothing copied");
    assert!(support::files(q.path(), "out", "pck").is_empty());
}

#[test]
fn hold_selectors_read_both_mailman_versions() {
    let q = support::qfiles();
    let names = fill(q.path(), "out", 0..10);
    let would = |args: &[&str]| {
        let mut all = vec!["hold", "--queue", "out", "--dry-run"];
        all.extend_from_slice(args);
        let (out, v) = op(q.path(), &all);
        assert!(out.status.success(), "{v}");
        n(&v, "moved")
    };
    // 2.1 entries name the list `test`; Mailman 3 ones `test.example.com`.
    assert_eq!(would(&["--list", "test"]), 5);
    assert_eq!(would(&["--list", "test.example.com"]), 5);
    assert_eq!(would(&["--sender-domain", "example.com"]), 10);
    assert_eq!(would(&["--sender-domain", "example.org"]), 0);
    assert_eq!(would(&["--recipient-domain", "EXAMPLE.com"]), 10);
    assert_eq!(would(&["--older-than", "1h"]), 5, "2.1 entries keep their received_time (2019) in the name");
    let first = names[0].to_string();
    assert_eq!(would(&[first.as_str()]), 1);
    assert_eq!(support::files(q.path(), "out", "pck").len(), 10, "dry runs move nothing");
    let (out, held) = op(q.path(), &["hold", "--queue", "out", "--list", "test"]);
    assert!(out.status.success());
    assert_eq!(n(&held, "moved"), 5);
    census(q.path(), &[], 0..10);
}

#[test]
fn a_misspelt_source_is_refused_even_where_a_directory_has_that_name() {
    let q = support::qfiles();
    // The worst case of taking a typo as a path: the working directory happens to hold a
    // directory of that name, full of entries.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("quarantne")).unwrap();
    fill(cwd.path(), "quarantne", 0..3);
    let mut cmd = Command::new(support::runner_bin());
    cmd.current_dir(cwd.path()).args(["requeue", "--qfiles"]).arg(q.path()).args([
        "--from",
        "quarantne",
        "--queue",
        "out",
    ]);
    let out = support::run_to_end(cmd, LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("unknown source 'quarantne'") && err.contains("./quarantne"), "{err}");
    assert_eq!(mailqueue_queue::area::entries(&cwd.path().join("quarantne")).unwrap().len(), 3, "nothing moved");
    assert!(support::files(q.path(), "out", "pck").is_empty());

    // Written as a path, the same directory is a source.
    let mut cmd = Command::new(support::runner_bin());
    cmd.current_dir(cwd.path()).args(["requeue", "--qfiles"]).arg(q.path()).args([
        "--from",
        "./quarantne",
        "--queue",
        "out",
    ]);
    let out = support::run_to_end(cmd, LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(support::files(q.path(), "out", "pck").len(), 3);
}
