"""The dashboard's ASGI app (starlette): the page, the JSON API, the event stream and the actions.
Every API route needs the run's token in a header (docs/dashboard.md: the page keeps it in its tab's
sessionStorage, never in a cookie, which every port of the host would receive); actions are POSTs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import DuplexError
from ..evaluation import report as evaluation
from ..layout import Layout
from ..run.dashboard import QUERY
from . import access
from .feeds import Run
from .logbook import LogBook
from .logfilter import FilterError, matcher
from .otlp import Receiver

STATIC = Path(__file__).with_name("static")
ACTIONS = ("restart", "stop", "start", "reload-code", "reload-model")  # reload-*: warm services only
HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
           "Cache-Control": "no-store"}
# the evaluation report: written by `inv eval` from users' data and servers' answers, so it may run
# nothing and fetch nothing (it needs neither: inline CSS and SVG), and is its own opaque origin
REPORT_HEADERS = {**HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                  "img-src data:; sandbox"}
TICK = 0.05  # the event stream looks for new lines this often


def redact_json(data, mask):
    """`data` with every string in it passed through `mask`."""
    if isinstance(data, str):
        return mask(data)
    if isinstance(data, dict):
        return {key: redact_json(value, mask) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_json(value, mask) for value in data]
    return data


class LatestEval:
    """The project's latest evaluation (`inv eval` writes `.duplex/eval/eval.{json,html}`): its
    headline for the page and the API, read again only when the file changed."""

    def __init__(self, root: Path):
        self.folder = Layout(root).eval
        self.seen: tuple | None = None
        self.summary: dict | None = None

    def report(self) -> Path | None:
        path = self.folder / evaluation.HTML
        return path if path.is_file() else None

    def headline(self) -> dict | None:
        """None when there is no report; its headline figures from eval.json, or only its time when
        that is missing or unreadable (a half-written file cannot be: `inv eval` writes atomically)."""
        html, data = self.folder / evaluation.HTML, self.folder / evaluation.JSON
        try:
            made = html.stat().st_mtime_ns
            stat = data.stat() if data.exists() else None
            stamp = (made, stat.st_mtime_ns, stat.st_size) if stat else (made,)
        except OSError:
            self.seen = self.summary = None
            return None
        if stamp != self.seen:
            try:
                self.summary = evaluation.headline(json.loads(data.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                made = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp[0] / 1e9))
                self.summary = {"made": made, "commit": None, "stack": None, "services": {}, "breaches": 0,
                                "error": f"{evaluation.JSON} is missing or unreadable"}
            self.seen = stamp
        return self.summary


def make_app(token: str, run: Run, book: LogBook, act: Callable[[str, str], dict], traces=None,
             otlp_port: int | None = None, closing: Callable[[], bool] = lambda: False) -> Starlette:
    """`act(action, service)`: runs an action (blocking), returns {"ok": ..., "message": ...}.
    `traces`: a TraceBook filled by OTLP/HTTP exports that arrive on `otlp_port` (the same app
    listens there: exporters carry no token, so only that port takes them, and only them).
    `closing()`: the server is shutting down; open event streams end (a server waits for them)."""
    latest = LatestEval(run.root)

    def authorised(request: Request) -> bool:
        return access.allowed(token, header=request.headers.get(access.HEADER), query=None)

    def refused() -> Response:
        return JSONResponse({"error": "the dashboard needs the run's token",
                             "fix": "open the link `inv dashboard` prints"}, status_code=401, headers=HEADERS)

    async def page(request: Request) -> Response:
        """The page holds no secret and no data (it fetches them with the token), so a reload of `/`
        gets it too, with 401 unless the link's token or the header came along: its script takes the
        token from the link (then drops it from the address) or from the tab's sessionStorage."""
        given = request.query_params.get(QUERY)
        ok = access.same(given, token) if given is not None else authorised(request)
        return Response((STATIC / "index.html").read_bytes(), status_code=200 if ok else 401,
                        media_type="text/html", headers=HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]  # the page's own code: public, like the page
        if name not in ("app.js", "style.css"):
            return PlainTextResponse("not found", status_code=404)
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return Response((STATIC / name).read_bytes(), media_type=kind, headers=HEADERS)

    async def services(request: Request) -> Response:
        if not authorised(request):
            return refused()
        with run.lock:
            rows = list(run.rows)
        return JSONResponse({"stack": run.planned.get("stack"), "native": run.planned.get("native"),
                             "services": rows, "eval": await run_in_threadpool(latest.headline)},
                            headers=HEADERS)

    async def eval_report(request: Request) -> Response:
        """The latest `inv eval` report, behind the token like the API (the page fetches it with the
        header and opens what it got: a plain link cannot carry the token)."""
        if not authorised(request):
            return refused()
        path = await run_in_threadpool(latest.report)
        if path is None:
            return JSONResponse({"error": "no evaluation report in this project",
                                 "fix": "run `inv eval` while the stack runs"}, status_code=404, headers=HEADERS)
        return Response(await run_in_threadpool(path.read_bytes), media_type="text/html", headers=REPORT_HEADERS)

    def _filter(request: Request):
        """(service, match); ValueError for a bad expression, LookupError for a service the run
        does not have (its name goes into a header and a file name: only the plan's names do)."""
        params = request.query_params
        service = params.get("service") or None
        if service is not None and service not in run.planned["services"]:
            raise LookupError(service)
        return service, matcher(params.get("q"), params.get("regex") in ("1", "true"))

    def not_ours(service: str) -> Response:
        return JSONResponse({"error": f"{service!r} is not a service of this run",
                             "fix": f"one of {', '.join(run.planned['services'])}, or none for all"},
                            status_code=404, headers=HEADERS)

    def count(request: Request, name: str, default: int) -> int:
        given = request.query_params.get(name, str(default))
        if not (given.isascii() and given.isdigit() and len(given) <= 12):  # no sign, exponent, space
            raise ValueError(f"{name} must be a whole number of 0 or more, not {given[:40]!r}")
        return int(given)

    def bad_filter(err: ValueError) -> Response:
        fix = {"fix": err.fix} if isinstance(err, FilterError) else {}
        return JSONResponse({"error": str(err), **fix}, status_code=400, headers=HEADERS)

    async def select(since: int, service, match, limit: int) -> list:
        """The lines, filtered in a worker thread within the filter's time budget (FilterError past it)."""
        return await run_in_threadpool(lambda: book.since(since, service, match.begin(), limit))

    async def logs(request: Request) -> Response:
        if not authorised(request):
            return refused()
        try:
            service, match = _filter(request)
            since = count(request, "since", 0)
            limit = min(count(request, "limit", 1000), 100_000)
            lines = await select(since, service, match, limit)
        except LookupError as err:
            return not_ours(err.args[0])
        except ValueError as err:
            return bad_filter(err)
        if request.query_params.get("download"):
            text = "\n".join(line.text if service else f"{line.service} | {line.text}" for line in lines) + "\n"
            # `service` is one of the plan's names (RFC 1035 labels): nothing to quote or escape
            return PlainTextResponse(text, headers={**HEADERS, "Content-Disposition":
                                                    f'attachment; filename="{service or "all"}.log"'})
        return JSONResponse({"seq": book.seq, "lines": [line.as_dict() for line in lines]}, headers=HEADERS)

    async def events(request: Request) -> Response:
        """Server-sent events: `services` (the rows, when they change) and `log` (new lines, batched)."""
        if not authorised(request):
            return refused()
        try:
            service, match = _filter(request)
            backlog = min(count(request, "backlog", 500), 100_000)
            seq = book.seq
            lines = [line for line in await select(0, service, match, backlog) if line.seq <= seq]
        except LookupError as err:
            return not_ours(err.args[0])
        except ValueError as err:
            return bad_filter(err)

        async def stream():
            nonlocal seq, lines
            seen_version = -1
            quiet = 0.0
            while not closing() and not await request.is_disconnected():
                with run.lock:
                    version, rows = run.version, list(run.rows)
                if version != seen_version:
                    seen_version = version
                    yield f"event: services\ndata: {json.dumps(rows)}\n\n"
                if lines:
                    yield f"event: log\ndata: {json.dumps([line.as_dict() for line in lines])}\n\n"
                    quiet = 0.0
                elif quiet > 15:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(TICK)
                quiet += TICK
                top = book.seq  # lines after it come next time: none is sent twice or skipped
                try:
                    lines = [line for line in await select(seq, service, match, 2000) if line.seq <= top] \
                        if top > seq else []
                except FilterError as err:  # a new line the pattern cannot get through in time
                    yield f"event: filter-error\ndata: {json.dumps({'error': str(err), 'fix': err.fix})}\n\n"
                    return
                seq = top
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={**HEADERS, "X-Accel-Buffering": "no"})

    async def action(request: Request) -> Response:
        why = access.action_allowed(token, method=request.method, header=request.headers.get(access.HEADER),
                                    origin=request.headers.get("origin"), host=request.headers.get("host"))
        if why:
            return JSONResponse({"error": why}, status_code=403, headers=HEADERS)
        name, what = request.path_params["name"], request.path_params["action"]
        if what not in ACTIONS:
            return JSONResponse({"error": f"unknown action {what!r}", "fix": f"one of {', '.join(ACTIONS)}"},
                                status_code=404, headers=HEADERS)
        if name not in run.planned["services"]:
            return JSONResponse({"error": f"{name!r} is not a service of this run"}, status_code=404,
                                headers=HEADERS)
        try:
            result = await run_in_threadpool(act, what, name)
        except DuplexError as err:
            return JSONResponse({"ok": False, "error": run.mask(err.render())}, status_code=409, headers=HEADERS)
        await run_in_threadpool(run.sample)  # the page sees the new pid at once
        # what the action said passes the run's masking too (a health answer quoted in a failure)
        return JSONResponse(redact_json(result, run.mask), headers=HEADERS)

    receiver = Receiver(traces) if traces is not None else None

    async def receive_traces(request: Request) -> Response:
        if receiver is None or otlp_port is None or (request.scope.get("server") or (None, None))[1] != otlp_port:
            return refused()
        return await receiver(request)

    async def recent_traces(request: Request) -> Response:
        if not authorised(request):
            return refused()
        try:
            limit = max(1, min(int(request.query_params.get("limit", "50")), 200))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400, headers=HEADERS)
        if traces is None:
            return JSONResponse({"receiving": False, "traces": [], "spans": 0, "dropped": 0}, headers=HEADERS)
        rows = await run_in_threadpool(traces.recent, limit)
        return JSONResponse({"receiving": otlp_port is not None, "traces": rows, "spans": traces.spans,
                             "dropped": traces.dropped}, headers=HEADERS)

    async def otlp_only(scope, receive, send):
        """On the OTLP port nothing but POST /v1/traces answers (another method there: 405)."""
        server = scope.get("server") or (None, None)
        if otlp_port is not None and scope["type"] == "http" and server[1] == otlp_port and \
                not (scope["path"] == "/v1/traces" and scope["method"] == "POST"):
            reply = PlainTextResponse("405 method not allowed, supported: [POST]", 405, {"Allow": "POST"}) \
                if scope["path"] == "/v1/traces" else PlainTextResponse("not found", status_code=404)
            await reply(scope, receive, send)
            return
        await app(scope, receive, send)

    app = Starlette(routes=[
        Route("/", page), Route("/static/{name}", static), Route("/api/services", services),
        Route("/api/logs", logs), Route("/api/events", events),
        Route("/api/services/{name}/{action}", action, methods=["POST", "GET"]),
        Route("/api/traces", recent_traces), Route("/api/eval.html", eval_report),
        Route("/v1/traces", receive_traces, methods=["POST"]),
    ])
    return otlp_only
