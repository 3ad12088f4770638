//! Binaries of other workspace packages, for the node's image map: an operator test
//! cannot name the runner with `env!("CARGO_BIN_EXE_...")`, which only covers the
//! package's own binaries.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Builds `binary` of workspace package `package` (debug profile, as tests use) and
/// returns its path. Quick when it is up to date.
pub fn cargo_binary(package: &str, binary: &str) -> Result<PathBuf> {
    // Cargo sets CARGO for the tests it runs: the same toolchain builds the binary.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--package", package, "--bin", binary, "--message-format=json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::CargoBuild(format!("could not run cargo: {e}")))?;
    if !output.status.success() {
        return Err(Error::CargoBuild(format!(
            "cargo build of {package} failed ({}); its errors are above",
            output.status
        )));
    }
    // The compiler-artifact message of the binary names the executable.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == binary)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| Error::CargoBuild(format!("cargo built no executable named {binary} in {package}")))
}
