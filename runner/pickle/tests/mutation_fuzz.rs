//! A bounded, seeded fuzz run for CI: thousands of mutations of the real queue entries
//! (bit flips, truncations, splices, corrupted length fields, stray opcodes) must never
//! make the reader panic; whatever still reads must write back and read again to the
//! same value. The open-ended run is the cargo-fuzz target in `runner/fuzz`.

mod common;

use common::{same, Rng};
use mailqueue_pickle::{read, read_entry, write, Dialect, Value, WriteError};

const OPCODES: &[u8] = b"(.012FIJKLMNPQRSTUVXabcdeghijlopqrstu})]G\x80\x81\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96";
const LENGTHS: &[[u8; 4]] = &[[0xff; 4], [0xff, 0xff, 0xff, 0x7f], [0, 0, 0, 0x80], [0, 0, 0, 0], [0x10, 0, 0, 0]];

fn mutate(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(d.len());
        match rng.below(7) {
            0 => {
                if let Some(b) = d.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => d.truncate(at),
            2 => {
                let from = rng.below(other.len());
                let len = rng.below(64).min(other.len() - from.min(other.len()));
                d.splice(at..at, other[from..from + len].iter().copied());
            }
            3 => {
                let pattern = LENGTHS[rng.below(LENGTHS.len())];
                for (i, b) in pattern.iter().enumerate() {
                    if let Some(slot) = d.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            4 => d.insert(at.min(d.len()), OPCODES[rng.below(OPCODES.len())]),
            5 => {
                let end = (at + rng.below(32)).min(d.len());
                let chunk: Vec<u8> = d[at.min(end)..end].to_vec();
                d.splice(at..at, chunk);
            }
            _ => {
                let end = (at + rng.below(16)).min(d.len());
                d.drain(at.min(end)..end);
            }
        }
    }
    d
}

fn check_round_trip(metadata: &Value, case: usize) {
    for dialect in [Dialect::Mailman2, Dialect::Mailman3] {
        for protocol in [0, 1] {
            match write(metadata, dialect, protocol) {
                Ok(bytes) => {
                    let (again, len) =
                        read(&bytes).unwrap_or_else(|e| panic!("case {case}: rewritten pickle unreadable: {e}"));
                    assert_eq!(len, bytes.len(), "case {case}");
                    assert!(same(&again, metadata), "case {case} {dialect:?} {protocol}:\n{metadata:?}\n{again:?}");
                }
                Err(WriteError::Unsupported { .. }) => {}
                Err(e) => panic!("case {case}: {e}"),
            }
        }
    }
}

#[test]
fn mutated_entries_never_panic() {
    let files: Vec<Vec<u8>> = common::vector_files().iter().map(|(p, _)| std::fs::read(p).unwrap()).collect();
    let seed = std::env::var("MQ_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0x9E37_79B9_7F4A_7C15);
    let mut rng = Rng(seed);
    // MQ_FUZZ_CASES runs longer locally; CI keeps the default, a second or two.
    let cases = std::env::var("MQ_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(4000);
    let mut read_ok = 0;
    for case in 0..cases {
        let data = &files[rng.below(files.len())];
        let other = &files[rng.below(files.len())];
        let mutated = mutate(&mut rng, data, other);
        if let Ok((_, len)) = read(&mutated) {
            assert!(len <= mutated.len());
        }
        if let Ok(entry) = read_entry(&mutated) {
            read_ok += 1;
            check_round_trip(&entry.metadata, case);
        }
    }
    // Some mutations keep the entry readable: the round trip was exercised.
    assert!(read_ok > cases / 40, "only {read_ok} of {cases} mutated entries were readable");
}
