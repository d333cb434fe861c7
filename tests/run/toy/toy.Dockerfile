# The toy service image: dependencies from the lock in an early layer, source last.
ARG BASE_IMAGE=duplex/python:3.11-bookworm
FROM ${BASE_IMAGE} AS deps
COPY .duplex/build/ca.pem /tmp/duplex-ca.pem
COPY envs/web/requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
 && if [ -s /tmp/duplex-ca.pem ]; then export PIP_CERT=/tmp/duplex-ca.pem; fi \
 && /opt/venv/bin/pip install --no-cache-dir --quiet --require-hashes -r /tmp/requirements.lock

FROM ${BASE_IMAGE}
ARG UID=1000
ARG GID=1000
RUN groupadd -o -g ${GID} duplex && useradd -o -m -u ${UID} -g ${GID} duplex
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HF_HOME=/cache/huggingface
WORKDIR /app
USER duplex
COPY *.py /app/
