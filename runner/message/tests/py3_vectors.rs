//! Every Mailman 3 entry in the shared vectors flattens to exactly the DATA bytes that
//! Mailman 3's own delivery put on the wire.

use base64::Engine;
use mailqueue_message::{delivery_bytes, message_from_value, Version};
use std::path::{Path, PathBuf};

mod support;
use support::describe_mismatch;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

#[test]
fn mailman3_vectors_deliver_byte_for_byte() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors_dir().join("manifest.json")).expect("manifest.json"))
            .expect("manifest");
    let vectors: Vec<&serde_json::Value> =
        manifest["vectors"].as_array().expect("vectors").iter().filter(|v| v["version"] == "mailman3").collect();
    assert!(!vectors.is_empty(), "no mailman3 vectors found");
    let mut failures = Vec::new();
    for v in &vectors {
        let path = v["path"].as_str().expect("path");
        let want = base64::engine::general_purpose::STANDARD
            .decode(v["expected_message_b64"].as_str().expect("expected_message_b64"))
            .expect("base64");
        let data = std::fs::read(vectors_dir().join(path)).expect("vector file");
        let entry = mailqueue_pickle::read_entry(&data).unwrap_or_else(|e| panic!("{path}: {e}"));
        let envsender = v["expected_envelope_sender"].as_str().unwrap_or_default();
        let got = message_from_value(&entry.message, Version::Mailman3)
            .and_then(|m| delivery_bytes(&m, Version::Mailman3, envsender));
        match got {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!("{path} ({}): {}", v["kind"], describe_mismatch(&got, &want))),
            Err(e) => failures.push(format!("{path} ({}): error: {e}", v["kind"])),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Mailman 3 vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}
