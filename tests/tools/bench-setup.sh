# Sourced by the delivery benchmarks (bench-*.sh), from the repository root: sets MQ_PY2 and
# MQ_PY3 (python-env.sh), `runner` (MQ_BENCH_RUNNER, else the release build, built now),
# `sink` (Postfix's smtp-sink), and starts that sink on a free loopback `port`, as
# `sink_pid`, stopped when the script exits.
eval "$(tests/tools/python-env.sh)"
sink=$(tests/tools/smtp-sink.sh)
if [ -n "${MQ_BENCH_RUNNER:-}" ]; then
    runner=$(realpath "$MQ_BENCH_RUNNER")
else
    cargo build --release --quiet -p mailqueue-runner
    runner=$PWD/target/release/mailqueue-runner
fi

port=$("$MQ_PY3" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sink_user=()
# smtp-sink refuses to run as root without a user to switch to.
[ "$(id -u)" -ne 0 ] || sink_user=(-u nobody)
"$sink" "${sink_user[@]}" "127.0.0.1:$port" 1024 &
sink_pid=$!
trap 'kill $sink_pid 2>/dev/null || true' EXIT
