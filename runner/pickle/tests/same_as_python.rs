//! The reader reads pickles as Python reads them: the real queue entries and samples of
//! every opcode family written by Python 2.7 (cPickle and pickle, protocols 0-2) and
//! Python 3.11 (C and pure-Python pickler, protocols 0-5). Python's side
//! (`tests/py/canonical.py`) loads them with every class replaced by a recording stub;
//! both sides are compared as canonical JSON.

mod common;

use mailqueue_pickle::write::python_float_repr;
use mailqueue_pickle::{read, read_entry, Value};
use serde_json::{json, Value as Json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

fn canon(v: &Value) -> Json {
    let pairs = |p: &[(Value, Value)]| Json::Array(p.iter().map(|(k, v)| json!([canon(k), canon(v)])).collect());
    let list = |items: &[Value]| Json::Array(items.iter().map(canon).collect());
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!({"int": i.to_string()}),
        Value::BigInt(i) => json!({"int": i.to_string()}),
        Value::Float(f) => json!({"float": python_float_repr(*f)}),
        Value::Bytes(b) => json!({"bytes": hex::encode(b)}),
        Value::Str(s) => json!({"str": hex::encode(s.as_wtf8())}),
        Value::List(items) => json!({"list": list(items)}),
        Value::Tuple(items) => json!({"tuple": list(items)}),
        Value::Dict(p) => json!({"dict": pairs(p)}),
        Value::Set(items) => json!({"set": list(items)}),
        Value::FrozenSet(items) => json!({"frozenset": list(items)}),
        Value::DateTime(d) => json!({"datetime": d.to_string()}),
        Value::Global { module, name } => json!({"global": [module, name]}),
        Value::Object(o) => json!({"object": [
            [o.module, o.name],
            list(&o.args),
            o.state.as_ref().map(canon).unwrap_or(Json::Null),
            list(&o.list_items),
            pairs(&o.dict_items),
        ]}),
    }
}

/// Sets have no order: sort their members, the same way on both sides.
fn sort_sets(j: &mut Json) {
    match j {
        Json::Array(items) => items.iter_mut().for_each(sort_sets),
        Json::Object(map) => {
            for (key, value) in map.iter_mut() {
                sort_sets(value);
                if key == "set" || key == "frozenset" {
                    if let Json::Array(items) = value {
                        items.sort_by_key(|item| item.to_string());
                    }
                }
            }
        }
        _ => {}
    }
}

fn python_lines(mut cmd: Command, stdin: Option<String>) -> Vec<Json> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("python runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let feeder = std::thread::spawn(move || pipe.write_all(stdin.unwrap_or_default().as_bytes()));
    let out = child.wait_with_output().expect("python finishes");
    feeder.join().expect("feeder thread").expect("write to python");
    assert!(out.status.success(), "python failed");
    String::from_utf8(out.stdout)
        .expect("JSON is UTF-8")
        .lines()
        .map(|l| {
            let mut j: Json = serde_json::from_str(l).expect("valid JSON");
            sort_sets(&mut j);
            j
        })
        .collect()
}

#[test]
fn vectors_read_as_python_reads_them() {
    let Some((_, py3)) = common::pythons() else {
        return;
    };
    let files = common::vector_files();
    let mut cmd = Command::new(&py3);
    cmd.arg(script("canonical.py")).arg("entries").args(files.iter().map(|(p, _)| p));
    let expected = python_lines(cmd, None);
    assert_eq!(expected.len(), files.len());
    for ((path, _), python) in files.iter().zip(expected) {
        let entry = read_entry(&std::fs::read(path).unwrap()).unwrap();
        let mut ours = json!([canon(&entry.message), canon(&entry.metadata)]);
        sort_sets(&mut ours);
        assert!(ours == python, "{}:\nours   {ours}\npython {python}", path.display());
    }
}

#[test]
fn sample_pickles_read_as_python_reads_them() {
    let Some((py2, py3)) = common::pythons() else {
        return;
    };
    let mut samples = Vec::new();
    for python in [&py2, &py3] {
        let out = Command::new(python).arg(script("samples.py")).stderr(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{python} samples.py failed");
        samples.extend(String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned));
    }
    assert!(samples.len() > 1000, "only {} samples", samples.len());
    let mut cmd = Command::new(&py3);
    cmd.arg(script("canonical.py")).arg("pickles");
    let expected = python_lines(cmd, Some(samples.join("\n") + "\n"));
    assert_eq!(expected.len(), samples.len());
    for (sample, python) in samples.iter().zip(expected) {
        let data = hex::decode(sample).unwrap();
        let (value, len) = read(&data).unwrap_or_else(|e| panic!("{sample}: {e}"));
        assert_eq!(len, data.len(), "{sample}");
        let mut ours = json!([canon(&value)]);
        sort_sets(&mut ours);
        assert!(ours == python, "{sample}:\nours   {ours}\npython {python}");
    }
}
