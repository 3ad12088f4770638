//! `--smtp-security starttls-opportunistic`: STARTTLS when the relay offers it (aiosmtpd with
//! TLS and AUTH), plain SMTP when it does not (the capturing server), and never AUTH in the
//! clear: with credentials and a relay without STARTTLS nothing is sent and the entry stays
//! queued.
mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::smtp::Server;

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";

/// aiosmtpd offering STARTTLS, with AUTH (`tls_smtp.py`), capturing into `<dir>/captured.jsonl`.
fn start_starttls(dir: &Path) -> support::tls::Peer {
    let out = dir.join("captured.jsonl");
    let args = ["--mode", "starttls", "--user", "mailman", "--password", "s3cret", "--out"];
    support::tls::start("tls_smtp.py", dir, args.iter().map(OsStr::new).chain([out.as_os_str()]))
}

#[test]
fn upgrades_to_tls_and_authenticates_when_the_relay_offers_starttls() {
    let q = support::qfiles();
    support::tls::certificate(q.path());
    let server = start_starttls(q.path());
    support::add_vector(q.path(), "out", M3_FIVE);
    std::fs::write(q.path().join("user"), "mailman\n").expect("user file");
    std::fs::write(q.path().join("password"), "s3cret\n").expect("password file");
    let (ca, user, pw) = (q.path().join("cert.pem"), q.path().join("user"), q.path().join("password"));
    let cmd = support::run_cmd(
        q.path(),
        &format!("localhost:{}", server.port),
        &[
            "--exit-when-empty",
            "--smtp-security",
            "starttls-opportunistic",
            "--smtp-tls-ca",
            &ca.to_string_lossy(),
            "--smtp-user-file",
            &user.to_string_lossy(),
            "--smtp-password-file",
            &pw.to_string_lossy(),
        ],
    );
    let out = support::run_to_end(cmd, Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let captured = std::fs::read_to_string(q.path().join("captured.jsonl")).expect("captured");
    assert!(!captured.is_empty(), "nothing delivered: {logs}");
    for tx in captured.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")) {
        assert_eq!((tx["tls"].as_bool(), tx["authenticated"].as_bool()), (Some(true), Some(true)), "{tx}");
    }
}

#[test]
fn stays_plain_without_starttls_and_never_sends_auth_in_the_clear() {
    // No credentials: delivered in plain SMTP.
    let q = support::qfiles();
    let server = Server::start();
    support::add_vector(q.path(), "out", M3_FIVE);
    let cmd = support::run_cmd(
        q.path(),
        &server.smtp_arg(),
        &["--exit-when-empty", "--smtp-security", "starttls-opportunistic"],
    );
    let out = support::run_to_end(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!server.captured().is_empty(), "nothing delivered over plain SMTP");

    // Credentials: refused before AUTH, the entry stays queued.
    let q = support::qfiles();
    let server = Server::start();
    support::add_vector(q.path(), "out", M3_FIVE);
    std::fs::write(q.path().join("password"), "s3cret\n").expect("password file");
    let pw = q.path().join("password");
    let mut cmd = support::run_cmd(
        q.path(),
        &server.smtp_arg(),
        &[
            "--smtp-security",
            "starttls-opportunistic",
            "--smtp-user",
            "mailman",
            "--smtp-password-file",
            &pw.to_string_lossy(),
            "--stop-grace",
            "3",
        ],
    );
    let log = q.path().join("runner.log");
    cmd.stderr(Stdio::from(std::fs::File::create(&log).expect("log"))).stdout(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    assert!(
        support::wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&log).unwrap_or_default().contains("never sent in the clear")
        }),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("kill");
    assert!(support::wait_child(&mut child, Duration::from_secs(10)).expect("exits").success());
    assert!(server.captured().is_empty(), "mail went out without the required TLS");
    assert_eq!(support::files(q.path(), "out", "pck").len(), 1, "the entry left the queue");
}
