//! TLS peers for the delivery tests: Python servers from `tests/support/` run by the
//! Mailman 3 venv's Python (tests/tools/python-env.sh), with a certificate made here by
//! openssl for `localhost` (trusted with `--smtp-tls-ca <dir>/cert.pem`).
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// `<dir>/cert.pem` and `<dir>/key.pem`: a self-signed certificate for `localhost`.
pub fn certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl could not make a certificate");
}

/// A running peer; killed when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    /// What the peer prints after its `ready <port>` line.
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tests/support/<script>` with `args` (plus `--cert` and `--key` from `dir`) and
/// waits for its `ready <port>` line.
pub fn start<I: AsRef<OsStr>>(script: &str, dir: &Path, args: impl IntoIterator<Item = I>) -> Peer {
    let mut child = Command::new(super::python_env("MQ_PY3"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(script))
        .args(args)
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the TLS peer");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready line");
    let port = line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).expect("ready <port>");
    Peer { child, port, stdout: Some(stdout) }
}
