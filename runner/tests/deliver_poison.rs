//! Entries that are valid but awkward, written by Mailman 3's own pickler: one with no
//! recipients (finished, with its name and Message-ID in the log), one whose metadata
//! holds a value this runner cannot pickle back (set aside in bad/ with the reason the
//! moment it needs writing back, not left claimed for a crash loop).
mod support;

use mailqueue_queue::entry::QueueEntry;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::smtp::{Faults, Server};

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";

fn py3() -> String {
    let env = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tools/python-env.sh"))
        .output()
        .expect("python-env.sh");
    assert!(env.status.success(), "tests/tools/python-env.sh failed: {}", String::from_utf8_lossy(&env.stderr));
    String::from_utf8_lossy(&env.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY3="))
        .expect("MQ_PY3 from python-env.sh")
        .trim_matches(|c| c == '"' || c == '\'')
        .to_owned()
}

/// Rewrites the vector into `to` with Mailman 3's pickler after `edit` (Python code on
/// `m`, the message, and `d`, the metadata); prints the Message-ID.
fn rewrite(src: &Path, to: &Path, edit: &str) -> String {
    let script = format!(
        "import pickle, sys, email.header\n\
         f = open(sys.argv[1], 'rb'); m = pickle.load(f); d = pickle.load(f)\n\
         {edit}\n\
         open(sys.argv[2], 'wb').write(pickle.dumps(m, 5) + pickle.dumps(d, 5))\n\
         print(m['Message-ID'])\n"
    );
    let out = Command::new(py3()).arg("-c").arg(script).arg(src).arg(to).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn an_entry_without_recipients_is_finished_with_its_name_and_message_id_logged() {
    let server = Server::start();
    let q = support::qfiles();
    let name = "1704068156.5+00000000000000000000000000000000000000aa.pck";
    let message_id = rewrite(
        &support::vectors_dir().join(M3_FIVE),
        &q.path().join("out").join(name),
        "d['recipients'] = set(); m['Message-ID'] = '<no-recipients.1@example.test>'",
    );
    let out = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty"]),
        Duration::from_secs(30),
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let line = logs.lines().find(|l| l.contains("no recipients")).unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains(&name.replace(".pck", ".bak")), "{line}");
    assert!(line.contains(&message_id), "{line}");
    assert!(server.captured().is_empty());
    assert!(support::files(q.path(), "out", "pck").is_empty() && support::files(q.path(), "out", "bak").is_empty());
}

#[test]
fn an_entry_whose_metadata_cannot_be_written_back_goes_to_bad_at_once() {
    let server = Server::start();
    let mut rcpt = HashMap::new();
    rcpt.insert("bob@example.org".to_owned(), (450, "4.2.1 try later".to_owned()));
    server.set_faults(Faults { rcpt, ..Faults::default() });
    let q = support::qfiles();
    let name = "1704068156.5+00000000000000000000000000000000000000bb.pck";
    // An object in the metadata: readable, but not something this runner writes.
    rewrite(
        &support::vectors_dir().join(M3_FIVE),
        &q.path().join("out").join(name),
        "d['note'] = email.header.Header('x')",
    );
    let out = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty"]),
        Duration::from_secs(30),
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(support::files(q.path(), "out", "bak").is_empty(), "left claimed:\n{logs}");
    let psv = support::files(q.path(), "bad", "psv");
    assert_eq!(psv, [name.replace(".pck", ".psv")], "{logs}");
    let line = logs.lines().find(|l| l.contains("entry preserved in bad/")).unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("cannot write its metadata for the retry queue"), "{line}");
    // The others got it once; nothing is delivered again at a restart.
    let delivered: usize = server.captured().iter().map(|c| c.rcpts.len()).sum();
    assert_eq!(delivered, 4);
    let again = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty"]),
        Duration::from_secs(30),
    );
    assert!(again.status.success());
    assert_eq!(server.captured().iter().map(|c| c.rcpts.len()).sum::<usize>(), 4);
}

#[test]
fn large_entries_are_delivered_whole_and_one_over_the_size_limit_goes_to_bad_unread() {
    let server = Server::start();
    let mut rcpt = HashMap::new();
    rcpt.insert("bob@example.org".to_owned(), (450, "4.2.1 try later".to_owned()));
    server.set_faults(Faults { rcpt, ..Faults::default() });
    let q = support::qfiles();
    let src = support::vectors_dir().join(M3_FIVE);
    // Two entries over the one-at-a-time threshold (16 MiB), one small.
    let big = "m.set_payload('lorem ipsum dolor sit amet\\n' * (17 * 1024 * 1024 // 26))";
    let mut pickles = Vec::new();
    for (i, edit) in [(1, big), (2, big), (3, "pass")] {
        let path = q.path().join("out").join(format!("170406815{i}.5+{:040x}.pck", i));
        rewrite(&src, &path, edit);
        pickles.push(QueueEntry::read(&path).expect("entry").message_pickle().to_vec());
    }
    let out = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty"]),
        Duration::from_secs(120),
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    let sizes: Vec<usize> = server.captured().iter().map(|c| c.data.len()).collect();
    assert_eq!(sizes.iter().filter(|&&n| n > 17 << 20).count(), 8, "4 transactions for each large entry: {sizes:?}");
    assert!(support::files(q.path(), "out", "pck").is_empty() && support::files(q.path(), "bad", "psv").is_empty());
    // Bob's retry entries carry each message pickle byte for byte (read again from the
    // claimed file: the runner does not keep an entry's bytes while sending it).
    let mut retried: Vec<Vec<u8>> = support::files(q.path(), "retry", "pck")
        .iter()
        .map(|n| QueueEntry::read(&q.path().join("retry").join(n)).expect("retry entry").message_pickle().to_vec())
        .collect();
    retried.sort();
    pickles.sort();
    assert!(retried == pickles, "retry entries differ from the originals");

    // Over --max-entry-mib: set aside unread, with the reason.
    server.set_faults(Faults::default());
    let name = "1704068159.5+00000000000000000000000000000000000000cc.pck";
    rewrite(&src, &q.path().join("out").join(name), "m.set_payload('x' * (2 * 1024 * 1024))");
    let out = support::run_to_end(
        support::run_cmd(q.path(), &server.smtp_arg(), &["--exit-when-empty", "--max-entry-mib", "1"]),
        Duration::from_secs(60),
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert_eq!(support::files(q.path(), "bad", "psv"), [name.replace(".pck", ".psv")], "{logs}");
    assert!(logs.contains("more than the entry size limit of 1048576 bytes"), "{logs}");
}
