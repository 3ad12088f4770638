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
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &["--mailman2-site", &site, "--mailman2-lists", &lists_dir]);
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
        assert!(text.contains("\r\nCustom mailing list (test) -- Weekly news for the team.\r\n"), "old footer after the change:\n{text}");
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
    let extra = ["--exit-when-empty", "--mailman2-site", &site, "--mailman2-lists", &lists_dir];
    let out = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed:\n{logs}");
    assert!(server.captured().is_empty(), "something was sent for a list without settings");
    assert_eq!(support::files(q.path(), "shunt", "pck").len(), 1, "not shunted:\n{logs}");
    assert!(logs.contains("no such Mailman 2.1 list") && logs.contains("verp"), "reason not logged:\n{logs}");
}
