#!/usr/bin/env bash
# Delivery beside Postfix's own C client: the same number of messages of the same size
# into one Postfix smtp-sink, sent once by `smtp-source` and once by `mailqueue-runner run`
# draining real Mailman 3 entries (written by Mailman 3's pickler, one list post with 3
# recipients in one domain: one transaction of 3 RCPT). Same shape on the wire: 16 SMTP
# sessions kept open across messages (smtp-source -d, runner --connections 16, one slice),
# 3 recipients per transaction, and smtp-source is given the runner's own flattened bytes
# (`mailqueue-runner show --raw`) with -F. Prints a Markdown table: messages/s of each, the
# ratio runner/smtp-source, CPU seconds per message of each and of the sink (the sink's
# from /proc/<pid>/stat before and after each run, the clients' from /usr/bin/time).
#
#   tests/tools/bench-smtp-source.sh [MESSAGES]     # default 5000, release build
#
# Env: MQ_BENCH_DIR (work dir, default /tmp/mq-bench-source), MQ_BENCH_SIZES (message sizes
# in bytes, default "1024 51200"), MQ_BENCH_RUNNER (another binary; no build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

messages=${1:-5000}
sizes=${MQ_BENCH_SIZES:-1024 51200}
sessions=16
rcpts=3
work=${MQ_BENCH_DIR:-/tmp/mq-bench-source}
rm -rf "$work"
mkdir -p "$work"
. tests/tools/bench-setup.sh
source=${sink%/*}/smtp-source
[ -x "$source" ] || { echo "no $source: install Debian's postfix (tests/tools/smtp-sink.sh)" >&2; exit 1; }

# $2 Mailman 3 entries with a plain-text message of about $3 bytes in $1, each its own
# Message-ID, to 3 recipients of one domain.
mm3_entries() {
    "$MQ_PY3" - "$@" <<'PY'
import email, hashlib, pickle, sys
from mailman.email.message import Message
out, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\n"
for i in range(count):
    head = (b"From: poster@example.com\nTo: test@example.com\nSubject: bench %d\n"
            b"Message-ID: <bench-%d@example.com>\nContent-Type: text/plain\n\n" % (i, i))
    body = line * max(1, (size - len(head)) // len(line))
    msg = email.message_from_bytes(head + body, Message)
    meta = {"listid": "test.example.com", "version": 3, "_parsemsg": False,
            "recipients": {"alice@example.net", "bob@example.net", "carol@example.net"}}
    data = pickle.dumps(msg, 5) + pickle.dumps(meta, 5)
    name = "%.7f+%s.pck" % (1700000000 + i / 1000.0, hashlib.sha1(data).hexdigest())
    with open("%s/%s" % (out, name), "wb") as f:
        f.write(data)
PY
}

# user + system seconds of a process so far, from /proc (clock ticks).
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# user + system seconds from a `/usr/bin/time -f "%e %U %S"` report: wall on $2 = 1.
time_field() { awk -v f="$2" 'END { if (f == 1) print $1; else printf "%.2f", $2 + $3 }' "$1"; }
us_per() { awk -v s="$1" -v n="$messages" 'BEGIN { printf "%.0f", s * 1e6 / n }'; }
rate() { awk -v s="$1" -v n="$messages" 'BEGIN { printf "%.0f", n / s }'; }

echo "| size | client | messages | seconds | messages/s | runner / smtp-source | client CPU us/msg | sink CPU us/msg |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for size in $sizes; do
    q=$work/q-$size
    mkdir -p "$q"/{out,retry,shunt,bad}
    mm3_entries "$q/out" "$messages" "$size"
    first=$(find "$q/out" -name '*.pck' | sort | sed -n 1p)
    "$runner" show --raw "$first" >"$work/message-$size.eml"
    bytes=$(stat -c %s "$work/message-$size.eml")

    sink0=$(proc_cpu "$sink_pid")
    /usr/bin/time -f "%e %U %S" -o "$work/source.time" "$source" -d -s "$sessions" -m "$messages" -r "$rcpts" \
        -f poster@example.com -t member@example.net -F "$work/message-$size.eml" "127.0.0.1:$port"
    sink1=$(proc_cpu "$sink_pid")
    /usr/bin/time -f "%e %U %S" -o "$work/runner.time" "$runner" run --qfiles "$q" --smtp "127.0.0.1:$port" \
        --slices 1 --connections "$sessions" --exit-when-empty --bounce-log /dev/null >/dev/null 2>"$work/runner-$size.log"
    sink2=$(proc_cpu "$sink_pid")
    left=$(find "$q/out" "$q/retry" "$q/shunt" "$q/bad" -name '*.pck' -o -name '*.bak' -o -name '*.psv' | wc -l)
    [ "$left" -eq 0 ] || { echo "runner left $left entries (see $work/runner-$size.log)" >&2; exit 1; }

    s_secs=$(time_field "$work/source.time" 1)
    r_secs=$(time_field "$work/runner.time" 1)
    ratio=$(awk -v r="$r_secs" -v s="$s_secs" 'BEGIN { printf "%.2f", s / r }')
    label="$size ($bytes on the wire)"
    echo "| $label | smtp-source | $messages | $s_secs | $(rate "$s_secs") | - | $(us_per "$(time_field "$work/source.time" 2)") | $(us_per "$(awk -v a="$sink0" -v b="$sink1" 'BEGIN { print b - a }')") |"
    echo "| $label | mailqueue-runner | $messages | $r_secs | $(rate "$r_secs") | $ratio | $(us_per "$(time_field "$work/runner.time" 2)") | $(us_per "$(awk -v a="$sink1" -v b="$sink2" 'BEGIN { print b - a }')") |"
    rm -rf "$q"
done
