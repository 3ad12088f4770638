//! Shared parts of the delivery tests: the capturing SMTP server, queue directories
//! filled with the conformance vectors, and running the real binary.
#![allow(dead_code)] // each test binary uses a different part of it

pub mod smtp;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn runner_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mailqueue-runner")
}

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

pub fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).expect("read vectors manifest");
    serde_json::from_str(&text).expect("parse vectors manifest")
}

/// A fresh `qfiles` root with an empty `out/` (and `retry/`, `shunt/`, `bad/`).
pub fn qfiles() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for q in ["out", "retry", "shunt", "bad"] {
        std::fs::create_dir(dir.path().join(q)).expect("mkdir queue");
    }
    dir
}

/// Copies vector `path` (relative to the vectors folder) into `queue`, keeping its name.
pub fn add_vector(qfiles: &Path, queue: &str, path: &str) -> String {
    let src = vectors_dir().join(path);
    let name = src.file_name().expect("file name").to_string_lossy().into_owned();
    std::fs::copy(&src, qfiles.join(queue).join(&name)).expect("copy vector");
    name
}

/// File names in a queue directory with the given extension.
pub fn files(qfiles: &Path, queue: &str, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(qfiles.join(queue))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| n.ends_with(&format!(".{ext}")));
    v.sort();
    v
}

/// `run` with the common test settings plus `extra`.
pub fn run_cmd(qfiles: &Path, smtp: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(runner_bin());
    c.arg("run").arg("--qfiles").arg(qfiles).arg("--smtp").arg(smtp).args(["--poll-interval", "50ms"]).args(extra);
    c.stdin(Stdio::null());
    c
}

/// Runs to completion; panics with the logs if it takes longer than `limit`. Output goes
/// through files, not pipes: a runner that logs more than a pipe holds must not block.
pub fn run_to_end(mut cmd: Command, limit: Duration) -> std::process::Output {
    let mut out_file = tempfile::tempfile().expect("temp file");
    let mut err_file = tempfile::tempfile().expect("temp file");
    cmd.stdout(out_file.try_clone().expect("clone")).stderr(err_file.try_clone().expect("clone"));
    let mut child = cmd.spawn().expect("spawn runner");
    let status = wait_child(&mut child, limit);
    let read = |f: &mut std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.rewind().expect("rewind");
        f.read_to_end(&mut v).expect("read output");
        v
    };
    let (stdout, stderr) = (read(&mut out_file), read(&mut err_file));
    let Some(status) = status else {
        panic!("runner did not finish within {limit:?}; stderr:\n{}", String::from_utf8_lossy(&stderr));
    };
    std::process::Output { status, stdout, stderr }
}

/// Waits for the child to exit, up to `limit`; kills it (returning None) otherwise.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Python from tests/tools/python-env.sh: `MQ_PY2` (Python 2.7) or `MQ_PY3` (the venv with
/// Mailman 3 from PyPI).
pub fn python_env(var: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/python-env.sh");
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().expect("run python-env.sh");
    assert!(out.status.success(), "tests/tools/python-env.sh failed: these tests need its Pythons");
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("export {var}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("python-env.sh printed no {var}"))
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
