//! What the integration tests share: the vectors, and the real Pythons.
#![allow(dead_code)] // each test binary uses its own part of this module

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
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
    manifest()
        .into_iter()
        .map(|v| (vectors_dir().join(v["path"].as_str().unwrap()), v))
        .collect()
}

/// The interpreters from `tests/tools/python-env.sh`: (`MQ_PY2`, `MQ_PY3`), or `None`
/// (with a loud message) when the script cannot provide them.
pub fn pythons() -> Option<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("tests/tools/python-env.sh"))
        .output();
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            eprintln!(
                "!!! SKIPPED: tests/tools/python-env.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Err(e) => {
            eprintln!("!!! SKIPPED: cannot run tests/tools/python-env.sh: {e}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let var = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(|v| v.trim().to_owned())
    };
    Some((var("MQ_PY2")?, var("MQ_PY3")?))
}
