#!/usr/bin/env bash
# Memory benchmark: the runner's peak RSS (/usr/bin/time -v) delivering entries of
# growing size into Postfix's smtp-sink, against the largest entry's size. Entries are
# written by the real picklers: Mailman 3 messages (mailman.email.message.Message,
# protocol 5) with a plain-text body of the given size, and a Mailman 2.1 text entry
# with per-recipient VERP copies (each copy differs in Errors-To) for a 2,000-member
# list with a 46 KB body, and the same entry for a fully personalized 2.1 list (each copy
# decorated with the member's name, address, password and options URL, and `To` set to
# the member) read from its config.pck. Prints a Markdown table.
#
#   tests/tools/bench-memory.sh            # release build; MQ_BENCH_DIR (default /tmp/mq-bench-mem)
#   MQ_BENCH_RUNNER=path/to/mailqueue-runner MQ_BENCH_ONLY=personalized tests/tools/bench-memory.sh
#       # another binary (no build), only the cases whose label matches the pattern
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

work=${MQ_BENCH_DIR:-/tmp/mq-bench-mem}
rm -rf "$work"
mkdir -p "$work"
. tests/tools/bench-setup.sh

# A Mailman 3 entry of about $2 bytes, named after $3 (its FIFO time), in dir $1.
mm3_entry() {
    "$MQ_PY3" - "$@" <<'PY'
import email, hashlib, pickle, sys
from mailman.email.message import Message
out, size, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\n"
body = line * (size // len(line) + 1)
raw = (b"From: poster@example.com\nTo: test@example.com\nSubject: big\n"
       b"Message-ID: <big-%s@example.com>\nContent-Type: text/plain\n\n" % when.encode()) + body
msg = email.message_from_bytes(raw, Message)
meta = {"listid": "test.example.com", "recipients": {"alice@example.net", "bob@example.org"},
        "version": 3, "_parsemsg": False}
data = pickle.dumps(msg, 5) + pickle.dumps(meta, 5)
name = "%s+%s.pck" % (when, hashlib.sha1(data).hexdigest())
open("%s/%s" % (out, name), "wb").write(data)
PY
}

# A Mailman 2.1 text entry to $2 members with a $3-byte body and VERP, in dir $1.
mm2_verp_entry() {
    "$MQ_PY2" - "$@" <<'PY'
import cPickle, hashlib, sys
out, members, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
f = open("tests/vectors/mailman2/out/1546304647.7135298+69a22343c48d96cf9174c5a6f5a941f2774a0288.pck", "rb")
msg = cPickle.load(f); meta = cPickle.load(f)
msg = msg + ("personalized list body line, seventy characters long or so.......\n" * (size // 70))
meta["recips"] = ["member%d@example.com" % i for i in range(members)]
meta["verp"] = 1
data = cPickle.dumps(msg, 0) + cPickle.dumps(meta, 1)
open("%s/1546304647.7135298+%s.pck" % (out, hashlib.sha1(data).hexdigest()), "wb").write(data)
PY
}

# The 2.1 list "personal" (personalize = 2) from tests/vectors-lists with $2 members added,
# in $1/lists, the site's mm_cfg values in $1/mm_cfg.json, and a text entry to those
# members with a $3-byte body in $1/q/out.
mm2_personal_entry() {
    mkdir -p "$1/lists/personal"
    "$MQ_PY3" -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["mailman2"]["site_settings"]))' \
        tests/vectors-lists/manifest.json >"$1/mm_cfg.json"
    "$MQ_PY2" - "$@" <<'PY'
import cPickle, hashlib, sys
root, members, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = cPickle.load(open("tests/vectors-lists/mailman2/lists/personal/config.pck", "rb"))
recips = ["member%d@example.com" % i for i in range(members)]
for i, a in enumerate(recips):
    config["members"][a] = 0
    config["passwords"][a] = "password%d" % i
    config["usernames"][a] = u"Member Number %d" % i
    config["language"][a] = "en"
cPickle.dump(config, open("%s/lists/personal/config.pck" % root, "wb"), 1)
f = open("tests/vectors/mailman2/out/1546304647.7135298+69a22343c48d96cf9174c5a6f5a941f2774a0288.pck", "rb")
msg = cPickle.load(f); meta = cPickle.load(f)
msg = msg + ("personalized list body line, seventy characters long or so.......\n" * (size // 70))
meta["listname"] = "personal"
meta["recips"] = recips
del meta["envsender"]
data = cPickle.dumps(msg, 0) + cPickle.dumps(meta, 1)
open("%s/q/out/1546304647.7135298+%s.pck" % (root, hashlib.sha1(data).hexdigest()), "wb").write(data)
PY
}

rss_mib() { awk -F: '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

run_case() { # label [runner flags]; the entries are in $work/q/out
    local label=$1 q=$work/q largest rss ratio secs left
    shift
    largest=$(find "$q/out" -name '*.pck' -printf '%s\n' | sort -n | tail -1)
    largest=$(awk -v b="${largest:-0}" 'BEGIN { printf "%.2f", b / 1048576 }')
    /usr/bin/time -v -o "$work/time" "$runner" run --qfiles "$q" --smtp "127.0.0.1:$port" \
        --exit-when-empty --connections 4 --data-timeout 600 --bounce-log /dev/null "$@" >/dev/null 2>"$work/log"
    left=$(find "$q/out" -name '*.pck' -o -name '*.bak' | wc -l)
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
    rss=$(rss_mib "$work/time")
    ratio=$(awk -v r="$rss" -v l="$largest" 'BEGIN { if (l >= 1) printf "%.1fx", r / l; else print "-" }')
    echo "| $label | $largest | $rss | $ratio | $secs | $left |"
}

fresh() { rm -rf "$work/q"; mkdir -p "$work/q"/{out,retry,shunt,bad}; }

# Whether the case labelled $1 is to be run (MQ_BENCH_ONLY, a regular expression).
want() { [[ "$1" =~ ${MQ_BENCH_ONLY:-.} ]]; }

echo "| entries | largest entry MiB | peak RSS MiB | RSS / largest | wall | left queued |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
label="empty queue (base)"
if want "$label"; then fresh; run_case "$label"; fi
for mib in 1 10 50 200; do
    label="1 x ${mib} MiB (Mailman 3)"
    if want "$label"; then fresh; mm3_entry "$work/q/out" $((mib << 20)) 1700000000.5; run_case "$label"; fi
done
label="4 x 50 MiB, 4 connections"
if want "$label"; then
    fresh
    for i in 1 2 3 4; do mm3_entry "$work/q/out" $((50 << 20)) "170000000$i.5"; done
    run_case "$label"
fi
label="2.1 VERP, 2,000 members x 46 KB"
if want "$label"; then fresh; mm2_verp_entry "$work/q/out" 2000 $((46 * 1024)); run_case "$label"; fi
label="2.1 fully personalized list, 2,000 members x 46 KB"
if want "$label"; then
    fresh; mm2_personal_entry "$work" 2000 $((46 * 1024))
    run_case "$label" --mailman2-site "$work/mm_cfg.json" --mailman2-lists "$work/lists"
fi
