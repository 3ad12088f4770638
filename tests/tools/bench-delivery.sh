#!/usr/bin/env bash
# Delivery benchmark: the same generated queue (real Mailman 3 entries, see
# gen-queue.py), the same Postfix smtp-sink, drained by Mailman 3's own OutgoingRunner
# and by this runner with 1 and 4 slices. Prints a table: entries/s, ratio to Mailman 3,
# peak RSS (/usr/bin/time -v).
#
#   tests/tools/bench-delivery.sh [SIZES...]        # default: 10000 100000
#
# Env: MQ_BENCH_DIR (work dir, default /tmp/mq-bench), MQ_BENCH_MAILMAN_LIMIT (seconds
# Mailman 3 is given per size, default 120: at its rate a 100,000-entry queue would take
# over an hour, so its entries/s is measured over that window), MQ_BENCH_CONNECTIONS
# (SMTP sessions per slice, default 4), MQ_BENCH_SEED (default 1), MQ_BENCH_RUNNER (another
# binary; no build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
work=${MQ_BENCH_DIR:-/tmp/mq-bench}
mm_limit=${MQ_BENCH_MAILMAN_LIMIT:-120}
conns=${MQ_BENCH_CONNECTIONS:-4}
seed=${MQ_BENCH_SEED:-1}
mkdir -p "$work"

. tests/tools/bench-setup.sh

# peak RSS in MiB from a `/usr/bin/time -v` report
rss_mib() { awk -F: '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
# CPU time (user + system) per delivered entry, in ms: independent of how busy the
# machine is, unlike entries/s.
cpu_ms() { awk -F: -v n="$2" '/User time|System time/ {t += $2} END {printf "%.2f", t * 1000 / n}' "$1"; }

rows=()
for n in "${sizes[@]}"; do
    gen="$work/gen-$n-seed$seed"
    if [ ! -f "$gen/.complete" ]; then
        rm -rf "$gen"
        echo "generating $n entries with Mailman 3's Switchboard..." >&2
        "$MQ_PY3" tests/tools/gen-queue.py --dir "$gen/out" --count "$n" --seed "$seed" >/dev/null
        touch "$gen/.complete"
    fi

    # Mailman 3's OutgoingRunner (one process, as `mailman start` runs it by default).
    rm -rf "$work/mm"
    mkdir -p "$work/mm"
    cp -al "$gen/out" "$work/mm/src"
    echo "Mailman 3 OutgoingRunner, $n entries (up to ${mm_limit}s)..." >&2
    /usr/bin/time -v -o "$work/mm.time" "$MQ_PY3" tests/tools/bench-mailman3-out.py \
        --site "$work/mm/site" --queue-src "$work/mm/src" --smtp-port "$port" --time-limit "$mm_limit" >"$work/mm.json"
    mm_entries=$("$MQ_PY3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["entries"])' "$work/mm.json")
    mm_secs=$("$MQ_PY3" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$work/mm.json")
    mm_rate=$("$MQ_PY3" -c "print(f'{$mm_entries/$mm_secs:.1f}')")
    rows+=("$(printf '| %7d | Mailman 3 OutgoingRunner | 1 | %6d | %7.1f | %9s | 1.0x | %s | %4s |' "$n" "$mm_entries" "$mm_secs" "$mm_rate" "$(cpu_ms "$work/mm.time" "$mm_entries")" "$(rss_mib "$work/mm.time")")")

    for slices in 1 4; do
        q="$work/q-$slices"
        rm -rf "$q"
        mkdir -p "$q"
        cp -al "$gen/out" "$q/out"
        echo "mailqueue-runner, $slices slice(s), $n entries..." >&2
        start=$(date +%s.%N)
        /usr/bin/time -v -o "$work/rq.time" "$runner" run --qfiles "$q" --smtp "127.0.0.1:$port" \
            --slices "$slices" --connections "$conns" --exit-when-empty 2>"$work/rq-$slices.log"
        end=$(date +%s.%N)
        left=$(find "$q/out" -name '*.pck' -o -name '*.bak' | wc -l)
        retried=$(find "$q/retry" -name '*.pck' | wc -l)
        [ "$left" -eq 0 ] && [ "$retried" -eq 0 ] || { echo "runner left $left entries, $retried in retry" >&2; exit 1; }
        secs=$("$MQ_PY3" -c "print(f'{$end-$start:.1f}')")
        rate=$("$MQ_PY3" -c "print(f'{$n/($end-$start):.1f}')")
        ratio=$("$MQ_PY3" -c "print(f'{$n/($end-$start)/$mm_rate:.1f}')")
        rows+=("$(printf '| %7d | mailqueue-runner | %d | %6d | %7s | %9s | %sx | %s | %4s |' "$n" "$slices" "$n" "$secs" "$rate" "$ratio" "$(cpu_ms "$work/rq.time" "$n")" "$(rss_mib "$work/rq.time")")")
    done
done

echo
echo "Delivery to Postfix smtp-sink on loopback; $(nproc) CPUs (load average at end: $(cut -d' ' -f1-3 /proc/loadavg)); ${conns} SMTP sessions per slice"
echo
echo "| queue | runner | slices | entries delivered | seconds | entries/s | vs Mailman 3 | CPU ms/entry | peak RSS MiB |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
