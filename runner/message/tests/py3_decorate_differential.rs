//! Differential test against Mailman 3.3.10's own decoration handler: for every message
//! shape x list charset x header/footer text that py3_decorate_differential.py runs
//! through `mailman.handlers.decorate.process`, our decoration flattens to the same
//! DATA bytes (boundaries Python invents masked).

use mailqueue_message::py3::decorate::{self, Decoration};
use mailqueue_message::{message_from_value, py3, Version};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mailman_python() -> String {
    let out = Command::new("bash")
        .arg(workspace_root().join("tests/tools/python-env.sh"))
        .output()
        .expect("run python-env.sh");
    assert!(
        out.status.success(),
        "python-env.sh failed (this test needs Mailman 3 from PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY3=").map(str::to_owned))
        .expect("python-env.sh printed no MQ_PY3")
}

/// Python's invented boundaries (15 `=`, 19 digits, `==`) replaced by a placeholder.
fn mask(data: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"===============";
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let rest = &data[i..];
        let token = rest.starts_with(PREFIX)
            && rest.len() >= PREFIX.len() + 21
            && rest[PREFIX.len()..PREFIX.len() + 19].iter().all(u8::is_ascii_digit)
            && &rest[PREFIX.len() + 19..PREFIX.len() + 21] == b"==";
        if token {
            out.extend_from_slice(b"<BOUNDARY>");
            i += PREFIX.len() + 21;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn decoration_matches_mailman_3() {
    let python = mailman_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let made = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py3_decorate_differential.py"))
        .arg(dir.path())
        .output()
        .expect("run py3_decorate_differential.py");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    assert!(names.len() > 100, "only {} cases", names.len());
    let (mut same, mut refused, mut failures) = (0, Vec::new(), Vec::new());
    for name in &names {
        let path = |ext: &str| dir.path().join(format!("{name}.{ext}"));
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path("json")).expect("json")).expect("parse");
        let entry = mailqueue_pickle::read_entry(&std::fs::read(path("pck")).expect("pck")).expect("pickle");
        let mut msg = message_from_value(&entry.message, Version::Mailman3).expect("message");
        let d = Decoration {
            header: spec["header"].as_str().unwrap_or("").to_owned(),
            footer: spec["footer"].as_str().unwrap_or("").to_owned(),
            list_charset: spec["charset"].as_str().unwrap_or("").to_owned(),
        };
        let ours = decorate::decorate(&mut msg, &d)
            .map_err(|e| e.to_string())
            .and_then(|()| py3::delivery_bytes(&msg).map_err(|e| e.to_string()));
        match (ours, std::fs::read(path("out"))) {
            (Ok(got), Ok(want)) if mask(&got) == mask(&want) => same += 1,
            (Ok(got), Ok(want)) => failures.push(format!(
                "{name}:\n--- ours\n{}\n--- Mailman's\n{}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            )),
            // Refusing is safe (the entry is shunted, never sent wrong), but counted.
            (Err(e), _) => refused.push(format!("{name}: {e}")),
            (Ok(_), Err(_)) => failures.push(format!(
                "{name}: Mailman failed ({}), we did not",
                std::fs::read_to_string(path("err")).unwrap_or_default()
            )),
        }
    }
    eprintln!("{same} identical, {} refused (codecs not carried)", refused.len());
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), names.len(), failures.join("\n\n"));
    // Only the cases built to need a codec this emulation does not carry may be refused.
    let unexpected: Vec<&String> = refused.iter().filter(|r| !r.starts_with("unsupported_")).collect();
    assert!(unexpected.is_empty(), "refused cases Mailman decorates:\n{unexpected:?}");
}
