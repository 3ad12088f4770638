//! `spec.mailman.mailman3` with a REST API that cannot be reached: the runners keep the
//! entries of its lists queued (never sent undecorated), and the MailQueue says why with
//! `Degraded`, reason `ListSettingsUnavailable`; `ListSettings` is `True` (configured).

mod support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::Api;
use mailqueue_contract::crd::{Credentials, Mailman, Mailman3};
use support::smtp::Sink;
use support::{apply, entries, eventually, mailman3_vectors, make_queue_dirs, queue_copies, spec_yaml, Setup, HOST_IP};

#[tokio::test]
async fn an_unreachable_rest_api_keeps_entries_queued_and_degrades_with_the_reason() {
    let setup = Setup::new("mq-lists-down").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    // Mailman's built-in templates, as an admin copies them onto the volume.
    std::fs::create_dir_all(setup.claim_dir().join("mailman-templates/en")).expect("templates dir");
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-lists-down");
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "mailman-rest"},
        "stringData": {"username": "restadmin", "password": "restpass"},
    }))
    .expect("Secret");
    secrets.create(&PostParams::default(), &secret).await.expect("Secret is created");
    // A port nothing listens on.
    let closed =
        std::net::TcpListener::bind((HOST_IP, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");

    let mut mq = spec_yaml("lists", 1, sink.port);
    mq.spec.mailman = Some(Mailman {
        mailman3: Some(Mailman3 {
            rest_url: format!("http://{HOST_IP}:{closed}/3.1"),
            credentials: Credentials {
                secret_name: "mailman-rest".into(),
                username_key: "username".into(),
                password_key: "password".into(),
            },
            templates_path: "mailman-templates".into(),
            site_templates_path: None,
        }),
        mailman2: None,
    });
    apply(&setup, &mq).await;
    let all = mailman3_vectors();
    queue_copies(&all, &qfiles.join("out"), 0..1);
    let mq_now = eventually("Degraded for the unreachable REST API", || async {
        let mq = setup.mailqueues().get("lists").await.ok()?;
        let s = mq.status.as_ref()?;
        s.conditions.iter().any(|c| c.type_ == "Degraded" && c.reason == "ListSettingsUnavailable").then_some(mq)
    })
    .await;
    let conditions = mq_now.status.map(|s| s.conditions).unwrap_or_default();
    let degraded = conditions.iter().find(|c| c.type_ == "Degraded").expect("Degraded");
    assert!(degraded.message.contains("none is sent undecorated"), "{}", degraded.message);
    let settings = conditions.iter().find(|c| c.type_ == "ListSettings").expect("ListSettings");
    assert_eq!((settings.status.as_str(), settings.reason.as_str()), ("True", "Configured"));
    // Entries of lists wait in the queue: none went out without its list's decoration.
    assert!(!entries(&qfiles.join("out"), ".pck").is_empty(), "every entry left the queue");
    assert!(entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");
    let sent = sink.deliveries().len();
    assert!(sent < all.len(), "{sent} of {} entries were sent without list settings", all.len());
}
