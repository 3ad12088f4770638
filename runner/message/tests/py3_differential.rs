//! Differential test against real Python 3.11 + Mailman 3.3.10: py3_differential.py makes
//! hundreds of seeded random entries and the bytes `smtplib.send_message` sends for each
//! (or the error Python raises); ours must agree on every one.

use base64::Engine as _;
use mailqueue_message::{delivery_bytes, message_from_value, Version};
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::describe_mismatch;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$MQ_PY3` from tests/tools/python-env.sh, or `None` (with the reason) when it fails.
fn mailman_python() -> Result<String, String> {
    let out = Command::new("bash")
        .arg(workspace_root().join("tests/tools/python-env.sh"))
        .output()
        .map_err(|e| format!("cannot run python-env.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!("python-env.sh failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY3=").map(str::to_owned))
        .ok_or_else(|| "python-env.sh printed no MQ_PY3".to_owned())
}

/// Replaces every boundary of the shape Python's `_make_boundary` invents (15 `=`, 19
/// digits, `==`, maybe `.N`): its token is random, so only the shape can be compared.
fn mask_invented_boundaries(data: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"===============";
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let rest = &data[i..];
        let is_token = rest.starts_with(PREFIX)
            && rest.len() >= PREFIX.len() + 21
            && rest[PREFIX.len()..PREFIX.len() + 19].iter().all(u8::is_ascii_digit)
            && &rest[PREFIX.len() + 19..PREFIX.len() + 21] == b"==";
        if !is_token {
            out.push(data[i]);
            i += 1;
            continue;
        }
        out.extend_from_slice(b"<BOUNDARY>");
        i += PREFIX.len() + 21;
        if data.get(i) == Some(&b'.') && data.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            while data.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    out
}

fn run_seed(python: &str, count: u32, seed: u32) -> (usize, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py3_differential.py"))
        .arg(dir.path())
        .arg(count.to_string())
        .arg(seed.to_string())
        .status()
        .expect("run py3_differential.py");
    assert!(status.success(), "py3_differential.py failed");
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pck"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    for pck in &names {
        let name = pck.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_owned();
        let data = std::fs::read(pck).expect("read pck");
        let entry = mailqueue_pickle::read_entry(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = message_from_value(&entry.message, Version::Mailman3)
            .and_then(|m| delivery_bytes(&m, Version::Mailman3, "test-bounces@example.com"));
        let mut want = std::fs::read(pck.with_extension("out")).ok();
        let mut got = got;
        if name.ends_with("-digest") {
            want = want.map(|w| mask_invented_boundaries(&w));
            got = got.map(|g| mask_invented_boundaries(&g));
        }
        let python_error = std::fs::read_to_string(pck.with_extension("err")).ok();
        match (got, want, python_error) {
            (Ok(got), Some(want), _) if got == want => {}
            (Ok(got), Some(want), _) => failures.push(format!(
                "{name}: {}\n  message pickle (base64): {}",
                describe_mismatch(&got, &want),
                base64::engine::general_purpose::STANDARD.encode(&data)
            )),
            (Err(e), Some(_), _) => failures.push(format!("{name}: we failed ({e}) where Python delivered")),
            (Ok(_), None, Some(perr)) => {
                failures.push(format!("{name}: we delivered where Python failed: {}", perr.trim()))
            }
            (Err(_), None, Some(_)) => {}
            (_, None, None) => failures.push(format!("{name}: the generator wrote no result")),
        }
    }
    (names.len(), failures)
}

#[test]
fn random_mailman3_entries_match_python() {
    let python = match mailman_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("\n*** SKIPPED random_mailman3_entries_match_python: {why} ***\n");
            return;
        }
    };
    let mut total = 0;
    let mut failures = Vec::new();
    for seed in 1..=3 {
        let (n, f) = run_seed(&python, 300, seed);
        total += n;
        failures.extend(f.into_iter().map(|m| format!("seed {seed}: {m}")));
    }
    assert!(total >= 900, "only {total} cases were generated");
    assert!(failures.is_empty(), "{} of {total} cases differ:\n{}", failures.len(), failures.join("\n"));
}
