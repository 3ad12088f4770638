//! `list` and `qshape` over a queue holding real Mailman 2.1 and 3 entries (their
//! recipients set per test) and one entry whose bytes are not a queue entry.
mod support;

use mailqueue_pickle::Value;
use mailqueue_queue::entry::{version_str, with_field, QueueEntry};
use mailqueue_queue::switchboard::{NewEntry, Switchboard};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const M3: &str = "mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck";
const M2: &str = "mailman2/out/1546301294.5+644a741cf1febdb8a75d18bfa8ce09baecd8d397.pck";
const BROKEN: &str = "1.5+0000000000000000000000000000000000000001.pck";

/// Enqueues vector `vector` into `out/` with these recipients; returns its file name and
/// the list it belongs to.
fn enqueue(q: &Path, vector: &str, recipients: &[&str]) -> (String, String) {
    let entry = QueueEntry::read(&support::vectors_dir().join(vector)).unwrap();
    let v = entry.version();
    let key = if vector.starts_with("mailman3") { "recipients" } else { "recips" };
    let list = Value::List(recipients.iter().map(|r| version_str(v, r)).collect());
    let metadata = with_field(entry.metadata(), v, key, list);
    let sb = Switchboard::open(q, "out").unwrap();
    let name = sb
        .enqueue(NewEntry {
            message_pickle: entry.message_pickle(),
            metadata: &metadata,
            version: v,
            text: entry.is_text(),
        })
        .unwrap();
    (name.to_string(), entry.list_key().unwrap())
}

/// Two real entries (4 recipients on two domains, one spelt in capitals) and a broken one.
fn queue() -> (tempfile::TempDir, [(String, String); 2]) {
    let q = support::qfiles();
    let first = enqueue(q.path(), M3, &["a@Example.org", "b@example.org", "c@other.net"]);
    let second = enqueue(q.path(), M2, &["d@other.net"]);
    std::fs::write(q.path().join("out").join(BROKEN), b"not a pickle").unwrap();
    (q, [first, second])
}

fn runner(q: &Path, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(support::runner_bin());
    cmd.arg(args[0]).arg("--qfiles").arg(q).args(&args[1..]);
    let out = support::run_to_end(cmd, Duration::from_secs(60));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{args:?}: {stderr}");
    (stdout, stderr)
}

#[test]
fn list_shows_each_entry_oldest_first_and_the_broken_one_with_its_reason() {
    let (q, [(first, first_list), (second, second_list)]) = queue();
    let (stdout, _) = runner(q.path(), &["list", "--json"]);
    let rows: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    let files: Vec<&str> = rows.iter().map(|r| r["file"].as_str().unwrap()).collect();
    // Mailman 2.1's enqueue keeps the time the entry was first queued (2019 here).
    assert_eq!(files, [BROKEN, second.as_str(), first.as_str()], "first in, first out");
    assert!(rows[0]["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", rows[0]);
    for (row, list, recipients) in [(&rows[2], &first_list, 3), (&rows[1], &second_list, 1)] {
        let size = std::fs::metadata(q.path().join("out").join(row["file"].as_str().unwrap())).unwrap().len();
        assert_eq!(row["size"], size);
        assert_eq!(row["recipients"], recipients);
        assert_eq!(row["list"].as_str(), Some(list.as_str()));
        assert_eq!(row["state"], "pck");
        assert!(row["sender"].as_str().is_some_and(|s| s.contains('@')), "{row}");
        assert!(row.get("error").is_none(), "{row}");
    }
    assert!(rows[0]["age_seconds"].as_f64().unwrap() > 1e9, "an entry named for 1970 is old");

    let (text, _) = runner(q.path(), &["list", "--limit", "2"]);
    assert!(text.contains(&second) && !text.contains(&first), "{text}");
    assert!(text.contains("unreadable: ") && text.ends_with("2 entries, 1 unreadable\n"), "{text}");
}

#[test]
fn qshape_counts_recipients_per_domain_and_age() {
    let (q, _) = queue();
    let (stdout, stderr) = runner(q.path(), &["qshape", "--json"]);
    let shape: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = shape["domains"].as_array().unwrap();
    let totals: Vec<(&str, u64)> =
        rows.iter().map(|r| (r["domain"].as_str().unwrap(), r["total"].as_u64().unwrap())).collect();
    assert_eq!(totals, [("T", 4), ("example.org", 2), ("other.net", 2)]);
    assert_eq!(shape["unreadable_entries"], 1);
    let last = shape["age_buckets"].as_array().unwrap().len() - 1;
    assert_eq!(rows[0]["age_histogram"][0], 3, "the Mailman 3 entry's recipients are in the youngest bucket");
    assert_eq!(rows[0]["age_histogram"][last], 1, "the 2019 entry's one recipient is in the oldest");
    assert_eq!(rows[2]["age_histogram"][last], 1, "at other.net");
    assert!(stderr.is_empty(), "--json reports unreadable entries in the object: {stderr}");

    let (stdout, _) = runner(q.path(), &["qshape", "--senders", "--top", "1", "--json"]);
    let shape: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = shape["domains"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the total and the top domain: {stdout}");
    assert_eq!(rows[0]["total"], 2, "one per entry, by sender");

    let (table, stderr) = runner(q.path(), &["qshape"]);
    assert!(table.lines().next().unwrap().starts_with("domain") && table.contains("example.org"), "{table}");
    assert!(stderr.contains("could not be read: 1 entries"), "{stderr}");
}
