//! What a real node changes on the machine, and how it is put back: the Debian packages it
//! needs, the node IP on `lo`, the firewall rules that keep pod traffic on the machine, the
//! forwarding sysctl the bridge plugin turns on. One node at a time per machine (a lock file);
//! a node that died without cleaning up is cleaned up by the next one.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{io, Error, Result};

/// The node's name, as its client certificate says (`system:node:<name>`).
pub const NODE_NAME: &str = "mq-node";
/// The node's IP: a /32 on `lo` (kubelet refuses a loopback address). The API server and the
/// host-side test servers listen here, and pods reach them here.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// Pod IPs, on the bridge below; the bridge itself takes the first address.
pub const POD_CIDR: &str = "10.201.0.0/24";
pub const BRIDGE: &str = "mq-cni0";

/// Debian packages the node runs on, each with a file that shows it is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("containerd", "/usr/bin/containerd"),
    ("runc", "/usr/sbin/runc"),
    ("containernetworking-plugins", "/usr/lib/cni/bridge"),
    ("buildah", "/usr/bin/buildah"),
    ("nftables", "/usr/sbin/nft"),
    ("iptables", "/usr/sbin/iptables"),
    ("gcc", "/usr/bin/gcc"),
    // Only the test environment's own tests use it (a shell in a pod).
    ("busybox-static", "/bin/busybox"),
];

const RUN_DIR: &str = "/run/mailqueue-testenv";

/// The firewall rules a node adds (`iptables -I <chain> <rule>`), in insertion order: pods may
/// talk to each other and to the node IP, nothing else is forwarded, and nothing but lo and the
/// bridge may reach the node IP.
fn rules() -> Vec<(&'static str, String)> {
    let node = NODE_IP.to_string();
    vec![
        ("FORWARD", format!("-s {POD_CIDR} -j DROP")),
        ("FORWARD", format!("-d {POD_CIDR} -j DROP")),
        ("FORWARD", format!("-s {POD_CIDR} -d {POD_CIDR} -j ACCEPT")),
        ("INPUT", format!("-d {node}/32 -j DROP")),
        ("INPUT", format!("-i lo -d {node}/32 -j ACCEPT")),
        ("INPUT", format!("-i {BRIDGE} -d {node}/32 -j ACCEPT")),
    ]
}

/// A real node needs root (containerd, mounts, cgroups, network).
pub(crate) fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::Host("a real node (kubelet, containerd) needs root: run the e2e tests as root".into()))
    }
}

/// Installs the Debian packages that are missing (once per machine; later calls see the files).
pub fn install_packages() -> Result<()> {
    let missing: Vec<&str> =
        PACKAGES.iter().filter(|(_, file)| !Path::new(file).exists()).map(|(name, _)| *name).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let _lock = lock_file("packages.lock")?;
    eprintln!("testenv: installing Debian packages for the node: {}", missing.join(" "));
    sh("apt-get update -qq")?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut install, "apt-get install")
}

/// Holds the machine's one node slot; released when dropped (or when the process dies).
pub(crate) struct HostLock {
    _lock: Flock<File>,
}

/// Waits for the machine's node slot, then cleans up after a node that died without doing so.
pub(crate) fn take_node_slot() -> Result<HostLock> {
    let file = lock_file("node.lock")?;
    let stale = Path::new(RUN_DIR).join("teardown");
    if stale.exists() {
        eprintln!("testenv: cleaning up after a node that did not stop cleanly");
        sh(&format!("sh {}", stale.display()))?;
    }
    Ok(HostLock { _lock: file })
}

/// An exclusive lock on a file under the run directory, waited for.
fn lock_file(name: &str) -> Result<Flock<File>> {
    std::fs::create_dir_all(RUN_DIR).map_err(io("create directory", RUN_DIR))?;
    let path = Path::new(RUN_DIR).join(name);
    let file = File::create(&path).map_err(io("create lock file", &path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Io {
        action: "lock",
        path,
        source: errno.into(),
    })
}

/// Adds the node IP and the firewall rules; writes `<state>/teardown.sh`, which undoes them and
/// everything the node's processes leave (container processes, shims, mounts, network
/// namespaces, cgroups, nftables tables, the bridge, the sysctl) and is registered so that it runs
/// even if the test process is killed. Returns the script's path.
pub(crate) fn prepare(state: &Path, containerd_socket: &Path) -> Result<PathBuf> {
    let tables = capture("nft list tables")?;
    let forwarding = capture("sysctl -n net.ipv4.ip_forward")?.trim().to_owned();
    let script = state.join("teardown.sh");
    let text = teardown_script(state, containerd_socket, &tables, &forwarding);
    std::fs::write(&script, text).map_err(io("write", &script))?;
    // Recorded where the next node looks, in case this process dies before its watchdog runs it.
    let marker = Path::new(RUN_DIR).join("teardown");
    std::fs::write(&marker, format!("[ ! -f {s} ] || sh {s}\nrm -f {m}\n", s = script.display(), m = marker.display()))
        .map_err(io("write", &marker))?;
    crate::process::run_at_exit(&format!("sh {}", script.display()));

    let node = NODE_IP.to_string();
    let has_ip = capture("ip -4 -o addr show dev lo")?.contains(&format!(" {node}/32 "));
    if !has_ip {
        sh(&format!("ip addr add {node}/32 dev lo"))?;
    }
    for (chain, rule) in rules() {
        sh(&format!("iptables -I {chain} {rule}"))?;
    }
    Ok(script)
}

/// Runs the teardown script now (and forgets the at-exit copy).
pub(crate) fn teardown(script: &Path) {
    if let Err(e) = sh(&format!("sh {}", script.display())) {
        eprintln!("testenv: node teardown: {e}");
    }
    let _ = std::fs::remove_file(Path::new(RUN_DIR).join("teardown"));
}

fn teardown_script(state: &Path, socket: &Path, tables_before: &str, forwarding: &str) -> String {
    let state = state.display();
    let node = NODE_IP;
    let delete_rules: String = rules()
        .iter()
        .map(|(chain, rule)| format!("while iptables -D {chain} {rule} 2>/dev/null; do :; done\n"))
        .collect();
    let keep_tables: String = tables_before.lines().map(|l| format!("{l}\n")).collect();
    format!(
        r#"# Puts the machine back as the test node found it. Safe to run more than once.
S={state}
# Container processes first: they outlive their shims, and live in the pods' cgroups.
for i in 1 2 3 4 5; do
  procs=$(cat /sys/fs/cgroup/*/kubepods*/cgroup.procs /sys/fs/cgroup/*/kubepods*/*/cgroup.procs \
      /sys/fs/cgroup/*/kubepods*/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods*/*/*/*/cgroup.procs 2>/dev/null | sort -u)
  [ -z "$procs" ] && break
  kill -9 $procs 2>/dev/null
  sleep 0.2
done
pkill -9 -f "containerd-shim-runc-v2 .*-address {socket}" 2>/dev/null
# The node's own processes, should their process groups have escaped the watchdog.
pkill -9 -f -- "--config[= ]$S/" 2>/dev/null
# Mounts under the state directory (the kubelet's volumes, containerd's snapshots), deepest first,
# and the pods' network namespaces.
grep " $S/" /proc/self/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
for n in /run/netns/cni-*; do [ -e "$n" ] && {{ umount -l "$n" 2>/dev/null; rm -f "$n"; }}; done
for c in /sys/fs/cgroup/*/kubepods*; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {{}} \; 2>/dev/null; done
ip link del {bridge} 2>/dev/null
ip addr del {node}/32 dev lo 2>/dev/null
{delete_rules}# nftables tables made while the node ran (kube-proxy's, the kubelet's iptables-nft chains)
nft list tables 2>/dev/null | while read -r t; do
  grep -qxF "$t" <<'KEEP' || nft delete $t 2>/dev/null
{keep_tables}KEEP
done
sysctl -qw net.ipv4.ip_forward={forwarding}
find /var/log/containers -maxdepth 1 -lname "$S/*" -delete 2>/dev/null
rm -f /run/containerd/s/* 2>/dev/null; rmdir /run/containerd/s /run/containerd 2>/dev/null
rm -f {run_dir}/teardown
exit 0
"#,
        socket = socket.display(),
        bridge = BRIDGE,
        run_dir = RUN_DIR,
    )
}

/// Runs a shell command; fails with its output.
pub(crate) fn sh(command: &str) -> Result<()> {
    run(Command::new("sh").args(["-c", command]), command)
}

/// Runs a shell command and returns its stdout.
pub(crate) fn capture(command: &str) -> Result<String> {
    let output = Command::new("sh").args(["-c", command]).output().map_err(io("run", "sh"))?;
    if !output.status.success() {
        return Err(Error::Host(format!(
            "`{command}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command.output().map_err(|e| Error::Host(format!("could not run {what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Host(format!(
            "`{what}` failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
