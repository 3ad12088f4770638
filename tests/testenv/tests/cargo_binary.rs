//! Building another workspace package's binary for the node's image map.

use mailqueue_testenv::cargo_binary;

#[test]
fn builds_the_runner_and_returns_its_path() {
    let runner = cargo_binary("mailqueue-runner", "mailqueue-runner").expect("the runner builds");
    assert_eq!(runner.file_name().and_then(|n| n.to_str()), Some("mailqueue-runner"));
    let help = std::process::Command::new(&runner).arg("--help").output().expect("the runner runs");
    assert!(help.status.success(), "{}", String::from_utf8_lossy(&help.stderr));
}

#[test]
fn names_a_missing_binary() {
    let err = cargo_binary("mailqueue-runner", "no-such-binary").expect_err("no such binary");
    assert!(err.to_string().contains("could not build a workspace binary"), "{err}");
}
