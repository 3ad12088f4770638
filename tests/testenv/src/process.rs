//! Child processes of the test environment: each in its own process group, its output
//! in a log file, stopped with SIGTERM then SIGKILL, and never outliving the test
//! process (a watchdog kills what is left when the test process ends, however it ends).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::error::{io, Result};

/// A long-running helper process (etcd, kube-apiserver, ...).
pub(crate) struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    pub(crate) fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Self> {
        // Appended to: a restarted process keeps the log of its earlier runs.
        let out =
            std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io("create log file", log))?;
        let err = out.try_clone().map_err(io("open log file", log))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(io("start", program))?;
        watchdog::adopt_group(child.id());
        Ok(Self { name: name.to_owned(), child, log: log.to_owned() })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status, if the process has ended.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM to the process group, SIGKILL once `grace` has passed.
    pub(crate) fn stop(&mut self, grace: Duration) {
        let group = Pid::from_raw(self.child.id() as i32);
        if self.exited().is_none() {
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Children of the leader may linger even when it has exited.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        watchdog::release_group(self.child.id());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Registers a directory the watchdog removes when the test process ends, for the
/// environments kept in statics, whose destructors never run.
pub(crate) fn remove_at_exit(dir: &Path) {
    watchdog::send(&format!("dir {}", dir.display()));
}

/// Registers a shell command the watchdog runs when the test process ends, after killing the
/// process groups and before removing the directories (a real node's teardown).
pub(crate) fn run_at_exit(command: &str) {
    watchdog::send(&format!("run {command}"));
}

mod watchdog {
    //! A shell that reads `group <pgid>`, `release <pgid>`, `run <command>` and `dir <path>`
    //! lines on its stdin; when the pipe closes (the test process ended, even by SIGKILL) it
    //! kills the groups, runs the commands and removes the directories still registered.

    use super::*;

    const SCRIPT: &str = r#"
groups=" "
dirs=""
runs=""
while IFS=' ' read -r op arg; do
  case "$op" in
    group) groups="$groups$arg " ;;
    release) groups=$(printf '%s' "$groups" | sed "s/ $arg / /") ;;
    run) runs="$runs
$arg" ;;
    dir) dirs="$dirs
$arg" ;;
  esac
done
for g in $groups; do kill -9 "-$g" 2>/dev/null; done
printf '%s\n' "$runs" | while IFS= read -r c; do [ -n "$c" ] && sh -c "$c" </dev/null; done
printf '%s\n' "$dirs" | while IFS= read -r d; do [ -n "$d" ] && rm -rf -- "$d"; done
"#;

    fn pipe() -> &'static Mutex<Option<ChildStdin>> {
        static PIPE: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();
        PIPE.get_or_init(|| {
            // Its own process group, so a Ctrl-C aimed at the tests does not kill it
            // before it has done its job.
            let stdin = Command::new("/bin/sh")
                .args(["-c", SCRIPT])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .ok()
                .and_then(|mut child| child.stdin.take());
            Mutex::new(stdin)
        })
    }

    pub(super) fn send(line: &str) {
        if let Ok(mut guard) = pipe().lock() {
            if let Some(stdin) = guard.as_mut() {
                let _ = writeln!(stdin, "{line}");
            }
        }
    }

    pub(crate) fn adopt_group(pgid: u32) {
        send(&format!("group {pgid}"));
    }

    pub(crate) fn release_group(pgid: u32) {
        send(&format!("release {pgid}"));
    }
}
