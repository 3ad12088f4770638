#!/usr/bin/env bash
# The product's main job on a built-in default, no cluster needed: a backlog of real
# Mailman 3 `out` entries (written by Mailman's own Switchboard) drained by the runner,
# 4 slices in one process, into Postfix's smtp-sink on loopback.
#
#   tests/demo.sh [ENTRIES]        # default 5000
#
# Installs what it needs: Rust crates (cargo), Mailman 3 from PyPI into a cached venv,
# Postfix's smtp-sink from Debian. Leaves nothing running; the queue is removed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count=${1:-5000}

say() { printf '\n== %s\n' "$*"; }

say "installing what the demo needs (cached after the first run)"
eval "$(tests/tools/python-env.sh)"
sink=$(tests/tools/smtp-sink.sh)
cargo build --release --quiet -p mailqueue-runner
runner=target/release/mailqueue-runner

work=$(mktemp -d /tmp/mailqueue-demo.XXXXXX)
sink_pid=""
cleanup() {
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say "filling $work/qfiles/out with $count entries (Mailman 3's Switchboard.enqueue)"
"$MQ_PY3" tests/tools/gen-queue.py --dir "$work/qfiles/out" --count "$count" --seed 1 >/dev/null

port=$("$MQ_PY3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sink_user=()
[ "$(id -u)" -ne 0 ] || sink_user=(-u nobody)
# -c counts sessions and messages; the report goes to $work/sink.log at exit.
"$sink" "${sink_user[@]}" -c "127.0.0.1:$port" 256 >"$work/sink.log" 2>&1 &
sink_pid=$!

say "the backlog (mailqueue-runner status)"
"$runner" status --qfiles "$work/qfiles" --slices 4

say "where it is going (mailqueue-runner qshape: recipients per domain and age, top 5)"
"$runner" qshape --qfiles "$work/qfiles" --queue out --top 5

say "draining: 4 slices, 4 SMTP sessions each, into smtp-sink on 127.0.0.1:$port"
start=$(date +%s.%N)
# One log line per entry is what an admin wants in production; the demo shows the summary.
RUST_LOG=${RUST_LOG:-warn} "$runner" run --qfiles "$work/qfiles" --queue out --slices 4 --connections 4 \
    --smtp "127.0.0.1:$port" --exit-when-empty
end=$(date +%s.%N)

say "after the drain (mailqueue-runner status)"
"$runner" status --qfiles "$work/qfiles" --slices 4
left=$(find "$work/qfiles/out" -name '*.pck' -o -name '*.bak' | wc -l)
"$MQ_PY3" -c "import sys; n,s,e,l=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),int(sys.argv[4]); print(f'\n{n-l} of {n} entries delivered in {e-s:.1f} s ({(n-l)/(e-s):.0f} entries/s); {l} left in out/')" \
    "$count" "$start" "$end" "$left"
[ "$left" -eq 0 ]
