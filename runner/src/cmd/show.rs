//! `mailqueue-runner show`: one queue entry, as JSON, as the raw delivery bytes, or as
//! a readable dump (metadata, then the message) like Mailman's `show_qfiles`.
use anyhow::Context;
use base64::Engine;
use mailqueue_message::Version;
use mailqueue_pickle::Value;
use mailqueue_queue::entry::QueueEntry;
use mailqueue_queue::EntryName;
use serde_json::{json, Map, Value as Json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object: name parts, format, metadata, recipients, message_b64.
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Write only the message bytes Mailman's delivery would send.
    #[arg(long)]
    pub raw: bool,
    /// The entry file (`.pck`, `.bak` or `.psv`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = &args.file;
    let entry = QueueEntry::read(path)?;
    let in_file = || format!("{}", path.display());
    let mut stdout = std::io::stdout().lock();
    if args.raw {
        let bytes = entry.delivery_bytes().with_context(in_file)?;
        stdout.write_all(&bytes)?;
    } else if args.json {
        let out = json_view(path, &entry).with_context(in_file)?;
        writeln!(stdout, "{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        stdout.write_all(dump(path, &entry).as_bytes())?;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn json_view(path: &Path, entry: &QueueEntry) -> anyhow::Result<Json> {
    let name = file_name(path).and_then(|n| EntryName::parse(&n).ok());
    let mut recipients = entry.recipients()?;
    recipients.sort();
    let message = entry.delivery_bytes()?;
    Ok(json!({
        "path": path.display().to_string(),
        "filebase": name.as_ref().map(EntryName::base),
        "extension": name.as_ref().map(|n| n.ext().as_str()),
        "timestamp": name.as_ref().map(EntryName::timestamp),
        "digest": name.as_ref().map(EntryName::digest),
        "format": format_name(entry.version()),
        "message_pickle_length": entry.message_pickle().len(),
        "message_pickle_protocol": entry.message_protocol(),
        "metadata_pickle_protocol": entry.metadata_protocol(),
        "metadata": to_json(entry.metadata()),
        "recipients": recipients,
        "envelope_sender": entry.envelope_sender()?,
        "message_b64": base64::engine::general_purpose::STANDARD.encode(message),
    }))
}

fn dump(path: &Path, entry: &QueueEntry) -> String {
    let mut out = format!("==================== {}\n", path.display());
    out += &format!(
        "format: {} (message pickle protocol {}, {} bytes; metadata pickle protocol {})\n",
        format_name(entry.version()),
        entry.message_protocol(),
        entry.message_pickle().len(),
        entry.metadata_protocol()
    );
    if let Some(name) = file_name(path).and_then(|n| EntryName::parse(&n).ok()) {
        out += &format!("time: {}  digest: {}\n", name.time_text(), name.digest());
    }
    out += "-------------------- metadata\n";
    if let Value::Dict(items) = entry.metadata() {
        for (k, v) in items {
            out +=
                &format!("{}: {}\n", k.as_text().unwrap_or_else(|| repr(k, entry.version())), repr(v, entry.version()));
        }
    }
    match entry.delivery_bytes() {
        Ok(bytes) => {
            out += "-------------------- message (as delivered)\n";
            out += &String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
        }
        Err(err) => out += &format!("-------------------- message cannot be flattened: {err}\n"),
    }
    out
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

fn format_name(version: Version) -> &'static str {
    match version {
        Version::Mailman2 => "mailman2",
        Version::Mailman3 => "mailman3",
    }
}

/// Metadata as JSON: byte strings as latin-1 text, sets sorted, datetimes in ISO
/// 8601, tuples as arrays.
fn to_json(v: &Value) -> Json {
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => json!(i),
        Value::BigInt(i) => i.to_string().parse::<serde_json::Number>().map(Json::Number).unwrap_or(Json::Null),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        Value::Bytes(_) | Value::Str(_) => Json::String(v.as_text().unwrap_or_default()),
        Value::List(items) | Value::Tuple(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Set(items) | Value::FrozenSet(items) => {
            let mut items: Vec<Json> = items.iter().map(to_json).collect();
            items.sort_by_cached_key(|j| match j {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            });
            Json::Array(items)
        }
        Value::Dict(items) => Json::Object(
            items
                .iter()
                .map(|(k, v)| (k.as_text().unwrap_or_else(|| to_json(k).to_string()), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::DateTime(d) => Json::String(d.to_string()),
        Value::Global { module, name } => Json::String(format!("{module}.{name}")),
        Value::Object(o) => json!({
            "class": o.class_path(),
            "args": o.args.iter().map(to_json).collect::<Vec<_>>(),
            "state": o.state.as_ref().map(to_json),
        }),
    }
}

/// A rendering like Python's `repr` in the owning version (2.1: `'str'`, `u'text'`;
/// Mailman 3: `b'bytes'`, `'text'`), for the readable dump.
fn repr(v: &Value, version: Version) -> String {
    let join = |items: &[Value]| items.iter().map(|i| repr(i, version)).collect::<Vec<_>>().join(", ");
    let (bytes_prefix, text_prefix) = match version {
        Version::Mailman2 => ("", "u"),
        Version::Mailman3 => ("b", ""),
    };
    match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Float(f) => mailqueue_pickle::write::python_float_repr(*f),
        Value::Bytes(b) => format!("{bytes_prefix}{}", quote(b.iter().map(|&c| char::from(c)), true)),
        Value::Str(s) => format!("{text_prefix}{}", quote(s.to_string_lossy().chars(), false)),
        Value::List(items) => format!("[{}]", join(items)),
        Value::Tuple(items) if items.len() == 1 => format!("({},)", join(items)),
        Value::Tuple(items) => format!("({})", join(items)),
        Value::Set(items) if items.is_empty() => "set()".into(),
        Value::Set(items) => format!("{{{}}}", join(items)),
        Value::FrozenSet(items) => format!("frozenset({{{}}})", join(items)),
        Value::Dict(items) => format!(
            "{{{}}}",
            items
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(k, version), repr(v, version)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::DateTime(d) => format!("datetime.datetime({d})"),
        Value::Global { module, name } => format!("<class '{module}.{name}'>"),
        Value::Object(o) => format!("<{} object>", o.class_path()),
    }
}

/// Single-quoted with Python's escapes; `bytes` escapes everything outside ASCII.
fn quote(chars: impl Iterator<Item = char>, bytes: bool) -> String {
    let mut out = String::from("'");
    for c in chars {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f || (bytes && (c as u32) > 0x7f) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
