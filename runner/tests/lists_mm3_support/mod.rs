//! Shared parts of the Mailman 3 list-delivery tests: the real Mailman 3 REST API of
//! the vectors' saved site (Mailman from PyPI, via tests/tools/python-env.sh), the
//! list vectors, and comparing captured transactions with Mailman's.
#![allow(dead_code)] // each test binary uses a different part of it

use super::support;
use base64::Engine;
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const REST_USER: &str = "restadmin";
pub const REST_PASS: &str = "restpass";

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors-lists")
}

pub fn manifest() -> Json {
    serde_json::from_slice(&std::fs::read(vectors_dir().join("manifest.json")).expect("list vectors manifest"))
        .expect("json")
}

/// The Mailman 3 vectors.
pub fn mm3_vectors(manifest: &Json) -> Vec<Json> {
    manifest["vectors"].as_array().expect("vectors").iter().filter(|v| v["version"] == "mailman3").cloned().collect()
}

/// `$MQ_PY3` from tests/tools/python-env.sh (a venv with mailman 3.3.10 from PyPI).
pub fn mailman_python() -> String {
    support::python_env("MQ_PY3")
}

/// Mailman's built-in templates directory in that installation.
pub fn mailman_templates(python: &str) -> PathBuf {
    let out = Command::new(python)
        .args(["-c", "import mailman, os; print(os.path.join(os.path.dirname(mailman.__file__), 'templates'))"])
        .output()
        .expect("ask Python where mailman is");
    assert!(out.status.success(), "mailman is not importable in {python}");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Mailman's REST runner serving the saved site, killed (with its gunicorn worker)
/// when dropped.
pub struct RestApi {
    pub port: u16,
    child: Option<Child>,
    _work: tempfile::TempDir,
}

impl RestApi {
    /// Starts it with `[mta]` overlays and waits until it answers.
    pub fn start(python: &str, overlay: &[(String, String)]) -> RestApi {
        RestApi::start_on(python, support::smtp::free_port(), overlay)
    }

    pub fn start_on(python: &str, port: u16, overlay: &[(String, String)]) -> RestApi {
        let work = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lists_mm3_support/serve_site.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script).arg(vectors_dir()).arg(work.path()).arg(port.to_string());
        cmd.args(overlay.iter().map(|(k, v)| format!("{k}={v}")));
        RestApi::launch(cmd, port, work)
    }

    /// The REST API of a site made by `make_site.py build` in `site` (configured
    /// for `port` there).
    pub fn serve_made_site(python: &str, site: &Path, port: u16) -> RestApi {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lists_mm3_support/make_site.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script).arg("serve").arg(site);
        RestApi::launch(cmd, port, tempfile::tempdir().expect("tempdir"))
    }

    fn launch(mut cmd: Command, port: u16, work: tempfile::TempDir) -> RestApi {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(work.path().join("rest.log")).expect("log file");
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log).process_group(0);
        let child = cmd.spawn().expect("start Mailman's REST runner");
        let mut api = RestApi { port, child: Some(child), _work: work };
        let up = support::wait_until(Duration::from_secs(120), || {
            api.get("/3.1/system/versions")
                .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
                || api.exited()
        });
        assert!(up && !api.exited(), "Mailman's REST API did not come up:\n{}", api.log());
        api
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/3.1", self.port)
    }

    fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._work.path().join("rest.log")).unwrap_or_default()
    }

    /// A raw GET with the admin credentials; `None` when nothing answers.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{REST_USER}:{REST_PASS}"));
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\r\n");
        s.write_all(req.as_bytes()).ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    }

    /// Stops the API (SIGTERM to its process group) and waits until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
            if support::wait_child(&mut child, Duration::from_secs(30)).is_none() {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
            }
            // The worker may outlive the master for a moment.
            support::wait_until(Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", self.port)).is_err());
        }
    }
}

impl Drop for RestApi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `[mta]` overlay a vector was delivered under.
pub fn overlay(v: &Json) -> Vec<(String, String)> {
    let mut o: Vec<(String, String)> = v["site_mta"]
        .as_object()
        .expect("site_mta")
        .iter()
        .map(|(k, val)| (k.clone(), val.as_str().unwrap_or("").to_owned()))
        .collect();
    o.sort();
    o
}

/// Copies list vector `path` into `qfiles/out`.
pub fn add_list_vector(qfiles: &Path, path: &str) {
    let src = vectors_dir().join(path);
    let name = src.file_name().expect("file name");
    std::fs::copy(&src, qfiles.join("out").join(name)).expect("copy vector");
}

/// Runner arguments for the REST API at `api` (the password in a file under `qfiles`).
pub fn rest_args(qfiles: &Path, api_url: &str, templates: &Path) -> Vec<String> {
    let pw = qfiles.join("rest-password");
    std::fs::write(&pw, format!("{REST_PASS}\n")).expect("password file");
    vec![
        "--mailman-rest".into(),
        api_url.into(),
        "--mailman-rest-user".into(),
        REST_USER.into(),
        "--mailman-rest-password-file".into(),
        pw.display().to_string(),
        "--mailman-templates".into(),
        templates.display().to_string(),
    ]
}

/// One transaction, comparable: envelope, sorted recipients, DATA with Python's
/// generated boundaries masked.
pub type Tx = (String, Vec<String>, Vec<u8>);

pub fn expected_transactions(v: &Json) -> Vec<Tx> {
    v["expected_transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| {
            let mut rcpts: Vec<String> =
                t["rcpt_tos"].as_array().expect("rcpts").iter().map(|r| r.as_str().unwrap_or("").to_owned()).collect();
            rcpts.sort();
            let data =
                base64::engine::general_purpose::STANDARD.decode(t["data_b64"].as_str().expect("data")).expect("b64");
            (t["mail_from"].as_str().unwrap_or("").to_owned(), rcpts, mask(&data))
        })
        .collect()
}

pub fn captured_transactions(c: &[support::smtp::Captured]) -> Vec<Tx> {
    c.iter()
        .map(|t| {
            let mut rcpts = t.rcpts.clone();
            rcpts.sort();
            (t.mail_from.clone(), rcpts, mask(&t.data))
        })
        .collect()
}

/// Python's generated boundaries (`===============` + 19 digits + `==`, maybe `.N`),
/// ours and Mailman's, replaced by one placeholder (the vectors' README).
pub fn mask(data: &[u8]) -> Vec<u8> {
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

/// Sorted, for comparing multisets; on a difference, a readable account of it.
pub fn diff(mut got: Vec<Tx>, mut want: Vec<Tx>) -> Option<String> {
    got.sort();
    want.sort();
    if got == want {
        return None;
    }
    let show = |t: &Tx| format!("MAIL FROM:<{}> RCPT {:?}\n{}", t.0, t.1, String::from_utf8_lossy(&t.2));
    let missing: Vec<String> = want.iter().filter(|t| !got.contains(t)).map(show).collect();
    let extra: Vec<String> = got.iter().filter(|t| !want.contains(t)).map(show).collect();
    Some(format!(
        "{} transactions sent, {} expected\n=== expected, not sent:\n{}\n=== sent, not expected:\n{}",
        got.len(),
        want.len(),
        missing.join("\n---\n"),
        extra.join("\n---\n")
    ))
}
