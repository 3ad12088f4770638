//! `mailqueue-runner show` on every conformance vector, compared field by field with
//! the manifest, and on broken files.
use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::Command;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailqueue-runner"))
}

#[test]
fn show_json_matches_the_manifest_for_every_vector() {
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("manifest.json")).unwrap()).unwrap();
    let vectors = manifest["vectors"].as_array().unwrap();
    assert_eq!(vectors.len() as u64, manifest["count"].as_u64().unwrap());
    let mut failures = Vec::new();
    for v in vectors {
        let path = vectors_dir().join(v["path"].as_str().unwrap());
        let out = runner().args(["show", "--json"]).arg(&path).output().unwrap();
        let label = format!("{} ({} {})", v["path"].as_str().unwrap(), v["version"], v["kind"]);
        if !out.status.success() {
            failures.push(format!(
                "{label}: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let shown: Json = serde_json::from_slice(&out.stdout).unwrap();
        for (field, expected) in [
            ("filebase", &v["filebase"]),
            ("extension", &Json::from("pck")),
            ("timestamp", &v["timestamp"]),
            ("digest", &v["digest"]),
            ("format", &v["version"]),
            ("metadata", &v["expected_metadata"]),
            ("recipients", &v["expected_recipients"]),
            ("envelope_sender", &v["expected_envelope_sender"]),
            ("message_pickle_length", &v["message_pickle_length"]),
            ("message_pickle_protocol", &v["message_pickle_protocol"]),
            ("metadata_pickle_protocol", &v["metadata_pickle_protocol"]),
            ("message_b64", &v["expected_message_b64"]),
        ] {
            if &shown[field] != expected {
                failures.push(format!("{label}: {field} differs"));
            }
        }
        let raw = runner().args(["show", "--raw"]).arg(&path).output().unwrap();
        if raw.status.success() {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&raw.stdout);
            if shown["message_b64"] != b64 {
                failures.push(format!("{label}: --raw differs from --json message_b64"));
            }
        } else {
            failures.push(format!("{label}: --raw failed"));
        }
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn show_dump_prints_metadata_then_message() {
    let path = vectors_dir().join("mailman3/out/1704071669.6670835+c5a2d1dbf5561552debae2b23d0f3170d1a97e40.pck");
    let out = runner().arg("show").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let meta = text.find("-------------------- metadata").unwrap();
    let message = text.find("-------------------- message").unwrap();
    assert!(meta < message);
    assert!(text.contains("listid: 'test.example.com'"), "{text}");
    assert!(text.contains("x_test_tuple: (12, 3.5, None)"), "{text}");
    assert!(text.contains("x_test_bytes: b'\\x00\\xffraw'"), "{text}");
}

#[test]
fn show_names_the_file_and_the_damage_and_never_panics() {
    let src = vectors_dir().join("mailman2/out/1546300773.9900386+52f0f23b7f5ec2228e523da606f2d6bca191a9b6.pck");
    let bytes = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated-metadata.pck", bytes[..bytes.len() - 20].to_vec(), "metadata pickle: "),
        ("truncated-message.pck", bytes[..300].to_vec(), "message pickle"),
        ("empty.pck", Vec::new(), "message pickle"),
        ("garbage.pck", b"\xff\xfe not a pickle".to_vec(), "message pickle"),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        for mode in [&["show", "--json"][..], &["show", "--raw"], &["show"]] {
            let out = runner().args(mode).arg(&path).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name} {mode:?}: {stderr}");
            assert!(stderr.contains(&path.display().to_string()), "{name}: {stderr}");
            assert!(stderr.contains(expected), "{name}: {stderr}");
            assert!(out.stdout.is_empty());
        }
    }
    let missing = runner().args(["show", "--json", "/nonexistent/x.pck"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.pck"));
}
