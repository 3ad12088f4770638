//! Turning a container of a pod spec into a local command line: which binary runs
//! for the image, with which arguments, environment and working directory, and how
//! container paths become host paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use kube::{Api, Client};

use super::NodeError;

/// A container as the node will run it.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
}

/// Container mount paths and the host directories standing in for them.
#[derive(Clone, Debug, Default)]
pub(crate) struct PathMap {
    /// Longest mount path first, so `/data/queue` wins over `/data`.
    mounts: Vec<(String, PathBuf)>,
}

impl PathMap {
    pub(crate) fn new(mut mounts: Vec<(String, PathBuf)>) -> Self {
        for (mount, _) in &mut mounts {
            while mount.len() > 1 && mount.ends_with('/') {
                mount.pop();
            }
        }
        mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        Self { mounts }
    }

    /// Adds one more container path (a file, such as the termination message path).
    pub(crate) fn add(&mut self, container_path: &str, host: PathBuf) {
        let mut mounts = std::mem::take(&mut self.mounts);
        mounts.push((container_path.to_owned(), host));
        *self = Self::new(mounts);
    }

    /// Replaces each mount path that appears in `text` as a whole path (or the start
    /// of one) by its host directory: in `--queue=/var/spool/mq/in` with `/var/spool/mq`
    /// mounted, the value becomes `--queue=<host dir>/in`; `/var/spool/mqx` and
    /// `/x/var/spool/mq` are left alone.
    pub(crate) fn rewrite(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut previous: Option<char> = None;
        'scan: while let Some(c) = rest.chars().next() {
            if previous.is_none_or(|p| !is_path_char(p) && p != '/') {
                for (mount, host) in &self.mounts {
                    if let Some(after) = rest.strip_prefix(mount.as_str()) {
                        if after.chars().next().is_none_or(|n| !is_path_char(n)) {
                            out.push_str(&host.to_string_lossy());
                            previous = mount.chars().last();
                            rest = after;
                            continue 'scan;
                        }
                    }
                }
            }
            out.push(c);
            previous = Some(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Everything needed to resolve a container's command and environment.
pub(crate) struct LaunchContext<'a> {
    pub client: &'a Client,
    pub pod: &'a Pod,
    pub pod_ip: &'a str,
    pub image_map: &'a BTreeMap<String, PathBuf>,
    pub paths: &'a PathMap,
}

impl LaunchContext<'_> {
    pub(crate) async fn launch(&self, container: &Container) -> Result<Launch, NodeError> {
        let env = self.environment(container).await?;
        let expand = |s: &String| self.paths.rewrite(&expand_vars(s, &env));
        let command: Vec<String> = container.command.iter().flatten().map(expand).collect();
        let args: Vec<String> = container.args.iter().flatten().map(expand).collect();
        let (program, mut argv) = self.program(container, command)?;
        argv.extend(args);
        let env = env
            .into_iter()
            .map(|(name, value)| (name, self.paths.rewrite(&value)))
            .collect();
        Ok(Launch {
            program,
            args: argv,
            env,
            working_dir: container
                .working_dir
                .as_deref()
                .map(|dir| PathBuf::from(self.paths.rewrite(dir))),
        })
    }

    /// The binary to run and the arguments before the container's `args`.
    ///
    /// - No `command`: the image's binary (from the image map), like an entrypoint.
    /// - `command` whose first word has the same file name as the image's binary
    ///   (`/usr/local/bin/mailqueue-runner` for a map entry `.../mailqueue-runner`):
    ///   that word is replaced by the mapped binary.
    /// - Any other `command`: run as written on the host (`sh -c ...`, `true`).
    fn program(&self, container: &Container, command: Vec<String>) -> Result<(PathBuf, Vec<String>), NodeError> {
        let image = container.image.as_deref().unwrap_or_default();
        let mapped = lookup_image(self.image_map, image);
        let mut words = command.into_iter();
        match (words.next(), mapped) {
            (None, Some(binary)) => Ok((binary.to_owned(), Vec::new())),
            (None, None) => Err(NodeError::UnknownImage {
                image: image.to_owned(),
            }),
            (Some(first), Some(binary)) if Path::new(&first).file_name() == binary.file_name() => {
                Ok((binary.to_owned(), words.collect()))
            }
            (Some(first), _) => Ok((PathBuf::from(first), words.collect())),
        }
    }

    /// The container's variables in order, as kubelet resolves them: `envFrom`
    /// first, then `env`, where later names win and `$(NAME)` refers to earlier ones.
    async fn environment(&self, container: &Container) -> Result<Vec<(String, String)>, NodeError> {
        let mut env: Vec<(String, String)> = Vec::new();
        let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
            env.retain(|(n, _)| *n != name);
            env.push((name, value));
        };
        for source in container.env_from.iter().flatten() {
            let prefix = source.prefix.clone().unwrap_or_default();
            if let Some(reference) = &source.config_map_ref {
                let optional = reference.optional.unwrap_or(false);
                if let Some(data) = self.config_map(&reference.name, optional).await? {
                    for (key, value) in data {
                        set(&mut env, format!("{prefix}{key}"), value);
                    }
                }
            }
            if let Some(reference) = &source.secret_ref {
                let optional = reference.optional.unwrap_or(false);
                if let Some(data) = self.secret(&reference.name, optional).await? {
                    for (key, value) in data {
                        set(&mut env, format!("{prefix}{key}"), value);
                    }
                }
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(value) = self.env_value(var, &env).await? {
                set(&mut env, var.name.clone(), value);
            }
        }
        Ok(env)
    }

    async fn env_value(&self, var: &EnvVar, earlier: &[(String, String)]) -> Result<Option<String>, NodeError> {
        let Some(from) = &var.value_from else {
            return Ok(Some(expand_vars(var.value.as_deref().unwrap_or_default(), earlier)));
        };
        if let Some(field) = &from.field_ref {
            return self.field(&field.field_path).map(Some);
        }
        if let Some(key) = &from.config_map_key_ref {
            let optional = key.optional.unwrap_or(false);
            let data = self.config_map(&key.name, optional).await?;
            return lookup_key(data, &key.name, &key.key, optional);
        }
        if let Some(key) = &from.secret_key_ref {
            let optional = key.optional.unwrap_or(false);
            let data = self.secret(&key.name, optional).await?;
            return lookup_key(data, &key.name, &key.key, optional);
        }
        Err(NodeError::Unsupported {
            what: format!("the source of environment variable {}", var.name),
        })
    }

    /// A downward-API field of the pod.
    pub(crate) fn field(&self, path: &str) -> Result<String, NodeError> {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.as_ref();
        let from_map = |map: &Option<BTreeMap<String, String>>, key: &str| {
            map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()
        };
        let value = match path {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
            "status.podIP" | "status.podIPs" => self.pod_ip.to_owned(),
            "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_owned(),
            other => {
                let key = |prefix: &str| {
                    other
                        .strip_prefix(prefix)
                        .and_then(|rest| rest.strip_suffix("']"))
                        .map(str::to_owned)
                };
                if let Some(label) = key("metadata.labels['") {
                    from_map(&meta.labels, &label)
                } else if let Some(annotation) = key("metadata.annotations['") {
                    from_map(&meta.annotations, &annotation)
                } else {
                    return Err(NodeError::Unsupported {
                        what: format!("the field reference {other}"),
                    });
                }
            }
        };
        Ok(value)
    }

    pub(crate) async fn config_map(
        &self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, NodeError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace());
        match api.get_opt(name).await? {
            Some(map) => {
                let mut data = map.data.unwrap_or_default();
                for (key, bytes) in map.binary_data.unwrap_or_default() {
                    data.insert(key, String::from_utf8_lossy(&bytes.0).into_owned());
                }
                Ok(Some(data))
            }
            None if optional => Ok(None),
            None => Err(self.missing("ConfigMap", name)),
        }
    }

    pub(crate) async fn secret(&self, name: &str, optional: bool) -> Result<Option<BTreeMap<String, String>>, NodeError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace());
        match api.get_opt(name).await? {
            Some(secret) => {
                let mut data: BTreeMap<String, String> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                data.extend(secret.string_data.unwrap_or_default());
                Ok(Some(data))
            }
            None if optional => Ok(None),
            None => Err(self.missing("Secret", name)),
        }
    }

    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    fn missing(&self, kind: &'static str, name: &str) -> NodeError {
        NodeError::Missing {
            kind,
            namespace: self.namespace(),
            name: name.to_owned(),
        }
    }
}

fn lookup_key(
    data: Option<BTreeMap<String, String>>,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, NodeError> {
    match data.and_then(|mut d| d.remove(key)) {
        Some(value) => Ok(Some(value)),
        None if optional => Ok(None),
        None => Err(NodeError::MissingKey {
            name: name.to_owned(),
            key: key.to_owned(),
        }),
    }
}

/// The binary an image name maps to: the exact name first, then the name without
/// its tag or digest (`mailqueue-runner:dev` finds `mailqueue-runner`).
pub(crate) fn lookup_image<'a>(map: &'a BTreeMap<String, PathBuf>, image: &str) -> Option<&'a Path> {
    if let Some(path) = map.get(image) {
        return Some(path);
    }
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let without_tag = match without_digest[last_slash..].rfind(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    };
    map.get(without_tag).map(PathBuf::as_path)
}

/// Kubernetes' `$(NAME)` expansion: defined names are replaced, undefined ones kept
/// as written, and `$$` stands for a literal `$`.
pub(crate) fn expand_vars(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(close) = after.strip_prefix('(').and_then(|inner| inner.find(')')) {
            let name = &after[1..=close];
            match env.iter().rev().find(|(n, _)| n == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &after[close + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_whole_mount_paths_only() {
        let map = PathMap::new(vec![
            ("/var/spool/mq/".to_owned(), PathBuf::from("/tmp/claim-a")),
            ("/var/spool/mq/in".to_owned(), PathBuf::from("/tmp/claim-b")),
        ]);
        assert_eq!(map.rewrite("--queue=/var/spool/mq/out"), "--queue=/tmp/claim-a/out");
        assert_eq!(map.rewrite("/var/spool/mq/in/x"), "/tmp/claim-b/x");
        assert_eq!(map.rewrite("/var/spool/mq"), "/tmp/claim-a");
        assert_eq!(map.rewrite("/var/spool/mqx /x/var/spool/mq"), "/var/spool/mqx /x/var/spool/mq");
        assert_eq!(map.rewrite("a:/var/spool/mq:b"), "a:/tmp/claim-a:b");
    }

    #[test]
    fn expands_defined_variables() {
        let env = vec![("A".to_owned(), "1".to_owned())];
        assert_eq!(expand_vars("$(A)-$(B)-$$(A)-$", &env), "1-$(B)-$(A)-$");
    }

    #[test]
    fn finds_images_without_tag_or_digest() {
        let map = BTreeMap::from([("reg:5000/mq/runner".to_owned(), PathBuf::from("/bin/runner"))]);
        assert_eq!(lookup_image(&map, "reg:5000/mq/runner:1.0"), Some(Path::new("/bin/runner")));
        assert_eq!(lookup_image(&map, "reg:5000/mq/runner@sha256:ab"), Some(Path::new("/bin/runner")));
        assert_eq!(lookup_image(&map, "reg:5000/mq/other"), None);
    }
}
