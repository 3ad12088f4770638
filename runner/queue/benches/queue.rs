//! Queue-layer benchmark, printed as a table: decode and flatten throughput over the
//! conformance vectors, then `status`, listing and dequeue over a directory of real
//! Mailman 3 entries (100,000 by default), side by side with Mailman 3's own
//! `Switchboard.get_files()` and `dequeue()` on the same directory.
//!
//! cargo bench -p mailqueue-queue --bench queue
//! Environment: MQ_BENCH_ENTRIES (default 100000), MQ_BENCH_DEQUEUE (default 2000).
use mailqueue_queue::entry::QueueEntry;
use mailqueue_queue::status::qfiles_status;
use mailqueue_queue::{Slice, Switchboard};
use serde_json::Value as Json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let entries: usize = env_number("MQ_BENCH_ENTRIES", 100_000);
    let dequeue: usize = env_number("MQ_BENCH_DEQUEUE", 2_000);
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let vectors_root = crate_dir.join("../../tests/vectors");
    let vectors: Vec<(PathBuf, Vec<u8>)> = ["mailman2", "mailman3"]
        .iter()
        .flat_map(|v| sorted_files(&vectors_root.join(v).join("out")))
        .map(|p| {
            let bytes = fs::read(&p).expect("reading a vector");
            (p, bytes)
        })
        .collect();

    let mut rows: Vec<(String, String, String)> = Vec::new();

    // Decode (both pickles) and decode + flatten, over every vector, repeated.
    let rounds = 200;
    let n = (vectors.len() * rounds) as f64;
    let decode = best_of(3, || {
        for _ in 0..rounds {
            for (_, bytes) in &vectors {
                std::hint::black_box(QueueEntry::from_bytes(bytes.clone()).expect("vector decodes"));
            }
        }
    });
    let flatten = best_of(3, || {
        for _ in 0..rounds {
            for (_, bytes) in &vectors {
                let entry = QueueEntry::from_bytes(bytes.clone()).expect("vector decodes");
                std::hint::black_box(entry.delivery_bytes().expect("vector flattens"));
            }
        }
    });
    rows.push((format!("decode, {} vectors x {rounds}", vectors.len()), rate(n, decode), "-".into()));
    rows.push(("decode + flatten (delivery bytes)".into(), rate(n, flatten), "-".into()));

    // A queue of real Mailman 3 entries: hard links to the vectors under new names.
    let root = tempfile::tempdir().expect("temp dir");
    let out_dir = root.path().join("out");
    let src_dir = root.path().join(".src");
    fs::create_dir_all(&out_dir).expect("out/");
    fs::create_dir_all(root.path().join("bad")).expect("bad/");
    fs::create_dir_all(&src_dir).expect(".src/");
    let sources: Vec<PathBuf> = vectors
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("mailman3"))
        .enumerate()
        .map(|(i, (_, bytes))| {
            let p = src_dir.join(format!("{i}.pck"));
            fs::write(&p, bytes).expect("writing a source entry");
            p
        })
        .collect();
    let start_time = 1_700_000_000.0;
    let mut digest_state: u64 = 0x2545_F491_4F6C_DD1D;
    let made = Instant::now();
    for i in 0..entries {
        let digest: String = (0..3).map(|_| format!("{:016x}", xorshift(&mut digest_state))).collect();
        let name = format!("{}+{}.pck", start_time + i as f64 * 0.01, &digest[..40]);
        let src = &sources[i % sources.len()];
        fs::hard_link(src, out_dir.join(&name))
            .or_else(|_| fs::copy(src, out_dir.join(&name)).map(|_| ()))
            .expect("creating an entry");
    }
    eprintln!("made {entries} entries in {:.1} s", made.elapsed().as_secs_f64());

    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let sb = Switchboard::open(root.path(), "out").expect("open out/");
    let status = best_of(3, || {
        std::hint::black_box(qfiles_status(root.path(), Some(4), now).expect("status"));
    });
    let list_all = best_of(3, || {
        std::hint::black_box(sb.files(Slice::all()).expect("listing"));
    });
    let slice = Slice::new(0, 4).expect("slice 0/4");
    let list_slice = best_of(3, || {
        std::hint::black_box(sb.files(slice).expect("listing"));
    });

    let mailman = mailman3_bench(&crate_dir, &out_dir, dequeue);
    if mailman.is_none() {
        eprintln!("MAILMAN 3 SIDE SKIPPED: tests/tools/python-env.sh or the Mailman 3 script failed");
    }
    let secs = |k: &str| mailman.as_ref().and_then(|m| m[k].as_f64());
    let ms_or_dash = |s: Option<f64>| s.map(|s| format!("{:.1} ms", s * 1e3)).unwrap_or_else(|| "n/a".into());
    rows.push((format!("status (4 slices), {entries} entries"), ms(status), "-".into()));
    rows.push((format!("listing, whole queue, {entries} entries"), ms(list_all), ms_or_dash(secs("files_all_s"))));
    rows.push(("listing, slice 0 of 4".into(), ms(list_slice), ms_or_dash(secs("files_slice_s"))));

    // Dequeue as Mailman's runners do (rename to .bak, unpickle), on entries Mailman
    // did not take, then the same plus flattening.
    let queued = sb.files(Slice::all()).expect("listing");
    let batch = |skip: usize| queued.iter().skip(skip).take(dequeue);
    let started = Instant::now();
    for name in batch(0) {
        let bak = sb.claim(name).expect("claim").expect("not raced");
        std::hint::black_box(sb.read(&bak).expect("read"));
    }
    let ours_dequeue = started.elapsed();
    let started = Instant::now();
    for name in batch(dequeue) {
        let bak = sb.claim(name).expect("claim").expect("not raced");
        std::hint::black_box(sb.read(&bak).expect("read").delivery_bytes().expect("flatten"));
    }
    let ours_flatten = started.elapsed();
    let mailman_dequeue =
        secs("dequeue_s").map(|s| format!("{:.0} entries/s", dequeue as f64 / s)).unwrap_or_else(|| "n/a".into());
    rows.push((
        format!("dequeue (claim + unpickle), {dequeue} entries"),
        rate(dequeue as f64, ours_dequeue),
        mailman_dequeue,
    ));
    rows.push(("dequeue + flatten".into(), rate(dequeue as f64, ours_flatten), "-".into()));

    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max("mailqueue-runner".len());
    println!("{:<w0$}  {:>w1$}  Mailman 3.3.10 Switchboard", "measure", "mailqueue-runner");
    for (what, ours, theirs) in rows {
        println!("{what:<w0$}  {ours:>w1$}  {theirs}");
    }
}

/// Mailman 3's numbers from `mailman3_queue.py`, or None (with a loud message) when the
/// Python environment cannot be made.
fn mailman3_bench(crate_dir: &Path, dir: &Path, dequeue: usize) -> Option<Json> {
    let env = Command::new("bash").arg(crate_dir.join("../../tests/tools/python-env.sh")).output().ok()?;
    let text = String::from_utf8_lossy(&env.stdout).into_owned();
    let py3 =
        text.lines().find_map(|l| l.strip_prefix("export MQ_PY3="))?.trim_matches(|c| c == '"' || c == '\'').to_owned();
    let out = Command::new(py3)
        .arg(crate_dir.join("benches/mailman3_queue.py"))
        .arg(dir)
        .arg(dequeue.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("MAILMAN 3 BENCH FAILED:\n{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn best_of(n: usize, mut f: impl FnMut()) -> Duration {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn rate(n: f64, took: Duration) -> String {
    format!("{:.0} entries/s", n / took.as_secs_f64())
}

fn ms(took: Duration) -> String {
    format!("{:.1} ms", took.as_secs_f64() * 1e3)
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        fs::read_dir(dir).expect("vectors dir").map(|e| e.expect("dir entry").path()).collect();
    files.sort();
    files
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
