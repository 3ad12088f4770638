//! The committed CRD must be exactly what the Rust types generate, so YAML and code never drift.

use std::path::Path;

#[test]
fn committed_crd_matches_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds").join(mailqueue_operator::CRD_FILE);
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let generated = mailqueue_operator::crd_yaml().expect("the CRD renders as YAML");
    assert!(
        committed == generated,
        "{} is out of date: run `cargo run -p mailqueue-operator --bin crdgen > crds/{}`",
        path.display(),
        mailqueue_operator::CRD_FILE
    );
}
