//! New list vectors made here with the real `mailman` package (PyPI): a fresh Mailman 3
//! site with a custom header/footer list (one entry asking for VERP), a fully
//! personalized German list (one entry with a duplicate-copy flag) and a French list
//! on the built-in templates; a dozen entries of several MIME shapes enqueued by
//! Mailman's Switchboard and delivered by Mailman's own OutgoingRunner to a capturing
//! SMTP server. The runner, given copies of the same entries and that site's REST
//! API, makes the same transactions byte for byte (generated boundaries masked).
mod lists_mm3_support;
mod support;

use lists_mm3_support as mm3;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::smtp::Server;

#[test]
fn runner_delivers_what_mailman_3_delivers_on_a_fresh_site() {
    let python = mm3::mailman_python();
    let templates = mm3::mailman_templates(&python);
    let site = tempfile::tempdir().expect("tempdir");
    let rest_port = support::smtp::free_port();

    // Mailman makes the site and the entries, and delivers them itself.
    let by_mailman = Server::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lists_mm3_support/make_site.py");
    let built = Command::new(&python)
        .arg(&script)
        .args([
            "build",
            &site.path().display().to_string(),
            &rest_port.to_string(),
            &by_mailman.addr.port().to_string(),
        ])
        .output()
        .expect("run make_site.py");
    assert!(built.status.success(), "make_site.py failed:\n{}", String::from_utf8_lossy(&built.stderr));
    let entries: usize = String::from_utf8_lossy(&built.stdout).trim().parse().expect("entry count");
    let want = mm3::captured_transactions(&by_mailman.captured());
    assert!(entries >= 10 && want.len() > entries, "{entries} entries, {} transactions", want.len());
    assert!(want.iter().any(|t| t.0.contains('+')), "no VERP transaction among Mailman's");

    // The runner delivers copies of the same entries with that site's settings.
    let q = support::qfiles();
    for e in std::fs::read_dir(site.path().join("snapshot")).expect("snapshot") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), q.path().join("out").join(e.file_name())).expect("copy entry");
    }
    let _api = mm3::RestApi::serve_made_site(&python, site.path(), rest_port);
    let by_runner = Server::start();
    let args = mm3::rest_args(q.path(), &format!("http://127.0.0.1:{rest_port}/3.1"), &templates);
    let mut extra: Vec<&str> = vec!["--exit-when-empty"];
    extra.extend(args.iter().map(String::as_str));
    let out = support::run_to_end(support::run_cmd(q.path(), &by_runner.smtp_arg(), &extra), Duration::from_secs(120));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(support::files(q.path(), "out", "pck").is_empty(), "{logs}");
    assert!(support::files(q.path(), "shunt", "pck").is_empty(), "{logs}");
    if let Some(d) = mm3::diff(mm3::captured_transactions(&by_runner.captured()), want.clone()) {
        panic!("{d}\n{logs}");
    }
    eprintln!("{entries} entries, {} transactions identical to Mailman 3's", want.len());
}
