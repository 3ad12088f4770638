//! Measurements for the README, not pass/fail checks (run with
//! `cargo test -p mailqueue-operator --test bench_scale -- --ignored --nocapture`):
//! apply -> all pods ready and patch -> Drained with real runners, then the operator's RSS
//! and reconcile rate with 100 MailQueues of 8 slices each.

mod support;

use std::time::{Duration, Instant};

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use mailqueue_contract::crd::MailQueue;
use support::smtp::Sink;
use support::{apply, eventually, make_queue_dirs, spec_yaml, wait_condition, Setup};

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[tokio::test]
#[ignore = "benchmark: run explicitly"]
async fn measure_latencies_and_scale() {
    // Latencies with real runners: one MailQueue of 8 slices.
    let setup = Setup::new("mq-bench").await;
    make_queue_dirs(&setup.claim_dir().join("qfiles"));
    let sink = Sink::start().await;
    let operator = setup.operator("operator-bench");
    let started = Instant::now();
    apply(&setup, &spec_yaml("lists", 8, sink.port)).await;
    wait_condition(&setup, "lists", "Ready", "True").await;
    let ready = started.elapsed();
    let before = operator.metric("mailqueue_operator_reconciles_total").await.unwrap_or(0.0);
    let idle_window = Duration::from_secs(20);
    tokio::time::sleep(idle_window).await;
    let idle_rate = (operator.metric("mailqueue_operator_reconciles_total").await.unwrap_or(0.0) - before)
        / idle_window.as_secs_f64();
    let started = Instant::now();
    let patch = serde_json::json!({"spec": {"drain": true}});
    setup.mailqueues().patch("lists", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("drain");
    wait_condition(&setup, "lists", "Drained", "True").await;
    let drained = started.elapsed();
    println!("BENCH apply -> Ready (8 runner pods holding their Leases): {:.2} s", ready.as_secs_f64());
    println!("BENCH patch drain -> Drained (8 slices): {:.2} s", drained.as_secs_f64());
    println!("BENCH reconciles of one idle MailQueue with 8 live runners heartbeating: {idle_rate:.2} /s");
    drop(operator);

    // Scale: 100 MailQueues of 8 slices whose claim does not exist in their namespace, so the
    // scheduler cannot place their pods and they stay Pending (one node could not run 800): this
    // measures the operator alone, 800 pods and 800 Leases to create and watch.
    support::runner_namespace(setup.plane, &setup.client, "mq-scale").await;
    let mut operator = setup.operator_for("operator-scale", "mq-scale");
    let pid = operator.child.id().expect("operator pid");
    eventually("the operator to lead", || async {
        (operator.metric("mailqueue_operator_leader").await == Some(1.0)).then_some(())
    })
    .await;
    let rss_idle = rss_mib(pid);
    let mqs: Api<MailQueue> = Api::namespaced(setup.client.clone(), "mq-scale");
    let started = Instant::now();
    for i in 0..100 {
        let mq = spec_yaml(&format!("mq{i:03}"), 8, 25);
        mqs.patch(&mq.name_any(), &PatchParams::apply("bench").force(), &Patch::Apply(&mq)).await.expect("MailQueue");
    }
    eventually("every MailQueue to have its 8 pods and a status", || async {
        let list = mqs.list(&ListParams::default()).await.ok()?;
        let done = list.items.iter().filter(|mq| mq.status.as_ref().is_some_and(|s| s.slices.len() == 8)).count();
        (done == 100).then_some(())
    })
    .await;
    let first_pass = started.elapsed();
    let before = operator.metric("mailqueue_operator_reconciles_total").await.unwrap_or(0.0);
    let window = Duration::from_secs(30);
    tokio::time::sleep(window).await;
    let after = operator.metric("mailqueue_operator_reconciles_total").await.unwrap_or(0.0);
    println!(
        "BENCH 100 MailQueues x 8 slices: all 800 pods created and statuses written in {:.1} s",
        first_pass.as_secs_f64()
    );
    println!(
        "BENCH steady reconcile rate: {:.1} reconciles/s over {} s",
        (after - before) / window.as_secs_f64(),
        window.as_secs()
    );
    println!("BENCH operator RSS: {rss_idle:.1} MiB idle, {:.1} MiB with 100 MailQueues", rss_mib(pid));
    let _ = operator.child.start_kill();
}
