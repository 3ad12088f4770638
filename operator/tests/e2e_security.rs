//! The runner pods the operator makes, as the real node enforces them: they run as the uid the
//! MailQueue names, their root filesystem is read-only to the kernel, and a queue tree they may
//! not write makes them fail with the reason shown on the MailQueue, not in a crash loop nobody
//! sees.

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use support::smtp::Sink;
use support::{apply, eventually, mailqueue, wait_condition, Setup, CLAIM, HOST_IP};

/// `runner` is the spec's `runner:` settings.
fn spec(name: &str, claim: &str, runner: &str, smtp_port: u16) -> mailqueue_contract::crd::MailQueue {
    mailqueue(&format!(
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {{name: {name}}}
spec:
  storage: {{claimName: {claim}, queueDir: qfiles}}
  queues: [{{name: out, slices: 1}}]
  smtp: {{host: {HOST_IP}, port: {smtp_port}, connectionsPerSlice: 1}}
  runner: {runner}
"
    ))
}

/// Makes `dir` a Mailman tree owned by `uid` (queue directories included).
fn tree(dir: &std::path::Path, uid: u32) {
    for queue in ["out", "retry", "shunt", "bad"] {
        std::fs::create_dir_all(dir.join("qfiles").join(queue)).expect("queue directory");
    }
    for entry in ["", "qfiles", "qfiles/out", "qfiles/retry", "qfiles/shunt", "qfiles/bad"] {
        std::os::unix::fs::chown(dir.join(entry), Some(uid), Some(uid)).expect("chown");
    }
}

#[tokio::test]
async fn runner_pods_run_as_the_configured_uid_on_a_read_only_root_and_a_forbidden_tree_shows_on_the_mailqueue() {
    let setup = Setup::new("mq-security").await;
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-security");

    // A tree owned by uid 2000, and a MailQueue whose runners run as 2000.
    let owned = setup.claim_dir();
    tree(&owned, 2000);
    apply(&setup, &spec("owned", CLAIM, "{runAsUser: 2000, runAsGroup: 2000}", sink.port)).await;
    wait_condition(&setup, "owned", "Ready", "True").await;
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let pod = pods.get("owned-out-0of1").await.expect("runner pod");
    let pid = setup.cluster.node().container_pid(&pod, "runner").await.expect("the runner's host pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the runner's /proc status");
    let uids = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    assert_eq!(uids.split_whitespace().skip(1).collect::<Vec<_>>(), ["2000"; 4], "{uids}");
    let no_new_privs = status.lines().find(|l| l.starts_with("NoNewPrivs:")).expect("NoNewPrivs line");
    assert!(no_new_privs.ends_with('1'), "{no_new_privs}");
    let caps = status.lines().find(|l| l.starts_with("CapEff:")).expect("CapEff line");
    assert!(caps.ends_with("0000000000000000"), "capabilities left: {caps}");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("the runner's mountinfo");
    let root = mounts.lines().find(|l| l.split_whitespace().nth(4) == Some("/")).expect("a root mount");
    let options = root.split_whitespace().nth(5).unwrap_or_default();
    assert!(options.split(',').any(|o| o == "ro"), "the root filesystem is mounted {options}: {root}");

    // A tree owned by root (0755): the runner cannot take its slice. The MailQueue says so, with
    // the runner's own words, while the pod restarts. (No runAsGroup, hence no fsGroup: the
    // kubelet would otherwise give the group the tree.)
    let forbidden = setup.volumes.path().join("forbidden");
    setup.cluster.local_volume(&setup.namespace, "forbidden", &forbidden, 0).await.expect("local volume");
    tree(&forbidden, 0);
    apply(&setup, &spec("denied", "forbidden", "{runAsUser: 2000}", sink.port)).await;
    let degraded = wait_condition(&setup, "denied", "Degraded", "True").await;
    let condition =
        support::status(&degraded).conditions.iter().find(|c| c.type_ == "Degraded").cloned().expect("Degraded");
    assert_eq!(condition.reason, "RunnersRestarting", "{condition:?}");
    assert!(condition.message.contains("denied-out-0of1"), "the message names the pod: {}", condition.message);
    assert!(
        condition.message.to_lowercase().contains("permission denied"),
        "the message gives the runner's reason: {}",
        condition.message
    );
    eventually("the owned queue to stay Ready meanwhile", || async {
        let mq = setup.mailqueues().get("owned").await.ok()?;
        let ready = mq.status?.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(())
    })
    .await;
}
