//! The repository must pass on a clone with nothing beside it: no tracked file may name the
//! workplace's reference folder that sits next to the clone (its data lives in `tests/vectors*`).

use std::path::Path;
use std::process::Command;

#[test]
fn no_file_reads_outside_the_clone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Spelled in two parts so that this file does not match itself.
    let needle = format!("..{}shared", '/');
    let listed = Command::new("git").arg("-C").arg(&root).args(["ls-files", "-z"]).output();
    let files: Vec<String> = match listed {
        Ok(out) if out.status.success() => {
            String::from_utf8_lossy(&out.stdout).split('\0').filter(|f| !f.is_empty()).map(str::to_owned).collect()
        }
        // A source tarball without git: nothing to list, and nothing to check against.
        _ => return,
    };
    assert!(files.len() > 100, "git ls-files listed only {} files", files.len());
    let offenders: Vec<&String> = files
        .iter()
        .filter(|f| std::fs::read(root.join(f)).is_ok_and(|bytes| contains(&bytes, needle.as_bytes())))
        .collect();
    assert!(offenders.is_empty(), "these files name {needle}, which a clone does not have: {offenders:?}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
