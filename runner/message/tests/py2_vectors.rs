//! Every Mailman 2.1 entry in the shared vectors flattens to exactly the DATA bytes that
//! Mailman 2.1's delivery put on the wire, and (without the Errors-To step) to exactly
//! what its generator alone writes.

use base64::Engine;
use mailqueue_message::{message_from_value, py2, Version};
use std::path::{Path, PathBuf};

mod support;
use support::describe_mismatch;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn b64(v: &serde_json::Value, field: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v[field].as_str().unwrap_or_else(|| panic!("{field} missing")))
        .expect("base64")
}

#[test]
fn mailman2_vectors_deliver_byte_for_byte() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors_dir().join("manifest.json")).expect("manifest.json"))
            .expect("manifest");
    let vectors: Vec<&serde_json::Value> =
        manifest["vectors"].as_array().expect("vectors").iter().filter(|v| v["version"] == "mailman2").collect();
    assert!(!vectors.is_empty(), "no mailman2 vectors found");
    let mut failures = Vec::new();
    for v in &vectors {
        let path = v["path"].as_str().expect("path");
        let data = std::fs::read(vectors_dir().join(path)).expect("vector file");
        let entry = mailqueue_pickle::read_entry(&data).unwrap_or_else(|e| panic!("{path}: {e}"));
        let envsender = entry
            .metadata
            .get("envsender")
            .and_then(|s| s.as_text())
            .unwrap_or_else(|| panic!("{path}: no envsender in the metadata"));
        assert_eq!(envsender, v["expected_envelope_sender"].as_str().expect("sender"), "{path}");
        let msg = match message_from_value(&entry.message, Version::Mailman2) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{path} ({}): error: {e}", v["kind"]));
                continue;
            }
        };
        for (what, got, want) in [
            ("delivery", py2::delivery_bytes(&msg, &envsender), b64(v, "expected_message_b64")),
            ("flattened only", py2::flatten(&msg), b64(v, "flattened_only_b64")),
        ] {
            match got {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!("{path} ({}, {what}): {}", v["kind"], describe_mismatch(&got, &want))),
                Err(e) => failures.push(format!("{path} ({}, {what}): error: {e}", v["kind"])),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} checks of {} Mailman 2.1 vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
    eprintln!("{} Mailman 2.1 vectors: delivery and flattening match byte for byte", vectors.len());
}
