//! Host directories standing in for a pod's volumes.
//!
//! - `persistentVolumeClaim`: `<volume_root>/<namespace>/<claim>`, the same directory
//!   for every pod that mounts the claim, kept after the pods are gone.
//! - `emptyDir` and anything not listed here: a fresh directory per pod.
//! - `configMap`, `secret`, `downwardAPI`, `projected`: a per-pod directory with the
//!   files written once at pod start (no later updates); a projected service-account
//!   token is a real token from the TokenRequest API.
//! - `hostPath`: the path itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, ServiceAccount, ServiceAccountTokenProjection, Volume,
};
use kube::api::PostParams;
use kube::Api;

use super::launch::{LaunchContext, PathMap};
use super::NodeError;

/// Makes the directory of each volume of the pod; returns them by volume name.
pub(crate) async fn prepare(
    ctx: &LaunchContext<'_>,
    volume_root: &Path,
    pod_dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, NodeError> {
    let namespace = ctx.pod.metadata.namespace.clone().unwrap_or_default();
    let mut dirs = BTreeMap::new();
    for volume in ctx.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let private = pod_dir.join("volumes").join(&volume.name);
        let dir = if let Some(claim) = &volume.persistent_volume_claim {
            volume_root.join(&namespace).join(&claim.claim_name)
        } else if let Some(host) = &volume.host_path {
            PathBuf::from(&host.path)
        } else {
            private
        };
        make_dir(&dir)?;
        write_files(ctx, volume, &dir).await?;
        dirs.insert(volume.name.clone(), dir);
    }
    Ok(dirs)
}

/// The files of an API access volume (the projected service-account token and the
/// cluster CA that admission adds to every pod that automounts its token).
pub(crate) struct ApiCredentials {
    pub token: PathBuf,
    pub ca_cert: PathBuf,
}

/// The credentials in `volume`, if it is an API access volume written to `dir`.
pub(crate) fn api_credentials(volume: &Volume, dir: &Path) -> Option<ApiCredentials> {
    let sources = volume.projected.as_ref()?.sources.as_ref()?;
    let token = sources.iter().find_map(|s| s.service_account_token.as_ref())?;
    let ca_cert = sources
        .iter()
        .filter_map(|s| s.config_map.as_ref()?.items.as_ref())
        .flatten()
        .find(|item| item.key == "ca.crt")?;
    Some(ApiCredentials {
        token: dir.join(&token.path),
        ca_cert: dir.join(&ca_cert.path),
    })
}

/// The container's mount paths and their host directories (`subPath` included).
pub(crate) fn path_map(container: &Container, dirs: &BTreeMap<String, PathBuf>) -> Result<PathMap, NodeError> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let dir = dirs.get(&mount.name).ok_or_else(|| NodeError::Unsupported {
            what: format!("mount of undeclared volume {}", mount.name),
        })?;
        let host = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
            Some(sub) => {
                let host = dir.join(sub);
                make_dir(&host)?;
                host
            }
            None => dir.clone(),
        };
        mounts.push((mount.mount_path.clone(), host));
    }
    Ok(PathMap::new(mounts))
}

async fn write_files(ctx: &LaunchContext<'_>, volume: &Volume, dir: &Path) -> Result<(), NodeError> {
    if let Some(source) = &volume.config_map {
        let data = ctx.config_map(&source.name, source.optional.unwrap_or(false)).await?;
        write_items(dir, data.unwrap_or_default(), source.items.as_deref())?;
    }
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let data = ctx.secret(&name, source.optional.unwrap_or(false)).await?;
        write_items(dir, data.unwrap_or_default(), source.items.as_deref())?;
    }
    if let Some(source) = &volume.downward_api {
        write_downward(ctx, dir, source.items.as_deref().unwrap_or_default())?;
    }
    for projection in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
        if let Some(source) = &projection.config_map {
            let data = ctx.config_map(&source.name, source.optional.unwrap_or(false)).await?;
            write_items(dir, data.unwrap_or_default(), source.items.as_deref())?;
        }
        if let Some(source) = &projection.secret {
            let data = ctx.secret(&source.name, source.optional.unwrap_or(false)).await?;
            write_items(dir, data.unwrap_or_default(), source.items.as_deref())?;
        }
        if let Some(source) = &projection.downward_api {
            write_downward(ctx, dir, source.items.as_deref().unwrap_or_default())?;
        }
        if let Some(token) = &projection.service_account_token {
            write_token(ctx, dir, token).await?;
        }
    }
    Ok(())
}

fn write_items(dir: &Path, data: BTreeMap<String, String>, items: Option<&[KeyToPath]>) -> Result<(), NodeError> {
    match items {
        Some(items) => {
            for item in items {
                if let Some(value) = data.get(&item.key) {
                    write_file(&dir.join(&item.path), value)?;
                }
            }
        }
        None => {
            for (key, value) in &data {
                write_file(&dir.join(key), value)?;
            }
        }
    }
    Ok(())
}

fn write_downward(ctx: &LaunchContext<'_>, dir: &Path, items: &[DownwardAPIVolumeFile]) -> Result<(), NodeError> {
    for item in items {
        if let Some(field) = &item.field_ref {
            write_file(&dir.join(&item.path), &ctx.field(&field.field_path)?)?;
        }
    }
    Ok(())
}

async fn write_token(
    ctx: &LaunchContext<'_>,
    dir: &Path,
    projection: &ServiceAccountTokenProjection,
) -> Result<(), NodeError> {
    let namespace = ctx.pod.metadata.namespace.clone().unwrap_or_default();
    let account = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_owned());
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: projection.audience.clone().map(|a| vec![a]),
            expiration_seconds: projection.expiration_seconds,
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued: TokenRequest = accounts
        .create_subresource("token", &account, &PostParams::default(), &request)
        .await?;
    let token = issued.status.and_then(|s| s.token).unwrap_or_default();
    write_file(&dir.join(&projection.path), &token)
}

fn write_file(path: &Path, contents: &str) -> Result<(), NodeError> {
    if let Some(parent) = path.parent() {
        make_dir(parent)?;
    }
    std::fs::write(path, contents).map_err(|source| NodeError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

fn make_dir(dir: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(dir).map_err(|source| NodeError::Io {
        action: "create directory",
        path: dir.to_owned(),
        source,
    })
}
