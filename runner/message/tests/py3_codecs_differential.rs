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
    /// Single bytes (all of them), and the two-byte sequences that decode.
    decode: BTreeMap<Vec<u8>, Option<u32>>,
    encode: BTreeMap<u32, Vec<u8>>,
    /// `Q` and `S` lines, as printed.
    runs: Vec<String>,
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn python_codecs(args: &[String]) -> BTreeMap<String, Reported> {
    let out = Command::new(mailman_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py3_codecs_differential.py"))
        .args(args)
        .output()
        .expect("run py3_codecs_differential.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut all: BTreeMap<String, Reported> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8(out.stdout).expect("ASCII").lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            ["=", module] => current = module.to_owned(),
            ["D", bytes, cp] => {
                let cp = (cp != "-").then(|| u32::from_str_radix(cp, 16).expect("hex"));
                all.entry(current.clone()).or_default().decode.insert(hex_bytes(bytes), cp);
            }
            ["E", cp, bytes] => {
                let cp = u32::from_str_radix(cp, 16).expect("hex");
                all.entry(current.clone()).or_default().encode.insert(cp, hex_bytes(bytes));
            }
            ["Q" | "S", ..] => all.entry(current.clone()).or_default().runs.push(line.to_owned()),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    all
}

/// Our decoding of `bytes` when it is one character.
fn decode_one(bytes: &[u8], codec: Codec) -> Option<u32> {
    let s = transfer::decode(bytes, codec).ok()?;
    let mut chars = s.chars();
    let c = chars.next()?;
    assert!(chars.next().is_none(), "{bytes:x?} decodes to more than one character");
    Some(u32::from(c))
}

/// The four-byte gb18030 sequence numbered `n` (see the Python script).
fn quad(n: u32) -> [u8; 4] {
    let digit = |v: u32| u8::try_from(v).expect("small");
    [digit(n / 12600 + 0x81), digit(n / 1260 % 10 + 0x30), digit(n / 10 % 126 + 0x81), digit(n % 10 + 0x30)]
}

fn quad_number(b: &[u8]) -> Option<u32> {
    let ok = b.len() == 4
        && (0x81..=0xFE).contains(&b[0])
        && b[1].is_ascii_digit()
        && (0x81..=0xFE).contains(&b[2])
        && b[3].is_ascii_digit();
    ok.then(|| {
        let d = |i: usize, base: u8| u32::from(b[i] - base);
        ((d(0, 0x81) * 10 + d(1, 0x30)) * 126 + d(2, 0x81)) * 10 + d(3, 0x30)
    })
}

/// The Python script's runs: consecutive keys with consecutive values (or all `None`).
fn runs(tag: &str, keys: impl Iterator<Item = u32>, mut value: impl FnMut(u32) -> Option<u32>, out: &mut Vec<String>) {
    let mut run: Option<(u32, u32, Option<u32>)> = None;
    let line = |(start, length, first): (u32, u32, Option<u32>)| {
        format!("{tag} {start:x} {length:x} {}", first.map_or("-".to_owned(), |f| format!("{f:x}")))
    };
    for key in keys {
        let v = value(key);
        match &mut run {
            Some((_, length, first))
                if v.is_none() == first.is_none() && v.is_none_or(|v| Some(v) == first.map(|f| f + *length)) =>
            {
                *length += 1
            }
            _ => {
                out.extend(run.map(line));
                run = Some((key, 1, v));
            }
        }
    }
    out.extend(run.map(line));
}

#[test]
fn carried_codecs_match_python_3() {
    let modules: Vec<&str> = transfer::carried_modules().collect();
    assert!(modules.len() > 20, "only {modules:?}");
    let codecs: Vec<(&str, Codec)> =
        modules.iter().map(|m| (*m, transfer::codec(m).expect("a carried codec resolves"))).collect();
    let args: Vec<String> = codecs
        .iter()
        .map(|(m, c)| match c {
            Codec::MultiByte(mb) if mb.four_byte => format!("{m}:4"),
            Codec::MultiByte(_) => format!("{m}:2"),
            _ => (*m).to_owned(),
        })
        .collect();
    let python = python_codecs(&args);
    let mut differences = Vec::new();
    let (mut units_compared, mut code_points_compared) = (0u64, 0u64);
    for (module, codec) in &codecs {
        let reported = &python[*module];
        let multi = matches!(codec, Codec::MultiByte(_));
        let mut units: Vec<Vec<u8>> = (0..=0xFFu8).map(|b| vec![b]).collect();
        if multi {
            units.extend((0x80..=0xFFu8).flat_map(|lead| (0..=0xFFu8).map(move |trail| vec![lead, trail])));
        }
        for unit in &units {
            let got = decode_one(unit, *codec);
            let want = reported.decode.get(unit).copied().flatten();
            units_compared += 1;
            if got != want {
                differences.push(format!("{module}: decode {unit:02x?}: ours {got:x?}, Python {want:x?}"));
            }
        }
        let last = if multi { 0x110000 } else { 0x10000 };
        let mut supplementary_quads = BTreeMap::new();
        for c in (0..last).filter_map(char::from_u32) {
            let got = transfer::encode(&c.to_string(), *codec).ok();
            code_points_compared += 1;
            if let Some(n) = got.as_deref().filter(|_| u32::from(c) >= 0x10000).and_then(quad_number) {
                supplementary_quads.insert(u32::from(c), n);
                continue;
            }
            let want = reported.encode.get(&u32::from(c)).cloned();
            if got != want {
                differences.push(format!("{module}: encode U+{:04X}: ours {got:x?}, Python {want:x?}", u32::from(c)));
            }
        }
        let mut ours = Vec::new();
        if let Codec::MultiByte(mb) = codec {
            if mb.four_byte {
                runs("Q", 0..126 * 10 * 126 * 10, |n| decode_one(&quad(n), *codec), &mut ours);
                units_compared += 126 * 10 * 126 * 10;
            }
            runs("S", 0x10000..0x110000, |cp| supplementary_quads.get(&cp).copied(), &mut ours);
        }
        if ours != reported.runs {
            let only = |a: &[String], b: &[String]| a.iter().filter(|l| !b.contains(l)).cloned().collect::<Vec<_>>();
            differences.push(format!(
                "{module}: runs differ:\n  only ours {:?}\n  only Python's {:?}",
                only(&ours, &reported.runs),
                only(&reported.runs, &ours)
            ));
        }
    }
    eprintln!(
        "{} codecs: {units_compared} byte sequences and {code_points_compared} code points compared",
        codecs.len()
    );
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
}
