"""A small real HTTP server answering the hub calls preflight makes, the way huggingface.co answers them.

whoami-v2 (200 for a known token, 401 otherwise), model info (gated flag, file sizes, safetensors
parameters) and auth-check (200, 403 GatedRepo for a gated model the user was not granted, 404 RepoNotFound).
huggingface_hub's own client agrees with it (see test_token.py), which keeps it honest.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubServer:
    def __init__(self):
        self.tokens: dict[str, str] = {}  # token -> user name
        self.models: dict[str, dict] = {}  # repo -> {"gated": False|"auto"|"manual", "siblings": [...], ...}
        self.granted: dict[str, set[str]] = {}  # repo -> users with access to a gated repo
        self.delay = 0.0  # seconds to sit on every request (a hub that hangs)
        self.seen: list[tuple[str, bool]] = []  # (path, had an Authorization header)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self):
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def add_model(self, repo: str, *, gated=False, files: dict[str, int] | None = None,
                  parameters: dict[str, int] | None = None, granted=()):
        files = files or {"config.json": 700, "model.safetensors": 2_000_000}
        info = {"id": repo, "modelId": repo, "private": False, "gated": gated, "sha": "a" * 40,
                "siblings": [{"rfilename": n, "size": s} for n, s in files.items()]}
        if parameters:
            info["safetensors"] = {"parameters": parameters, "total": sum(parameters.values())}
        self.models[repo] = info
        self.granted[repo] = set(granted)

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: dict, error_code: str | None = None):
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if error_code:
                    self.send_header("X-Error-Code", error_code)
                    self.send_header("X-Error-Message", body.get("error", ""))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                auth = self.headers.get("Authorization", "")
                hub.seen.append((self.path, bool(auth)))
                if hub.delay:
                    time.sleep(hub.delay)
                user = hub.tokens.get(auth.removeprefix("Bearer ").strip()) if auth else None
                path = self.path.split("?", 1)[0]
                if path == "/api/whoami-v2":
                    if user is None:
                        return self._send(401, {"error": "Invalid credentials in Authorization header"})
                    return self._send(200, {"type": "user", "name": user, "auth": {"type": "access_token"}})
                if auth and user is None:  # the hub refuses a bad token on every route
                    return self._send(401, {"error": "Invalid credentials in Authorization header"})
                found = re.fullmatch(r"/api/models/([^/]+/[^/]+)(/revision/[^/]+|/auth-check)?", path)
                if not found or found.group(1) not in hub.models:
                    return self._send(404 if user else 401, {"error": "Repository not found"}, "RepoNotFound")
                repo, tail = found.group(1), found.group(2) or ""
                info = hub.models[repo]
                if tail == "/auth-check":
                    if info["gated"] and user not in hub.granted[repo]:
                        return self._send(403, {"error": f"Access to model {repo} is restricted and you are not in "
                                                         f"the authorized list. Visit {hub.url}/{repo} to ask for access."},
                                          "GatedRepo")
                    return self._send(200, {})
                return self._send(200, info)

        return Handler
