# The moshi speech-to-speech backend: the VENDORED moshi server (third_party/moshi, written by
# `inv vendor-moshi`), run as `python -m moshi.server`. Build context: the repo root.
#
#   docker build -f dockerfiles/moshi.Dockerfile -t duplex/moshi .                        # CPU torch (CI)
#   docker build -f dockerfiles/moshi.Dockerfile --build-arg TORCH=cu128 -t duplex/moshi .  # GPU host
#
# Packages come from envs/moshi/requirements.<TORCH>.lock (hash-pinned; the lock native runs use):
# one lock per torch build, because a CPU and a CUDA torch are different files with different
# hashes. TORCH_INDEX is where pip finds that torch build (the PyTorch index for the variant);
# .duplex/build/wheels/ is an optional wheelhouse duplex fills from the host's own wheels (pip
# find-links) for machines that cannot reach that index. Hash checking makes either source safe.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS deps
ARG TORCH=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/${TORCH}
# ca.pem (always written by duplex, may be empty) and, when present, the wheelhouse: wheel[s] is a
# pattern, so a missing .duplex/build/wheels/ is simply skipped.
COPY .duplex/build/ca.pem .duplex/build/wheel[s] /tmp/build/
COPY envs/moshi/requirements.${TORCH}.lock /tmp/requirements.lock
# A lock whose torch has no +cuXYZ tag was resolved from PyPI (requirements.cu130.lock): its hashes are
# PyPI's files, and `torch==2.13.0` would also match the variant index's 2.13.0+cu130: no index then.
RUN set -eu; \
    if [ -s /tmp/build/ca.pem ]; then export PIP_CERT=/tmp/build/ca.pem; fi; \
    if ! grep -q '^torch==[^ ]*+' /tmp/requirements.lock; then TORCH_INDEX=""; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --require-hashes \
        --find-links /tmp/build ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        -r /tmp/requirements.lock; \
    rm -rf /tmp/build

FROM ${BASE_IMAGE}
# libopus: moshi streams Opus. sphn carries its own copy, but the stack declares the system library
# (stack.toml: system = ["opus"]) and other tools in the image (ffmpeg, a PersonaPlex build) use it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 \
 && rm -rf /var/lib/apt/lists/*
ARG UID=1000
ARG GID=1000
RUN groupadd --non-unique --gid "${GID}" duplex \
 && useradd --non-unique --uid "${UID}" --gid "${GID}" --create-home --shell /bin/sh duplex
COPY --from=deps /opt/venv /opt/venv
# moshi is imported from the vendored tree, never installed from the index: PYTHONPATH=/opt/moshi.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/moshi \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface
WORKDIR /app
USER duplex
EXPOSE 8998
# Health (duplex/standalone/wscheck.py, the same check duplex, Compose and Kubernetes run): the real WebSocket
# handshake on /api/chat until moshi sends its ready byte 0x00 once (weights loaded; a 7B model takes
# minutes, hence the start period), then any HTTP answer: moshi serves one conversation at a time,
# and a handshake every 15 s would wait on that conversation and flip a busy server to unhealthy.
# Port and TLS follow the server's own --port and --ssl, so `--ssl /certs` needs no other check.
COPY duplex/standalone/wscheck.py duplex/standalone/moshi_smoke.py /opt/duplex/
# The servers' Origin rule (servers/origins.py), which the vendored server imports from its working
# folder (third_party/patches/moshi/0002-origin-check.patch): pages of other origins cannot open
# /api/chat; DUPLEX_ALLOWED_ORIGINS lists more (docs/servers.md).
COPY servers/__init__.py servers/envvars.py servers/origins.py /app/servers/
HEALTHCHECK --interval=15s --timeout=6s --start-period=900s --retries=3 \
    CMD ["python", "/opt/duplex/wscheck.py", "--path", "/api/chat", "--tls-flag", "--ssl", \
         "--once", "/tmp/duplex-ready", "--timeout", "4"]
# Source last: a re-vendored moshi rebuilds only this layer.
COPY third_party/moshi /opt/moshi
# --static none: duplex serves its own web frontend. Without it moshi downloads Kyutai's web client
# (kyutai/moshi-artifacts) after loading its weights, which an offline start (HF_HUB_OFFLINE=1) cannot.
CMD ["python", "-m", "moshi.server", "--host", "0.0.0.0", "--port", "8998", "--static", "none"]
