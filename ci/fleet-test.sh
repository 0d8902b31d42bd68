#!/usr/bin/env bash
# The fleet test for real: three "devices" (sshd on 127.0.0.2-4, each with its own user and home) driven through
# `edgebench fleet plan` → ansible-playbook (ci/fleet/playbook.yml) → `edgebench fleet collect`, a device lost
# mid-run, two fleet runs serialised by a device's lock, a merged report, a gate per device, and a real quick-suite
# run of the default model on one device (harness/cli/tests/cli/fleet.rs). Needs root (it adds users ebfleet1-3 and
# starts sshd); installs openssh-server (apt) and a pinned ansible-core in a virtual environment under the cache.
#   ci/fleet-test.sh        env: CARGO_TARGET_DIR, EDGEBENCH_CACHE
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "ci/fleet-test.sh: run as root (it adds users and starts sshd)" >&2; exit 2; }
bash ci/install-build-deps.sh sshd
venv="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/ansible"
want="ansible-core==2.19.14"
if [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$want"
    echo "$want" >"$venv/.pinned"
fi
# sed reads the whole version text: `head -1` closed the pipe early, and ansible-playbook, printing into it, failed
# with a broken pipe (exit 250) once in a loaded run.
"$venv/bin/ansible-playbook" --version | sed -n 1p
ANSIBLE_PLAYBOOK="$venv/bin/ansible-playbook" cargo test -p edgebench --test cli fleet -- --ignored --nocapture
