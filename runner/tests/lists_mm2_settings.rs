//! Where Mailman 2.1 list settings come from, seen from outside the runner: a list's
//! config.pck changed while the runner runs is read again (the next entry carries the
//! new footer and Sender setting), and an entry for a list that does not exist is set
//! aside in shunt/ with the reason logged, never sent undecorated.
mod lists_mm3_support;
mod support;

use lists_mm3_support as lists;
use serde_json::Value as Json;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::smtp::Server;

/// The shipped 2.1 vector of `list` whose source is `source`.
fn vector(manifest: &Json, list: &str, source: &str) -> Json {
    manifest["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|v| v["version"] == "mailman2" && v["list"] == list && v["source"] == source)
        .cloned()
        .unwrap_or_else(|| panic!("no 2.1 vector {list} {source}"))
}

fn install(root: &Path, manifest: &Json, only: &[&str]) -> (String, String) {
    for name in only {
        let list = &manifest["mailman2"]["lists"][*name];
        let src = lists::vectors_dir().join("mailman2").join(list["config_pck"].as_str().expect("config_pck"));
        std::fs::create_dir_all(root.join("lists").join(name)).expect("mkdir list");
        std::fs::copy(&src, root.join("lists").join(name).join("config.pck")).expect("copy config.pck");
    }
    let site = root.join("mm_cfg.json");
    std::fs::write(&site, manifest["mailman2"]["site_settings"].to_string()).expect("site settings");
    (root.join("lists").display().to_string(), site.display().to_string())
}

/// Runs the runner with the 2.1 site and lists until its queue is empty; its log.
fn run_until_empty(qfiles: &Path, server: &Server, lists_dir: &str, site: &str) -> String {
    let extra = ["--exit-when-empty", "--mailman2-site", site, "--mailman2-lists", lists_dir];
    let out = support::run_to_end(support::run_cmd(qfiles, &server.smtp_arg(), &extra), Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "runner failed:\n{logs}");
    logs
}

#[test]
fn a_changed_config_pck_is_read_again() {
    let manifest = lists::manifest();
    let v = vector(&manifest, "test", "lists:plain-no-mime");
    let path = v["path"].as_str().expect("path");
    let q = support::qfiles();
    let root = tempfile::tempdir().expect("tempdir");
    let (lists_dir, site) = install(root.path(), &manifest, &["test", "custom"]);
    let server = Server::start();
    let log = root.path().join("runner.log");
    let mut cmd =
        support::run_cmd(q.path(), &server.smtp_arg(), &["--mailman2-site", &site, "--mailman2-lists", &lists_dir]);
    cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).expect("log file"));
    let mut child = cmd.spawn().expect("spawn runner");
    let want = lists::expected_transactions(&v);
    lists::add_list_vector(q.path(), path);
    let first = support::wait_until(Duration::from_secs(60), || server.captured().len() >= want.len());
    // The list now has custom's settings (footer, no Sender) under its own name.
    let test_config = Path::new(&lists_dir).join("test").join("config.pck");
    std::fs::copy(Path::new(&lists_dir).join("custom").join("config.pck"), &test_config).expect("replace config.pck");
    lists::add_list_vector(q.path(), path);
    let second = support::wait_until(Duration::from_secs(60), || server.captured().len() >= 2 * want.len());
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(first && second, "deliveries did not happen:\n{logs}");
    let captured = lists::captured_transactions(&server.captured());
    let (before, after) = captured.split_at(want.len());
    assert!(lists::diff(before.to_vec(), want.clone()).is_none(), "first delivery differs from Mailman's");
    for (_, _, data) in after {
        let text = String::from_utf8_lossy(data);
        assert!(
            text.contains("\r\nCustom mailing list (test) -- Weekly news for the team.\r\n"),
            "old footer after the change:\n{text}"
        );
        assert!(!text.contains("\r\nSender:"), "Sender still added after include_sender_header went off:\n{text}");
    }
    assert_eq!(logs.matches("read Mailman 2.1 list settings").count(), 2, "config.pck read once per version:\n{logs}");
}

#[test]
fn an_entry_for_a_missing_list_is_shunted_with_the_reason() {
    let manifest = lists::manifest();
    let v = vector(&manifest, "verp", "lists:plain-utf8-8bit");
    let q = support::qfiles();
    let root = tempfile::tempdir().expect("tempdir");
    let (lists_dir, site) = install(root.path(), &manifest, &["test"]);
    let server = Server::start();
    lists::add_list_vector(q.path(), v["path"].as_str().expect("path"));
    let logs = run_until_empty(q.path(), &server, &lists_dir, &site);
    assert!(server.captured().is_empty(), "something was sent for a list without settings");
    assert_eq!(support::files(q.path(), "shunt", "pck").len(), 1, "not shunted:\n{logs}");
    assert!(logs.contains("no such Mailman 2.1 list") && logs.contains("verp"), "reason not logged:\n{logs}");
}

/// Personalized copies are built as they are sent, so one recipient's copy can fail after
/// others went out. Only that recipient is set aside: the others get exactly Mailman's
/// bytes, hers goes back as an entry of its own, which is shunted with the reason.
#[test]
fn a_personal_copy_that_cannot_be_built_sets_only_its_recipient_aside() {
    let manifest = lists::manifest();
    let v = vector(&manifest, "personal", "lists:plain-utf8-8bit");
    let q = support::qfiles();
    let root = tempfile::tempdir().expect("tempdir");
    let (lists_dir, site) = install(root.path(), &manifest, &["personal"]);
    // Alice's password becomes a non-ASCII unicode string, which the runner does not
    // reproduce in `%(user_password)s` (Python 2 would change the footer's type): her copy,
    // the second one sent, cannot be built.
    let config = Path::new(&lists_dir).join("personal").join("config.pck");
    let edit = "import cPickle, sys\n\
                d = cPickle.load(open(sys.argv[1], 'rb'))\n\
                d['passwords']['alice@example.net'] = u'p\\xe4ss'\n\
                cPickle.dump(d, open(sys.argv[1], 'wb'), 1)\n";
    let status = std::process::Command::new(support::python_env("MQ_PY2"))
        .args(["-c", edit])
        .arg(&config)
        .status()
        .expect("python2");
    assert!(status.success(), "could not edit config.pck");
    let server = Server::start();
    lists::add_list_vector(q.path(), v["path"].as_str().expect("path"));
    let logs = run_until_empty(q.path(), &server, &lists_dir, &site);
    let want: Vec<lists::Tx> =
        lists::expected_transactions(&v).into_iter().filter(|(_, rcpts, _)| rcpts != &["alice@example.net"]).collect();
    assert_eq!(want.len(), 5);
    if let Some(d) = lists::diff(lists::captured_transactions(&server.captured()), want) {
        panic!("{d}\nrunner log:\n{logs}");
    }
    assert!(logs.contains("cannot build this copy"), "{logs}");
    let shunted = support::files(q.path(), "shunt", "pck");
    assert_eq!(shunted.len(), 1, "not shunted:\n{logs}");
    assert!(logs.contains("a member password is a non-ASCII unicode string"), "reason not logged:\n{logs}");
    // Her entry of her own, requeued and then shunted: one recipient.
    let requeued = logs.lines().find(|l| l.contains("untried recipients requeued")).unwrap_or_default();
    assert!(requeued.contains("recipients=1"), "{logs}");
    for queue in ["out", "retry", "bad"] {
        assert!(
            support::files(q.path(), queue, "pck").is_empty() && support::files(q.path(), queue, "psv").is_empty(),
            "left in {queue}:\n{logs}"
        );
    }
}
