//! Delivery against a real SMTP server that misbehaves: refused recipients (4xx, 5xx,
//! 552), a refused message, stalls past the timeout, a connection dropped mid-DATA, a
//! relay that is absent at start, a corrupt entry, a second runner for a taken slice.
mod support;

use mailqueue_queue::entry::QueueEntry;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::smtp::{Faults, Server, Stage};

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";
const M2_FIVE: &str = "mailman2/out/1546301294.5+644a741cf1febdb8a75d18bfa8ce09baecd8d397.pck";
const ALL: [&str; 5] =
    ["alice@example.net", "bob@example.org", "carol@example.com", "dave@example.edu", "erin@example.de"];

fn drain(q: &Path, server: &Server, extra: &[&str]) -> String {
    let mut args = vec!["--exit-when-empty"];
    args.extend_from_slice(extra);
    let out = support::run_to_end(support::run_cmd(q, &server.smtp_arg(), &args), Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "runner failed:\n{logs}");
    assert!(support::files(q, "out", "bak").is_empty(), ".bak left behind:\n{logs}");
    logs
}

fn retry_entries(q: &Path) -> Vec<QueueEntry> {
    support::files(q, "retry", "pck")
        .iter()
        .map(|n| QueueEntry::read(&q.join("retry").join(n)).expect("read retry entry"))
        .collect()
}

fn delivered_rcpts(server: &Server) -> Vec<String> {
    let mut v: Vec<String> = server.captured().into_iter().flat_map(|c| c.rcpts).collect();
    v.sort();
    v
}

fn bounces(q: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(q.join(".mailqueue/bounces.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).expect("bounce line is JSON")).collect()
}

#[test]
fn refused_recipients_split_into_delivered_retried_and_bounced() {
    refused_recipients(false);
}

#[test]
fn refused_recipients_without_pipelining() {
    refused_recipients(true);
}

fn refused_recipients(no_pipelining: bool) {
    let server = Server::start();
    let mut rcpt = HashMap::new();
    rcpt.insert("bob@example.org".to_owned(), (450, "4.2.1 mailbox busy".to_owned()));
    rcpt.insert("carol@example.com".to_owned(), (550, "5.1.1 no such user".to_owned()));
    rcpt.insert("dave@example.edu".to_owned(), (552, "5.5.3 too many recipients".to_owned()));
    server.set_faults(Faults { rcpt, no_pipelining, ..Faults::default() });
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M3_FIVE);
    support::add_vector(q.path(), "out", M2_FIVE);
    let logs = drain(q.path(), &server, &[]);

    assert_eq!(
        delivered_rcpts(&server),
        ["alice@example.net", "alice@example.net", "erin@example.de", "erin@example.de"]
    );
    let retried = retry_entries(q.path());
    assert_eq!(retried.len(), 2, "{logs}");
    for e in &retried {
        let mut r = e.recipients().expect("recipients");
        r.sort();
        assert_eq!(r, ["bob@example.org", "dave@example.edu"], "only the temporary failures are retried");
        assert_eq!(e.metadata().get("last_recip_count"), Some(&mailqueue_pickle::Value::Int(2)));
        assert!(e.metadata().get("deliver_until").is_some());
        let has_after = e.metadata().get("deliver_after").is_some();
        assert_eq!(has_after, e.version() == mailqueue_message::Version::Mailman2, "deliver_after is a 2.1 field");
    }
    let b = bounces(q.path());
    assert_eq!(b.len(), 2, "{logs}");
    assert!(b.iter().all(|x| x["recipient"] == "carol@example.com" && x["code"] == 550 && x["stage"] == "RCPT"));
    assert!(support::files(q.path(), "out", "pck").is_empty());

    // The retry runner moves due entries back: Mailman 3's at once, 2.1's after deliver_after.
    let out = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--queue", "retry", "--exit-when-empty"]),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = support::files(q.path(), "out", "pck");
    assert_eq!(back.len(), 1);
    let entry = QueueEntry::read(&q.path().join("out").join(&back[0])).expect("read");
    assert_eq!(entry.version(), mailqueue_message::Version::Mailman3);
    assert_eq!(retry_entries(q.path()).len(), 1, "the 2.1 entry waits for its deliver_after");
}

#[test]
fn a_refused_message_is_bounced_for_every_recipient() {
    let server = Server::start();
    let mut reply = HashMap::new();
    reply.insert(Stage::Message, (554, "5.7.1 rejected by content filter".to_owned()));
    server.set_faults(Faults { reply, ..Faults::default() });
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M3_FIVE);
    drain(q.path(), &server, &["--rcpts-per-transaction", "0"]);
    let b = bounces(q.path());
    let mut who: Vec<&str> = b.iter().map(|x| x["recipient"].as_str().unwrap_or("")).collect();
    who.sort();
    assert_eq!(who, ALL);
    assert!(b.iter().all(|x| x["code"] == 554 && x["stage"] == "message"));
    assert!(retry_entries(q.path()).is_empty());
    assert!(support::files(q.path(), "out", "pck").is_empty());
}

#[test]
fn a_stall_past_the_timeout_is_a_temporary_failure() {
    let server = Server::start();
    server.set_faults(Faults { stall: Some(Stage::Message), ..Faults::default() });
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M3_FIVE);
    let logs =
        drain(q.path(), &server, &["--data-timeout", "1", "--command-timeout", "1", "--rcpts-per-transaction", "0"]);
    let retried = retry_entries(q.path());
    assert_eq!(retried.len(), 1, "{logs}");
    let mut r = retried[0].recipients().expect("recipients");
    r.sort();
    assert_eq!(r, ALL);
    assert!(bounces(q.path()).is_empty());
}

#[test]
fn a_connection_dropped_mid_data_is_a_temporary_failure() {
    let server = Server::start();
    server.set_faults(Faults { drop_after_data_bytes: Some(40), ..Faults::default() });
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M2_FIVE);
    let logs = drain(q.path(), &server, &["--rcpts-per-transaction", "0"]);
    assert!(server.captured().is_empty());
    let retried = retry_entries(q.path());
    assert_eq!(retried.len(), 1, "{logs}");
    let mut r = retried[0].recipients().expect("recipients");
    r.sort();
    assert_eq!(r, ALL);
}

#[test]
fn entries_wait_for_an_absent_relay_and_go_when_it_is_back() {
    let port = support::smtp::free_port();
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M3_FIVE);
    support::add_vector(q.path(), "out", M2_FIVE);
    let log_path = q.path().join("runner.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd =
        support::run_cmd(q.path(), &format!("127.0.0.1:{port}"), &["--exit-when-empty", "--connect-timeout", "1"]);
    cmd.stderr(Stdio::from(log)).stdout(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    assert!(
        support::wait_until(Duration::from_secs(30), || std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("unreachable")),
        "runner never tried the absent relay"
    );
    // While the relay is away nothing is claimed or moved.
    assert_eq!(support::files(q.path(), "out", "pck").len(), 2);
    assert!(retry_entries(q.path()).is_empty());
    let server = Server::start_on(port);
    let status = support::wait_child(&mut child, Duration::from_secs(90)).expect("runner exits once drained");
    assert!(status.success(), "{}", std::fs::read_to_string(&log_path).unwrap_or_default());
    assert_eq!(delivered_rcpts(&server).len(), 10);
    assert!(retry_entries(q.path()).is_empty());
    assert!(support::files(q.path(), "out", "pck").is_empty());
}

#[test]
fn a_corrupt_entry_goes_to_bad_and_the_slice_carries_on() {
    let server = Server::start();
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M3_FIVE);
    let broken = "1700000000.5+0000000000000000000000000000000000000001.pck";
    std::fs::write(q.path().join("out").join(broken), b"\x80\x05not a pickle at all").expect("write");
    let logs = drain(q.path(), &server, &[]);
    assert_eq!(delivered_rcpts(&server).len(), 5);
    assert_eq!(
        support::files(q.path(), "bad", "psv"),
        ["1700000000.5+0000000000000000000000000000000000000001.psv"],
        "{logs}"
    );
    assert!(logs.contains("1700000000.5+0000000000000000000000000000000000000001"), "the log names the entry");
}

#[test]
fn a_second_runner_for_a_taken_slice_refuses() {
    let server = Server::start();
    let q = support::qfiles();
    let log_path = q.path().join("first.log");
    let mut first = support::run_cmd(q.path(), &server.smtp_arg(), &["--slices", "2", "--slice", "1"]);
    first.stderr(Stdio::from(std::fs::File::create(&log_path).expect("log"))).stdout(Stdio::null());
    let mut first = first.spawn().expect("spawn");
    assert!(support::wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&log_path).unwrap_or_default().contains("runner started")
    }));
    let second = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--slices", "4", "--slice", "3"]),
        Duration::from_secs(30),
    );
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("owned by"), "{err}");
    // Another slice is free.
    let other = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--slices", "2", "--slice", "0", "--exit-when-empty"]),
        Duration::from_secs(30),
    );
    assert!(other.status.success(), "{}", String::from_utf8_lossy(&other.stderr));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("kill");
    let status = support::wait_child(&mut first, Duration::from_secs(35)).expect("exits on SIGTERM");
    assert!(status.success());
}

#[test]
fn a_personalized_entry_is_set_aside_not_sent_wrong() {
    let server = Server::start();
    let q = support::qfiles();
    let name = support::add_vector(q.path(), "out", M2_FIVE);
    let path = q.path().join("out").join(&name);
    let entry = QueueEntry::read(&path).expect("read");
    let metadata = mailqueue_queue::entry::with_field(
        entry.metadata(),
        entry.version(),
        "personalize",
        mailqueue_pickle::Value::Int(1),
    );
    std::fs::write(&path, entry.rewritten(&metadata).expect("rewrite")).expect("write");
    let logs = drain(q.path(), &server, &[]);
    assert!(server.captured().is_empty(), "nothing sent");
    let shunted = support::files(q.path(), "shunt", "pck");
    assert_eq!(shunted.len(), 1, "{logs}");
    let e = QueueEntry::read(&q.path().join("shunt").join(&shunted[0])).expect("read shunted");
    assert_eq!(e.metadata().get("whichq").and_then(mailqueue_pickle::Value::as_text).as_deref(), Some("out"));
    assert!(logs.contains("personalizes"), "the reason is logged:\n{logs}");
}

#[test]
fn verp_sends_one_transaction_per_recipient_with_the_encoded_sender() {
    let server = Server::start();
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M3_FIVE);
    drain(q.path(), &server, &["--verp", "always"]);
    let manifest = support::manifest();
    let vector =
        manifest["vectors"].as_array().expect("vectors").iter().find(|v| v["path"] == M3_FIVE).expect("vector").clone();
    let expected = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        vector["expected_message_b64"].as_str().expect("b64"),
    )
    .expect("b64");
    let mut got: Vec<(String, Vec<String>)> = server
        .captured()
        .into_iter()
        .map(|c| {
            assert!(c.data == expected, "the copies carry the same message");
            (c.mail_from, c.rcpts)
        })
        .collect();
    got.sort();
    let want: Vec<(String, Vec<String>)> = ALL
        .iter()
        .map(|r| {
            let (local, domain) = r.split_once('@').expect("address");
            (format!("test-bounces+{local}={domain}@example.com"), vec![r.to_string()])
        })
        .collect();
    let mut want = want;
    want.sort();
    assert_eq!(got, want);
}
