#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Installs or builds everything it needs by itself:
#   - Rust crates (cargo, from crates.io),
#   - Python 3.11 with Mailman 3 and aiosmtpd (PyPI) and Python 2.7 (pyenv): tests/tools/python-env.sh,
#   - Postfix's smtp-sink (Debian): tests/tools/smtp-sink.sh,
#   - etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm, kubelet and
#     kube-proxy from Go modules: tests/build-k8s.sh (cached in ~/.cache/mailqueue-operator,
#     keyed by version),
#   - containerd, runc, CNI plugins, nftables, buildah from Debian (the test cluster's node, set
#     up by mailqueue-testenv itself; its images are cached in ~/.cache/mailqueue-operator/images).
# Needs root: the e2e tier runs a real kubelet and containerd on this machine.
# Tiers: fast (unit, integration, e2e on the real single-node cluster) then slow (crash loops,
# large queues, chaos, the Dockerfile built as it is), marked `#[ignore]` in the code and run
# here with `--ignored`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "toolchains and test servers"
eval "$(tests/tools/python-env.sh)"
export MQ_PY2 MQ_PY3
if [ -x tests/tools/smtp-sink.sh ]; then
    MQ_SMTP_SINK="$(tests/tools/smtp-sink.sh)"
    export MQ_SMTP_SINK
fi
MQ_K8S_BIN="$(tests/build-k8s.sh | sed -n 's/^MQ_K8S_BIN=//p' | tail -n1)"
export MQ_K8S_BIN
echo "python3: $MQ_PY3; python2: $MQ_PY2; k8s: $MQ_K8S_BIN; smtp-sink: ${MQ_SMTP_SINK:-none}"

step "style: rustfmt and clippy"
cargo fmt --all --check || { echo "formatting differs from rustfmt.toml: run 'cargo fmt --all'" >&2; exit 1; }
cargo clippy --workspace --all-targets --locked -- -D warnings
# The runner shares only the contract crate with the operator (ARCHITECTURE.md).
if cargo tree --locked -p mailqueue-runner -e normal,build | grep -q 'mailqueue-operator '; then
    echo "mailqueue-runner depends on mailqueue-operator: share through operator/contract instead" >&2
    exit 1
fi

step "build"
cargo build --workspace --all-targets --locked

step "generated CRD matches the code"
# The binary the workspace build just made: `cargo run -p` alone would build the operator's
# dependencies again with other features, for minutes.
"${CARGO_TARGET_DIR:-target}/debug/crdgen" > /tmp/mq-crd.$$.yaml
diff -u crds/mailqueue.dev_mailqueues.yaml /tmp/mq-crd.$$.yaml || {
    echo "crds/ is stale: run 'cargo run -p mailqueue-operator --bin crdgen > crds/mailqueue.dev_mailqueues.yaml'" >&2
    exit 1
}
# The chart ships a copy (Helm installs CRDs only from inside the chart); it must be the same file.
diff -u crds/mailqueue.dev_mailqueues.yaml charts/mailqueue-operator/crds/mailqueue.dev_mailqueues.yaml || {
    echo "the chart's CRD is stale: cp crds/mailqueue.dev_mailqueues.yaml charts/mailqueue-operator/crds/" >&2
    exit 1
}
rm -f /tmp/mq-crd.$$.yaml

if [ -d charts/mailqueue-operator ]; then
    step "helm lint"
    "$MQ_K8S_BIN/helm" lint --strict charts/mailqueue-operator
fi

step "tests: fast tier"
cargo test --workspace --locked --no-fail-fast

step "tests: slow tier (crash loops, large queues, chaos)"
cargo test --workspace --locked --no-fail-fast -- --ignored
