//! Delivery over STARTTLS and over TLS from the first byte, with SMTP AUTH, to a real
//! server (aiosmtpd from the Mailman 3 venv, tests/tools/python-env.sh) that requires
//! both; the certificate is made here with openssl and trusted with --smtp-tls-ca.
mod support;

use base64::Engine as _;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";

/// aiosmtpd with TLS and AUTH (`tls_smtp.py`), capturing into `<dir>/captured.jsonl`.
fn start(mode: &str, dir: &Path) -> support::tls::Peer {
    let out = dir.join("captured.jsonl");
    let args = ["--mode", mode, "--user", "mailman", "--password", "s3cret", "--out"];
    support::tls::start("tls_smtp.py", dir, args.iter().map(OsStr::new).chain([out.as_os_str()]))
}

fn deliver(mode: &str) {
    let q = support::qfiles();
    support::tls::certificate(q.path());
    let server = start(mode, q.path());
    let manifest = support::manifest();
    let vector =
        manifest["vectors"].as_array().expect("vectors").iter().find(|v| v["path"] == M3_FIVE).expect("vector").clone();
    support::add_vector(q.path(), "out", M3_FIVE);
    std::fs::write(q.path().join("password"), "s3cret\n").expect("password file");
    let cmd = support::run_cmd(
        q.path(),
        &format!("localhost:{}", server.port),
        &[
            "--exit-when-empty",
            "--smtp-security",
            mode,
            "--smtp-tls-ca",
            &q.path().join("cert.pem").to_string_lossy(),
            "--smtp-user",
            "mailman",
            "--smtp-password-file",
            &q.path().join("password").to_string_lossy(),
        ],
    );
    let out = support::run_to_end(cmd, Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(support::files(q.path(), "retry", "pck").is_empty(), "{logs}");
    let captured = std::fs::read_to_string(q.path().join("captured.jsonl")).expect("captured");
    let txs: Vec<serde_json::Value> = captured.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let expected = base64::engine::general_purpose::STANDARD
        .decode(vector["expected_message_b64"].as_str().expect("b64"))
        .expect("b64");
    let mut rcpts: Vec<String> = Vec::new();
    for tx in &txs {
        assert_eq!(tx["tls"], true);
        assert_eq!(tx["authenticated"], true);
        assert_eq!(tx["mail_from"], vector["expected_envelope_sender"]);
        let data = base64::engine::general_purpose::STANDARD.decode(tx["data"].as_str().expect("data")).expect("b64");
        assert!(data == expected, "DATA differs over {mode}");
        rcpts.extend(tx["rcpts"].as_array().expect("rcpts").iter().map(|r| r.as_str().expect("rcpt").to_owned()));
    }
    rcpts.sort();
    let want: Vec<String> = vector["expected_recipients"]
        .as_array()
        .expect("rcpts")
        .iter()
        .map(|r| r.as_str().expect("r").to_owned())
        .collect();
    assert_eq!(rcpts, want);
}

#[test]
fn starttls_and_auth() {
    deliver("starttls");
}

#[test]
fn implicit_tls_and_auth() {
    deliver("tls");
}

#[test]
fn a_wrong_password_leaves_the_entry_queued() {
    let q = support::qfiles();
    support::tls::certificate(q.path());
    let server = start("starttls", q.path());
    support::add_vector(q.path(), "out", M3_FIVE);
    let ca = q.path().join("cert.pem");
    let mut cmd = support::run_cmd(
        q.path(),
        &format!("localhost:{}", server.port),
        &[
            "--smtp-security",
            "starttls",
            "--smtp-tls-ca",
            &ca.to_string_lossy(),
            "--smtp-user",
            "mailman",
            "--stop-grace",
            "3",
            "--command-timeout",
            "2",
        ],
    );
    cmd.env("MQ_SMTP_PASSWORD", "wrong");
    let log = q.path().join("runner.log");
    cmd.stderr(Stdio::from(std::fs::File::create(&log).expect("log"))).stdout(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    assert!(support::wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("AUTH")
    }));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("kill");
    assert!(support::wait_child(&mut child, Duration::from_secs(10)).expect("exits").success());
    assert_eq!(support::files(q.path(), "out", "pck").len(), 1, "never claimed while the relay refuses us");
    assert!(support::files(q.path(), "retry", "pck").is_empty());
}
