//! Every conformance vector: name, slices, format, recipients and envelope sender as
//! the manifest says.
use mailqueue_message::Version;
use mailqueue_queue::entry::QueueEntry;
use mailqueue_queue::{EntryName, Slice};
use serde_json::Value as Json;
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn manifest() -> Vec<Json> {
    let text = std::fs::read_to_string(vectors_dir().join("manifest.json")).expect("tests/vectors/manifest.json");
    let m: Json = serde_json::from_str(&text).unwrap();
    m["vectors"].as_array().unwrap().clone()
}

#[test]
fn names_slices_and_metadata_match_the_manifest() {
    let vectors = manifest();
    assert!(vectors.len() >= 62);
    for v in &vectors {
        let path = vectors_dir().join(v["path"].as_str().unwrap());
        let file_name = path.file_name().unwrap().to_str().unwrap();
        let name = EntryName::parse(file_name).unwrap();
        assert_eq!(name.base(), v["filebase"].as_str().unwrap());
        assert_eq!(name.timestamp(), v["timestamp"].as_f64().unwrap(), "{file_name}");
        assert_eq!(name.digest(), v["digest"].as_str().unwrap());
        for (n, expected) in v["slices"].as_object().unwrap() {
            let n: u32 = n.parse().unwrap();
            let expected = expected.as_u64().unwrap() as u32;
            assert_eq!(Slice::new(0, n).unwrap().index_of(&name), expected, "{file_name} with {n} slices");
            assert!(Slice::new(expected, n).unwrap().contains(&name));
        }

        let entry = QueueEntry::read(&path).unwrap();
        let version = match v["version"].as_str().unwrap() {
            "mailman2" => Version::Mailman2,
            _ => Version::Mailman3,
        };
        assert_eq!(entry.version(), version, "{file_name}");
        assert_eq!(entry.message_pickle().len() as u64, v["message_pickle_length"].as_u64().unwrap());
        assert_eq!(entry.is_text(), v["message_stored_as"] == "text", "{file_name}");
        let mut recipients = entry.recipients().unwrap();
        recipients.sort();
        let expected: Vec<String> =
            v["expected_recipients"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
        assert_eq!(recipients, expected, "{file_name}");
        assert_eq!(entry.envelope_sender().unwrap(), v["expected_envelope_sender"].as_str().unwrap(), "{file_name}");
        let bak_count = v["expected_metadata"].get("_bak_count").and_then(Json::as_i64).unwrap_or(0);
        assert_eq!(entry.bak_count(), bak_count, "{file_name}");
        let list = if version == Version::Mailman2 { "test" } else { "test.example.com" };
        assert_eq!(entry.list_key().as_deref(), Some(list));
    }
}
