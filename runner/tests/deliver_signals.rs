//! SIGTERM while the relay stalls: the runner exits within its stop grace, the entry
//! whose DATA was not accepted is back as `.pck`, nothing is lost, no `.bak` is left,
//! and a later run delivers it.
mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::smtp::{Faults, Server, Stage};

const M3_FIVE: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";
const M2_FIVE: &str = "mailman2/out/1546301294.5+644a741cf1febdb8a75d18bfa8ce09baecd8d397.pck";

fn stop_while_stalled(stage: Stage, signal: Signal) {
    let server = Server::start();
    server.set_faults(Faults { stall: Some(stage), ..Faults::default() });
    let q = support::qfiles();
    let names = [support::add_vector(q.path(), "out", M3_FIVE), support::add_vector(q.path(), "out", M2_FIVE)];
    let grace = 3;
    let mut cmd = support::run_cmd(
        q.path(),
        &server.smtp_arg(),
        &[
            "--stop-grace",
            &grace.to_string(),
            "--data-timeout",
            "600",
            "--command-timeout",
            "600",
            "--connections",
            "2",
        ],
    );
    let log_path = q.path().join("runner.log");
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).expect("log"))).stdout(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    // Both entries claimed and stuck in their SMTP transactions.
    assert!(
        support::wait_until(Duration::from_secs(30), || support::files(q.path(), "out", "bak").len() == 2),
        "entries never got in flight"
    );
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), signal).expect("signal");
    let status = support::wait_child(&mut child, Duration::from_secs(grace + 5));
    let took = sent.elapsed();
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("runner still running {grace}+5 s after {signal}:\n{logs}"));
    assert!(status.success(), "{logs}");
    eprintln!("{signal} with the relay stalled at {stage:?}: exited after {took:?} (grace {grace} s)");

    let mut back = support::files(q.path(), "out", "pck");
    back.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(back, want, "entries not accepted by the relay are back as they were:\n{logs}");
    assert!(support::files(q.path(), "out", "bak").is_empty(), "no .bak after a clean stop");
    assert!(support::files(q.path(), "retry", "pck").is_empty());
    assert!(server.captured().is_empty());

    // A later run delivers them, unchanged.
    let fine = Server::start();
    let out = support::run_to_end(
        support::run_cmd(q.path(), &fine.smtp_arg(), &["--exit-when-empty"]),
        Duration::from_secs(60),
    );
    assert!(out.status.success());
    assert_eq!(fine.captured().iter().map(|c| c.rcpts.len()).sum::<usize>(), 10);
}

#[test]
fn sigterm_during_a_stalled_final_reply_puts_entries_back_within_the_grace() {
    stop_while_stalled(Stage::Message, Signal::SIGTERM);
}

#[test]
fn sigint_during_a_stalled_mail_from_puts_entries_back_within_the_grace() {
    stop_while_stalled(Stage::Mail, Signal::SIGINT);
}
