//! Every conformance vector delivered by the real binary to a real SMTP server on
//! loopback: the DATA bytes, envelope senders and recipient groups the server sees are
//! exactly those Mailman's own delivery produced (manifest.json).
mod support;

use base64::Engine as _;
use std::time::Duration;
use support::smtp::Server;

/// (MAIL FROM, sorted RCPTs, DATA) — one SMTP transaction, comparable.
type Tx = (String, Vec<String>, Vec<u8>);

fn expected_transactions(version: Option<&str>) -> (Vec<String>, Vec<Tx>) {
    let manifest = support::manifest();
    let mut paths = Vec::new();
    let mut txs = Vec::new();
    for v in manifest["vectors"].as_array().expect("vectors") {
        if version.is_some_and(|want| v["version"] != want) {
            continue;
        }
        paths.push(v["path"].as_str().expect("path").to_owned());
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["expected_message_b64"].as_str().expect("b64"))
            .expect("decode");
        let sender = v["expected_envelope_sender"].as_str().expect("sender").to_owned();
        for chunk in v["observed_rcpt_chunks"].as_array().expect("chunks") {
            let mut rcpts: Vec<String> =
                chunk.as_array().expect("chunk").iter().map(|r| r.as_str().expect("rcpt").to_owned()).collect();
            rcpts.sort();
            txs.push((sender.clone(), rcpts, data.clone()));
        }
    }
    txs.sort();
    (paths, txs)
}

fn deliver_and_compare(version: &str) {
    let server = Server::start();
    let q = support::qfiles();
    let (paths, mut expected) = expected_transactions(Some(version));
    for p in &paths {
        support::add_vector(q.path(), "out", p);
    }
    let cmd =
        support::run_cmd(q.path(), &server.smtp_arg(), &["--slices", "4", "--connections", "2", "--exit-when-empty"]);
    let out = support::run_to_end(cmd, Duration::from_secs(120));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed: {logs}");

    let mut got: Vec<Tx> = server
        .captured()
        .into_iter()
        .map(|mut c| {
            c.rcpts.sort();
            (c.mail_from, c.rcpts, c.data)
        })
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got.len(), expected.len(), "transaction count differs; logs:\n{logs}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!((&g.0, &g.1), (&e.0, &e.1), "envelope differs");
        assert!(
            g.2 == e.2,
            "DATA differs for {:?}:\n--- got\n{}\n--- expected\n{}",
            e.1,
            String::from_utf8_lossy(&g.2),
            String::from_utf8_lossy(&e.2)
        );
    }
    assert!(support::files(q.path(), "out", "pck").is_empty(), "entries left in out");
    assert!(support::files(q.path(), "out", "bak").is_empty(), ".bak left in out");
    assert!(support::files(q.path(), "retry", "pck").is_empty(), "entries went to retry: {logs}");
    assert!(support::files(q.path(), "bad", "psv").is_empty(), "entries went to bad: {logs}");
}

#[test]
fn mailman3_vectors_reach_the_server_byte_for_byte() {
    deliver_and_compare("mailman3");
}

#[test]
fn mailman2_vectors_reach_the_server_byte_for_byte() {
    deliver_and_compare("mailman2");
}
