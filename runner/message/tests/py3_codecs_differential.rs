//! Differential test against Python 3's own codecs (the Python Mailman 3 runs on): for
//! every codec this emulation carries besides UTF-8, every single byte decodes and every
//! BMP code point (surrogates aside, which Rust text cannot hold) encodes exactly as
//! py3_codecs_differential.py reports, strict errors included.

use mailqueue_message::py3::transfer::{self, Codec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mailman_python() -> String {
    let out = Command::new("bash")
        .arg(workspace_root().join("tests/tools/python-env.sh"))
        .output()
        .expect("run python-env.sh");
    assert!(out.status.success(), "python-env.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY3=").map(str::to_owned))
        .expect("python-env.sh printed no MQ_PY3")
}

/// What Python reported for one codec.
#[derive(Default)]
struct Reported {
    decode: BTreeMap<u8, Option<u32>>,
    encode: BTreeMap<u32, Vec<u8>>,
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn python_codecs(modules: &[&str]) -> BTreeMap<String, Reported> {
    let out = Command::new(mailman_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py3_codecs_differential.py"))
        .args(modules)
        .output()
        .expect("run py3_codecs_differential.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut all: BTreeMap<String, Reported> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8(out.stdout).expect("ASCII").lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            ["=", module] => current = module.to_owned(),
            ["D", byte, cp] => {
                let cp = (cp != "-").then(|| u32::from_str_radix(cp, 16).expect("hex"));
                all.entry(current.clone()).or_default().decode.insert(hex_bytes(byte)[0], cp);
            }
            ["E", cp, bytes] => {
                let cp = u32::from_str_radix(cp, 16).expect("hex");
                all.entry(current.clone()).or_default().encode.insert(cp, hex_bytes(bytes));
            }
            _ => panic!("unexpected line {line:?}"),
        }
    }
    all
}

#[test]
fn carried_codecs_match_python_3() {
    let modules: Vec<&str> = transfer::carried_modules().collect();
    assert!(modules.len() > 20, "only {modules:?}");
    let python = python_codecs(&modules);
    let mut differences = Vec::new();
    let (mut bytes_compared, mut code_points_compared) = (0, 0);
    for module in &modules {
        let codec: Codec = transfer::codec(module).expect("a carried codec resolves");
        let reported = &python[*module];
        assert_eq!(reported.decode.len(), 256, "{module}");
        for (&byte, &want) in &reported.decode {
            let got = transfer::decode(&[byte], codec).ok().map(|s| {
                let mut chars = s.chars();
                let c = chars.next().expect("one character");
                assert!(chars.next().is_none());
                u32::from(c)
            });
            bytes_compared += 1;
            if got != want {
                differences.push(format!("{module}: decode {byte:#04x}: ours {got:x?}, Python {want:x?}"));
            }
        }
        for c in (0..0x10000u32).filter_map(char::from_u32) {
            let got = transfer::encode(&c.to_string(), codec).ok();
            let want = reported.encode.get(&u32::from(c)).cloned();
            code_points_compared += 1;
            if got != want {
                differences.push(format!("{module}: encode U+{:04X}: ours {got:x?}, Python {want:x?}", u32::from(c)));
            }
        }
    }
    eprintln!("{} codecs: {bytes_compared} bytes and {code_points_compared} code points compared", modules.len());
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
}
