#!/usr/bin/env bash
# Makes (or reuses) the Pythons the tests compare against, and prints `export` lines:
#   eval "$(tests/tools/python-env.sh)"
# MQ_PY3: a Python 3.11 venv with Mailman 3 and aiosmtpd (PyPI), cached outside the clone.
# MQ_PY2: Python 2.7 (pyenv), for Mailman 2.1's cPickle and email package.
set -euo pipefail
cache=${MQ_CACHE:-$HOME/.cache/mailqueue-operator}
mailman_version=3.3.10
aiosmtpd_version=1.4.6
venv="$cache/py3-mailman-$mailman_version"
# SQLAlchemy 2.1 breaks Mailman 3.3.10's REST member resources (HTTP 500).
sqlalchemy_pin="sqlalchemy>=2.0,<2.1"

find_python() { # version prefix
    local v
    for v in "$HOME/.pyenv/versions/$1"*/bin/python; do
        [ -x "$v" ] && { echo "$v"; return 0; }
    done
    command -v "python$1" 2>/dev/null || return 1
}

py3=$(find_python 3.11) || { echo "python-env: Python 3.11 not found (pyenv or PATH)" >&2; exit 1; }
# Built in place (a venv's console scripts name its own path, so it cannot be moved) and
# marked complete last, so an interrupted install is redone rather than trusted.
# Test binaries run in parallel call this script; the lock makes them wait for one install.
if [ ! -f "$venv/.complete" ]; then
    mkdir -p "$cache"
    exec 9>"$cache/.python-env.lock"
    flock 9
    if [ ! -f "$venv/.complete" ]; then
        echo "python-env: creating $venv (mailman $mailman_version, aiosmtpd $aiosmtpd_version)" >&2
        rm -rf "$venv"
        "$py3" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "mailman==$mailman_version" "aiosmtpd==$aiosmtpd_version" "$sqlalchemy_pin" >&2
        "$venv/bin/python" -c 'import mailman, aiosmtpd'
        touch "$venv/.complete"
    fi
    exec 9>&-
fi

py2=$(find_python 2.7) || { echo "python-env: Python 2.7 not found; install it with 'pyenv install 2.7.18'" >&2; exit 1; }
echo "export MQ_PY3=$venv/bin/python"
echo "export MQ_PY2=$py2"
