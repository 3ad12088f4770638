//! List decoration in the cluster, compared byte for byte (envelopes included) with what
//! Mailman itself sent for the list-dependent vectors (`tests/vectors-lists`):
//! - Mailman 3: `spec.mailman.mailman3` pointing at the real Mailman 3 REST API of the vectors'
//!   saved site (Mailman from PyPI, served on `support::HOST_IP`), credentials from a Secret and
//!   Mailman's built-in templates copied onto the shared volume; every vector, one site (REST
//!   API and MailQueue) per `[mta]` setting the vectors were made under;
//! - Mailman 2.1: `spec.mailman.mailman2` with the site's `mm_cfg` values in a ConfigMap and
//!   the lists' `config.pck` files in `lists/` on the volume; every 2.1 vector (header/footer,
//!   Sender, personalization in two languages, VERP).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::PostParams;
use kube::Api;
use mailqueue_contract::crd::{Credentials, Layout, Mailman, Mailman2, Mailman3, SiteConfig};
use serde_json::Value as Json;
use support::smtp::Sink;
use support::{apply, entries, eventually, make_queue_dirs, spec_yaml, Setup, HOST_IP};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors-lists")
}

fn python3() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tools/python-env.sh");
    let out = Command::new(script).output().expect("python-env.sh runs");
    assert!(out.status.success(), "tests/tools/python-env.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY3=").map(str::to_owned))
        .expect("MQ_PY3 from python-env.sh")
}

/// Mailman's REST runner for the saved site; its process group is killed when dropped.
struct RestApi {
    child: Child,
    port: u16,
    _work: tempfile::TempDir,
}

impl Drop for RestApi {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl RestApi {
    /// `site_root`: where the site's template URIs point (its `templates/` copied there).
    fn start(python: &str, overlay: &[(String, String)], user: &str, password: &str, site_root: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let work = tempfile::tempdir().expect("work dir");
        let port =
            std::net::TcpListener::bind((HOST_IP, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runner/tests/lists_mm3_support/serve_site.py");
        let log = std::fs::File::create(work.path().join("rest.log")).expect("log");
        let child = Command::new(python)
            .arg(script)
            .arg(vectors_dir())
            .arg(work.path())
            .arg(port.to_string())
            .args(overlay.iter().map(|(k, v)| format!("{k}={v}")))
            .env("MQ_REST_HOST", HOST_IP)
            .env("MQ_SITE_ROOT", site_root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("Mailman's REST runner starts");
        let mut api = Self { child, port, _work: work };
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if api.get("/3.1/system/versions", user, password).is_some_and(|r| r.contains(" 200 ")) {
                return api;
            }
            let log = std::fs::read_to_string(api._work.path().join("rest.log")).unwrap_or_default();
            assert!(api.child.try_wait().ok().flatten().is_none(), "Mailman's REST API exited:\n{log}");
            assert!(std::time::Instant::now() < deadline, "Mailman's REST API did not come up:\n{log}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn get(&self, path: &str, user: &str, password: &str) -> Option<String> {
        let mut s = TcpStream::connect((HOST_IP, self.port)).ok()?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        s.write_all(
            format!("GET {path} HTTP/1.0\r\nHost: {HOST_IP}\r\nAuthorization: Basic {auth}\r\n\r\n").as_bytes(),
        )
        .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    }
}

/// One transaction: envelope sender, sorted recipients, DATA with Python's generated MIME
/// boundaries masked (they differ per run, as the vectors' README says).
type Tx = (String, Vec<String>, Vec<u8>);

fn mask(data: &[u8]) -> Vec<u8> {
    let pat = b"===============";
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(pat) {
            let digits = data[i + pat.len()..].iter().take_while(|c| c.is_ascii_digit()).count();
            let end = i + pat.len() + digits;
            if digits == 19 && data[end..].starts_with(b"==") {
                let mut j = end + 2;
                if data.get(j) == Some(&b'.') {
                    j += 1 + data[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                }
                out.extend_from_slice(b"<BOUNDARY>");
                i = j;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

fn expected(v: &Json) -> Vec<Tx> {
    v["expected_transactions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut rcpts: Vec<String> =
                t["rcpt_tos"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)).collect();
            rcpts.sort();
            let data = base64::engine::general_purpose::STANDARD
                .decode(t["data_b64"].as_str().unwrap_or_default())
                .expect("b64");
            (t["mail_from"].as_str().unwrap_or_default().to_owned(), rcpts, mask(&data))
        })
        .collect()
}

/// Fails the test with a readable account unless `sent` are exactly `want` (sorted).
fn same_transactions(sent: &[support::smtp::Delivery], want: &[Tx]) {
    let mut got: Vec<Tx> = sent
        .iter()
        .map(|d| {
            let mut rcpts = d.rcpts.clone();
            rcpts.sort();
            (d.mail_from.clone(), rcpts, mask(&d.data))
        })
        .collect();
    got.sort();
    if got != want {
        let show = |t: &Tx| format!("MAIL FROM:<{}> RCPT {:?}\n{}", t.0, t.1, String::from_utf8_lossy(&t.2));
        let missing: Vec<String> = want.iter().filter(|t| !got.contains(t)).map(show).collect();
        let extra: Vec<String> = got.iter().filter(|t| !want.contains(t)).map(show).collect();
        panic!(
            "{} sent, {} expected\n=== expected, not sent:\n{}\n=== sent, not expected:\n{}",
            got.len(),
            want.len(),
            missing.join("\n---\n"),
            extra.join("\n---\n")
        );
    }
}

fn overlay(v: &Json) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = v["site_mta"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, val)| (k.clone(), val.as_str().unwrap_or_default().to_owned()))
        .collect();
    o.sort();
    o
}

#[tokio::test]
async fn mailman3_list_vectors_are_decorated_in_the_cluster_as_mailman_did() {
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(vectors_dir().join("manifest.json")).expect("manifest")).expect("json");
    let vectors: Vec<Json> = manifest["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .filter(|v| v["version"] == "mailman3")
        .cloned()
        .collect();
    assert!(vectors.len() >= 5, "expected the Mailman 3 list vectors, found {}", vectors.len());
    // The vectors were delivered under per-list [mta] site settings (VERP interval, VERP for
    // personalized mail): one site, so one REST API and one MailQueue, per setting.
    let mut groups: std::collections::BTreeMap<Vec<(String, String)>, Vec<&Json>> = std::collections::BTreeMap::new();
    for v in &vectors {
        groups.entry(overlay(v)).or_default().push(v);
    }
    let user = manifest["mailman3"]["rest"]["admin_user"].as_str().unwrap_or("restadmin").to_owned();
    let password = manifest["mailman3"]["rest"]["admin_pass"].as_str().unwrap_or("restpass").to_owned();

    let python = python3();
    let setup = Setup::new("mq-mailman3-lists").await;
    // Mailman's built-in templates, copied onto the volume as the admin does once per upgrade.
    let out = Command::new(&python)
        .args(["-c", "import mailman, os; print(os.path.join(os.path.dirname(mailman.__file__), 'templates'))"])
        .output()
        .expect("python runs");
    let templates = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::create_dir_all(setup.claim_dir()).expect("claim dir");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&templates)
        .arg(setup.claim_dir().join("mailman-templates"))
        .status()
        .expect("cp runs");
    assert!(copied.success(), "cannot copy {}", templates.display());
    // The site's own templates (custom list headers and footers), where a Mailman core sharing
    // the volume keeps them: its file:// template URIs name the path runner pods see.
    let site = setup.claim_dir().join("mailman-site");
    std::fs::create_dir_all(&site).expect("site dir");
    let copied =
        Command::new("cp").arg("-r").arg(vectors_dir().join("site/templates")).arg(&site).status().expect("cp runs");
    assert!(copied.success(), "cannot copy the site's templates");
    let site_root = format!("{}/mailman-site", mailqueue_operator::desired::MOUNT_PATH);

    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "mailman-rest"},
        "stringData": {"username": user, "password": password},
    }))
    .expect("Secret");
    secrets.create(&PostParams::default(), &secret).await.expect("Secret is created");
    let _operator = setup.operator("operator-mailman3-lists");
    let mut total = 0;
    for (i, (site_mta, chosen)) in groups.iter().enumerate() {
        let api = RestApi::start(&python, site_mta, &user, &password, &site_root);
        let name = format!("lists{i}");
        let queue_dir = format!("site{i}/queue");
        let qfiles = setup.claim_dir().join(&queue_dir);
        make_queue_dirs(&qfiles);
        let sink = Sink::start().await;
        let mut mq = spec_yaml(&name, 1, sink.port);
        mq.spec.storage.queue_dir = Some(queue_dir.clone());
        mq.spec.mailman = Some(Mailman {
            mailman3: Some(Mailman3 {
                rest_url: format!("http://{HOST_IP}:{}/3.1", api.port),
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
        let mut want: Vec<Tx> = Vec::new();
        for v in chosen {
            let src = vectors_dir().join(v["path"].as_str().expect("path"));
            std::fs::copy(&src, qfiles.join("out").join(src.file_name().expect("name"))).expect("entry is queued");
            want.extend(expected(v));
        }
        want.sort();
        let got = eventually(&format!("every list vector of {site_mta:?} to be delivered"), || async {
            let sent = sink.deliveries();
            (entries(&qfiles.join("out"), ".pck").is_empty() && sent.len() >= want.len()).then_some(sent)
        })
        .await;
        same_transactions(&got, &want);
        assert!(entries(&qfiles.join("shunt"), ".pck").is_empty(), "entries were shunted");
        let mq_now = setup.mailqueues().get(&name).await.expect("mq");
        let settings = mq_now
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "ListSettings"))
            .expect("ListSettings");
        assert_eq!(settings.reason, "Configured");
        total += want.len();
    }
    eprintln!(
        "{total} Mailman 3 list transactions identical ({} vectors, {} site settings)",
        vectors.len(),
        groups.len()
    );
}

#[tokio::test]
async fn mailman2_list_vectors_are_decorated_in_the_cluster_as_mailman_did() {
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(vectors_dir().join("manifest.json")).expect("manifest")).expect("json");
    let vectors: Vec<Json> = manifest["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .filter(|v| v["version"] == "mailman2")
        .cloned()
        .collect();
    assert!(vectors.len() >= 5, "expected the Mailman 2.1 list vectors, found {}", vectors.len());
    let setup = Setup::new("mq-mailman2-lists").await;
    let qfiles = setup.claim_dir().join("qfiles");
    make_queue_dirs(&qfiles);
    // The 2.1 tree on the volume: lists/<name>/config.pck beside qfiles/.
    for (name, list) in manifest["mailman2"]["lists"].as_object().expect("mailman2 lists") {
        let src = vectors_dir().join("mailman2").join(list["config_pck"].as_str().expect("config_pck"));
        let dir = setup.claim_dir().join("lists").join(name);
        std::fs::create_dir_all(&dir).expect("list dir");
        std::fs::copy(&src, dir.join("config.pck")).expect("config.pck is copied");
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), &setup.namespace);
    let site: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "mm2-site"},
        "data": {"mm_cfg.json": manifest["mailman2"]["site_settings"].to_string()},
    }))
    .expect("ConfigMap");
    configmaps.create(&PostParams::default(), &site).await.expect("ConfigMap is created");
    let sink = Sink::start().await;
    let _operator = setup.operator("operator-mailman2-lists");
    let mut mq = spec_yaml("lists", 1, sink.port);
    mq.spec.layout = Layout::Mailman2;
    mq.spec.mailman = Some(Mailman {
        mailman3: None,
        mailman2: Some(Mailman2 {
            site_config: SiteConfig { config_map: "mm2-site".into(), key: "mm_cfg.json".into() },
            lists_path: Some("lists".into()),
        }),
    });
    apply(&setup, &mq).await;
    let mut want: Vec<Tx> = Vec::new();
    for v in &vectors {
        let src = vectors_dir().join(v["path"].as_str().expect("path"));
        std::fs::copy(&src, qfiles.join("out").join(src.file_name().expect("name"))).expect("entry is queued");
        want.extend(expected(v));
    }
    want.sort();
    let got = eventually("every 2.1 list vector to be delivered", || async {
        let sent = sink.deliveries();
        (entries(&qfiles.join("out"), ".pck").is_empty() && sent.len() >= want.len()).then_some(sent)
    })
    .await;
    same_transactions(&got, &want);
    assert!(entries(&qfiles.join("shunt"), ".pck").is_empty(), "entries were shunted");
    eprintln!("{} Mailman 2.1 list transactions identical", want.len());
}
