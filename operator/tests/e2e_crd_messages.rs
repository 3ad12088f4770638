//! One clear message per mistake from the API server: a bad duration gives the pattern's
//! message and no CEL conversion error after it; a missing `claimName` gives the rule's message
//! and no "some validation rules were not checked". Every new field is documented for
//! `kubectl explain`.

mod support;

use kube::api::PostParams;
use kube::Api;
use mailqueue_contract::crd::MailQueue;
use mailqueue_testenv::control_plane;
use support::{install_crd, mailqueue};

async fn refusal(api: &Api<MailQueue>, yaml: &str) -> String {
    match api.create(&PostParams::default(), &mailqueue(yaml)).await {
        Ok(_) => panic!("the API server accepted an invalid MailQueue:\n{yaml}"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "refused as invalid: {status:?}");
            status.message.clone()
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn each_mistake_gets_one_clear_message_and_every_field_is_explained() {
    let plane = control_plane::shared().await.expect("control plane starts");
    let _report = plane.report_on_failure();
    let client = plane.client().expect("admin client");
    install_crd(&client).await;
    plane.create_namespace("crd-messages").await.expect("namespace");
    let api: Api<MailQueue> = Api::namespaced(client, "crd-messages");

    let duration = refusal(
        &api,
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {name: soon}
spec:
  storage: {claimName: data}
  queues: [{name: out}]
  smtp: {host: mta}
  bakPolicy: {quarantineAfter: soon}
",
    )
    .await;
    assert!(duration.contains("spec.bakPolicy.quarantineAfter") && duration.contains("should match"), "{duration}");
    // Before the guard, CEL's duration() ran on the same string and added its own failure.
    assert!(
        !duration.contains("conversion") && !duration.contains("must be a duration"),
        "a second, confusing error: {duration}"
    );
    assert!(!duration.contains("not checked"), "{duration}");

    let claim = refusal(
        &api,
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {name: noclaim}
spec:
  storage: {queueDir: qfiles}
  queues: [{name: out}]
  smtp: {host: mta}
",
    )
    .await;
    assert!(claim.contains("storage.claimName is required"), "{claim}");
    assert!(!claim.contains("not checked"), "{claim}");

    let clear = refusal(
        &api,
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {name: clear}
spec:
  storage: {claimName: data}
  queues: [{name: out}]
  smtp: {host: mta, auth: {secretName: relay}}
",
    )
    .await;
    assert!(clear.contains("a password is never sent in the clear"), "{clear}");

    let two_cas = refusal(
        &api,
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {name: twocas}
spec:
  storage: {claimName: data}
  queues: [{name: out}]
  smtp: {host: mta, tls: {mode: tls, ca: {secret: {name: a}, configMap: {name: b}}}}
",
    )
    .await;
    assert!(two_cas.contains("exactly one of secret and configMap"), "{two_cas}");

    // A MailQueue with every new section is accepted as written.
    let full = mailqueue(
        "apiVersion: mailqueue.dev/v1alpha1
kind: MailQueue
metadata: {name: full}
spec:
  storage: {claimName: data}
  queues: [{name: out, slices: 2}, {name: retry}]
  smtp:
    host: mta
    port: 587
    tls: {mode: starttls-opportunistic, ca: {secret: {name: relay-ca}}}
    auth: {secretName: relay-auth}
    helo: lists.example.org
    timeouts: {connect: 5s, command: 30s, data: 2m}
    recipientsPerTransaction: 100
    verp: metadata
  runner:
    image: registry.example/runner:1
    resources: {requests: {cpu: 100m, memory: 64Mi}}
    nodeSelector: {mail: 'yes'}
    tolerations: [{key: mail, operator: Exists}]
    priorityClassName: mail
    imagePullSecrets: [{name: pull}]
    labels: {team: lists}
    annotations: {note: x}
  mailman:
    mailman3: {restUrl: 'http://core:8001/3.1', credentials: {secretName: rest}, templatesPath: mailman/templates}
    mailman2: {siteConfig: {configMap: mm2}}
",
    );
    let created = api.create(&PostParams::default(), &full).await.expect("a full MailQueue is accepted");
    assert_eq!(created.spec.smtp.auth.as_ref().map(|a| a.password_key.as_str()), Some("password"));
    assert_eq!(created.spec.storage.queue_dir, None, "the queue dir is derived from the layout, not stored");

    let explain = |field: &str| {
        let out = std::process::Command::new(plane.binaries().path("kubectl"))
            .args(["explain", field])
            .env("KUBECONFIG", plane.kubeconfig())
            .output()
            .expect("kubectl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (field, words) in [
        ("mailqueue.spec.smtp.tls.mode", "STARTTLS"),
        ("mailqueue.spec.smtp.auth.secretName", "Name of the Secret"),
        ("mailqueue.spec.smtp.recipientsPerTransaction", "Recipients per SMTP transaction"),
        ("mailqueue.spec.runner.topologySpreadConstraints", "spread"),
        ("mailqueue.spec.mailman.mailman3.templatesPath", "built-in templates"),
        ("mailqueue.spec.storage.queueDir", "var/queue"),
    ] {
        let text = explain(field);
        assert!(text.contains(words), "kubectl explain {field}: {text}");
    }
}
