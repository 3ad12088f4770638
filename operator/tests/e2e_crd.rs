//! The API server itself refuses invalid MailQueues, with a message an admin can act on.

mod support;

use kube::api::PostParams;
use kube::Api;
use mailqueue_contract::crd::MailQueue;
use mailqueue_testenv::control_plane;
use support::{install_crd, mailqueue};

fn with_queues(name: &str, queues: &str) -> MailQueue {
    mailqueue(&format!(
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {{name: {name}}}
spec:
  storage: {{claimName: mailman-data}}
  smtp: {{host: mta.mail.svc}}
  queues: {queues}
"
    ))
}

async fn refusal(api: &Api<MailQueue>, mq: &MailQueue) -> String {
    match api.create(&PostParams::default(), mq).await {
        Ok(_) => panic!("the API server accepted an invalid MailQueue: {:?}", mq.spec.queues),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "refused as invalid: {status:?}");
            status.message.clone()
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn invalid_mailqueues_are_refused_with_a_readable_message() {
    let plane = control_plane::shared().await.expect("control plane starts");
    let _report = plane.report_on_failure();
    let client = plane.client().expect("admin client");
    install_crd(&client).await;
    plane.create_namespace("crd-validation").await.expect("namespace");
    let api: Api<MailQueue> = Api::namespaced(client, "crd-validation");

    let three = refusal(&api, &with_queues("three", "[{name: out, slices: 3}]")).await;
    assert!(three.contains("slices must be a power of two from 1 to 256"), "{three}");

    let zero = refusal(&api, &with_queues("zero", "[{name: out, slices: 0}]")).await;
    assert!(zero.contains("spec.queues[0].slices") && zero.contains("greater than or equal to 1"), "{zero}");

    let big = refusal(&api, &with_queues("big", "[{name: out, slices: 512}]")).await;
    assert!(big.contains("spec.queues[0].slices") && big.contains("less than or equal to 256"), "{big}");

    let twice = refusal(&api, &with_queues("twice", "[{name: out, slices: 2}, {name: out, slices: 4}]")).await;
    assert!(twice.contains("spec.queues") && twice.contains("Duplicate value"), "{twice}");

    // The same, as an admin sees it from kubectl.
    let kubectl = |args: &[&str]| {
        std::process::Command::new(plane.binaries().path("kubectl"))
            .args(args)
            .env("KUBECONFIG", plane.kubeconfig())
            .output()
            .expect("kubectl runs")
    };
    let manifest = std::env::temp_dir().join(format!("mq-three-{}.yaml", std::process::id()));
    std::fs::write(&manifest, serde_yaml::to_string(&with_queues("three", "[{name: out, slices: 3}]")).expect("yaml"))
        .expect("manifest is written");
    let applied = kubectl(&["apply", "-n", "crd-validation", "-f", manifest.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&manifest);
    let said = String::from_utf8_lossy(&applied.stderr);
    assert!(!applied.status.success() && said.contains("slices must be a power of two"), "{said}");

    // Every field is documented for `kubectl explain`.
    let explained = kubectl(&["explain", "mailqueue.spec.queues.slices"]);
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(text.contains("Number of slices of the hash space"), "{text}");
    let explained = kubectl(&["explain", "mailqueue.status.conditions"]);
    assert!(String::from_utf8_lossy(&explained.stdout).contains("observedGeneration"));

    let ok = with_queues("fine", "[{name: out, slices: 4}, {name: retry}]");
    let created = api.create(&PostParams::default(), &ok).await.expect("a valid MailQueue is accepted");
    assert_eq!(created.spec.queues[1].slices, 1, "slices default to 1");
    assert_eq!(created.spec.smtp.port, 25, "the SMTP port defaults to 25");
}
