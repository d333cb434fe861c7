#!/usr/bin/env bash
# Start a local Docker engine (dockerd) for CI and dev machines without systemd.
#
# Idempotent: installs Debian's docker.io only when dockerd is missing, starts
# dockerd only when `docker info` fails, then waits until the engine answers.
# Safe to run again while the engine is up (it just reports and exits 0).
#
# Environment:
#   DUPLEX_DOCKERD_LOG      dockerd log file (default /var/log/duplex-dockerd.log)
#   DUPLEX_DOCKERD_WAIT     seconds to wait for the engine (default 60)
#   DUPLEX_DOCKERD_MTU      bridge MTU (default: the MTU of the default-route interface)
#   DUPLEX_REGISTRY_MIRROR  a Docker Hub mirror for the engine (--registry-mirror), e.g. the local
#                           registry scripts/registry-mirror.sh starts (CI); only for a new dockerd
set -euo pipefail

LOG=${DUPLEX_DOCKERD_LOG:-/var/log/duplex-dockerd.log}
WAIT=${DUPLEX_DOCKERD_WAIT:-60}

say() { printf '[docker-engine] %s\n' "$*"; }
die() { printf '[docker-engine] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

engine_up() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_up; then
    say "engine already up ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

# 1. Install the engine if it is missing.
if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
    say "dockerd not found: installing Debian's docker.io"
    command -v apt-get >/dev/null 2>&1 || die "dockerd is missing and apt-get is not available; install Docker Engine by hand"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -qq --no-install-recommends docker.io >/dev/null; then
        say "apt-get install failed; running apt-get update first"
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends docker.io >/dev/null \
            || die "apt-get install docker.io failed"
    fi
fi
DOCKERD=$(command -v dockerd || echo /usr/sbin/dockerd)
command -v docker >/dev/null 2>&1 || die "the docker CLI is missing (docker.io should provide /usr/bin/docker)"

# 2. Start dockerd unless one is already starting (e.g. a previous run still waiting).
if pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd is running (pid $(pgrep -x dockerd | head -1)) but not answering yet; waiting"
else
    [ "$(id -u)" -eq 0 ] || die "dockerd must start as root (run this script with sudo)"
    # A stale pid file from a killed engine makes dockerd refuse to start.
    for pidfile in /var/run/docker.pid /run/docker.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
    done
    # containerd: dockerd starts its own managed containerd when none is running.
    mtu=${DUPLEX_DOCKERD_MTU:-}
    if [ -z "$mtu" ]; then
        dev=$(ip route show default 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="dev") {print $(i+1); exit}}')
        [ -n "$dev" ] && mtu=$(cat "/sys/class/net/$dev/mtu" 2>/dev/null || true)
    fi
    args=(--storage-driver=overlay2 --host=unix:///var/run/docker.sock)
    [ -n "$mtu" ] && args+=("--mtu=$mtu")
    [ -n "${DUPLEX_REGISTRY_MIRROR:-}" ] && args+=("--registry-mirror=$DUPLEX_REGISTRY_MIRROR")
    mkdir -p "$(dirname "$LOG")"
    say "starting $DOCKERD ${args[*]} (log: $LOG)"
    nohup "$DOCKERD" "${args[@]}" >>"$LOG" 2>&1 </dev/null &
    disown || true
fi

# 3. Wait for the engine to answer.
start=$(date +%s)
while ! engine_up; do
    if [ $(( $(date +%s) - start )) -ge "$WAIT" ]; then
        echo "---- last lines of $LOG ----" >&2
        tail -n 30 "$LOG" >&2 || true
        die "Docker engine did not answer 'docker info' within ${WAIT}s; see $LOG"
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        echo "---- last lines of $LOG ----" >&2
        tail -n 30 "$LOG" >&2 || true
        die "dockerd exited during start-up; see $LOG"
    fi
    sleep 1
done
say "engine up after $(( $(date +%s) - start ))s: $(docker info --format 'server {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}' 2>/dev/null)"
