//! Every real Mailman queue entry in the shared vectors reads back to what the manifest
//! says: message pickle length, protocols, and the metadata dict.

mod common;

use mailqueue_pickle::{read_entry, Dialect, Value};
use serde_json::{json, Map, Value as Json};

/// The manifest's JSON conventions: bytes as latin-1 text, sets sorted, datetimes in
/// ISO 8601, tuples as lists.
fn to_json(v: &Value) -> Json {
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::Bytes(_) | Value::Str(_) => json!(v.as_text().unwrap()),
        Value::List(items) | Value::Tuple(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Set(items) | Value::FrozenSet(items) => {
            let mut items: Vec<Json> = items.iter().map(to_json).collect();
            items.sort_by_key(|j| j.to_string());
            Json::Array(items)
        }
        Value::Dict(pairs) => {
            Json::Object(pairs.iter().map(|(k, v)| (k.as_text().unwrap(), to_json(v))).collect::<Map<_, _>>())
        }
        Value::DateTime(d) => json!(d.to_string()),
        other => panic!("no JSON form for {other:?}"),
    }
}

#[test]
fn every_vector_reads_as_the_manifest_says() {
    let vectors = common::vector_files();
    assert!(vectors.len() >= 62, "expected the 62 shared vectors, found {}", vectors.len());
    for (path, v) in &vectors {
        let data = std::fs::read(path).unwrap();
        let entry = read_entry(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.display();
        assert_eq!(json!(entry.message_len), v["message_pickle_length"], "{name}");
        assert_eq!(json!(entry.message_protocol), v["message_pickle_protocol"], "{name}");
        assert_eq!(json!(entry.metadata_protocol), v["metadata_pickle_protocol"], "{name}");
        assert_eq!(to_json(&entry.metadata), v["expected_metadata"], "{name}");
        let dialect = if v["version"] == "mailman2" { Dialect::Mailman2 } else { Dialect::Mailman3 };
        assert_eq!(Dialect::of(&entry), dialect, "{name}");
        let text = v["message_stored_as"] == "text";
        match (&entry.message, v["version"].as_str().unwrap()) {
            (Value::Bytes(_), "mailman2") | (Value::Str(_), "mailman3") => assert!(text, "{name}"),
            (Value::Object(o), version) => {
                assert!(!text, "{name}");
                let module = if version == "mailman2" { "Mailman.Message" } else { "mailman.email.message" };
                assert_eq!(o.module, module, "{name}");
                assert!(o.attr("_headers").is_some(), "{name}: no _headers in {o:?}");
            }
            (other, version) => panic!("{name}: unexpected {version} message {other:?}"),
        }
    }
}
