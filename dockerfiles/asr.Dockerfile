# The ASR server (servers/asr): pocketsphinx by default, faster-whisper or NeMo by ASR_BACKEND.
# Build context: the repo root.
#   docker build -f dockerfiles/asr.Dockerfile -t duplex/asr .   (air-gapped: --build-arg BASE_IMAGE=duplex/python:3.11-bookworm)
# Packages come from envs/asr/requirements.lock (hash-pinned), the same lock native runs use.
# Models are not baked in: mount the shared Hugging Face cache at /cache/huggingface (HF_HOME).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS deps
# The CA bundle for a TLS-intercepting proxy, written by duplex before each build (may be empty).
COPY .duplex/build/ca.pem /tmp/ca.pem
COPY envs/asr/requirements.lock /tmp/requirements.lock
RUN set -eu; \
    if [ -s /tmp/ca.pem ]; then export PIP_CERT=/tmp/ca.pem; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --require-hashes -r /tmp/requirements.lock; \
    rm -f /tmp/ca.pem

FROM ${BASE_IMAGE}
ARG UID=1000
ARG GID=1000
RUN groupadd --non-unique --gid "${GID}" duplex \
 && useradd --non-unique --uid "${UID}" --gid "${GID}" --create-home --shell /bin/sh duplex
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    HF_HUB_OFFLINE=1 \
    ASR_BACKEND=pocketsphinx
WORKDIR /app
USER duplex
EXPOSE 8000
# /health answers at once (503 while the model loads, 200 when ready): give big models time.
# ?duplex-probe=1: the server leaves its own health checks out of its access log (servers/telemetry.py)
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health?duplex-probe=1', timeout=2)"]
# Source last: an edit to the server rebuilds only these layers (about a second).
COPY servers/__init__.py servers/telemetry.py servers/errors.py servers/envvars.py servers/origins.py servers/
COPY servers/asr servers/asr
CMD ["python", "-m", "uvicorn", "servers.asr.app:app", "--host", "0.0.0.0", "--port", "8000"]
