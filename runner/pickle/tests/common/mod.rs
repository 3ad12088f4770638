//! What the integration tests share: the vectors, and the real Pythons.
#![allow(dead_code)] // each test binary uses its own part of this module

use mailqueue_pickle::Value;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// The manifest's `vectors` array.
pub fn manifest() -> Vec<Json> {
    let path = vectors_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: Json = serde_json::from_str(&text).unwrap();
    manifest["vectors"].as_array().unwrap().clone()
}

/// Every vector file with its manifest entry.
pub fn vector_files() -> Vec<(PathBuf, Json)> {
    manifest().into_iter().map(|v| (vectors_dir().join(v["path"].as_str().unwrap()), v)).collect()
}

/// The interpreters from `tests/tools/python-env.sh`: (`MQ_PY2`, `MQ_PY3`), or `None`
/// (with a loud message) when the script cannot provide them.
pub fn pythons() -> Option<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash").arg(root.join("tests/tools/python-env.sh")).output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            eprintln!("!!! SKIPPED: tests/tools/python-env.sh failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("!!! SKIPPED: cannot run tests/tools/python-env.sh: {e}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let var =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("export {name}="))).map(|v| v.trim().to_owned());
    Some((var("MQ_PY2")?, var("MQ_PY3")?))
}

/// xorshift64*: deterministic, so a failure reproduces from its seed and case number.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Equality that counts NaN equal to NaN (protocol 0 writes any NaN as `nan`); other
/// floats must come back bit for bit.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
        (Value::List(x), Value::List(y))
        | (Value::Tuple(x), Value::Tuple(y))
        | (Value::Set(x), Value::Set(y))
        | (Value::FrozenSet(x), Value::FrozenSet(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        _ => a == b,
    }
}
