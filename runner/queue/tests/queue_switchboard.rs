//! The switchboard on real directories: listing against Mailman 3's own code, claim
//! races, recovery and enqueue checked by loading the files with the real Pythons,
//! and broken files that must never crash a listing.
use mailqueue_pickle::Value;
use mailqueue_queue::entry::QueueEntry;
use mailqueue_queue::switchboard::{NewEntry, Switchboard};
use mailqueue_queue::{EntryName, Ext, Slice};
use serde_json::Value as Json;
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vector_files(version: &str) -> Vec<PathBuf> {
    let dir = crate_dir().join("../../tests/vectors").join(version).join("out");
    let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// A vector by its manifest kind, e.g. ("mailman3", "plaintext").
fn vector(version: &str, kind: &str) -> PathBuf {
    let root = crate_dir().join("../../tests/vectors");
    let manifest: Json = serde_json::from_str(&fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    let v = manifest["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version && v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {version} vector of kind {kind}"));
    root.join(v["path"].as_str().unwrap())
}

/// `$MQ_PY2` and `$MQ_PY3` from the project's python-env script.
struct Pythons {
    py2: String,
    py3: String,
}

fn pythons() -> Pythons {
    let script = crate_dir().join("../../tests/tools/python-env.sh");
    let out = Command::new("bash").arg(&script).output().expect("running tests/tools/python-env.sh");
    assert!(out.status.success(), "tests/tools/python-env.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let var = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_owned())
            .unwrap_or_else(|| panic!("python-env.sh printed no {name}"))
    };
    Pythons { py2: var("MQ_PY2"), py3: var("MQ_PY3") }
}

fn run_python(python: &str, script: &str, args: &[&Path]) -> Json {
    let out = Command::new(python)
        .arg(crate_dir().join("tests/py").join(script))
        .args(args)
        // Python 2.7 needs a `Mailman.Message` module to unpickle 2.1 messages: the
        // pickle crate's tests keep a stand-in.
        .env("PYTHONPATH", crate_dir().join("../pickle/tests/py"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Loads files with the Python of their version; the result per file.
fn load_with_python(pythons: &Pythons, python2: bool, files: &[PathBuf]) -> BTreeMap<PathBuf, Json> {
    let py = if python2 { &pythons.py2 } else { &pythons.py3 };
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = run_python(py, "load_entries.py", &args);
    out.as_object().unwrap().iter().map(|(k, v)| (PathBuf::from(k), v.clone())).collect()
}

/// `<tmp>/out` and `<tmp>/retry`, with `bad/` beside them.
fn qfiles() -> (tempfile::TempDir, Switchboard) {
    let root = tempfile::tempdir().unwrap();
    for q in ["out", "retry", "bad"] {
        fs::create_dir(root.path().join(q)).unwrap();
    }
    let out = Switchboard::open(root.path(), "out").unwrap();
    (root, out)
}

fn copy_in(sb: &Switchboard, from: &Path, ext: Ext) -> EntryName {
    let name = EntryName::parse(from.file_name().unwrap().to_str().unwrap()).unwrap().with_ext(ext);
    fs::copy(from, sb.path_of(&name)).unwrap();
    name
}

#[test]
fn listing_matches_mailman3_get_files_for_every_slice() {
    let pythons = pythons();
    let (_root, out) = qfiles();
    for f in vector_files("mailman2").iter().chain(&vector_files("mailman3")) {
        copy_in(&out, f, Ext::Pck);
    }
    // Three names sharing one time and one already 0.0001 later: the tie-break chain.
    for (t, d) in [("1700000000.5", 'a'), ("1700000000.5", 'b'), ("1700000000.5", 'c'), ("1700000000.5001", 'd')] {
        fs::write(out.dir().join(format!("{t}+{}.pck", d.to_string().repeat(40))), b"").unwrap();
    }
    // Files Mailman's listing skips by extension (it would crash on a foreign .pck).
    fs::write(out.dir().join("notes.txt"), b"").unwrap();
    fs::write(out.dir().join(format!("1.0+{}.pck.tmp", "e".repeat(40))), b"").unwrap();
    fs::write(out.dir().join(format!("1.0+{}.bak", "e".repeat(40))), b"").unwrap();

    let expected = run_python(
        &pythons.py3,
        "mailman3_get_files.py",
        &[out.dir(), Path::new("1"), Path::new("2"), Path::new("4"), Path::new("8"), Path::new("16")],
    );
    let mut checked = 0;
    for (key, names) in expected.as_object().unwrap() {
        let (i, n) = key.split_once('/').unwrap();
        let slice = Slice::new(i.parse().unwrap(), n.parse().unwrap()).unwrap();
        let ours: Vec<String> = out.files(slice).unwrap().iter().map(EntryName::base).collect();
        let theirs: Vec<String> = names.as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
        assert_eq!(ours, theirs, "slice {slice}");
        checked += 1;
    }
    assert_eq!(checked, 1 + 2 + 4 + 8 + 16);
    assert_eq!(out.files(Slice::all()).unwrap().len(), 62 + 4);
    assert_eq!(out.backups(Slice::all()).unwrap().len(), 1);
}

#[test]
fn exactly_one_of_two_racing_claims_wins() {
    let (_root, out) = qfiles();
    let src = vector("mailman3", "corpus");
    for _ in 0..50 {
        let name = copy_in(&out, &src, Ext::Pck);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (sb, name, barrier) = (out.clone(), name.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    sb.claim(&name).unwrap()
                })
            })
            .collect();
        let wins: Vec<EntryName> = handles.into_iter().filter_map(|h| h.join().unwrap()).collect();
        assert_eq!(wins.len(), 1);
        assert!(out.path_of(&wins[0]).exists());
        assert!(!out.path_of(&name).exists());
        out.finish(&wins[0]).unwrap();
    }
    assert!(fs::read_dir(out.dir()).unwrap().next().is_none());
}

#[test]
fn recovery_counts_up_to_three_then_preserves_and_python_reads_every_step() {
    let pythons = pythons();
    let (root, out) = qfiles();
    let cases = [
        ("mailman2", "corpus"),
        ("mailman2", "plaintext"),
        ("mailman2", "recovered"),
        ("mailman3", "corpus"),
        ("mailman3", "plaintext"),
        ("mailman3", "recovered"),
        ("mailman3", "metadata-edge"),
    ];
    let mut entries = Vec::new();
    for (version, kind) in cases {
        let src = vector(version, kind);
        let original = QueueEntry::read(&src).unwrap();
        let python2 = version == "mailman2";
        let before = load_with_python(&pythons, python2, std::slice::from_ref(&src)).remove(&src).unwrap();
        let name = copy_in(&out, &src, Ext::Bak);
        entries.push((name, original, before, python2));
    }

    for round in 1..=3i64 {
        let done = out.recover(Slice::all()).unwrap();
        for (name, original, before, python2) in &entries {
            let count = original.bak_count() + round;
            let pck = name.with_ext(Ext::Pck);
            if count >= 3 {
                let psv = root.path().join("bad").join(name.with_ext(Ext::Psv).to_string());
                if count == 3 && round == 3 - original.bak_count() {
                    assert!(done.preserved.iter().any(|(n, _)| n == name), "{name} not preserved in round {round}");
                }
                assert!(psv.exists(), "{name} should be in bad/ after round {round}");
                assert!(!out.path_of(&pck).exists() && !out.path_of(name).exists());
                continue;
            }
            assert!(done.requeued.contains(&pck), "{pck} not requeued in round {round}");
            let path = out.path_of(&pck);
            let recovered = QueueEntry::read(&path).unwrap();
            assert_eq!(recovered.message_pickle(), original.message_pickle(), "message bytes changed");
            assert_eq!(recovered.bak_count(), count);
            assert_eq!(recovered.metadata_protocol(), if original.is_text() { 0 } else { 1 });

            let after = load_with_python(&pythons, *python2, std::slice::from_ref(&path)).remove(&path).unwrap();
            assert_eq!(after["message_pickle_length"], before["message_pickle_length"]);
            assert_eq!(after["message_type"], before["message_type"]);
            assert_eq!(after["trailing"], 0);
            let mut expected_meta = before["metadata"].clone();
            expected_meta["_bak_count"] = Json::from(count);
            assert_eq!(after["metadata"], expected_meta, "{pck}");
            let mut expected_types = before["metadata_types"].clone();
            expected_types["_bak_count"] = Json::from("int");
            assert_eq!(after["metadata_types"], expected_types, "{pck}");
            // Claimed again, as a runner that crashes would leave it.
            assert!(out.claim(&pck).unwrap().is_some());
        }
    }
    assert!(out.files(Slice::all()).unwrap().is_empty());
    assert!(out.backups(Slice::all()).unwrap().is_empty());
}

#[test]
fn recovery_only_touches_its_slice_and_preserves_unreadable_files() {
    let (root, out) = qfiles();
    let src = vector("mailman3", "corpus");
    let name = copy_in(&out, &src, Ext::Bak);
    let other = Slice::new(1 - Slice::new(0, 2).unwrap().index_of(&name), 2).unwrap();
    assert_eq!(out.recover(other).unwrap(), Default::default());
    assert!(out.path_of(&name).exists());

    let bytes = fs::read(&src).unwrap();
    let broken = EntryName::parse(&format!("1.0+{}.bak", "0".repeat(40))).unwrap();
    fs::write(out.path_of(&broken), &bytes[..bytes.len() / 2]).unwrap();
    let done = out.recover(Slice::all()).unwrap();
    assert_eq!(done.requeued, vec![name.with_ext(Ext::Pck)]);
    assert_eq!(done.preserved.len(), 1);
    assert_eq!(done.preserved[0].0, broken);
    assert!(
        done.preserved[0].1.contains("unreadable at recovery: ") && done.preserved[0].1.contains("message pickle"),
        "{}",
        done.preserved[0].1
    );
    assert!(root.path().join("bad").join(broken.with_ext(Ext::Psv).to_string()).exists());
}

#[test]
fn enqueue_writes_what_mailman_would_and_python_reads_it() {
    let pythons = pythons();
    let (_root, out) = qfiles();
    for (version, kind, python2) in [
        ("mailman2", "corpus", true),
        ("mailman2", "plaintext", true),
        ("mailman3", "metadata-edge", false),
        ("mailman3", "plaintext", false),
    ] {
        let src = QueueEntry::read(&vector(version, kind)).unwrap();
        let mut metadata =
            mailqueue_queue::entry::with_field(src.metadata(), src.version(), "_volatile", Value::Int(1));
        if python2 {
            // 2.1 keeps an existing received_time as the file's time.
            metadata = mailqueue_queue::entry::with_field(
                &metadata,
                src.version(),
                "received_time",
                Value::Float(1600000000.25),
            );
        }
        let name = out
            .enqueue(NewEntry {
                message_pickle: src.message_pickle(),
                metadata: &metadata,
                version: src.version(),
                text: src.is_text(),
            })
            .unwrap();
        assert_eq!(name.ext(), Ext::Pck);
        let written = out.read(&name).unwrap();
        assert_eq!(written.message_pickle(), src.message_pickle());
        assert!(written.metadata().get("_volatile").is_none());
        assert!(written.metadata().get("_bak_count").is_none());
        assert_eq!(written.is_text(), src.is_text());
        assert_eq!(written.metadata().get("version"), Some(&Value::Int(3)));
        assert_eq!(written.metadata_protocol(), if src.is_text() { 0 } else { 1 });
        if python2 {
            assert_eq!(name.time_text(), "1600000000.25");
        } else {
            // Mailman 3: the file time is the hashed time; the digest can be recomputed.
            let mut h = Sha1::new();
            h.update(src.message_pickle());
            h.update(b"test.example.com");
            h.update(name.time_text().as_bytes());
            assert_eq!(name.digest(), hex::encode(h.finalize()));
        }
        let path = out.path_of(&name);
        let loaded = load_with_python(&pythons, python2, std::slice::from_ref(&path)).remove(&path).unwrap();
        assert_eq!(loaded["message_pickle_length"], src.message_pickle().len());
        assert_eq!(loaded["metadata"]["version"], 3);
        assert_eq!(loaded["metadata"]["_parsemsg"], src.is_text());
        let key = if python2 { "listname" } else { "listid" };
        assert_eq!(loaded["metadata_types"][key], "str");
    }
    // Nothing half-written is left behind.
    assert!(fs::read_dir(out.dir()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
}

#[test]
fn put_back_undoes_a_claim_byte_for_byte() {
    let (_root, out) = qfiles();
    let src = vector("mailman3", "corpus");
    let name = copy_in(&out, &src, Ext::Pck);
    let bak = out.claim(&name).unwrap().unwrap();
    assert_eq!(out.put_back(&bak).unwrap(), name);
    assert_eq!(out.files(Slice::all()).unwrap(), vec![name.clone()]);
    assert!(out.backups(Slice::all()).unwrap().is_empty());
    assert_eq!(fs::read(out.path_of(&name)).unwrap(), fs::read(&src).unwrap());
    // A claim already gone (recovered, moved by an operator) is an error, not a panic.
    assert!(out.put_back(&bak).is_err());
}

#[test]
fn move_to_writes_the_target_then_unlinks_the_claim() {
    let (root, out) = qfiles();
    let retry = Switchboard::open(root.path(), "retry").unwrap();
    let name = copy_in(&out, &vector("mailman2", "corpus"), Ext::Pck);
    let bak = out.claim(&name).unwrap().unwrap();
    let entry = out.read(&bak).unwrap();
    let metadata =
        mailqueue_queue::entry::with_field(entry.metadata(), entry.version(), "whichq", Value::Bytes(b"out".to_vec()));
    let moved = out.move_to(&bak, &entry, &metadata, &retry).unwrap();
    assert!(fs::read_dir(out.dir()).unwrap().next().is_none());
    let there = retry.read(&moved).unwrap();
    assert_eq!(there.message_pickle(), entry.message_pickle());
    assert_eq!(there.metadata().get("whichq"), Some(&Value::Bytes(b"out".to_vec())));
    assert_eq!(retry.files(Slice::all()).unwrap(), vec![moved]);
}

#[test]
fn broken_and_foreign_files_never_crash_listing_or_reading() {
    let (root, out) = qfiles();
    let bytes = fs::read(vector("mailman2", "non-ascii-subject")).unwrap();
    // Every truncation of a real entry is an error, never a panic.
    for len in 0..bytes.len() {
        assert!(QueueEntry::from_bytes(bytes[..len].to_vec()).is_err(), "truncated at {len} accepted");
    }
    let mut names = Vec::new();
    for (i, content) in [&b""[..], &bytes[..100], b"\x80\x05garbage", b"From nobody\n\nplain mail\n"].iter().enumerate()
    {
        let name = EntryName::parse(&format!("{i}.0+{}.pck", "1".repeat(40))).unwrap();
        fs::write(out.path_of(&name), content).unwrap();
        names.push(name);
    }
    fs::write(out.dir().join("core"), b"").unwrap();
    fs::write(out.dir().join("x+y.pck"), b"").unwrap();
    fs::create_dir(out.dir().join(format!("9.0+{}.pck", "2".repeat(40)))).unwrap();
    std::os::unix::fs::symlink("/dev/null", out.dir().join(format!("8.0+{}.pck", "3".repeat(40)))).unwrap();

    assert_eq!(out.files(Slice::all()).unwrap(), names);
    for name in &names {
        let err = out.read(name).unwrap_err().to_string();
        assert!(err.starts_with(&out.path_of(name).display().to_string()), "{err}");
    }
    let status = mailqueue_queue::status::qfiles_status(root.path(), Some(4), 0.0).unwrap();
    let q = status.iter().find(|q| q.name == "out").unwrap();
    assert_eq!(q.counts.pck, 4);
    assert_eq!(q.ignored["not a queue entry name"].count, 2);
    assert_eq!(q.ignored["subdirectory"].count, 1);
    assert_eq!(q.ignored["symbolic link"].count, 1);
}

#[test]
fn refuses_a_bad_queue_on_another_filesystem() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("out")).unwrap();
    let elsewhere = match tempfile::tempdir_in("/dev/shm") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED refuses_a_bad_queue_on_another_filesystem: no /dev/shm ({e})");
            return;
        }
    };
    use std::os::unix::fs::MetadataExt;
    if fs::metadata(elsewhere.path()).unwrap().dev() == fs::metadata(root.path()).unwrap().dev() {
        eprintln!("SKIPPED refuses_a_bad_queue_on_another_filesystem: /dev/shm is on the same filesystem");
        return;
    }
    std::os::unix::fs::symlink(elsewhere.path(), root.path().join("bad")).unwrap();
    let err = Switchboard::open(root.path(), "out").unwrap_err().to_string();
    assert!(err.contains("are on different filesystems"), "{err}");
}
