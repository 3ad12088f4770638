//! Rewritten metadata loads in the real Mailman Pythons: every vector gets its
//! `_bak_count` raised (as recovery does), is written back, and is loaded by Python 2.7
//! `cPickle` (Mailman 2.1 entries, with a stand-in `Mailman.Message`) or by Python 3.11
//! with mailman 3.3.10 installed (Mailman 3 entries), which compare types and values
//! with the original, and for Mailman 3 also the bytes with what `pickle` writes.

mod common;

use mailqueue_pickle::{read, read_entry, rewrite_metadata, write, Dialect, PyStr, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `metadata['_bak_count'] = metadata.get('_bak_count', 0) + 1`, with the key type of
/// the owning Python's `str`.
fn bump_bak_count(metadata: &mut Value, dialect: Dialect) {
    let Value::Dict(pairs) = metadata else { panic!("metadata is not a dict: {metadata:?}") };
    match pairs.iter_mut().find(|(k, _)| k.key_is("_bak_count")) {
        Some((_, Value::Int(n))) => *n += 1,
        Some((_, other)) => panic!("_bak_count is {other:?}"),
        None => {
            let key = match dialect {
                Dialect::Mailman2 => Value::Bytes(b"_bak_count".to_vec()),
                Dialect::Mailman3 => Value::Str(PyStr::from("_bak_count")),
            };
            pairs.push((key, Value::Int(1)));
        }
    }
}

fn check_with_python(python: &str, version: &str, pairs: &[(PathBuf, PathBuf)]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_rewrite.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(version);
    for (original, rewritten) in pairs {
        cmd.arg(original).arg(rewritten);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{version} check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("checked {} entries, 0 failed", pairs.len())), "{stdout}");
}

#[test]
fn rewritten_metadata_loads_in_the_owning_python() {
    let Some((py2, py3)) = common::pythons() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut by_version: [(&str, Vec<(PathBuf, PathBuf)>); 2] = [("mailman2", Vec::new()), ("mailman3", Vec::new())];
    for (path, v) in common::vector_files() {
        let data = std::fs::read(&path).unwrap();
        let mut entry = read_entry(&data).unwrap();
        let dialect = Dialect::of(&entry);
        bump_bak_count(&mut entry.metadata, dialect);
        let rewritten = rewrite_metadata(&data, entry.message_len, &entry.metadata, dialect).unwrap();
        assert_eq!(&rewritten[..entry.message_len], &data[..entry.message_len]);

        // Our own reader sees the change, and nothing else.
        let again = read_entry(&rewritten).unwrap();
        assert_eq!(again.metadata, entry.metadata, "{}", path.display());
        assert_eq!(again.message, entry.message);

        let version = v["version"].as_str().unwrap();
        let out = dir.path().join(format!("{version}-{}", path.file_name().unwrap().to_string_lossy()));
        std::fs::write(&out, rewritten).unwrap();
        let slot = by_version.iter_mut().find(|(name, _)| *name == version).unwrap();
        slot.1.push((path, out));
    }
    let [(_, mailman2), (_, mailman3)] = &by_version;
    assert_eq!(mailman2.len() + mailman3.len(), common::manifest().len());
    check_with_python(&py2, "mailman2", mailman2);
    check_with_python(&py3, "mailman3", mailman3);
}

/// Values of every plain-data kind, pickled by the real Python in protocols 0 and 1,
/// read by us and written back by us, load in that Python to equal values of the same
/// types (and, for Python 3, are the same bytes).
#[test]
fn written_values_load_equal_in_python() {
    let Some((py2, py3)) = common::pythons() else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    for (python, dialect) in [(&py2, Dialect::Mailman2), (&py3, Dialect::Mailman3)] {
        let out = Command::new(python).arg(dir.join("writer_samples.py")).output().unwrap();
        assert!(out.status.success(), "{python} writer_samples.py failed");
        let mut lines = String::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let (protocol, original) = line.split_once(' ').unwrap();
            let protocol: u8 = protocol.parse().unwrap();
            let bytes = hex::decode(original).unwrap();
            let (value, _) = read(&bytes).unwrap_or_else(|e| panic!("{line}: {e}"));
            let ours = write(&value, dialect, protocol).unwrap_or_else(|e| panic!("{line}: {e}"));
            lines += &format!("{protocol} {original} {}\n", hex::encode(ours));
        }
        let mut child = Command::new(python)
            .arg(dir.join("check_rewrite.py"))
            .arg("values")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains(" 0 failed"), "{dialect:?}:\n{stdout}");
    }
}
