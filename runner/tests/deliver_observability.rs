//! What an admin or Kubernetes sees of a running runner: /metrics, /healthz, /readyz,
//! the slice heartbeat file, and the drain flag (stop claiming, resume when removed).
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;
use support::smtp::Server;

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";
const M2_FIVE: &str = "mailman2/out/1546301294.5+644a741cf1febdb8a75d18bfa8ce09baecd8d397.pck";

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn metrics_health_and_drain() {
    let server = Server::start();
    let q = support::qfiles();
    support::add_vector(q.path(), "out", M3_FIVE);
    let drain_flag = q.path().join(".mailqueue/out.drain");
    std::fs::create_dir_all(drain_flag.parent().expect("parent")).expect("mkdir");
    std::fs::write(&drain_flag, b"").expect("drain flag");

    let port = support::smtp::free_port();
    let mut cmd = support::run_cmd(
        q.path(),
        &server.smtp_arg(),
        &["--slices", "2", "--metrics-addr", &format!("127.0.0.1:{port}")],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    assert!(support::wait_until(Duration::from_secs(30), || get(port, "/readyz")
        .is_some_and(|b| b.starts_with("HTTP/1.1 200"))));
    assert!(get(port, "/healthz").is_some_and(|b| b.starts_with("HTTP/1.1 200")));
    // Heartbeats of both slices, while draining nothing is claimed.
    assert!(support::wait_until(Duration::from_secs(30), || {
        ["out-0-of-2.json", "out-1-of-2.json"].iter().all(|f| q.path().join(".mailqueue").join(f).exists())
    }));
    support::add_vector(q.path(), "out", M2_FIVE);
    assert_eq!(support::files(q.path(), "out", "pck").len(), 2);
    assert!(server.captured().is_empty(), "nothing is delivered while draining");

    // Resume: both entries go.
    std::fs::remove_file(&drain_flag).expect("remove drain flag");
    assert!(support::wait_until(Duration::from_secs(30), || { support::files(q.path(), "out", "pck").is_empty() }));
    assert!(support::wait_until(Duration::from_secs(30), || server
        .captured()
        .iter()
        .map(|c| c.rcpts.len())
        .sum::<usize>()
        == 10));
    let metrics = get(port, "/metrics").expect("metrics");
    assert!(metrics.contains("mailqueue_entries_delivered_total{queue=\"out\"} 2"), "{metrics}");
    assert!(metrics.contains("mailqueue_recipients_delivered_total{queue=\"out\"} 10"), "{metrics}");
    assert!(metrics.contains("mailqueue_smtp_transaction_seconds_count{queue=\"out\"}"), "{metrics}");
    assert!(metrics.contains("mailqueue_queue_depth{queue=\"out\",slice=\"0\"}"), "{metrics}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("kill");
    assert!(support::wait_child(&mut child, Duration::from_secs(35)).expect("exits").success());
    assert!(!q.path().join(".mailqueue/out-0-of-2.json").exists(), "heartbeat cleared on stop");
}
