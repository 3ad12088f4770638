#!/usr/bin/env bash
# Makes sure Postfix's `smtp-sink` (Debian package `postfix`) is installed and prints its
# path. The load tests and benchmarks point the runner at it:
#   MQ_SMTP_SINK="$(tests/tools/smtp-sink.sh)"
#   "$MQ_SMTP_SINK" -c 127.0.0.1:2525 1000 &      # accept everything, count sessions
# Installing needs root (or sudo); postfix itself is not configured or started.
set -euo pipefail

find_sink() {
    local p
    for p in /usr/sbin/smtp-sink "$(command -v smtp-sink 2>/dev/null || true)"; do
        [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
    done
    return 1
}

if sink=$(find_sink); then
    echo "$sink"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "smtp-sink.sh: installing Debian's postfix for smtp-sink" >&2
# Answer postfix's configuration question up front: install the binaries, configure nothing.
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
if ! apt-cache show postfix >/dev/null 2>&1; then
    $sudo apt-get update -qq >&2
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postfix >&2
sink=$(find_sink) || { echo "smtp-sink.sh: postfix installed but smtp-sink not found" >&2; exit 1; }
echo "$sink"
