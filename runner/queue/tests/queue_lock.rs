//! Slice locks against another process holding one fine lock with util-linux `flock`.
use mailqueue_queue::{Slice, SliceLock};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn a_lock_held_by_another_process_refuses_every_covering_slice() {
    let root = tempfile::tempdir().unwrap();
    // Take the locks once so the directory and files exist, then release them.
    drop(SliceLock::acquire(root.path(), "out", Slice::all()).unwrap());
    // Fine lock 130 lies in slice 2 of 4 (128..192) and slice 1 of 2.
    let file = root.path().join(".mailqueue/locks/out/130");
    std::fs::write(&file, b"").unwrap();
    let mut holder = match Command::new("flock")
        .arg("-x")
        .arg(&file)
        .args(["sh", "-c", "echo held; cat >/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("util-linux flock is needed for this test: {e}"),
    };
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "held");

    for (i, n) in [(2, 4), (1, 2), (0, 1), (65, 128), (130, 256)] {
        let err = SliceLock::acquire(root.path(), "out", Slice::new(i, n).unwrap()).unwrap_err().to_string();
        assert_eq!(err, format!("slice {i}/{n} of queue out is owned by another process"));
    }
    for (i, n) in [(3, 4), (0, 2), (131, 256)] {
        assert!(SliceLock::acquire(root.path(), "out", Slice::new(i, n).unwrap()).is_ok());
    }
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert!(SliceLock::acquire(root.path(), "out", Slice::new(2, 4).unwrap()).is_ok());
}
