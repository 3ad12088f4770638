//! One pass over a queue directory, deciding for each file whether it is an entry and,
//! if not, why it is ignored. Uses only names and the directory's file types (no
//! `stat`, no reads), so it stays fast on 100,000 entries.

use crate::name::{EntryName, Ext};
use crate::Error;
use std::fs::{self, FileType};
use std::path::Path;

/// Why a file in a queue directory is not a queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ignored {
    /// `.tmp`: being written by an enqueue; it becomes `.pck` by rename.
    BeingWritten,
    /// A name that is not `<time>+<digest>.<ext>` (Mailman itself would fail on it).
    ForeignName,
    Subdirectory,
    /// Never followed: a link could point into another filesystem or another queue.
    Symlink,
    /// A socket, fifo or device.
    NotAFile,
}

impl Ignored {
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::BeingWritten => "being written (.tmp)",
            Ignored::ForeignName => "not a queue entry name",
            Ignored::Subdirectory => "subdirectory",
            Ignored::Symlink => "symbolic link",
            Ignored::NotAFile => "not a regular file",
        }
    }
}

/// What one directory entry is.
#[derive(Debug, Clone)]
pub enum Found {
    Entry(EntryName),
    Ignored { file_name: String, reason: Ignored },
}

/// Classifies one file from its name and type.
pub fn classify(file_name: &str, file_type: FileType) -> Found {
    let ignored = |reason| Found::Ignored { file_name: file_name.to_owned(), reason };
    if file_type.is_symlink() {
        return ignored(Ignored::Symlink);
    }
    if file_type.is_dir() {
        return ignored(Ignored::Subdirectory);
    }
    if !file_type.is_file() {
        return ignored(Ignored::NotAFile);
    }
    // Mailman writes `<base>.pck.tmp`; a bare `<base>.tmp` is the same state.
    if file_name.ends_with(".tmp") {
        return ignored(Ignored::BeingWritten);
    }
    match EntryName::parse(file_name) {
        Ok(name) if name.ext() == Ext::Tmp => ignored(Ignored::BeingWritten),
        Ok(name) => Found::Entry(name),
        Err(_) => ignored(Ignored::ForeignName),
    }
}

/// Calls `visit` for every file of `dir`, in directory order (the order Mailman's
/// `os.listdir` sees, which its FIFO tie-break depends on).
pub fn scan(dir: &Path, mut visit: impl FnMut(Found)) -> crate::Result<()> {
    let read = fs::read_dir(dir).map_err(Error::io("listing", dir))?;
    for dirent in read {
        let dirent = dirent.map_err(Error::io("listing", dir))?;
        let file_type = dirent.file_type().map_err(Error::io("reading the type of", dirent.path()))?;
        let os_name = dirent.file_name();
        match os_name.to_str() {
            Some(name) => visit(classify(name, file_type)),
            None => visit(Found::Ignored {
                file_name: os_name.to_string_lossy().into_owned(),
                reason: Ignored::ForeignName,
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_every_kind_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = "0123456789abcdef0123456789abcdef01234567";
        for name in [
            format!("1.5+{d}.pck"),
            format!("1.5+{d}.bak"),
            format!("1.5+{d}.psv"),
            format!("1.5+{d}.pck.tmp"),
            format!("2.5+{d}.tmp"),
            "notes.txt".to_owned(),
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::create_dir(dir.path().join(format!("3.5+{d}.pck"))).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join(format!("4.5+{d}.pck"))).unwrap();
        let mut entries = Vec::new();
        let mut ignored = Vec::new();
        scan(dir.path(), |f| match f {
            Found::Entry(n) => entries.push(n.to_string()),
            Found::Ignored { file_name, reason } => ignored.push((reason, file_name)),
        })
        .unwrap();
        entries.sort();
        ignored.sort();
        assert_eq!(entries, vec![format!("1.5+{d}.bak"), format!("1.5+{d}.pck"), format!("1.5+{d}.psv")]);
        let reasons: Vec<Ignored> = ignored.iter().map(|(r, _)| *r).collect();
        assert_eq!(
            reasons,
            vec![
                Ignored::BeingWritten,
                Ignored::BeingWritten,
                Ignored::ForeignName,
                Ignored::Subdirectory,
                Ignored::Symlink
            ]
        );
    }
}
