#!/usr/bin/env bash
# A local image registry (Debian's docker-registry, the reference implementation) that stands in
# for Docker Hub where no registry is reachable (CI, air-gapped labs):
#
#   scripts/registry-mirror.sh start   start it on 127.0.0.1:$PORT unless it answers (before dockerd,
#                                      which takes it as its mirror: DUPLEX_REGISTRY_MIRROR)
#   scripts/registry-mirror.sh seed    push the air-gapped base image (scripts/base-image.sh) into it
#                                      under the official name library/python:3.11-slim-bookworm, so
#                                      `FROM python:3.11-slim-bookworm` pulls from it, by digest
#
# Environment:
#   DUPLEX_REGISTRY_PORT   port on 127.0.0.1 (default 5055)
#   DUPLEX_REGISTRY_DIR    config, storage and log (default /var/lib/duplex-registry)
set -euo pipefail

PORT=${DUPLEX_REGISTRY_PORT:-5055}
DIR=${DUPLEX_REGISTRY_DIR:-/var/lib/duplex-registry}
URL=http://127.0.0.1:$PORT
BASE=duplex/python:3.11-bookworm
OFFICIAL=library/python:3.11-slim-bookworm

say() { printf '[registry] %s\n' "$*"; }
die() { printf '[registry] ERROR: %s\n' "$*" >&2; exit 1; }
answers() { python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/v2/', timeout=2)" "$URL" 2>/dev/null; }

start() {
    if answers; then say "already answering at $URL"; return; fi
    command -v docker-registry >/dev/null || die "docker-registry is missing: apt-get install -y docker-registry"
    mkdir -p "$DIR/data"
    cat >"$DIR/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/data
http:
  addr: 127.0.0.1:$PORT
CONFIG
    # a plain process with its own config, not the package's systemd unit
    nohup docker-registry serve "$DIR/config.yml" >>"$DIR/registry.log" 2>&1 </dev/null &
    disown || true
    for _ in $(seq 50); do answers && { say "up at $URL (storage $DIR/data)"; return; }; sleep 0.2; done
    tail -n 20 "$DIR/registry.log" >&2 || true
    die "docker-registry did not answer at $URL; see $DIR/registry.log"
}

seed() {
    answers || die "no registry at $URL: run '$0 start' first"
    docker image inspect "$BASE" >/dev/null 2>&1 || die "$BASE is missing: run scripts/base-image.sh first"
    docker tag "$BASE" "127.0.0.1:$PORT/$OFFICIAL"
    docker push -q "127.0.0.1:$PORT/$OFFICIAL" >/dev/null
    docker rmi "127.0.0.1:$PORT/$OFFICIAL" >/dev/null
    say "pushed $BASE as $OFFICIAL"
}

case ${1:-} in
    start) start ;;
    seed) seed ;;
    *) die "usage: $0 start|seed" ;;
esac
