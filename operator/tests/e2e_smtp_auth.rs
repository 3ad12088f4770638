//! A relay that requires STARTTLS and AUTH (aiosmtpd, the real server the runner's own TLS
//! tests use, on `support::HOST_IP`) receives every entry of a MailQueue configured only
//! through the CRD, a Secret and a ConfigMap. A missing Secret, and one without the password
//! key, each show as `Degraded` with reason `ReferenceMissing` naming what is missing, and no
//! runner pod starts meanwhile; the password appears nowhere in the pod.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use mailqueue_contract::crd::{CaBundle, KeyRef, SmtpAuth, SmtpTimeouts, SmtpTls, TlsMode};
use support::{
    apply, eventually, expected_deliveries, mailman3_vectors, make_queue_dirs, queue_copies, runner_pods, spec_yaml,
    wait_condition, Setup, HOST_IP,
};

const USER: &str = "mailman";
const PASSWORD: &str = "s3cret-relay-pw";

fn python3() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/python-env.sh");
    let out = Command::new(script).output().expect("python-env.sh runs");
    assert!(out.status.success(), "tests/tools/python-env.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY3=").map(str::to_owned))
        .expect("MQ_PY3 from python-env.sh")
}

/// A self-signed certificate for the relay, valid for the address the runners dial.
fn certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=relay"])
        .args([
            "-addext",
            &format!("subjectAltName=DNS:localhost,IP:{HOST_IP}"),
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl could not make a certificate");
}

/// aiosmtpd requiring STARTTLS before AUTH and mail; killed when dropped.
struct Relay {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    fn start(dir: &Path) -> Self {
        let out = dir.join("accepted.jsonl");
        let mut child = Command::new(python3())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../runner/tests/support/tls_smtp.py"))
            .args(["--mode", "starttls", "--user", USER, "--password", PASSWORD, "--host", HOST_IP])
            .arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the relay starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("relay stdout")).read_line(&mut line).expect("relay says ready");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("relay said {line:?}"));
        Self { child, port, out }
    }

    /// (message, recipient) -> count of what the relay accepted, and whether every
    /// transaction was over TLS and authenticated.
    fn accepted(&self) -> (BTreeMap<(Vec<u8>, String), usize>, bool) {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut counts = BTreeMap::new();
        let mut all_secure = true;
        for line in text.lines() {
            let Ok(tx) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            all_secure &= tx["tls"] == true && tx["authenticated"] == true;
            let data = base64::engine::general_purpose::STANDARD
                .decode(tx["data"].as_str().unwrap_or_default())
                .unwrap_or_default();
            for rcpt in tx["rcpts"].as_array().into_iter().flatten().filter_map(|r| r.as_str()) {
                *counts.entry((data.clone(), rcpt.to_owned())).or_default() += 1;
            }
        }
        (counts, all_secure)
    }
}

async fn degraded_reason(setup: &Setup) -> Option<(String, String)> {
    let mq = setup.mailqueues().get("lists").await.ok()?;
    let c = mq.status?.conditions.into_iter().find(|c| c.type_ == "Degraded" && c.status == "True")?;
    Some((c.reason, c.message))
}

#[tokio::test]
async fn a_starttls_and_auth_relay_gets_every_entry_and_missing_secrets_are_reported() {
    let setup = Setup::new("mq-smtp-auth").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let tls = tempfile::tempdir().expect("cert dir");
    certificate(tls.path());
    let relay = Relay::start(tls.path());
    let _operator = setup.operator("operator-smtp-auth");

    let configmaps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let ca: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "relay-ca"},
        "data": {"ca.crt": std::fs::read_to_string(tls.path().join("cert.pem")).expect("cert")},
    }))
    .expect("ConfigMap");
    configmaps.create(&PostParams::default(), &ca).await.expect("CA ConfigMap is created");

    let mut mq = spec_yaml("lists", 2, relay.port);
    mq.spec.smtp.tls = Some(SmtpTls {
        mode: TlsMode::Starttls,
        ca: Some(CaBundle { secret: None, config_map: Some(KeyRef { name: "relay-ca".into(), key: "ca.crt".into() }) }),
    });
    mq.spec.smtp.auth = Some(SmtpAuth {
        secret_name: "relay-auth".into(),
        username_key: "username".into(),
        password_key: "password".into(),
    });
    mq.spec.smtp.helo = Some("lists.example.org".into());
    mq.spec.smtp.timeouts =
        Some(SmtpTimeouts { connect: Some("10s".into()), command: Some("30s".into()), data: Some("2m".into()) });
    mq.spec.smtp.recipients_per_transaction = Some(0);
    apply(&setup, &mq).await;

    // No Secret yet: said in the status, and no pod waits for a volume that cannot mount.
    let (reason, message) = eventually("Degraded for the missing Secret", || degraded_reason(&setup)).await;
    assert_eq!(reason, "ReferenceMissing", "{message}");
    assert!(message.contains("spec.smtp.auth.secretName: Secret \"relay-auth\" does not exist"), "{message}");
    assert!(runner_pods(&setup, "lists").await.is_empty(), "a runner pod was created without its Secret");
    let (ok, described) = setup.kubectl(&["get", "mq", "lists"]).await;
    assert!(ok && described.contains("Degraded"), "{described}");

    // A Secret without the password key: named too.
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let partial: Secret = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "relay-auth"}, "stringData": {"username": USER}}),
    )
    .expect("Secret");
    secrets.create(&PostParams::default(), &partial).await.expect("Secret is created");
    let (_, message) = eventually("Degraded for the missing key", || async {
        degraded_reason(&setup).await.filter(|(_, m)| m.contains("has no key"))
    })
    .await;
    assert!(message.contains("Secret \"relay-auth\" has no key \"password\""), "{message}");

    // Complete: the runners start, go through STARTTLS and AUTH, and deliver everything.
    let patch = serde_json::json!({"stringData": {"password": PASSWORD}});
    secrets.patch("relay-auth", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("Secret is completed");
    wait_condition(&setup, "lists", "Ready", "True").await;
    let all = mailman3_vectors();
    queue_copies(&all, &qfiles.join("out"), 0..1);
    eventually("every entry to reach the relay", || async {
        let (accepted, _) = relay.accepted();
        (accepted == expected_deliveries(&all, 1)).then_some(())
    })
    .await;
    let (_, secure) = relay.accepted();
    assert!(secure, "a transaction went without TLS or AUTH");
    let mq_now = wait_condition(&setup, "lists", "Degraded", "False").await;
    let list_settings =
        mq_now.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "ListSettings").cloned());
    assert_eq!(list_settings.map(|c| (c.status, c.reason)), Some(("False".to_owned(), "NotConfigured".to_owned())));

    // The password is in no pod's spec: only paths to mounted files.
    let (ok, pods) = setup.kubectl(&["get", "pods", "-o", "yaml"]).await;
    assert!(ok && pods.contains("--smtp-password-file"), "{pods}");
    assert!(!pods.contains(PASSWORD), "the password is in a pod spec");
    assert!(!pods.contains(USER) || !pods.contains("--smtp-user "), "the user is passed as an argument");
}

/// A wrong password: the relay refuses AUTH, the runners say so in their heartbeats, and the
/// MailQueue is `Degraded` with reason `RelayFailing`; every entry stays queued.
#[tokio::test]
async fn a_wrong_password_shows_as_relay_failing_and_nothing_is_sent_or_lost() {
    let setup = Setup::new("mq-smtp-badpw").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    let tls = tempfile::tempdir().expect("cert dir");
    certificate(tls.path());
    let relay = Relay::start(tls.path());
    let _operator = setup.operator("operator-smtp-badpw");
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let data = serde_json::json!({"ca.crt": std::fs::read_to_string(tls.path().join("cert.pem")).expect("cert"), "username": USER, "password": "wrong"});
    let secret: Secret =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "relay"}, "stringData": data})).expect("Secret");
    secrets.create(&PostParams::default(), &secret).await.expect("Secret is created");

    let mut mq = spec_yaml("lists", 1, relay.port);
    mq.spec.smtp.tls = Some(SmtpTls {
        mode: TlsMode::Starttls,
        ca: Some(CaBundle { secret: Some(KeyRef { name: "relay".into(), key: "ca.crt".into() }), config_map: None }),
    });
    mq.spec.smtp.auth = Some(SmtpAuth {
        secret_name: "relay".into(),
        username_key: "username".into(),
        password_key: "password".into(),
    });
    mq.spec.smtp.timeouts = Some(SmtpTimeouts { connect: None, command: Some("5s".into()), data: None });
    apply(&setup, &mq).await;
    let all = mailman3_vectors();
    queue_copies(&all, &qfiles.join("out"), 0..1);
    let (reason, message) = eventually("Degraded for the refused AUTH", || async {
        degraded_reason(&setup).await.filter(|(r, _)| r == "RelayFailing")
    })
    .await;
    // This aiosmtpd never answers a refused AUTH (the runner gives up after its command
    // timeout); a relay that answers 535 reads "SMTP authentication with ... failed".
    assert!(
        message.starts_with("out-0of1: SMTP") && message.contains("AUTH") || message.contains("authentication"),
        "{reason}: {message}"
    );
    assert!(message.contains("entries stay queued"), "{reason}: {message}");
    assert!(relay.accepted().0.is_empty(), "the relay accepted mail without the right password");
    let queued = support::entries(&qfiles.join("out"), ".pck").len();
    assert_eq!(queued, all.len(), "entries left the queue");
    assert!(support::entries(&qfiles.join("bad"), "").is_empty(), "entries went to bad/");
}
