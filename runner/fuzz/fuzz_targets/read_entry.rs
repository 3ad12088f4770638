//! Any bytes: reading must not panic, and metadata that reads must write back into a
//! pickle that reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailqueue_pickle::{read, read_entry, write, Dialect};

fuzz_target!(|data: &[u8]| {
    if let Ok((_, len)) = read(data) {
        assert!(len <= data.len());
    }
    if let Ok(entry) = read_entry(data) {
        for dialect in [Dialect::Mailman2, Dialect::Mailman3] {
            for protocol in [0, 1] {
                if let Ok(bytes) = write(&entry.metadata, dialect, protocol) {
                    let (_, len) = read(&bytes).expect("written metadata reads back");
                    assert_eq!(len, bytes.len());
                }
            }
        }
    }
});
