"""A small Debug Adapter Protocol client (JSON bodies with Content-Length framing over TCP)."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time


class DapSession:
    """One DAP connection to debugpy's adapter: requests, their responses, and events."""

    def __init__(self, host: str, port: int, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(None)
        self.seq = 0
        self.responses: dict[int, queue.Queue] = {}
        self.events: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(buf) < length:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                msg, buf = json.loads(buf[:length]), buf[length:]
                if msg["type"] == "response":
                    self.responses.setdefault(msg["request_seq"], queue.Queue()).put(msg)
                elif msg["type"] == "event":
                    self.events.put(msg)
                # reverse requests (runInTerminal, startDebugging) are not used by attach
        except OSError:
            return

    def send(self, command: str, arguments: dict | None = None) -> int:
        with self.lock:
            self.seq += 1
            seq = self.seq
            self.responses.setdefault(seq, queue.Queue())
            body = json.dumps({"seq": seq, "type": "request", "command": command,
                               "arguments": arguments or {}}).encode()
            self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return seq

    def response(self, seq: int, timeout: float = 30) -> dict:
        msg = self.responses[seq].get(timeout=timeout)
        if not msg.get("success"):
            raise AssertionError(f"DAP {msg.get('command')} failed: {msg.get('message')}")
        return msg

    def request(self, command: str, arguments: dict | None = None, timeout: float = 30) -> dict:
        return self.response(self.send(command, arguments), timeout)

    def event(self, name: str, timeout: float = 30) -> dict:
        """The next event called `name` (others are kept aside for later waits)."""
        deadline, skipped = time.monotonic() + timeout, []
        try:
            while True:
                msg = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
                if msg["event"] == name:
                    return msg
                skipped.append(msg)
        finally:
            for msg in skipped:
                self.events.put(msg)

    def attach(self, arguments: dict, breakpoints: dict[str, list[int]]) -> dict:
        """initialize -> attach -> (initialized) setBreakpoints -> configurationDone -> attached."""
        self.request("initialize", {"clientID": "duplex-tests", "adapterID": "debugpy",
                                    "pathFormat": "path", "linesStartAt1": True, "columnsStartAt1": True})
        attach = self.send("attach", arguments)
        self.event("initialized")
        verified = {}
        for path, lines in breakpoints.items():
            body = self.request("setBreakpoints", {"source": {"path": path},
                                                   "breakpoints": [{"line": n} for n in lines]})["body"]
            verified[path] = [b.get("verified") for b in body["breakpoints"]]
        self.request("configurationDone")
        self.response(attach)
        return verified

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
