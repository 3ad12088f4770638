#!/usr/bin/env bash
# The product on Kubernetes, in one command, on a real single-node cluster made on this machine:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy built from
# source, Debian's containerd and runc, the project's image (the Dockerfile's runtime stage with
# the binaries built here) loaded without a registry; the Helm chart installed unchanged, as a user
# would; a backlog of real Mailman 3 entries (written by Mailman's own Switchboard) on a local
# PersistentVolume; Postfix's smtp-sink as the MTA on the node IP; the example MailQueue applied;
# `kubectl get mq` while it drains; then a drain request and a compaction of the bloated queue
# directory from the MailQueue resource. Needs root (containerd, mounts, network).
#
#   tests/demo-cluster.sh [ENTRIES]        # default 5000
#
# Installs what it needs (cached after the first run): Rust crates, Kubernetes/helm binaries
# (tests/build-k8s.sh; a cold build takes about 20 minutes on 2 cores), containerd, runc, CNI
# plugins, nftables and buildah from Debian, Mailman 3 from PyPI, Postfix's smtp-sink from Debian.
# Leaves nothing running, removes everything it made and puts the machine's network back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count=${1:-5000}
ns=mail

say() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
now() { date +%s.%N; }
since() { "$MQ_PY3" -c 'import sys,time; print(f"{time.time()-float(sys.argv[1]):.1f} s")' "$1"; }

say "installing what the demo needs (cached after the first run)"
eval "$(tests/tools/python-env.sh)"
sink=$(tests/tools/smtp-sink.sh)
bin=$(tests/build-k8s.sh | sed -n 's/^MQ_K8S_BIN=//p' | tail -n1)
cargo build --quiet --release -p mailqueue-runner
cargo build --quiet -p mailqueue-operator --bin mailqueue-operator
cargo build --quiet -p mailqueue-testenv --example cluster
runner=$PWD/target/release/mailqueue-runner
operator=$PWD/target/debug/mailqueue-operator
cluster=$PWD/target/debug/examples/cluster

state=$(mktemp -d /tmp/mailqueue-demo-cluster.XXXXXX)
cluster_pid="" sink_pid=""
cleanup() {
    say "cleaning up"
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    if [ -n "$cluster_pid" ]; then
        kill -TERM "$cluster_pid" 2>/dev/null || true
        wait "$cluster_pid" 2>/dev/null || true
    fi
    rm -rf "$state"
}
trap cleanup EXIT
export KUBECONFIG=$state/kubeconfig
k() { "$bin/kubectl" -n "$ns" "$@"; }

say "building the image and starting the cluster (control plane, kubelet, containerd, kube-proxy)"
t0=$(now)
"$cluster" "$state" "$ns" "$runner" "$operator" 2>"$state/cluster.log" &
cluster_pid=$!
until [ -e "$state/ready" ]; do
    kill -0 "$cluster_pid" 2>/dev/null || { cat "$state/cluster.log" >&2; exit 1; }
    sleep 0.5
done
echo "cluster ready (node Ready) in $(since "$t0")"
grep '^cluster: image' "$state/cluster.log" || true
node_ip=$(sed -n 's#^https://\([0-9.]*\):.*#\1#p' "$state/ready")

free_port() { "$MQ_PY3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "helm install (chart charts/mailqueue-operator: CRD, operator, RBAC, metrics Service)"
t=$(now)
HELM_CACHE_HOME=$state/helm HELM_CONFIG_HOME=$state/helm HELM_DATA_HOME=$state/helm \
    "$bin/helm" install mq charts/mailqueue-operator --namespace "$ns" \
    --set image.repository=mailqueue-operator --set image.tag=demo \
    --set runner.image=mailqueue-operator:demo --set runner.gracePeriodSeconds=15 | sed -n '1,6p'
k rollout status deployment/mq-mailqueue-operator --timeout=120s
k get pods -o wide
echo "leader: $(k get lease mq-mailqueue-operator -o jsonpath='{.spec.holderIdentity}'); installed in $(since "$t")"

say "filling var/queue/out with $count entries (Mailman 3's Switchboard.enqueue)"
queues=$state/volumes/$ns/mailman-data/var/queue
mkdir -p "$queues"/{retry,shunt,bad}
"$MQ_PY3" tests/tools/gen-queue.py --dir "$queues/out" --count "$count" --seed 1 >/dev/null
# As on a Mailman host, the tree belongs to the user the example's runners run as.
owner=$(sed -n 's/^ *runAsUser: *\([0-9]*\).*/\1/p' charts/mailqueue-operator/examples/mailqueue.yaml)
group=$(sed -n 's/^ *runAsGroup: *\([0-9]*\).*/\1/p' charts/mailqueue-operator/examples/mailqueue.yaml)
chown -R "${owner:-65532}:${group:-65532}" "$queues"
echo "out/: $(find "$queues/out" -name '*.pck' | wc -l) entries; directory size $(stat -c %s "$queues/out") bytes"

port=$(free_port)
sink_user=()
[ "$(id -u)" -ne 0 ] || sink_user=(-u nobody)
"$sink" "${sink_user[@]}" -c "$node_ip:$port" 256 >"$state/sink.log" 2>&1 &
sink_pid=$!

say "applying the example MailQueue held (drain: true, as during an MTA outage; MTA = smtp-sink on the node, $node_ip:$port)"
t=$(now)
sed -e "s/host: mta.mail.svc/host: $node_ip/" -e "s/port: 25$/port: $port/" -e 's/^spec:$/spec:\n  drain: true/' \
    charts/mailqueue-operator/examples/mailqueue.yaml | k apply -f -
k wait --for=condition=Ready mq/lists --timeout=120s
k wait --for=jsonpath='{.status.pending}'="$count" mq/lists --timeout=120s
echo "4 runner pods ready, holding $count entries, in $(since "$t")"
k get pods -l mailqueue.dev/mailqueue=lists
k get mq lists

say "the MTA is back: kubectl patch mq lists --type merge -p '{\"spec\":{\"drain\":false}}'; kubectl get mq every second"
left() { find "$queues/out" -name '*.pck' -o -name '*.bak' | wc -l; }
t=$(now)
k patch mq lists --type merge -p '{"spec":{"drain":false}}'
while [ "$(left)" -gt 0 ] || [ "$(k get mq lists -o jsonpath='{.status.pending}')" != 0 ]; do
    k get mq lists --no-headers
    sleep 1
done
k get mq lists --no-headers
echo "$count entries delivered in $(since "$t") (bad: $(find "$queues/bad" -type f | wc -l), shunt: $(find "$queues/shunt" -type f | wc -l))"

say "drain: kubectl patch mq lists --type merge -p '{\"spec\":{\"drain\":true}}'"
t=$(now)
k patch mq lists --type merge -p '{"spec":{"drain":true}}'
k wait --for=condition=Drained mq/lists --timeout=120s
echo "Drained in $(since "$t")"
k get mq lists

say "compact: the emptied out/ directory still has the size of the backlog ($(stat -c %s "$queues/out") bytes)"
if k explain mailqueue.spec.compact >/dev/null 2>&1; then
    t=$(now)
    k patch mq lists --type merge -p '{"spec":{"compact":{"requestId":"demo-1","queue":"out"}}}'
    phase=""
    for _ in $(seq 1 120); do
        phase=$(k get mq lists -o jsonpath='{.status.actions.compact.phase}')
        case "$phase" in Succeeded|Failed) break ;; esac
        sleep 1
    done
    k get mq lists -o jsonpath='{.status.actions.compact}'; echo
    if [ "$phase" = Succeeded ]; then
        echo "compacted in $(since "$t"): out/ is now $(stat -c %s "$queues/out") bytes"
    else
        echo "compaction did not succeed (phase '${phase:-none}'); see above" >&2
        k get jobs,pods -o wide >&2 || true
        for job in $(k get jobs -o name); do k logs "$job" --all-containers --tail=30 >&2 || true; done
        exit 1
    fi
else
    echo "this operator build has no spec.compact: skipped"
fi

say "done: $count real Mailman entries through the chart-installed operator in $(since "$t0") in all"
