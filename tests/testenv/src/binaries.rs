//! Where the control-plane binaries are: `MQ_K8S_BIN`, or whatever `tests/build-k8s.sh`
//! builds (it returns at once when its cache is warm).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The directory holding etcd, kube-apiserver, kube-controller-manager, kubectl and helm.
#[derive(Clone, Debug)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// `MQ_K8S_BIN` if set, else the output of the build script, run once per process.
    pub fn locate() -> Result<Self> {
        static FOUND: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
        let found = FOUND.get_or_init(|| match std::env::var_os("MQ_K8S_BIN") {
            Some(dir) => Ok(PathBuf::from(dir)),
            None => run_build_script(),
        });
        let dir = found.clone().map_err(Error::Binaries)?;
        let binaries = Self { dir };
        for tool in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
            "kubelet",
            "kube-proxy",
            "helm",
        ] {
            let path = binaries.path(tool);
            if !path.is_file() {
                return Err(Error::Binaries(format!("{} is missing", path.display())));
            }
        }
        Ok(binaries)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one tool, e.g. `path("kubectl")`.
    pub fn path(&self, tool: &str) -> PathBuf {
        self.dir.join(tool)
    }
}

fn run_build_script() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build-k8s.sh");
    // Progress lines go straight to the terminal: a cold build takes many minutes.
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", script.display(), output.status));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("MQ_K8S_BIN="))
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} printed no MQ_K8S_BIN= line", script.display()))
}
