//! Every Mailman 2.1 list vector (default and custom header/footer, `Sender` on and
//! off, full and per-member personalization in two languages, VERP) delivered by the
//! real runner with the lists' config.pck files and the site's mm_cfg values: the
//! transactions the capturing SMTP server sees equal real Mailman 2.1.27's, byte for
//! byte, envelopes included.
mod lists_mm3_support;
mod support;

use lists_mm3_support as lists;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::smtp::Server;

fn mm2_vectors(manifest: &Json) -> Vec<Json> {
    manifest["vectors"].as_array().expect("vectors").iter().filter(|v| v["version"] == "mailman2").cloned().collect()
}

/// A 2.1 installation beside `qfiles`: `lists/<name>/config.pck` copied from the
/// vectors, and the site's mm_cfg values as the runner reads them.
fn install_site(root: &Path, manifest: &Json) -> (PathBuf, PathBuf) {
    let lists_dir = root.join("lists");
    for (name, list) in manifest["mailman2"]["lists"].as_object().expect("mailman2 lists") {
        let src = lists::vectors_dir().join("mailman2").join(list["config_pck"].as_str().expect("config_pck"));
        std::fs::create_dir_all(lists_dir.join(name)).expect("mkdir list");
        std::fs::copy(&src, lists_dir.join(name).join("config.pck")).expect("copy config.pck");
    }
    let site = root.join("mm_cfg.json");
    std::fs::write(&site, manifest["mailman2"]["site_settings"].to_string()).expect("write site settings");
    (lists_dir, site)
}

#[test]
fn mailman2_list_vectors_deliver_as_mailman_did() {
    let manifest = lists::manifest();
    let vectors = mm2_vectors(&manifest);
    assert!(!vectors.is_empty(), "no Mailman 2.1 list vectors");
    let q = support::qfiles();
    let site_root = tempfile::tempdir().expect("tempdir");
    let (lists_dir, site) = install_site(site_root.path(), &manifest);
    let server = Server::start();
    let mut want = Vec::new();
    for v in &vectors {
        lists::add_list_vector(q.path(), v["path"].as_str().expect("path"));
        want.extend(lists::expected_transactions(v));
    }
    let (lists_arg, site_arg) = (lists_dir.display().to_string(), site.display().to_string());
    let extra = ["--exit-when-empty", "--mailman2-site", &site_arg, "--mailman2-lists", &lists_arg];
    let out = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(120));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed:\n{logs}");
    assert!(support::files(q.path(), "out", "pck").is_empty(), "entries left in out/:\n{logs}");
    assert!(support::files(q.path(), "shunt", "pck").is_empty(), "entries shunted:\n{logs}");
    if let Some(d) = lists::diff(lists::captured_transactions(&server.captured()), want.clone()) {
        panic!("{d}\nrunner log:\n{logs}");
    }
    eprintln!("{} Mailman 2.1 list transactions identical ({} vectors)", want.len(), vectors.len());
}

/// Runs the replay script; its JSON lines, one per entry written into `out`.
fn replay(args: &[&str]) -> Vec<Json> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lists_mm2_replay.py");
    let out = std::process::Command::new(support::python_env("MQ_PY2"))
        .arg(&script)
        .args(args)
        .output()
        .expect("run the replay");
    assert!(out.status.success(), "replay failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("replay json")).collect()
}

#[test]
fn python27_replay_agrees_with_the_shipped_vectors() {
    // The replay below is only evidence if it reproduces what real Mailman 2.1 sent.
    let manifest = lists::manifest();
    let site_root = tempfile::tempdir().expect("tempdir");
    let (lists_dir, site) = install_site(site_root.path(), &manifest);
    let vectors = mm2_vectors(&manifest);
    let paths: Vec<String> = vectors
        .iter()
        .map(|v| lists::vectors_dir().join(v["path"].as_str().expect("path")).display().to_string())
        .collect();
    let mut args = vec![lists_dir.to_str().expect("utf-8 path"), site.to_str().expect("utf-8 path"), "--replay"];
    args.extend(paths.iter().map(String::as_str));
    let replayed = replay(&args);
    assert_eq!(replayed.len(), vectors.len());
    for (r, v) in replayed.iter().zip(&vectors) {
        let d = lists::diff(lists::expected_transactions(r), lists::expected_transactions(v));
        assert!(d.is_none(), "replay of {} differs from Mailman's: {}", v["path"], d.unwrap_or_default());
    }
}

#[test]
fn replayed_shapes_deliver_as_python_27_does() {
    // HTML, multipart/alternative with preamble and epilogue, multipart/mixed with a PDF,
    // multipart/signed, an unknown charset label, 8-bit octets under us-ascii, no final
    // newline, Sender/Errors-To/X-Mailman-Copy present, long quoted-printable lines:
    // each on every list (bulk, individual, full personalization, VERP), and a list with
    // `$`-string templates.
    let manifest = lists::manifest();
    let q = support::qfiles();
    let site_root = tempfile::tempdir().expect("tempdir");
    let (lists_dir, site) = install_site(site_root.path(), &manifest);
    let out_dir = q.path().join("out");
    let cases =
        replay(&[lists_dir.to_str().expect("path"), site.to_str().expect("path"), out_dir.to_str().expect("path")]);
    assert!(cases.len() >= 75, "replay wrote {} entries", cases.len());
    assert!(cases.iter().any(|c| c["list"] == "dollar"), "no entries for the $-string list");
    let want: Vec<_> = cases.iter().flat_map(lists::expected_transactions).collect();
    let server = Server::start();
    let (lists_arg, site_arg) = (lists_dir.display().to_string(), site.display().to_string());
    let extra = ["--exit-when-empty", "--mailman2-site", &site_arg, "--mailman2-lists", &lists_arg];
    let out = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(180));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed:\n{logs}");
    assert!(support::files(q.path(), "shunt", "pck").is_empty(), "entries shunted:\n{logs}");
    if let Some(d) = lists::diff(lists::captured_transactions(&server.captured()), want.clone()) {
        panic!("{d}\nrunner log:\n{logs}");
    }
    eprintln!("{} replayed transactions identical ({} entries)", want.len(), cases.len());
}
