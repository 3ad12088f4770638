//! Container images without a registry: built with buildah (vfs storage, chroot isolation, never
//! pulling) and saved as OCI archives that the node's containerd imports. Cached outside the clone
//! under `${MQ_CACHE:-~/.cache/mailqueue-operator}/images`, keyed by what went into them.
//!
//! - the pause image: `pause.c` from the pinned Kubernetes module, compiled static, `FROM scratch`;
//! - the base the project's `Dockerfile` runs on (`gcr.io/distroless/cc-debian12:nonroot`),
//!   assembled under that name from the Debian packages distroless ships (libc6, libgcc-s1,
//!   ca-certificates, tzdata, netbase, base-files) and its `nonroot` user (65532);
//! - the product image: the `Dockerfile`'s runtime stage, unchanged but for its one
//!   `COPY --from=builder`, which takes the host-built binaries (debug info stripped) instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{io, Error, Result};
use crate::host::capture;

/// The name the Dockerfile's runtime stage starts from.
pub const BASE_IMAGE: &str = "gcr.io/distroless/cc-debian12:nonroot";
/// What distroless cc-debian12 is made of.
const BASE_PACKAGES: &[&str] = &["libc6", "libgcc-s1", "ca-certificates", "tzdata", "netbase", "base-files"];
/// The user of the Dockerfile's runtime stage, and the owner test queue files get.
pub const NONROOT_UID: u32 = 65532;

/// An image ready to import: the OCI archive and the reference inside it.
#[derive(Clone, Debug)]
pub struct ImageArchive {
    pub path: PathBuf,
    pub reference: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("MQ_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/mailqueue-operator")
    });
    base.join("images")
}

/// buildah with its storage in the cache (vfs: works on any filesystem, no overlay mounts left).
struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    fn new(cache: &Path) -> Self {
        Self { root: cache.join("buildah/root"), runroot: cache.join("buildah/run") }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("buildah");
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "vfs"])
            // No registry is reachable: never look one up for a short name.
            .env("BUILDAH_ISOLATION", "chroot")
            .env("REGISTRY_AUTH_FILE", "/dev/null");
        command
    }

    fn run(&self, args: &[&str], what: &str) -> Result<String> {
        let output =
            self.command().args(args).output().map_err(|e| Error::Image(format!("could not run buildah: {e}")))?;
        if !output.status.success() {
            return Err(Error::Image(format!(
                "{what}: buildah {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn has(&self, reference: &str) -> bool {
        self.command().args(["inspect", "--type", "image", reference]).output().is_ok_and(|o| o.status.success())
    }

    /// `buildah build` of `context` with `containerfile`, then saved as an OCI archive.
    fn build(&self, containerfile: &Path, context: &Path, reference: &str, archive: &Path) -> Result<()> {
        let file = containerfile.to_str().ok_or_else(|| Error::Image("non-UTF-8 path".into()))?;
        let ctx = context.to_str().ok_or_else(|| Error::Image("non-UTF-8 path".into()))?;
        self.run(
            &["build", "--pull=never", "--isolation", "chroot", "--layers=false", "-f", file, "-t", reference, ctx],
            reference,
        )?;
        self.save(reference, archive)
    }

    fn save(&self, reference: &str, archive: &Path) -> Result<()> {
        let partial = archive.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let target = format!("oci-archive:{}:{reference}", partial.display());
        self.run(&["push", "--quiet", reference, &target], reference)?;
        std::fs::rename(&partial, archive).map_err(io("rename", &partial))
    }
}

/// Everything image-related holds this lock: one buildah at a time per machine.
fn lock(cache: &Path) -> Result<Flock<std::fs::File>> {
    std::fs::create_dir_all(cache).map_err(io("create directory", cache))?;
    let path = cache.join(".images.lock");
    let file = std::fs::File::create(&path).map_err(io("create lock file", &path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Io {
        action: "lock",
        path,
        source: errno.into(),
    })
}

fn pinned_kubernetes() -> Result<String> {
    let go_mod = repo_root().join("tests/k8s/kubernetes/go.mod");
    let text = std::fs::read_to_string(&go_mod).map_err(io("read", &go_mod))?;
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("require ").unwrap_or(l).strip_prefix("k8s.io/kubernetes ").map(|v| v.trim().to_owned())
        })
        .ok_or_else(|| Error::Image(format!("no k8s.io/kubernetes requirement in {}", go_mod.display())))
}

/// The pause image, compiled from the pinned Kubernetes module's `build/pause/linux/pause.c`.
pub fn pause() -> Result<ImageArchive> {
    crate::host::install_packages()?;
    let cache = cache_dir();
    let version = pinned_kubernetes()?;
    let archive = cache.join(format!("pause-{version}.oci.tar"));
    let reference = crate::node::PAUSE_IMAGE.to_owned();
    if archive.is_file() {
        return Ok(ImageArchive { path: archive, reference });
    }
    let _lock = lock(&cache)?;
    if archive.is_file() {
        return Ok(ImageArchive { path: archive, reference });
    }
    let modules = repo_root().join("tests/k8s/kubernetes");
    let modcache = capture("GOTOOLCHAIN=local go env GOMODCACHE")?.trim().to_owned();
    let source = Path::new(&modcache).join(format!("k8s.io/kubernetes@{version}/build/pause/linux/pause.c"));
    if !source.is_file() {
        crate::host::sh(&format!(
            "cd {} && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download k8s.io/kubernetes",
            modules.display()
        ))?;
    }
    let context = tempfile::tempdir().map_err(io("create a directory in", std::env::temp_dir()))?;
    let binary = context.path().join("pause");
    crate::host::sh(&format!(
        "gcc -Os -static -DVERSION=mq -o {bin} {src} && strip {bin}",
        bin = binary.display(),
        src = source.display()
    ))?;
    let files: [(&Path, &str); 1] = [(&binary, "/pause")];
    scratch_image(&cache, &reference, &files, &[], "65535:65535", &["/pause"], &archive)?;
    Ok(ImageArchive { path: archive, reference })
}

/// A busybox image (Debian's static busybox, every applet linked in `/bin`), user `nobody`.
pub fn busybox() -> Result<ImageArchive> {
    let files: [(&Path, &str); 1] = [(Path::new("/bin/busybox"), "/bin/busybox")];
    static_binaries(
        "localhost/busybox:mq",
        &files,
        &["/bin/busybox", "--install", "-s", "/bin"],
        "65534:65534",
        &["/bin/sh"],
    )
}

/// An image `FROM scratch` holding static binaries (`(host file, path in the image)`), with one
/// `RUN` of them if `run` is not empty, for tests that need a shell or a tool (kubectl) in a pod.
/// Cached by the binaries' digests.
pub fn static_binaries(
    reference: &str,
    files: &[(&Path, &str)],
    run: &[&str],
    user: &str,
    entrypoint: &[&str],
) -> Result<ImageArchive> {
    crate::host::install_packages()?;
    let cache = cache_dir();
    let listed: Vec<String> = files.iter().map(|(f, _)| f.display().to_string()).collect();
    let sums = capture(&format!("sha256sum {}", listed.join(" ")))?;
    let key = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let dests: Vec<&str> = files.iter().map(|(_, d)| *d).collect();
        (sums.split_whitespace().step_by(2).collect::<Vec<_>>(), dests, run, user, entrypoint, reference)
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    };
    let archive = cache.join(format!("static-{key}.oci.tar"));
    if !archive.is_file() {
        let _lock = lock(&cache)?;
        if !archive.is_file() {
            scratch_image(&cache, reference, files, run, user, entrypoint, &archive)?;
        }
    }
    Ok(ImageArchive { path: archive, reference: reference.to_owned() })
}

fn scratch_image(
    cache: &Path,
    reference: &str,
    files: &[(&Path, &str)],
    run: &[&str],
    user: &str,
    entrypoint: &[&str],
    archive: &Path,
) -> Result<()> {
    let context = tempfile::tempdir().map_err(io("create a directory in", std::env::temp_dir()))?;
    let mut text = String::from("FROM scratch\n");
    for (i, (file, dest)) in files.iter().enumerate() {
        let name = format!("file{i}");
        std::fs::copy(file, context.path().join(&name)).map_err(io("copy", *file))?;
        text.push_str(&format!("COPY {name} {dest}\n"));
    }
    let exec_form = |args: &[&str]| args.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
    if !run.is_empty() {
        text.push_str(&format!("RUN [{}]\n", exec_form(run)));
    }
    text.push_str(&format!("USER {user}\nENTRYPOINT [{}]\n", exec_form(entrypoint)));
    let containerfile = context.path().join("Containerfile");
    std::fs::write(&containerfile, text).map_err(io("write", &containerfile))?;
    let buildah = Buildah::new(cache);
    buildah.build(&containerfile, context.path(), reference, archive)?;
    let _ = buildah.run(&["rmi", "--force", reference], reference);
    Ok(())
}

/// Makes sure buildah's storage has the Dockerfile's base image, made from the Debian packages
/// this machine's package lists name; returns their digest (the key of images built on it).
pub fn base() -> Result<String> {
    crate::host::install_packages()?;
    let cache = cache_dir();
    let _lock = lock(&cache)?;
    let buildah = Buildah::new(&cache);
    let debs = cache.join("base-debs");
    std::fs::create_dir_all(&debs).map_err(io("create directory", &debs))?;
    let download = format!("cd {} && apt-get download -qq {}", debs.display(), BASE_PACKAGES.join(" "));
    // The package lists may be missing on a new machine.
    if crate::host::sh(&download).is_err() {
        crate::host::sh("apt-get update -qq")?;
        crate::host::sh(&download)?;
    }
    let mut files: Vec<String> = std::fs::read_dir(&debs)
        .map_err(io("list", &debs))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".deb") && BASE_PACKAGES.iter().any(|p| n.starts_with(&format!("{p}_"))))
        .collect();
    files.sort();
    let key = capture(&format!("printf '%s\\n' {} | sha256sum", files.join(" ")))?[..16].to_owned();
    let marker = cache.join(format!("base-{key}.built"));
    if marker.is_file() && buildah.has(BASE_IMAGE) {
        return Ok(key);
    }
    let context = tempfile::tempdir().map_err(io("create a directory in", std::env::temp_dir()))?;
    let rootfs = context.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(io("create directory", &rootfs))?;
    for file in &files {
        crate::host::sh(&format!("dpkg-deb -x {} {}", debs.join(file).display(), rootfs.display()))?;
    }
    // What distroless adds beside the packages: the CA bundle (a package script makes it), the
    // users, a writable /tmp, the nonroot home.
    crate::host::sh(&format!(
        "cd {r} && mkdir -p etc/ssl/certs tmp home/nonroot && chmod 1777 tmp && \
         cat usr/share/ca-certificates/mozilla/*.crt > etc/ssl/certs/ca-certificates.crt && \
         printf 'root:x:0:0:root:/root:/sbin/nologin\\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\\n' > etc/passwd && \
         printf 'root:x:0:\\nnobody:x:65534:\\nnonroot:x:65532:\\n' > etc/group && \
         chown 65532:65532 home/nonroot",
        r = rootfs.display()
    ))?;
    let containerfile = context.path().join("Containerfile");
    let text = "FROM scratch\nCOPY rootfs/ /\nUSER 65532:65532\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";
    std::fs::write(&containerfile, text).map_err(io("write", &containerfile))?;
    let file = containerfile.to_str().ok_or_else(|| Error::Image("non-UTF-8 path".into()))?;
    let ctx = context.path().to_str().ok_or_else(|| Error::Image("non-UTF-8 path".into()))?;
    buildah.run(&["build", "--pull=never", "--isolation", "chroot", "-f", file, "-t", BASE_IMAGE, ctx], BASE_IMAGE)?;
    std::fs::write(&marker, b"").map_err(io("write", &marker))?;
    Ok(key)
}

/// The Dockerfile's runtime stage, its `COPY --from=builder` taking files from the build context.
pub fn runtime_stage(dockerfile: &str) -> Result<String> {
    let start = dockerfile
        .lines()
        .position(|l| l.starts_with("FROM ") && l.ends_with(" AS runtime"))
        .ok_or_else(|| Error::Image("the Dockerfile has no `FROM ... AS runtime` stage".into()))?;
    let mut copies = 0;
    let stage: Vec<String> = dockerfile
        .lines()
        .skip(start)
        .map(|line| match line.strip_prefix("COPY --from=builder ") {
            Some(rest) => {
                copies += 1;
                let mut parts: Vec<&str> = rest.split_whitespace().collect();
                let dest = parts.pop().unwrap_or("/");
                let names: Vec<&str> = parts.iter().map(|p| p.rsplit('/').next().unwrap_or(p)).collect();
                format!("COPY {} {dest}", names.join(" "))
            }
            None => line.to_owned(),
        })
        .collect();
    if copies != 1 {
        return Err(Error::Image(format!(
            "the Dockerfile's runtime stage has {copies} COPY --from=builder lines, not 1"
        )));
    }
    Ok(stage.join("\n") + "\n")
}

/// The product image (`reference`), from the Dockerfile's runtime stage and these binaries
/// (`mailqueue-runner`, `mailqueue-operator`), debug info stripped.
pub fn product(reference: &str, runner: &Path, operator: &Path) -> Result<ImageArchive> {
    let base = base()?;
    let cache = cache_dir();
    let dockerfile_path = repo_root().join("Dockerfile");
    let dockerfile = std::fs::read_to_string(&dockerfile_path).map_err(io("read", &dockerfile_path))?;
    let stage = runtime_stage(&dockerfile)?;
    let sums = capture(&format!("sha256sum {} {}", runner.display(), operator.display()))?;
    let key = {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same inputs give the same name in every run.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (sums.split_whitespace().step_by(2).collect::<Vec<_>>(), &stage, &base, reference).hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    };
    let archive = cache.join(format!("product-{key}.oci.tar"));
    if archive.is_file() {
        return Ok(ImageArchive { path: archive, reference: reference.to_owned() });
    }
    let _lock = lock(&cache)?;
    if archive.is_file() {
        return Ok(ImageArchive { path: archive, reference: reference.to_owned() });
    }
    let context = tempfile::tempdir().map_err(io("create a directory in", std::env::temp_dir()))?;
    for (binary, name) in [(runner, "mailqueue-runner"), (operator, "mailqueue-operator")] {
        crate::host::sh(&format!(
            "strip --strip-debug -o {} {}",
            context.path().join(name).display(),
            binary.display()
        ))?;
    }
    let containerfile = context.path().join("Containerfile");
    std::fs::write(&containerfile, stage).map_err(io("write", &containerfile))?;
    // Old product archives are per build of the binaries; keep the cache from growing.
    if let Ok(dir) = std::fs::read_dir(&cache) {
        for entry in dir.flatten() {
            if entry.file_name().to_string_lossy().starts_with("product-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let buildah = Buildah::new(&cache);
    buildah.build(&containerfile, context.path(), reference, &archive)?;
    // Only the archive is kept: buildah's copy would pile up with every build.
    let _ = buildah.run(&["rmi", "--force", reference], reference);
    Ok(ImageArchive { path: archive, reference: reference.to_owned() })
}

/// The Dockerfile's builder base under the exact name its first `FROM` gives
/// (`docker.io/library/rust:<version>-bookworm`): a minimal debootstrap of bookworm with gcc and
/// libc6-dev from the machine's Debian mirror, and this machine's Rust toolchain (no registry
/// can be reached to pull the real one). Takes a few minutes the first time; cached.
fn rust_builder_base(buildah: &Buildah, cache: &Path, reference: &str) -> Result<()> {
    let sysroot = PathBuf::from(capture("rustc --print sysroot")?.trim());
    let version = capture("rustc --version")?.trim().to_owned();
    let marker = cache.join(format!("builder-{}.built", version.replace([' ', '(', ')'], "_")));
    if marker.is_file() && buildah.has(reference) {
        return Ok(());
    }
    let rootfs = cache.join("builder-rootfs");
    let bootstrapped = rootfs.join(".debootstrap-done");
    if !bootstrapped.is_file() {
        crate::host::sh("command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap")?;
        let _ = std::fs::remove_dir_all(&rootfs);
        // The mirror apt already uses here (no other host is reachable).
        let mirror = debian_mirror()?;
        crate::host::sh(&format!(
            "debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates bookworm {} {mirror} >{}/debootstrap.log 2>&1",
            rootfs.display(),
            cache.display()
        ))?;
        std::fs::write(&bootstrapped, b"").map_err(io("write", &bootstrapped))?;
    }
    let toolchain_name = sysroot.file_name().and_then(|n| n.to_str()).unwrap_or("host").to_owned();
    let toolchain = format!("/usr/local/rustup/toolchains/{toolchain_name}");
    // The toolchain without its 800 MB of HTML documentation, and the host's CA bundle (this
    // network intercepts TLS; cargo in the build reaches the crate registry through it).
    crate::host::sh(&format!(
        "rm -rf {r}{t} && mkdir -p {r}{t} {r}/usr/local/cargo/bin && tar -C {s} --exclude=./share/doc -cf - . | tar -C {r}{t} -xf - && \
         cp /etc/ssl/certs/ca-certificates.crt {r}/etc/ssl/certs/ca-certificates.crt",
        r = rootfs.display(),
        t = toolchain,
        s = sysroot.display()
    ))?;
    // rustc finds its driver library through $ORIGIN: the toolchain's bin goes on PATH as is.
    let path =
        format!("{toolchain}/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let container = buildah.run(&["from", "scratch"], reference)?.trim().to_owned();
    let rootfs_arg = format!("{}/", rootfs.display());
    let result = (|| {
        buildah.run(&["copy", "--quiet", &container, &rootfs_arg, "/"], reference)?;
        buildah.run(
            &[
                "config",
                "--env",
                "RUSTUP_HOME=/usr/local/rustup",
                "--env",
                "CARGO_HOME=/usr/local/cargo",
                "--env",
                &format!("PATH={path}"),
                &container,
            ],
            reference,
        )?;
        buildah.run(&["commit", "--quiet", &container, reference], reference)
    })();
    let _ = buildah.run(&["rm", &container], reference);
    result?;
    std::fs::write(&marker, b"").map_err(io("write", &marker))
}

/// The Debian mirror apt uses here (the only one reachable), from its sources.
fn debian_mirror() -> Result<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(
            dir.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list")),
        );
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .find_map(|line| {
            let line = line.trim();
            if let Some(uris) = line.strip_prefix("URIs:") {
                return uris.split_whitespace().next().map(str::to_owned);
            }
            let rest = line.strip_prefix("deb ")?;
            let rest = if rest.starts_with('[') { rest.split_once(']')?.1 } else { rest };
            rest.split_whitespace().next().map(str::to_owned)
        })
        .ok_or_else(|| Error::Image("no Debian mirror in /etc/apt/sources.list*".into()))
}

/// Builds the project's `Dockerfile` as it is, with buildah (the network reaches the crate
/// registry for the builder stage's `cargo build`), on the locally assembled stand-ins for its two
/// `FROM` images; returns the saved archive. Slow: a release build of both binaries.
pub fn dockerfile(reference: &str) -> Result<ImageArchive> {
    base()?;
    let cache = cache_dir();
    let dockerfile_path = repo_root().join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile_path).map_err(io("read", &dockerfile_path))?;
    let builder = text
        .lines()
        .find_map(|l| l.strip_prefix("FROM ")?.split_whitespace().next())
        .ok_or_else(|| Error::Image("the Dockerfile has no FROM".into()))?
        .to_owned();
    let _lock = lock(&cache)?;
    let buildah = Buildah::new(&cache);
    rust_builder_base(&buildah, &cache, &builder)?;
    let archive = cache.join("from-dockerfile.oci.tar");
    let file = dockerfile_path.to_str().ok_or_else(|| Error::Image("non-UTF-8 path".into()))?;
    let root = repo_root();
    let ctx = root.to_str().ok_or_else(|| Error::Image("non-UTF-8 path".into()))?;
    buildah.run(
        &[
            "build",
            "--pull=never",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--layers=false",
            "-f",
            file,
            "-t",
            reference,
            ctx,
        ],
        reference,
    )?;
    buildah.save(reference, &archive)?;
    Ok(ImageArchive { path: archive, reference: reference.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_stage_takes_the_binaries_from_the_context() {
        let dockerfile = "FROM rust AS builder\nRUN cargo build\n\nFROM gcr.io/distroless/cc-debian12:nonroot AS runtime\n\
                          COPY --from=builder /out/a /out/b /usr/local/bin/\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/a\"]\n";
        let stage = runtime_stage(dockerfile).expect("stage");
        assert_eq!(
            stage,
            "FROM gcr.io/distroless/cc-debian12:nonroot AS runtime\nCOPY a b /usr/local/bin/\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/a\"]\n"
        );
        assert!(runtime_stage("FROM x\n").is_err());
    }

    #[test]
    fn the_projects_dockerfile_has_the_shape_the_tests_rely_on() {
        let text = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
        let stage = runtime_stage(&text).expect("runtime stage");
        assert!(stage.contains("COPY mailqueue-runner mailqueue-operator /usr/local/bin/"), "{stage}");
        assert!(stage.starts_with(&format!("FROM {BASE_IMAGE} AS runtime")), "{stage}");
    }
}
