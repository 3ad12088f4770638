//! Differential test against Python 2.7's own codecs (the Python Mailman 2.1 runs on):
//! every single-byte codec this emulation carries decodes every byte (strictly, and
//! all of them at once with errors='ignore') and encodes every BMP code point exactly
//! as py2_codecs_differential.py reports, and every alias Python 2.7 has for it is
//! looked up to it.

use mailqueue_message::py2;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python27() -> String {
    let out = Command::new("bash")
        .arg(workspace_root().join("tests/tools/python-env.sh"))
        .output()
        .expect("run python-env.sh");
    assert!(out.status.success(), "python-env.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export MQ_PY2=").map(str::to_owned))
        .expect("python-env.sh printed no MQ_PY2")
}

/// What Python reported for one codec.
#[derive(Default)]
struct Reported {
    decode: BTreeMap<u8, Option<u32>>,
    ignore: Vec<u32>,
    encode: BTreeMap<u32, Vec<u8>>,
    aliases: Vec<String>,
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s, 16).expect("hex")
}

fn python_codecs(modules: &[&str]) -> BTreeMap<String, Reported> {
    let out = Command::new(python27())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py2_codecs_differential.py"))
        .args(modules)
        .output()
        .expect("run py2_codecs_differential.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut all: BTreeMap<String, Reported> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8(out.stdout).expect("ASCII").lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if let ["=", module] = fields[..] {
            current = module.to_owned();
            continue;
        }
        let entry = all.entry(current.clone()).or_default();
        match fields[..] {
            ["D", byte, cp] => {
                let byte = u8::try_from(hex(byte)).expect("a byte");
                entry.decode.insert(byte, (cp != "-").then(|| hex(cp)));
            }
            ["I", cps] => entry.ignore = cps.split(',').filter(|c| !c.is_empty()).map(hex).collect(),
            ["E", cp, bytes] => {
                let bytes = (0..bytes.len()).step_by(2).map(|i| u8::try_from(hex(&bytes[i..i + 2])).expect("byte"));
                entry.encode.insert(hex(cp), bytes.collect());
            }
            ["A", alias] => entry.aliases.push(alias.to_owned()),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    all
}

#[test]
fn carried_single_byte_codecs_match_python_27() {
    let modules: Vec<&str> = py2::carried_single_byte().collect();
    assert!(modules.len() > 20, "only {modules:?}");
    let python = python_codecs(&modules);
    let mut differences = Vec::new();
    let (mut bytes_compared, mut code_points_compared, mut aliases_compared) = (0, 0, 0);
    for module in &modules {
        let reported = &python[*module];
        assert_eq!(py2::single_byte_lookup(module), Some(*module), "a carried module looks up to itself");
        for alias in &reported.aliases {
            aliases_compared += 1;
            if py2::single_byte_lookup(alias) != Some(*module) {
                differences.push(format!("{module}: alias {alias:?} looks up to {:?}", py2::single_byte_lookup(alias)));
            }
        }
        for (&byte, &want) in &reported.decode {
            let got = py2::single_byte_decode(module, &[byte], false);
            bytes_compared += 1;
            if got != want.map(|cp| vec![cp]) {
                differences.push(format!("{module}: decode {byte:#04x}: ours {got:x?}, Python {want:x?}"));
            }
        }
        let every: Vec<u8> = (0..=0xFF).collect();
        let ignored = py2::single_byte_decode(module, &every, true);
        if ignored.as_ref() != Some(&reported.ignore) {
            differences.push(format!("{module}: decode with errors='ignore' differs: ours {ignored:x?}"));
        }
        for cp in 0..0x10000u32 {
            let got = py2::single_byte_encode(module, &[cp]);
            code_points_compared += 1;
            if got.as_ref() != reported.encode.get(&cp) {
                differences.push(format!(
                    "{module}: encode U+{cp:04X}: ours {got:x?}, Python {:x?}",
                    reported.encode.get(&cp)
                ));
            }
        }
    }
    eprintln!(
        "{} codecs: {bytes_compared} bytes, {code_points_compared} code points and {aliases_compared} aliases compared",
        modules.len()
    );
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
}
