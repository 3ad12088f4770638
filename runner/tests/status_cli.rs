//! `mailqueue-runner status` on a queue root with entries, foreign files and slices.
use serde_json::Value as Json;
use std::fs;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

#[test]
fn status_counts_per_queue_and_slice() {
    let root = tempfile::tempdir().unwrap();
    for q in ["out", "retry", "bad", ".mailqueue"] {
        fs::create_dir(root.path().join(q)).unwrap();
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let name = |age_min: f64, top: &str, ext: &str| format!("{}+{top}{}.{ext}", now - age_min * 60.0, "0".repeat(38));
    for (age, top, ext) in [(1.0, "00", "pck"), (2.0, "40", "pck"), (90.0, "80", "pck"), (3000.0, "c0", "bak")] {
        fs::write(root.path().join("out").join(name(age, top, ext)), b"").unwrap();
    }
    fs::write(root.path().join("out").join(name(0.0, "00", "pck.tmp")), b"").unwrap();
    fs::write(root.path().join("out").join("stray"), b"").unwrap();
    fs::write(root.path().join("bad").join(name(10.0, "00", "psv")), b"").unwrap();
    // Set aside by `quarantine` and `hold`: counted for their queue, not as queued.
    let quarantine = root.path().join(".mailqueue/quarantine/out");
    let hold = root.path().join(".mailqueue/hold/out");
    fs::create_dir_all(&quarantine).unwrap();
    fs::create_dir_all(&hold).unwrap();
    for (dir, top, ext) in
        [(&quarantine, "00", "bak"), (&quarantine, "40", "bak"), (&quarantine, "80", "psv"), (&hold, "c0", "pck")]
    {
        fs::write(dir.join(name(5.0, top, ext)), b"").unwrap();
    }

    let out = Command::new(env!("CARGO_BIN_EXE_mailqueue-runner"))
        .args(["status", "--json", "--slices", "4", "--qfiles"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Json = serde_json::from_slice(&out.stdout).unwrap();
    let queues = status["queues"].as_array().unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bad", "out", "retry"]);
    let q = &queues[1];
    assert_eq!((q["pck"].as_u64(), q["bak"].as_u64(), q["psv"].as_u64()), (Some(3), Some(1), Some(0)));
    assert_eq!(q["age_histogram"], serde_json::json!([2, 0, 0, 0, 0, 1, 0, 0, 0, 1]));
    assert!(q["oldest_age_seconds"].as_f64().unwrap() >= 3000.0 * 60.0);
    assert_eq!(q["ignored"]["being written (.tmp)"]["count"], 1);
    assert_eq!(q["ignored"]["not a queue entry name"]["examples"], serde_json::json!(["stray"]));
    let per_slice: Vec<(u64, u64)> = q["slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["pck"].as_u64().unwrap(), s["bak"].as_u64().unwrap()))
        .collect();
    assert_eq!(per_slice, [(1, 0), (1, 0), (1, 0), (0, 1)]);
    assert_eq!((q["quarantined"].as_u64(), q["held"].as_u64()), (Some(3), Some(1)));
    assert_eq!((queues[2]["quarantined"].as_u64(), queues[2]["held"].as_u64()), (Some(0), Some(0)));
    assert_eq!(queues[0]["psv"], 1);
    assert_eq!(status["age_buckets"][9], "1280m+");

    let table = Command::new(env!("CARGO_BIN_EXE_mailqueue-runner"))
        .args(["status", "--slices", "4", "--qfiles"])
        .arg(root.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header[..8], ["queue", "pck", "bak", "psv", "quarantined", "held", "ignored", "oldest"], "{text}");
    let out_row: Vec<&str> =
        text.lines().find(|l| l.starts_with("out ")).unwrap_or_default().split_whitespace().collect();
    assert_eq!(out_row[..7], ["out", "3", "1", "0", "3", "1", "2"], "{text}");
    assert!(text.contains("  out/3"), "{text}");
    assert!(text.contains("out: 1 ignored, not a queue entry name: stray"), "{text}");
}

#[test]
fn status_refuses_bad_slice_counts_and_missing_roots() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailqueue-runner"))
        .args(["status", "--slices", "3", "--qfiles"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a power of two"));
    let out = Command::new(env!("CARGO_BIN_EXE_mailqueue-runner"))
        .args(["status", "--qfiles", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
}
