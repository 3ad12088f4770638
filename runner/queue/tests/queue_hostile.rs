//! Claims and recovery against a hostile or unlucky filesystem: names swapped after the
//! listing for links, fifos and devices; entries over the size limit; `.bak` entries a
//! live runner still holds. (I/O errors at recovery are tested through the runner, run
//! as an unprivileged user: `runner/tests/deliver_hostile.rs`.)
use mailqueue_queue::inflight::{self, Probe};
use mailqueue_queue::switchboard::Switchboard;
use mailqueue_queue::{EntryName, Error, Ext, Slice};
use std::fs;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

fn vector() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/mailman3/out/1704068156.639687+20692f622980731a84de028636047a51b1e589b2.pck")
}

fn qfiles() -> (tempfile::TempDir, Switchboard) {
    let root = tempfile::tempdir().unwrap();
    for q in ["out", "bad"] {
        fs::create_dir(root.path().join(q)).unwrap();
    }
    let out = Switchboard::open(root.path(), "out").unwrap();
    (root, out)
}

fn name(n: u32, ext: Ext) -> EntryName {
    EntryName::parse(&format!("{n}.5+{:040x}.{}", n, ext.as_str())).unwrap()
}

/// Runs `f` on another thread; panics if it does not return within 5 s (a blocked open).
fn within_5s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("{what} blocked for 5 s"))
}

#[test]
fn a_name_swapped_after_the_listing_is_never_followed_nor_blocks() {
    let (root, out) = qfiles();
    // An entry outside the queue tree that a link must not leak into delivery.
    let secret = root.path().join("secret.pck");
    fs::copy(vector(), &secret).unwrap();

    let link = name(1, Ext::Pck);
    std::os::unix::fs::symlink(&secret, out.path_of(&link)).unwrap();
    let zero = name(2, Ext::Pck);
    std::os::unix::fs::symlink("/dev/zero", out.path_of(&zero)).unwrap();
    let fifo = name(3, Ext::Pck);
    nix::unistd::mkfifo(&out.path_of(&fifo), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let dev = name(4, Ext::Pck);
    nix::sys::stat::mknod(
        &out.path_of(&dev),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 5), // /dev/zero
    )
    .unwrap();

    for (n, kind) in [(link, "a symbolic link"), (zero, "a symbolic link"), (fifo, "a fifo"), (dev, "a device")] {
        let sb = out.clone();
        let pck = n.clone();
        let claimed = within_5s("claim", move || inflight::claim(&sb, &pck).map(|c| c.is_some()));
        match claimed {
            Err(Error::NotAFile { kind: k, .. }) => assert_eq!(k, kind, "{n}"),
            other => panic!("{n}: {other:?}"),
        }
        assert!(out.path_of(&n).symlink_metadata().is_ok(), "{n} left where it was");
        assert!(out.path_of(&n.with_ext(Ext::Bak)).symlink_metadata().is_err(), "{n} not claimed");
        // `show` and every queue operation read through the same open.
        let path = out.path_of(&n);
        let read = within_5s("read", move || mailqueue_queue::entry::QueueEntry::read(&path).map(|_| ()));
        assert!(matches!(read, Err(Error::NotAFile { .. })), "{n}: {read:?}");
        let path = out.path_of(&n);
        assert!(matches!(within_5s("probe", move || inflight::probe(&path).map(|_| ())), Err(Error::NotAFile { .. })));
    }
    assert!(secret.exists());
}

#[test]
fn an_entry_over_the_size_limit_is_claimed_but_never_read() {
    let (_root, out) = qfiles();
    let out = out.with_max_entry_size(100);
    let big = name(5, Ext::Pck);
    fs::copy(vector(), out.path_of(&big)).unwrap();
    let size = fs::metadata(out.path_of(&big)).unwrap().len();
    assert!(size > 100, "{size}");
    let claimed = inflight::claim(&out, &big).unwrap().expect("claimed");
    let err = claimed.read(out.max_entry_size()).unwrap_err();
    assert!(err.is_bad_entry(), "{err}");
    assert!(err.to_string().contains("more than the entry size limit of 100 bytes"), "{err}");
    // The claimed descriptor is read, not the path: a file put under the name after the
    // claim is not what is read.
    let ok = name(6, Ext::Pck);
    fs::copy(vector(), out.path_of(&ok)).unwrap();
    let out = out.with_max_entry_size(1 << 20);
    let claimed = inflight::claim(&out, &ok).unwrap().expect("claimed");
    fs::remove_file(out.path_of(claimed.bak())).unwrap();
    fs::write(out.path_of(claimed.bak()), b"not the claimed file").unwrap();
    let entry = claimed.read(out.max_entry_size()).expect("read through the descriptor");
    assert!(!entry.recipients().unwrap().is_empty());
}

#[test]
fn recovery_leaves_bak_entries_that_a_live_runner_holds() {
    let (_root, out) = qfiles();
    let held = name(7, Ext::Pck);
    fs::copy(vector(), out.path_of(&held)).unwrap();
    let claimed = inflight::claim(&out, &held).unwrap().expect("claimed");
    let crashed = name(8, Ext::Bak);
    fs::copy(vector(), out.path_of(&crashed)).unwrap();
    let done = out.recover(Slice::all()).unwrap();
    assert_eq!(done.in_flight, vec![claimed.bak().clone()]);
    assert_eq!(done.requeued, vec![crashed.with_ext(Ext::Pck)]);
    assert!(out.path_of(claimed.bak()).exists(), "the live runner's entry stays claimed");
    assert!(matches!(inflight::probe(&out.path_of(claimed.bak())).unwrap(), Probe::InFlight));
}

#[test]
fn take_message_builds_the_same_model_as_message_for_every_vector() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let mut checked = 0;
    for version in ["mailman2", "mailman3"] {
        for f in fs::read_dir(root.join(version).join("out")).unwrap() {
            let path = f.unwrap().path();
            let entry = mailqueue_queue::entry::QueueEntry::read(&path).unwrap();
            let mut taken = entry.clone();
            match (entry.message(), taken.take_message()) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", path.display()),
                (Err(a), Err(b)) => {
                    assert_eq!(a.to_string(), b.to_string());
                    assert_eq!(taken.message_value(), entry.message_value(), "left as it was");
                }
                (a, b) => panic!("{}: {a:?} vs {b:?}", path.display()),
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}
