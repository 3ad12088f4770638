//! Opening a queue file without trusting its name: a name listed as a regular file may
//! be something else by the time it is opened (an admin's `mv`, an attacker with write
//! access to the queue directory). Entries are opened with `O_NOFOLLOW | O_NONBLOCK`
//! (a symbolic link is refused, a fifo or device cannot block the open), checked with
//! `fstat` to be a regular file within a size limit, and read only through that
//! descriptor, never again by path.

use crate::{Error, Result};
use nix::libc;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest entry read by default: far above any message a Mailman site accepts
/// (Mailman's own `max_message_size` is in kilobytes; MTAs refuse tens of megabytes),
/// low enough that a file grown by mistake or malice cannot exhaust memory.
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 256 * 1024 * 1024;

/// An open queue file known to be a regular file.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub size: u64,
}

/// Opens `path` for reading as a queue file. `Ok(None)` when nothing is there;
/// [`Error::NotAFile`] for a symbolic link, fifo, socket, device or directory.
pub fn open_regular(path: &Path) -> Result<Option<Opened>> {
    let opened = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::NotAFile { path: path.to_owned(), kind: "a symbolic link" })
        }
        Err(e) => return Err(Error::Io { op: "opening", path: path.to_owned(), error: e }),
    };
    let meta = file.metadata().map_err(Error::io("reading the status of", path))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a fifo"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(Error::NotAFile { path: path.to_owned(), kind });
    }
    Ok(Some(Opened { file, size: meta.len() }))
}

/// Reads the whole file through its descriptor (from offset 0), refusing more than
/// `limit` bytes even if it grows while being read.
pub fn read_limited(file: &File, size: u64, limit: u64, path: &Path) -> Result<Vec<u8>> {
    let too_large = |size| Error::TooLarge { path: path.to_owned(), size, limit };
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let offset = bytes.len() as u64;
        let n = match file.read_at(&mut chunk, offset) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io { op: "reading", path: path.to_owned(), error: e }),
        };
        if n == 0 {
            return Ok(bytes);
        }
        if offset + n as u64 > limit {
            return Err(too_large(offset + n as u64));
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// Opens and reads a queue file: `Ok(None)` when it is gone.
pub fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    match open_regular(path)? {
        None => Ok(None),
        Some(o) => read_limited(&o.file, o.size, limit, path).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn refuses_links_fifos_devices_and_oversized_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let started = Instant::now();
        for (path, kind) in [(&link, "a symbolic link"), (&fifo, "a fifo"), (&dir.path().to_owned(), "a directory")] {
            match open_regular(path) {
                Err(Error::NotAFile { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(2), "an open blocked");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 100]).unwrap();
        assert!(matches!(read_regular(&big, 99), Err(Error::TooLarge { size: 100, limit: 99, .. })));
        assert_eq!(read_regular(&big, 100).unwrap().unwrap().len(), 100);
        assert!(read_regular(&dir.path().join("missing"), 1).unwrap().is_none());
    }
}
