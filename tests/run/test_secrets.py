"""No secret in any output (issue 18, family 3): a known secret is planted everywhere a secret can
come from (HF_TOKEN, the project's .env, `hf auth login`'s token file, user:password inside
HF_ENDPOINT and a proxy URL, a declared service secret, a collector's auth header, a database URL in
the stack file) against a hub that echoes every request (token, URL and all) in its errors, and
every output of every task, every file duplex writes (logs, run state, certificates, the published
stack) is searched for it."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.run.conftest import free_port

ENV_TOKEN = "hf_PLANTEDenvTOKEN1234"
DOTENV_TOKEN = "hf_PLANTEDdotenvTOKEN5678"
FILE_TOKEN = "hf_PLANTEDfileTOKEN9012"
CLI_TOKEN = "hf_PLANTEDcliTOKEN3456"
MIRROR_PASS = "PLANTEDmirrorPASS"
PROXY_PASS = "PLANTEDproxyPASS"
SERVICE_KEY = "PLANTEDserviceKEY"
OTEL_SECRET = "PLANTEDotelHEADER"
DB_PASS = "PLANTEDdbPASS"
SECRETS = [ENV_TOKEN, DOTENV_TOKEN, FILE_TOKEN, CLI_TOKEN, MIRROR_PASS, PROXY_PASS, SERVICE_KEY, OTEL_SECRET,
           DB_PASS, base64.b64encode(f"mirror:{MIRROR_PASS}".encode()).decode()]
# where the user put them on purpose: the only files that may hold them
ALLOWED = {".env", "stack.toml", "token"}

LEAKY = '''
import http.server, os, sys
print("leaky: my token is", os.environ.get("HF_TOKEN"), "key", os.environ.get("MY_SERVICE_KEY"), flush=True)
print("leaky: db", os.environ.get("DB_URL"), "hub", os.environ.get("HF_ENDPOINT"), flush=True)
print("leaky: Authorization: Bearer " + os.environ.get("HF_TOKEN", ""), flush=True)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a):
        print("leaky: served", self.path, "for", os.environ.get("MY_SERVICE_KEY"), flush=True)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

STACK_EXTRA = f'''
[services.leaky]
env = "web"
command = ["python", "leaky.py", "{{port}}"]
port = 18504
health = "/health"
start_timeout = 20
dockerfile = "toy.Dockerfile"
models = ["acme/planted"]
secrets = ["MY_SERVICE_KEY"]
[services.leaky.environment]
DB_URL = "postgres://dbuser:{DB_PASS}@db:5432/speech"
'''


class EchoHub:
    """A hub (or proxy) that answers every request with an error that repeats the request: its
    path, its URL and every header, Authorization included, in the body, a header and the reason."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _echo(self):
                said = f"echo {self.command} {self.path} headers={dict(self.headers)}"
                body = json.dumps({"error": said, "request": {"headers": dict(self.headers)}}).encode()
                code = 500 if self.path.startswith("/api/whoami") else 418
                self.send_response(code, said.replace("\n", " ")[:400])
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Message", said.replace("\n", " ")[:400])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _echo

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def endpoint(self) -> str:
        return f"http://mirror:{MIRROR_PASS}@127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def planted(toy, tmp_path):
    hub = EchoHub()
    (toy.root / "leaky.py").write_text(LEAKY)
    with open(toy.root / "stack.toml", "a") as stack:
        stack.write(STACK_EXTRA)
    (toy.root / ".env").write_text(f'# written by another tool\nexport HF_TOKEN="{DOTENV_TOKEN}"\n')
    token_file = tmp_path / "hf-home" / "token"
    token_file.parent.mkdir()
    token_file.write_text(FILE_TOKEN + "\n")
    toy.ports["leaky"] = free_port()
    toy.env.update({
        "DUPLEX_PORT_LEAKY": str(toy.ports["leaky"]), "HF_TOKEN": ENV_TOKEN, "HF_ENDPOINT": hub.endpoint(),
        "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN_PATH": str(token_file),
        "HTTPS_PROXY": f"http://proxy:{PROXY_PASS}@127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
        "MY_SERVICE_KEY": SERVICE_KEY, "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {OTEL_SECRET}",
        "DUPLEX_PREFLIGHT_TIMEOUT": "3"})
    yield toy
    hub.server.shutdown()


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_no_secret_reaches_any_output_log_state_or_published_file(planted, tmp_path):
    toy = planted
    outputs: dict[str, str] = {}

    def inv(*args: str, token: str | None = "env", timeout: float = 120):
        extra = {} if token == "env" else {"HF_TOKEN": ""}
        proc = toy.inv(*args, extra=extra, timeout=timeout)
        outputs[f"inv {' '.join(args)} ({token})"] = proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    for token in ("env", "dotenv"):  # HF_TOKEN, then the .env token that tasks load into HF_TOKEN
        inv("config", token=token)
        inv("config", "--json", "--native", "--otlp", "http://127.0.0.1:4318", token=token)
        inv("preflight", token=token)
        inv("preflight", "--json", "--native", token=token)
        inv("prefetch", token=token)
        inv("prefetch", "--json", token=token)
        inv("prefetch", "--dry-run", "--repo", "acme/other", token=token)
        detached = inv("run", "--native", "--detach", "--skip-preflight", "--services", "api,leaky",
                       "--otlp", "http://127.0.0.1:4318", token=token)
        assert detached.returncode == 0, detached.stdout + detached.stderr
        inv("status", token=token)
        inv("status", "--json", token=token)
        inv("logs", token=token)
        inv("logs", "--service", "leaky", token=token)
        inv("smoke", "--json", token=token)
        assert inv("stop", token=token).returncode == 0
    (toy.root / ".env").unlink()
    inv("preflight", "--json", token="file")  # HF_TOKEN_PATH's token: no HF_TOKEN, no .env
    inv("prefetch", token="file")
    assert inv("setup", "--env", "web", "--hf-token", CLI_TOKEN).returncode in (0, 1)
    assert CLI_TOKEN in (toy.root / ".env").read_text()  # saved where the user asked, 0600
    assert (toy.root / ".env").stat().st_mode & 0o777 == 0o600
    attached = toy.popen("run", "--native", "--skip-preflight", "--services", "leaky")
    toy.wait_healthy("leaky", proc=attached)
    time.sleep(0.5)
    attached.send_signal(signal.SIGINT)
    outputs["inv run --native (attached)"] = attached.communicate(timeout=60)[0]
    published = inv("publish", "--compose", "--k8s", "--services", "api,leaky", timeout=300)
    assert published.returncode == 0, published.stdout + published.stderr
    inv("certs", "--name", "127.0.0.1")
    inv("vendor-moshi", "--check")

    assert any("leaky: my token is ***" in text for text in outputs.values())  # the line is kept, masked
    assert any("mirror:***@" in text or "***@127.0.0.1" in text for text in outputs.values())
    found = {name: leaks(text) for name, text in outputs.items() if leaks(text)}
    assert found == {}, {name: outputs[name][-2000:] for name in found}
    files = [p for p in toy.root.rglob("*") if p.is_file() and not p.is_symlink()
             and ".duplex/envs" not in str(p) and p.name not in ALLOWED]
    assert any(p.name == "leaky.log" for p in files) and any(p.parent.name == "deploy" for p in files)
    in_files = {str(p.relative_to(toy.root)): leaks(p.read_text(errors="replace")) for p in files}
    assert {k: v for k, v in in_files.items() if v} == {}

