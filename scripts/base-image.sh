#!/usr/bin/env bash
# Build the local base image that every duplex Dockerfile starts FROM.
#
#   scripts/base-image.sh [TAG]        (default TAG: duplex/python:3.11-bookworm)
#
# No image registry is reachable here, so the image is a Debian bookworm minbase
# root filesystem made with debootstrap from the machine's own apt mirror, then
# `docker import`ed. Three paths, cheapest first:
#   1. the image already exists            -> nothing to do
#   2. a cached rootfs tarball exists       -> docker import it (seconds)
#   3. otherwise                            -> debootstrap, save the tarball, import
#
# Environment:
#   DUPLEX_IMAGE_CACHE   where the rootfs tarball is kept (default /var/cache/duplex)
#   DUPLEX_APT_MIRROR    override the mirror (default: URIs: line of this machine's apt sources)
#   DUPLEX_BASE_REBUILD  set to 1 to ignore the existing image and the cached tarball
set -euo pipefail

TAG=${1:-duplex/python:3.11-bookworm}
SUITE=bookworm
CACHE_DIR=${DUPLEX_IMAGE_CACHE:-/var/cache/duplex}
TARBALL=$CACHE_DIR/base-$SUITE.tar
# python3 on bookworm is 3.11. passwd gives useradd/groupadd for the non-root
# `duplex` user. Runtime libraries the servers need (libsndfile, libgomp, libopus,
# ffmpeg) ship inside their wheels (soundfile, ctranslate2, av, sphn); libstdc++6
# and libgcc-s1 come with minbase (apt needs them).
INCLUDE=python3,python3-venv,python3-pip,ca-certificates,passwd

say() { printf '[base-image] %s\n' "$*"; }
die() { printf '[base-image] ERROR: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "Docker engine is not answering; run scripts/docker-engine.sh first"

if [ "${DUPLEX_BASE_REBUILD:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    say "$TAG already exists ($(docker image inspect --format '{{.Id}}' "$TAG" | cut -c1-19)); nothing to do"
    exit 0
fi

# The first URIs: line (deb822 .sources files) or the first `deb` line (sources.list)
# of this machine's apt configuration: the mirror that is known to be reachable here.
apt_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk 'tolower($1)=="uris:" {print $2; exit}' "$f")
        case $uri in *debian-security*|"") continue ;; *) echo "$uri"; return ;; esac
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; exit}}' "$f" | grep -v debian-security | head -1 || true)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    return 1
}

import_tarball() {
    local t0=$SECONDS
    say "importing $TARBALL as $TAG"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PYTHONUNBUFFERED=1' \
        --change 'LABEL org.duplex.base.suite='"$SUITE"' org.duplex.base.include='"$INCLUDE" \
        --change 'CMD ["python3"]' \
        --message "duplex base: debian $SUITE minbase + $INCLUDE" \
        "$TARBALL" "$TAG" >/dev/null
    say "imported $TAG in $((SECONDS - t0))s ($(docker run --rm "$TAG" python3 --version))"
}

# A cached tarball is reused only if it was made with the same package list.
if [ "${DUPLEX_BASE_REBUILD:-0}" != 1 ] && [ -s "$TARBALL" ] \
   && [ "$(cat "$TARBALL.include" 2>/dev/null)" = "$INCLUDE" ]; then
    say "using cached rootfs $TARBALL"
    import_tarball
    exit 0
fi

command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing: apt-get install -y debootstrap"
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root (run with sudo)"
MIRROR=${DUPLEX_APT_MIRROR:-$(apt_mirror)} \
    || die "no apt mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; set DUPLEX_APT_MIRROR"

mkdir -p "$CACHE_DIR"
ROOTFS=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
trap 'rm -rf "$ROOTFS" "$TARBALL.tmp"' EXIT

t0=$SECONDS
say "debootstrap --variant=minbase $SUITE from $MIRROR (include: $INCLUDE)"
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" \
        >"$CACHE_DIR/debootstrap.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/debootstrap.log" >&2
    die "debootstrap failed; full log: $CACHE_DIR/debootstrap.log"
fi
say "debootstrap done in $((SECONDS - t0))s"

# Slim the rootfs (~50 MB): package caches and lists (apt-get update rebuilds them),
# man/info pages, translations and docs; the copyright files stay.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/debootstrap "$ROOTFS"/var/log/*.log \
       "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* \
       "$ROOTFS"/tmp/* 2>/dev/null || true
find "$ROOTFS"/usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
find "$ROOTFS"/usr/share/doc -mindepth 1 -type d -empty -delete 2>/dev/null || true

t0=$SECONDS
tar --numeric-owner --xattrs -C "$ROOTFS" -cf "$TARBALL.tmp" .
mv "$TARBALL.tmp" "$TARBALL"
printf '%s' "$INCLUDE" >"$TARBALL.include"
say "saved $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $((SECONDS - t0))s"
rm -rf "$ROOTFS"

import_tarball
