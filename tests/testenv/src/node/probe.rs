//! Readiness probes, run the way kubelet would but from the host: HTTP GET and TCP
//! against the pod IP, exec as a local command with the container's environment.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::launch::{Launch, PathMap};
use crate::http_probe;

/// Probes run at most this far apart, whatever `periodSeconds` says, so tests do not
/// wait the 10 s default.
pub(crate) const MAX_PERIOD: Duration = Duration::from_secs(1);

/// Whether one run of the probe succeeds.
pub(crate) async fn passes(probe: &Probe, container: &Container, pod_ip: IpAddr, launch: &Launch, paths: &PathMap) -> bool {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(get) = &probe.http_get {
        let Some(port) = port_number(&get.port, container) else {
            return false;
        };
        let ip = get.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(pod_ip);
        let path = get.path.as_deref().unwrap_or("/");
        // HTTPS endpoints are only checked for an open port.
        if get.scheme.as_deref() == Some("HTTPS") {
            return http_probe::tcp_open(SocketAddr::new(ip, port), timeout).await;
        }
        return matches!(
            http_probe::get_status(SocketAddr::new(ip, port), path, timeout).await,
            Some(200..=399)
        );
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_number(&tcp.port, container) else {
            return false;
        };
        let ip = tcp.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(pod_ip);
        return http_probe::tcp_open(SocketAddr::new(ip, port), timeout).await;
    }
    if let Some(exec) = &probe.exec {
        let words: Vec<String> = exec.command.iter().flatten().map(|w| paths.rewrite(w)).collect();
        let Some((program, args)) = words.split_first() else {
            return false;
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        return matches!(
            tokio::time::timeout(timeout, command.status()).await,
            Ok(Ok(status)) if status.success()
        );
    }
    // A probe with no handler: the API server rejects those, so this is unreachable
    // in practice; treat it as passing like an absent probe.
    true
}

fn port_number(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(number) => u16::try_from(*number).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}
