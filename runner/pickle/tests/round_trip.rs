//! Random plain-data trees survive write then read, in both dialects and both
//! protocols: every kind the writer knows, long strings (the 1- and 4-byte length
//! forms), long lists and dicts (APPENDS/SETITEMS batches), surrogates, big integers.

mod common;

use common::{same, Rng};
use mailqueue_pickle::{read, write, DateTime, Dialect, PyStr, Value};

fn text(rng: &mut Rng) -> PyStr {
    let len = [0, 1, 5, 300][rng.below(4)];
    let pool = [0x41, 0x0A, 0x0D, 0x00, 0x1A, 0x5C, 0x27, 0xE9, 0xFF, 0x20AC, 0xDC80, 0xDCFF, 0xD800, 0x1F600];
    PyStr::from_code_points((0..len).map(|_| pool[rng.below(pool.len())])).unwrap_or_default()
}

fn bytes(rng: &mut Rng) -> Vec<u8> {
    let len = [0, 1, 5, 300][rng.below(4)];
    (0..len).map(|_| [b'a', b'\'', b'"', b'\\', b'\n', 0, 0x7F, 0x80, 0xFF][rng.below(9)]).collect()
}

/// A scalar usable as a dict key or set member; `n` makes it unique.
fn key(rng: &mut Rng, n: usize) -> Value {
    match rng.below(3) {
        0 => Value::Int(n as i64 * 7919 - 1_000_000),
        1 => Value::Bytes(format!("k{n}").into_bytes()),
        _ => Value::Str(PyStr::from(format!("k{n}\u{e9}"))),
    }
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth > 4 { 9 } else { 15 };
    match rng.below(kinds) {
        0 => Value::None,
        1 => Value::Bool(rng.below(2) == 1),
        2 => Value::Int([0, 255, 256, 65535, 65536, -1, i32::MAX as i64 + 1, i64::MIN, i64::MAX][rng.below(9)]),
        3 => Value::BigInt(num_bigint::BigInt::from(u64::MAX) * (rng.below(1000) as i64 + 2)),
        4 => Value::Float([0.0, -0.0, 1.5, 1e22, 1e-7, f64::INFINITY, f64::NAN, 1546304647.7135298][rng.below(8)]),
        5 => Value::Bytes(bytes(rng)),
        6 => Value::Str(text(rng)),
        7 => Value::DateTime(DateTime {
            year: 1 + rng.below(9999) as u16,
            month: 1 + rng.below(12) as u8,
            day: 1 + rng.below(28) as u8,
            hour: rng.below(24) as u8,
            minute: rng.below(60) as u8,
            second: rng.below(60) as u8,
            microsecond: rng.below(1_000_000) as u32,
        }),
        8 => Value::Global { module: "email.header".into(), name: "Header".into() },
        9 | 10 => {
            // Only the top level is long, so that trees stay small.
            let len = [0, 1, 2, if depth == 0 { 1500 } else { 3 }][rng.below(4)];
            let items = (0..len).map(|_| value(rng, depth + 1)).collect();
            if rng.below(2) == 0 {
                Value::List(items)
            } else {
                Value::Tuple(items)
            }
        }
        11 | 12 => {
            let len = [0, 1, 3, if depth == 0 { 1200 } else { 2 }][rng.below(4)];
            Value::Dict((0..len).map(|n| (key(rng, n), value(rng, depth + 1))).collect())
        }
        13 => Value::Set((0..rng.below(5)).map(|n| key(rng, n)).collect()),
        _ => Value::FrozenSet((0..rng.below(5)).map(|n| key(rng, n)).collect()),
    }
}

#[test]
fn random_values_round_trip() {
    let mut rng = Rng(0x5EED_CAFE);
    for case in 0..300 {
        let v = value(&mut rng, 0);
        for dialect in [Dialect::Mailman2, Dialect::Mailman3] {
            for protocol in [0, 1] {
                let bytes = write(&v, dialect, protocol).unwrap_or_else(|e| panic!("case {case}: {e}"));
                let (back, len) = read(&bytes).unwrap_or_else(|e| panic!("case {case} {dialect:?} {protocol}: {e}"));
                assert_eq!(len, bytes.len());
                assert!(same(&back, &v), "case {case} {dialect:?} {protocol}:\n{v:?}\n{back:?}");
            }
        }
    }
}
