//! Differential test against real Python 2.7 (email 4.0.3): py2_differential.py makes
//! Mailman 2.1 entries (CPython's email test corpus as text and as objects, odd MIME
//! structures, long and odd headers, Header objects in utf-8, iso-8859-1, iso-2022-jp,
//! koi8-r, nested multiparts, seeded random cases) and the bytes Mailman 2.1's delivery
//! sends for each, or the error Python raises; ours must agree on every one.

use base64::Engine as _;
use mailqueue_message::{message_from_value, py2, Version};
use std::path::Path;
use std::process::Command;

mod support;
use support::describe_mismatch;

/// `$MQ_PY2` from tests/tools/python-env.sh.
fn python2() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tools/python-env.sh");
    let out = Command::new("bash").arg(&script).output().expect("run tests/tools/python-env.sh");
    assert!(out.status.success(), "python-env.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY2=").map(str::to_owned))
        .expect("python-env.sh printed no MQ_PY2")
}

/// Runs the generator for `count` random cases with `seed`; returns (cases, failures).
fn run(count: u32, seed: u32) -> (usize, Vec<String>) {
    let out = Command::new(python2())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py2_differential.py"))
        .arg(count.to_string())
        .arg(seed.to_string())
        .output()
        .expect("run py2_differential.py");
    assert!(out.status.success(), "py2_differential.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let b64 = |v: &serde_json::Value| {
        v.as_str().map(|s| base64::engine::general_purpose::STANDARD.decode(s).expect("base64"))
    };
    let mut failures = Vec::new();
    let mut total = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        total += 1;
        let case: serde_json::Value = serde_json::from_str(line).expect("json line");
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        let entry = mailqueue_pickle::read_entry(&b64(&case["entry"]).expect("entry"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let envsender = entry.metadata.get("envsender").and_then(|v| v.as_text()).expect("envsender");
        let msg = message_from_value(&entry.message, Version::Mailman2);
        let delivery = msg.as_ref().map_err(Clone::clone).and_then(|m| py2::delivery_bytes(m, &envsender));
        let flat = msg.as_ref().map_err(Clone::clone).and_then(py2::flatten);
        match (case["error"].as_str(), b64(&case["delivery"]), b64(&case["flat"])) {
            (Some(py_err), _, _) => {
                if let Ok(got) = delivery {
                    failures.push(format!(
                        "{name}: Python fails ({py_err}) but we deliver {}",
                        String::from_utf8_lossy(&got).escape_debug()
                    ));
                }
            }
            (None, Some(want_delivery), Some(want_flat)) => {
                for (what, got, want) in [("delivery", delivery, want_delivery), ("flattened", flat, want_flat)] {
                    match got {
                        Ok(got) if got == want => {}
                        Ok(got) => failures.push(format!("{name} ({what}): {}", describe_mismatch(&got, &want))),
                        Err(e) => failures.push(format!("{name} ({what}): error: {e}")),
                    }
                }
            }
            _ => panic!("{name}: case has neither bytes nor an error"),
        }
    }
    (total, failures)
}

#[test]
fn python27_and_we_write_the_same_bytes() {
    // MQ_PY2_DIFF_CASES=N MQ_PY2_DIFF_SEED=S explore further; the default is the CI run.
    let env = |k: &str, d: u32| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (total, failures) = run(env("MQ_PY2_DIFF_CASES", 300), env("MQ_PY2_DIFF_SEED", 20260101));
    assert!(total > 300, "only {total} cases generated");
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ from Python 2.7:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} Python 2.7 cases: identical bytes (or both refuse)");
}
