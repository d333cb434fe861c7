"""The load test's files: the capacity document as JSON (for CI and `inv publish --capacity`) and
an HTML report with a plot per service (latency and CPU against concurrency), inline SVG, no
scripts or fetched assets, so it opens anywhere, offline."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..run.state import write_text
from ..svgplot import PAD, H, W, frame

SERIES = (("final_s", "p50", "#1f77b4"), ("final_s", "p95", "#ff7f0e"), ("final_s", "p99", "#d62728"),
          ("lag_s", "p95", "#2ca02c"), ("turnaround_s", "p50", "#9467bd"), ("turnaround_s", "p95", "#8c564b"))


def write(doc: dict, folder: Path) -> tuple[Path, Path]:
    """loadtest.json and loadtest.html in `folder`, each written whole or not at all (a full or
    read-only disk: StateWriteError, one line with its fix)."""
    data, report = folder / "loadtest.json", folder / "loadtest.html"
    write_text(data, json.dumps(doc, indent=2) + "\n")
    write_text(report, page(doc))
    return data, report


def summary(doc: dict) -> list[str]:
    lines = []
    for name, svc in doc["services"].items():
        cap = svc["capacity"]
        per = f" ({svc['per_replica']} per replica, {svc['replicas']} replicas)" if svc["replicas"] > 1 else ""
        lines.append(f"{name}: capacity {cap if cap is not None else 'none: not even one session met the budget'}"
                     f"{' sessions' if cap is not None else ''}{per}; stopped: {svc['stopped']}")
    return lines


def page(doc: dict) -> str:
    parts = [f"<!doctype html><meta charset=utf-8><title>duplex load test: {html.escape(doc['stack'])}</title>",
             "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}th{background:#f4f4f4}"
             ".bad{color:#b00}</style>",
             f"<h1>Load test of {html.escape(doc['stack'])}</h1>",
             f"<p>{html.escape(_machine(doc))}</p>"]
    for name, svc in doc["services"].items():
        parts.append(f"<h2>{html.escape(name)}</h2><p>{html.escape(summary({'services': {name: svc}})[0])}</p>")
        parts.append(_plot(svc))
        parts.append(_table(name, svc))
    return "\n".join(parts) + "\n"


def _machine(doc: dict) -> str:
    m, g = doc.get("machine", {}), doc.get("generator", {})
    return (f"{m.get('cpus')} CPUs, {m.get('system')}; speech: {g.get('speech')}; {g.get('seconds_per_session')} s "
            f"per session, via {g.get('via')}")


def _plot(svc: dict) -> str:
    levels = sorted(svc["levels"], key=lambda lv: lv["sessions"])  # bisected levels run out of order
    xs = [lv["sessions"] for lv in levels]
    ys = [lv.get(k, {}).get(q) for lv in levels for k, q, _ in SERIES]
    ys = [y for y in ys if y is not None] + [v for v in svc["budget"].values() if isinstance(v, float)]
    if not xs or not ys:
        return "<p>(nothing measured to plot)</p>"
    top = max(ys) * 1.15 or 1.0
    span = max(len(xs) - 1, 1)

    def x(i: int) -> float:
        return PAD + i * (W - 2 * PAD) / span

    def y(v: float) -> float:
        return H - PAD - (v / top) * (H - 2 * PAD)
    out = frame("latency against sessions", "concurrent sessions", "seconds", top, "{:.2f}")
    for i, n in enumerate(xs):
        out.append(f'<text x="{x(i):.0f}" y="{H - PAD + 16}" text-anchor="middle">{n}</text>')
    for key, limit in svc["budget"].items():
        if key.endswith(("p95", "p50")):
            out.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" stroke="#b00" '
                       f'stroke-dasharray="4 3"/><text x="{W - PAD}" y="{y(limit) - 4:.0f}" text-anchor="end" '
                       f'fill="#b00">budget {html.escape(key)} {limit:g} s</text>')
    legend = 0
    for key, q, colour in SERIES:
        points = [(x(i), y(lv[key][q])) for i, lv in enumerate(levels) if lv.get(key, {}).get(q) is not None]
        if not points:
            continue
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                   + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>')
        label = {"final_s": "end of speech -> final ", "lag_s": "final -> translation ",
                 "turnaround_s": "end of speech -> reply "}[key] + q
        out.append(f'<text x="{PAD + 8}" y="{PAD + 14 * legend}" fill="{colour}">{html.escape(label)}</text>')
        legend += 1
    return "\n".join(out) + "</svg>"


def _table(name: str, svc: dict) -> str:
    head = ("sessions", "ok", "refused", "failed", "final p50", "p95", "p99", "WER", "lag p95", "reply p95", "backlog",
            f"{name} CPU", f"{name} memory", "generator CPU", "verdict")
    rows = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for lv in sorted(svc["levels"], key=lambda lv: lv["sessions"]):
        own = lv["services"].get(name, {})
        final, lag = lv["final_s"], lv.get("lag_s", {})
        cells = (lv["sessions"], lv["ok"], lv["refused"], lv["errors"], final["p50"], final["p95"], final["p99"],
                 lv["wer"], lag.get("p95"), lv.get("turnaround_s", {}).get("p95"), lv.get("backlog_frames"),
                 f"{own['cpu_mean']:.0f}%" if own else None,
                 f"{own['memory_peak'] / 2**20:.0f} MiB" if own else None, f"{lv['generator']['cpu']:.0f}%",
                 "; ".join(lv["broken"]) or "ok")
        cls = ' class="bad"' if lv["broken"] else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{'-' if c is None else html.escape(str(c))}</td>" for c in cells)
                    + "</tr>")
    return "\n".join(rows) + "</table>"
