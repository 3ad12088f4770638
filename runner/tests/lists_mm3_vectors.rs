//! Every Mailman 3 list vector (decoration with built-in, French and custom templates,
//! full and individual personalization, VERP) delivered by the real runner with its
//! list settings from Mailman 3's own REST API (the saved site, served by Mailman from
//! PyPI): the transactions the capturing SMTP server sees equal Mailman's, byte for
//! byte, envelopes included.
mod lists_mm3_support;
mod support;

use lists_mm3_support as mm3;
use std::collections::BTreeMap;
use std::time::Duration;
use support::smtp::Server;

#[test]
fn mailman3_list_vectors_deliver_as_mailman_did() {
    let python = mm3::mailman_python();
    let templates = mm3::mailman_templates(&python);
    let manifest = mm3::manifest();
    // The vectors ran under per-list [mta] overlays: one site (API) per overlay.
    let mut groups: BTreeMap<Vec<(String, String)>, Vec<serde_json::Value>> = BTreeMap::new();
    for v in mm3::mm3_vectors(&manifest) {
        groups.entry(mm3::overlay(&v)).or_default().push(v);
    }
    assert!(!groups.is_empty(), "no Mailman 3 list vectors");
    let mut total = 0;
    for (overlay, vectors) in groups {
        let api = mm3::RestApi::start(&python, &overlay);
        let server = Server::start();
        let q = support::qfiles();
        let mut want = Vec::new();
        for v in &vectors {
            mm3::add_list_vector(q.path(), v["path"].as_str().expect("path"));
            want.extend(mm3::expected_transactions(v));
        }
        let args = mm3::rest_args(q.path(), &api.url(), &templates);
        let mut extra: Vec<&str> = vec!["--exit-when-empty"];
        extra.extend(args.iter().map(String::as_str));
        let out = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(120));
        let logs = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "runner failed:\n{logs}");
        assert!(support::files(q.path(), "out", "pck").is_empty(), "entries left in out/:\n{logs}");
        assert!(support::files(q.path(), "shunt", "pck").is_empty(), "entries shunted:\n{logs}");
        if let Some(d) = mm3::diff(mm3::captured_transactions(&server.captured()), want.clone()) {
            panic!("overlay {overlay:?}: {d}\nrunner log:\n{logs}");
        }
        total += want.len();
    }
    eprintln!("{total} Mailman 3 list transactions identical");
}
