//! The Mailman 3 REST API being away never makes the runner send list mail wrong:
//! down at start, entries stay queued (nothing sent undecorated, nothing shunted) and
//! go out once it is back; gone mid-run, delivery goes on from the cached settings,
//! and says so in the log and in /metrics.
mod lists_mm3_support;
mod support;

use lists_mm3_support as mm3;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;
use support::smtp::Server;

/// Two entries of the bulk list with custom templates, and one of the fully
/// personalized list (per-member REST lookups), all under the base [mta] settings.
const CUSTOM_PLAIN: &str = "mailman3/out/1706746530.3634312+8a8e021a17b323b9243504ceaecc0add3e9d129f.pck";
const CUSTOM_SIGNED: &str = "mailman3/out/1706746829.9936666+76165e0fb546faf0e70856fea8b644c5e561f855.pck";
const PERSONAL: &str = "mailman3/out/1706747074.9775057+b4344315aa4cd0623031f8edfb474def93aa204d.pck";

fn vector(manifest: &serde_json::Value, path: &str) -> serde_json::Value {
    mm3::mm3_vectors(manifest)
        .into_iter()
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("vector {path} not in the manifest"))
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing:\n{text}"))
}

#[test]
fn api_down_at_start_leaves_entries_queued_until_it_is_back() {
    let python = mm3::mailman_python();
    let templates = mm3::mailman_templates(&python);
    let manifest = mm3::manifest();
    let server = Server::start();
    let q = support::qfiles();
    let port = support::smtp::free_port();
    let url = format!("http://127.0.0.1:{port}/3.1");
    let mut want = Vec::new();
    for path in [CUSTOM_PLAIN, PERSONAL] {
        mm3::add_list_vector(q.path(), path);
        want.extend(mm3::expected_transactions(&vector(&manifest, path)));
    }
    let args = mm3::rest_args(q.path(), &url, &templates);
    let mut extra: Vec<&str> = vec!["--exit-when-empty", "--mailman-rest-retry", "1s"];
    extra.extend(args.iter().map(String::as_str));

    // Nothing listens on the API port: entries are left as they are.
    let out = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(server.captured().is_empty(), "nothing may be sent without the list settings:\n{logs}");
    assert_eq!(support::files(q.path(), "out", "pck").len(), 2, "{logs}");
    assert!(support::files(q.path(), "shunt", "pck").is_empty(), "an outage is not a reason to shunt:\n{logs}");
    assert!(support::files(q.path(), "bad", "psv").is_empty(), "{logs}");
    assert!(logs.contains("list settings unavailable"), "the log says why nothing was sent:\n{logs}");

    // The API comes up: the same entries go out exactly as Mailman sent them.
    let _api = mm3::RestApi::start_on(&python, port, &[]);
    let out = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(120));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(support::files(q.path(), "out", "pck").is_empty(), "{logs}");
    if let Some(d) = mm3::diff(mm3::captured_transactions(&server.captured()), want) {
        panic!("{d}\n{logs}");
    }
}

#[test]
fn api_gone_mid_run_delivers_from_the_cache() {
    let python = mm3::mailman_python();
    let templates = mm3::mailman_templates(&python);
    let manifest = mm3::manifest();
    let mut api = mm3::RestApi::start(&python, &[]);
    let server = Server::start();
    let q = support::qfiles();
    let metrics_port = support::smtp::free_port();
    let args = mm3::rest_args(q.path(), &api.url(), &templates);
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    // Cache answers expire at once: every later question goes to the (gone) API.
    let mut extra: Vec<&str> = vec!["--metrics-addr", &metrics_addr, "--mailman-rest-cache", "0s"];
    extra.extend(args.iter().map(String::as_str));
    let log_path = q.path().join("runner.log");
    let mut cmd = support::run_cmd(q.path(), &server.smtp_arg(), &extra);
    cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log_path).expect("log file"));
    let mut child = cmd.spawn().expect("spawn runner");
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let first = mm3::expected_transactions(&vector(&manifest, CUSTOM_PLAIN));
    let second = mm3::expected_transactions(&vector(&manifest, CUSTOM_SIGNED));
    let personal = mm3::expected_transactions(&vector(&manifest, PERSONAL));
    mm3::add_list_vector(q.path(), CUSTOM_PLAIN);
    mm3::add_list_vector(q.path(), PERSONAL);
    let n = first.len() + personal.len();
    assert!(
        support::wait_until(Duration::from_secs(60), || server.captured().len() == n),
        "first entries not delivered:\n{}",
        logs()
    );

    api.stop();
    // The same list's next entry, and the personalized one again (same members).
    mm3::add_list_vector(q.path(), CUSTOM_SIGNED);
    mm3::add_list_vector(q.path(), PERSONAL);
    let total = n + second.len() + personal.len();
    assert!(
        support::wait_until(Duration::from_secs(60), || server.captured().len() == total
            && support::files(q.path(), "out", "pck").is_empty()),
        "entries not delivered while the API was away:\n{}",
        logs()
    );
    let want: Vec<_> = first.into_iter().chain(second).chain(personal.clone()).chain(personal).collect();
    if let Some(d) = mm3::diff(mm3::captured_transactions(&server.captured()), want) {
        panic!("{d}\n{}", logs());
    }
    assert!(support::files(q.path(), "shunt", "pck").is_empty(), "{}", logs());
    let metrics = http_get(metrics_port, "/metrics").expect("metrics");
    assert!(metric(&metrics, "mailqueue_list_settings_stale_total") > 0, "{metrics}");
    assert_eq!(metric(&metrics, "mailqueue_list_settings_unavailable_total"), 0, "{metrics}");
    assert!(logs().contains("REST API unreachable"), "the log says the API is away:\n{}", logs());

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    assert!(support::wait_child(&mut child, Duration::from_secs(40)).expect("runner exits").success(), "{}", logs());
}

#[test]
fn entry_of_a_list_the_site_does_not_have_is_shunted_not_sent() {
    use mailqueue_queue::entry::{version_str, with_field, QueueEntry};
    use mailqueue_queue::switchboard::{NewEntry, Switchboard};
    let python = mm3::mailman_python();
    let templates = mm3::mailman_templates(&python);
    let api = mm3::RestApi::start(&python, &[]);
    let server = Server::start();
    let q = support::qfiles();
    // A real entry, re-queued as if its list had been deleted since.
    let bytes = std::fs::read(mm3::vectors_dir().join(CUSTOM_PLAIN)).expect("vector");
    let entry = QueueEntry::from_bytes(bytes).expect("entry");
    let metadata =
        with_field(entry.metadata(), entry.version(), "listid", version_str(entry.version(), "gone.example.com"));
    let out = Switchboard::open(q.path(), "out").expect("out");
    out.enqueue(NewEntry {
        message_pickle: entry.message_pickle(),
        metadata: &metadata,
        version: entry.version(),
        text: false,
    })
    .expect("enqueue");
    let args = mm3::rest_args(q.path(), &api.url(), &templates);
    let mut extra: Vec<&str> = vec!["--exit-when-empty"];
    extra.extend(args.iter().map(String::as_str));
    let run = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{logs}");
    assert!(server.captured().is_empty(), "{logs}");
    assert!(support::files(q.path(), "out", "pck").is_empty(), "{logs}");
    assert_eq!(support::files(q.path(), "shunt", "pck").len(), 1, "{logs}");
    assert!(
        logs.contains("list gone.example.com does not exist on the Mailman 3 site"),
        "the reason is logged:\n{logs}"
    );
}

#[test]
fn refused_credentials_leave_entries_queued_with_a_clear_reason() {
    let python = mm3::mailman_python();
    let templates = mm3::mailman_templates(&python);
    let api = mm3::RestApi::start(&python, &[]);
    let server = Server::start();
    let q = support::qfiles();
    mm3::add_list_vector(q.path(), CUSTOM_PLAIN);
    let mut args = mm3::rest_args(q.path(), &api.url(), &templates);
    std::fs::write(q.path().join("rest-password"), "wrong\n").expect("password file");
    args.extend(["--exit-when-empty".to_owned()]);
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = support::run_to_end(support::run_cmd(q.path(), &server.smtp_arg(), &extra), Duration::from_secs(60));
    let logs = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{logs}");
    assert!(server.captured().is_empty(), "{logs}");
    assert_eq!(support::files(q.path(), "out", "pck").len(), 1, "{logs}");
    assert!(support::files(q.path(), "shunt", "pck").is_empty(), "{logs}");
    assert!(logs.contains("refused the credentials"), "the log names the problem:\n{logs}");
}
