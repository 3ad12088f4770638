//! CPU per Lease renewal spent on the heartbeat's disk counts, printed as a table: before
//! (a full count at every renewal, as the runner did) and after ([`Schedule`] spacing the
//! counts by the names they read), for a queue directory of empty `.pck` entries spread over
//! 16 slices, counted for slice 0. Renewals are simulated on a clock that advances one period
//! per renewal, so the run takes the counts' time, not the periods'.
//!
//! cargo bench -p mailqueue-runner --bench counters
//! Environment: MQ_BENCH_COUNTERS (comma-separated entry counts, default 1000,100000,1000000),
//! MQ_BENCH_RENEWALS (simulated renewals, default 200), MQ_BENCH_DIR (where to make the
//! directory; default the system's temporary directory).
use mailqueue_queue::Slice;
use mailqueue_runner::slice_counters::{Schedule, SliceScan, NAMES_PER_PERIOD};
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The renewal period of the default 15 s Lease.
const PERIOD: Duration = Duration::from_secs(5);

fn main() {
    let sizes: Vec<u64> = std::env::var("MQ_BENCH_COUNTERS")
        .unwrap_or_else(|_| "1000,100000,1000000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("MQ_BENCH_COUNTERS: comma-separated numbers"))
        .collect();
    let renewals: u32 = std::env::var("MQ_BENCH_RENEWALS").ok().map_or(200, |n| n.parse().expect("MQ_BENCH_RENEWALS"));
    let base = std::env::var_os("MQ_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    println!(
        "renewal period {PERIOD:?}, {renewals} renewals simulated, slice 0 of 16, NAMES_PER_PERIOD {NAMES_PER_PERIOD}"
    );
    println!();
    println!("| entries | before: CPU ms / renewal (a full count) | after: counts in {renewals} renewals | after: CPU ms / renewal | after: counts at most this old |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for entries in sizes {
        let root = tempfile::tempdir_in(&base).expect("a temporary directory");
        fill(&root.path().join("out"), entries);
        let scan = SliceScan {
            qfiles: root.path().to_owned(),
            queue: "out".into(),
            slice: Slice::new(0, 16).expect("slice 0 of 16"),
            stale_after: Duration::from_secs(1800),
        };
        // Before: every renewal counted. A few counts (the first warms the cache as a
        // runner's repeated counts find it warm), each one renewal's cost.
        let _ = scan.count(SystemTime::now()).expect("counting");
        let samples = if entries >= 1_000_000 { 3 } else { 10 };
        let cpu = cpu_of(|| {
            for _ in 0..samples {
                std::hint::black_box(scan.count(SystemTime::now()).expect("counting"));
            }
        });
        let before = cpu / samples;
        // After: the schedule decides which renewals count.
        let start = Instant::now();
        let mut schedule = Schedule::new(PERIOD);
        let mut counts = 0u32;
        let after = cpu_of(|| {
            for renewal in 0..renewals {
                let now = start + PERIOD * renewal;
                if schedule.due(now) {
                    let counted = scan.count(SystemTime::now()).expect("counting");
                    counts += 1;
                    schedule.counted(now, &counted);
                }
            }
        });
        let age = PERIOD * entries.div_ceil(NAMES_PER_PERIOD).max(1) as u32;
        println!("| {entries} | {:.2} | {counts} | {:.3} | {:?} |", ms(before), ms(after / renewals), age);
    }
}

/// `entries` empty `.pck` files with names as Mailman makes them (`<time>+<sha1 hex>`), their
/// digests spread evenly over the slices.
fn fill(dir: &Path, entries: u64) {
    std::fs::create_dir_all(dir).expect("creating the queue directory");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64();
    for i in 0..entries {
        let digest = format!("{:016x}{:024x}", splitmix(i), i);
        File::create(dir.join(format!("{:.6}+{digest}.pck", now - i as f64 / 1000.0))).expect("creating an entry");
    }
}

/// A well-spread 64-bit hash of `i` (SplitMix64's finaliser).
fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The CPU time this thread spent in `f` (user and system, from the scheduler's own
/// accounting: nanoseconds, not the clock ticks of `/proc/self/stat`).
fn cpu_of(f: impl FnOnce()) -> Duration {
    let cpu0 = thread_cpu();
    f();
    thread_cpu().saturating_sub(cpu0)
}

fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("reading /proc/thread-self/schedstat");
    let ns = stat.split_whitespace().next().and_then(|n| n.parse().ok()).expect("schedstat's first field");
    Duration::from_nanos(ns)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
