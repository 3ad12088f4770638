//! Permanent failures, recorded for bounce processing: one JSON object per line in a
//! file an admin (or a script feeding Mailman's bounce handling) can read.
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Serialize)]
pub struct Bounce<'a> {
    pub time_unix: f64,
    pub queue: &'a str,
    pub entry: &'a str,
    pub list: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub envelope_sender: &'a str,
    pub recipient: &'a str,
    pub code: u16,
    /// The refused command: RCPT (this recipient), or MAIL/DATA/message (the whole
    /// message was refused, which Mailman 2.1 does not count as a bounce).
    pub stage: &'a str,
    pub reply: &'a str,
}

pub struct BounceLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl BounceLog {
    pub fn open(path: &Path) -> std::io::Result<BounceLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(BounceLog { path: path.to_owned(), file: Mutex::new(file) })
    }

    /// Appends one record; a failure is logged (the log line of the bounce remains).
    pub fn record(&self, bounce: &Bounce<'_>) {
        let Ok(mut line) = serde_json::to_vec(bounce) else {
            return;
        };
        line.push(b'\n');
        let written = match self.file.lock() {
            Ok(mut f) => f.write_all(&line),
            Err(_) => Err(std::io::Error::other("bounce log lock poisoned")),
        };
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append to the bounce log");
        }
    }
}
