//! serde-pickle as an independent reader where it is right: plain data. Every metadata
//! pickle that holds only plain data (all Mailman 2.1 ones, and text message pickles)
//! reads the same with serde-pickle as with this crate's reader.

mod common;

use mailqueue_pickle::{read_entry, Value};
use serde_pickle::{DeOptions, Value as Sp};

/// This crate's value as serde-pickle's, or `None` when it is not plain data that
/// serde-pickle models (instances, classes, datetimes, lone surrogates).
fn plain(v: &Value) -> Option<Sp> {
    let all = |items: &[Value]| items.iter().map(plain).collect::<Option<Vec<Sp>>>();
    let hashable = |items: &[Value]| all(items)?.into_iter().map(|v| v.into_hashable().ok()).collect::<Option<_>>();
    Some(match v {
        Value::None => Sp::None,
        Value::Bool(b) => Sp::Bool(*b),
        Value::Int(i) => Sp::I64(*i),
        Value::BigInt(i) => Sp::Int(i.clone()),
        Value::Float(f) => Sp::F64(*f),
        Value::Bytes(b) => Sp::Bytes(b.clone()),
        Value::Str(s) => Sp::String(s.as_str()?.to_owned()),
        Value::List(items) => Sp::List(all(items)?),
        Value::Tuple(items) => Sp::Tuple(all(items)?),
        Value::Set(items) => Sp::Set(hashable(items)?),
        Value::FrozenSet(items) => Sp::FrozenSet(hashable(items)?),
        Value::Dict(pairs) => Sp::Dict(
            pairs.iter().map(|(k, v)| Some((plain(k)?.into_hashable().ok()?, plain(v)?))).collect::<Option<_>>()?,
        ),
        Value::DateTime(_) | Value::Global { .. } | Value::Object(_) => return None,
    })
}

#[test]
fn plain_data_pickles_read_as_serde_pickle_reads_them() {
    let mut compared = 0;
    for (path, v) in common::vector_files() {
        let data = std::fs::read(&path).unwrap();
        let entry = read_entry(&data).unwrap();
        let pickles = [(&entry.message, &data[..entry.message_len]), (&entry.metadata, &data[entry.message_len..])];
        for (ours, bytes) in pickles {
            let Some(expected) = plain(ours) else {
                continue;
            };
            let theirs = serde_pickle::value_from_slice(bytes, DeOptions::new())
                .unwrap_or_else(|e| panic!("{}: serde-pickle: {e}", path.display()));
            assert_eq!(theirs, expected, "{}", path.display());
            compared += 1;
        }
        if v["version"] == "mailman2" {
            assert!(plain(&entry.metadata).is_some(), "{}: 2.1 metadata is plain data", path.display());
        }
    }
    assert!(compared >= 33, "only {compared} pickles compared");
}
