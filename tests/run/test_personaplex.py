"""PersonaPlex swapped in as docs/servers.md#personaplex says: what can run without its weights.

The documented `[services.moshi]` block is read from the docs and loaded into the shipped stack, so
the test follows the docs. Then: the command duplex plans from it (both modes, TLS), the port
bindings of the container runner and of Compose, and a real container started by `inv run` from
that plan, whose stand-in server (PersonaPlex's argument list, the ready byte on its handshake)
records the arguments it got and the address it bound. PersonaPlex's own code and weights need a
GPU host and the gated repo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from duplex.machine import Machine
from duplex.plan import CERTS_IN_CONTAINER, plan
from duplex.publish import target_plan
from duplex.publish.compose import compose_files
from duplex.run.containers import run_kwargs
from duplex.stack import load_stack
from tests.conftest import ROOT
from tests.support.net import free_port
from tests.support.tools import tool

GPU_BOX = Machine(gpu_count=1, nvidia_runtime=True, hf_home="/data/hf")
MARK = "<!-- personaplex-stack:"


def documented_block() -> str:
    docs = (ROOT / "docs" / "servers.md").read_text()
    after = docs[docs.index(MARK):]
    return re.search(r"```toml\n(.*?)```", after, re.S).group(1)


def personaplex_stack(folder: Path, block: str | None = None) -> Path:
    """The shipped stack with its moshi service replaced by the documented PersonaPlex one."""
    shipped = (ROOT / "stack.toml").read_text()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stack.toml").write_text(shipped[:shipped.index("[services.moshi]")] + (block or documented_block()))
    return folder / "stack.toml"


def test_the_documented_block_plans_personaplex(tmp_path):
    stack = load_stack(personaplex_stack(tmp_path))
    moshi = plan(stack, GPU_BOX, services=["moshi"]).services["moshi"]
    assert moshi.mode == "container" and moshi.gpu and moshi.models == ["nvidia/personaplex-7b-v1"]
    assert moshi.command == ["python", "-m", "moshi.server", "--host", "0.0.0.0", "--port", "8998",
                             "--static", "none", "--hf-repo", "nvidia/personaplex-7b-v1",
                             "--voice-prompt-dir", "/voices", "--cpu-offload"]
    assert moshi.environment["HF_HUB_OFFLINE"] == "1"  # from the shared cache, never a download at start
    assert moshi.health.url.endswith("/api/chat?voice_prompt=NATF2.pt&text_prompt=")
    # --native: still a container (container-only), same command; TLS adds moshi's --ssl folder
    assert plan(stack, GPU_BOX, native=True, services=["moshi"]).services["moshi"].command == moshi.command
    tls = plan(stack, GPU_BOX, services=["moshi"], tls=True).services["moshi"]
    assert tls.command == [*moshi.command, "--ssl", CERTS_IN_CONTAINER] and tls.health.url.startswith("wss://")
    # all interfaces inside its container, 127.0.0.1 only on the host: runner and Compose alike
    assert run_kwargs(moshi, "pp", "duplex-pp", "0" * 16)["ports"] == {"8998/tcp": ("127.0.0.1", 8998)}
    compose = compose_files(target_plan(stack, services=["moshi"], environ={}), context="..")["compose.yaml"]
    assert compose["services"]["moshi"]["ports"] == ["127.0.0.1:${DUPLEX_PORT_MOSHI:-8998}:8998"]
    assert "--cpu-offload" in compose["services"]["moshi"]["command"]
    # the frontend points at it as it pointed at moshi
    front = plan(stack, GPU_BOX, services=["frontend", "moshi"]).services["frontend"]
    assert front.environment["MOSHI_WS_URL"] == "ws://moshi:8998/api/chat"


STANDIN = '''
"""A stand-in for PersonaPlex's moshi.server: its argument list; answers /args with what it got
and the ready byte to a WebSocket handshake that carries PersonaPlex's query parameters."""
import argparse, asyncio, base64, hashlib, json, sys
from urllib.parse import parse_qs, urlsplit

p = argparse.ArgumentParser()
for flag in ("--host", "--port", "--static", "--hf-repo", "--tokenizer", "--moshi-weight",
             "--mimi-weight", "--device", "--voice-prompt-dir", "--ssl", "--gradio-tunnel-token"):
    p.add_argument(flag)
p.add_argument("--cpu-offload", action="store_true")
p.add_argument("--gradio-tunnel", action="store_true")
args = p.parse_args()
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

async def handle(reader, writer):
    head = (await reader.readuntil(b"\\r\\n\\r\\n")).decode()
    target = head.split()[1]
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in head.split("\\r\\n")[1:] if l)}
    url = urlsplit(target)
    if url.path == "/args":
        body = json.dumps({"argv": sys.argv[1:], "cpu_offload": args.cpu_offload,
                           "bound": [s.getsockname()[0] for s in server.sockets]}).encode()
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
    elif url.path == "/api/chat" and "sec-websocket-key" in headers:
        query = parse_qs(url.query, keep_blank_values=True)
        if "voice_prompt" not in query or "text_prompt" not in query:
            writer.write(b"HTTP/1.1 500 Internal Server Error\\r\\nContent-Length: 0\\r\\n\\r\\n")
        else:
            accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
            writer.write(("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
                          f"Sec-WebSocket-Accept: {accept}\\r\\n\\r\\n").encode() + b"\\x82\\x01\\x00")
            await writer.drain()
            await reader.read()
    else:
        writer.write(b"HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\n\\r\\n")
    await writer.drain()
    writer.close()

async def main():
    global server
    server = await asyncio.start_server(handle, args.host, int(args.port))
    print(f"stand-in PersonaPlex listening on {args.host}:{args.port}, cpu_offload={args.cpu_offload}", flush=True)
    await server.serve_forever()

asyncio.run(main())
'''
DOCKERFILE = """ARG BASE_IMAGE=duplex/python:3.11-bookworm
FROM ${BASE_IMAGE}
ARG UID=1000
ARG GID=1000
RUN groupadd --non-unique --gid "${GID}" duplex && useradd --non-unique --uid "${UID}" --gid "${GID}" duplex
RUN ln -s /usr/bin/python3 /usr/local/bin/python
COPY standin /opt/standin
ENV PYTHONPATH=/opt/standin
USER duplex
"""


@pytest.mark.docker
@pytest.mark.slow
def test_a_container_from_that_plan_gets_the_offload_flag_and_is_published_on_loopback_only(tmp_path):
    # The documented block, with what needs the real thing swapped out: the stand-in's image, no
    # gated model to prefetch, no GPU (this machine has none). The command is the documented one.
    block = documented_block()
    for old, new in (('dockerfile = "dockerfiles/moshi.Dockerfile"', 'dockerfile = "standin.Dockerfile"'),
                     ('models = ["nvidia/personaplex-7b-v1"]', "models = []"), ('gpu = "required"', 'gpu = "none"'),
                     ("persistent = true", "persistent = false")):
        assert old in block
        block = block.replace(old, new)
    root = tmp_path / "pp"
    stack = personaplex_stack(root, block)
    text = stack.read_text().replace('name = "duplex"', 'name = "personaplex-test"', 1)
    stack.write_text(text)
    (root / "standin" / "moshi").mkdir(parents=True)
    (root / "standin" / "moshi" / "__init__.py").write_text("")
    (root / "standin" / "moshi" / "server.py").write_text(textwrap.dedent(STANDIN))
    (root / "standin.Dockerfile").write_text(DOCKERFILE)
    (root / ".dockerignore").write_text(".duplex\n")
    shutil.copytree(ROOT / "envs" / "moshi", root / "envs" / "moshi")  # the env's lock, as preflight wants
    port = free_port()
    env = {**os.environ, "DUPLEX_STACK": str(stack), "DUPLEX_PORT_MOSHI": str(port), "HF_HOME": str(tmp_path / "hf")}

    def inv(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], cwd=root,
                              env=env, capture_output=True, text=True, timeout=600)
    try:
        up = inv("run", "--detach", "--services", "moshi")  # healthy = the handshake with the query
        assert up.returncode == 0, up.stdout + up.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/args", timeout=10) as resp:
            got = json.loads(resp.read())
        assert got["cpu_offload"] and "--cpu-offload" in got["argv"]
        assert got["argv"][got["argv"].index("--voice-prompt-dir") + 1] == "/voices"
        assert got["bound"] == ["0.0.0.0"]  # every interface inside the container ...
        name = "duplex-personaplex-test-moshi"
        bindings = json.loads(subprocess.run([tool("docker"), "inspect", "-f", "{{json .HostConfig.PortBindings}}",
                                              name], capture_output=True, text=True, check=True).stdout)
        assert bindings == {"8998/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}  # ... loopback outside
        outside = _non_loopback_ip()
        if outside:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=3).close()
    finally:
        inv("stop", "--all")


def _non_loopback_ip() -> str | None:
    """This host's address on its default route (what another machine would connect to)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent, only a route chosen
            return probe.getsockname()[0]
        except OSError:
            return None
