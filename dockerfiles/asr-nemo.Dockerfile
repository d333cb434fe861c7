# The ASR server (servers/asr) on NVIDIA NeMo: the asr image's server, the asr-nemo env's packages
# (NeMo's ASR collection + torch). Build context: the repo root.
#
#   docker build -f dockerfiles/asr-nemo.Dockerfile -t duplex/asr-nemo .                          # CPU torch
#   docker build -f dockerfiles/asr-nemo.Dockerfile --build-arg TORCH=cu130 -t duplex/asr-nemo .  # GPU host
#
# Packages come from envs/asr-nemo/requirements.<TORCH>.lock (hash-pinned; what `inv setup --env
# asr-nemo` installs natively), one lock per torch build. TORCH_INDEX is where pip finds that torch
# build; duplex stages the host's own copy in .duplex/build/wheels/ when it has the locked one (pip
# find-links) and then builds without the index. Hash checking makes either source safe.
# Models are not baked in: mount the shared Hugging Face cache at /cache/huggingface (HF_HOME).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS deps
ARG TORCH=cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/${TORCH}
COPY .duplex/build/ca.pem .duplex/build/wheel[s] /tmp/build/
COPY envs/asr-nemo/requirements.${TORCH}.lock /tmp/requirements.lock
# As in moshi.Dockerfile: a lock whose torch has no +tag was resolved from PyPI: no variant index then.
RUN set -eu; \
    if [ -s /tmp/build/ca.pem ]; then export PIP_CERT=/tmp/build/ca.pem; fi; \
    if ! grep -q '^torch==[^ ]*+' /tmp/requirements.lock; then TORCH_INDEX=""; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --require-hashes \
        --find-links /tmp/build ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        -r /tmp/requirements.lock; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +; \
    rm -rf /tmp/build

FROM ${BASE_IMAGE}
ARG UID=1000
ARG GID=1000
RUN groupadd --non-unique --gid "${GID}" duplex \
 && useradd --non-unique --uid "${UID}" --gid "${GID}" --create-home --shell /bin/sh duplex
COPY --from=deps /opt/venv /opt/venv
# The lhotse fix (stack.toml `fixes`), as `inv setup` applies it natively: the same script, at build.
COPY duplex/standalone/lhotse_fix.py /tmp/lhotse_fix.py
RUN /opt/venv/bin/python /tmp/lhotse_fix.py --verify && rm /tmp/lhotse_fix.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    HF_HUB_OFFLINE=1 \
    ASR_BACKEND=nemo
WORKDIR /app
USER duplex
EXPOSE 8000
# /health answers at once (503 while the model loads, 200 when ready): NeMo's import alone takes
# 10-20 s on a small CPU, a large model minutes.
# ?duplex-probe=1: the server leaves its own health checks out of its access log (servers/telemetry.py)
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health?duplex-probe=1', timeout=2)"]
COPY servers/__init__.py servers/telemetry.py servers/errors.py servers/envvars.py servers/origins.py servers/
COPY servers/asr servers/asr
CMD ["python", "-m", "uvicorn", "servers.asr.app:app", "--host", "0.0.0.0", "--port", "8000"]
