"""Render plans and results for people (rich) and for scripts (JSON). No decisions here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .run.printer import Printer

if TYPE_CHECKING:  # annotations only: `inv setup` and `inv status` render without loading the plan
    from .plan import Plan


def plan_dict(plan: Plan) -> dict:
    """The `inv config --json` shape; secrets are masked."""
    return {
        "stack": plan.stack,
        "root": plan.root,
        "mode": "native" if plan.native else "container",
        "services": [
            {
                "name": s.name,
                "mode": s.mode,
                "url": s.url,
                "port": s.port,
                "bind": s.bind,
                "env": plan.masked_env(s.name),
                "depends_on": [{"name": d, "required": r} for d, r in s.depends_on.items()],
                "pinned_env": s.env,
                "command": s.command,
                "image": s.image,
                "dockerfile": s.dockerfile,
                "build_args": s.build_args,
                "mounts": [{"source": m.source, "target": m.target, "read_only": m.read_only}
                           for m in s.mounts],
                "gpu": s.gpu,
                "gpu_request": s.gpu_request if s.gpu else None,
                "gpu_devices": s.gpu_devices,
                "gpu_placement": s.gpu_placement,
                "gpu_need_bytes": s.gpu_need,
                "torch": s.build_args.get("TORCH"),
                "torch_reason": s.torch_note,
                "health": {"kind": s.health.kind, "url": s.health.url, "timeout": s.health.timeout},
                "watch": s.watch,
                "persistent": s.persistent,
                "models": s.models,
                "labels": s.labels,
            }
            for s in (plan.services[n] for n in plan.start_order)
        ],
        "start_order": plan.start_order,
        "waves": plan.waves,
        "left_out": plan.left_out,
        "warnings": plan.warnings,
        "telemetry": {"exporter": "otlp", "endpoint": plan.telemetry} if plan.telemetry else {"exporter": "off"},
    }


def _gpu_cell(s) -> str:
    if s.gpu_devices:
        ids = ", ".join(s.gpu_devices)
        return f"nvidia.com/gpu={ids}" if s.gpu_request == "cdi" else f"device {ids}"
    if s.gpu:
        return "all (CDI)" if s.gpu_request == "cdi" else "all"
    if s.mode == "native" and "CUDA_VISIBLE_DEVICES" in s.environment and s.gpu_placement:
        return s.gpu_placement.split(" (")[0]
    return "-"


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def console(stderr: bool = False):
    from rich.console import Console  # heavy: keeps `inv --list` fast
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_plan(plan: Plan) -> None:
    from rich.table import Table  # heavy: keeps `inv --list` fast
    out = console()
    mode = "native (development)" if plan.native else "containers (production parity)"
    table = Table(title=f"stack [bold]{plan.stack}[/] — {mode}", title_justify="left")
    for col in ("service", "mode", "url", "runs", "depends on", "gpu"):
        table.add_column(col)
    for name in plan.start_order:
        s = plan.services[name]
        runs = " ".join(s.command) if s.mode == "native" else f"{s.image}"
        deps = ", ".join(d if r else f"{d} (optional)" for d, r in s.depends_on.items()) or "-"
        table.add_row(name, s.mode, s.url, runs, deps, _gpu_cell(s))
    out.print(table)
    for name in plan.start_order:
        s = plan.services[name]
        if s.gpu_placement:
            out.print(f"[bold]{name}[/] GPU: {s.gpu_placement}")
        if s.build_args.get("TORCH") and s.torch_note:
            out.print(f"[bold]{name}[/] torch {s.build_args['TORCH']}: {s.torch_note}")
    for name in plan.start_order:
        env = plan.masked_env(name)
        if env:
            out.print(f"[bold]{name}[/] environment:")
            for key, value in env.items():
                out.print(f"  {key}={value}")
    out.print("start order: " + " → ".join(" + ".join(w) for w in plan.waves))
    out.print(f"telemetry: OTLP to {plan.telemetry}" if plan.telemetry else "telemetry: off")
    for name, why in plan.left_out.items():
        out.print(f"[dim]left out: {name} ({why})[/]")
    for warning in plan.warnings:
        out.print(f"[yellow]warning:[/] {warning}")


def say(prefix: str):
    """A progress sink for library calls: dim-prefixed lines on stderr (stdout stays for results)."""
    out = console(stderr=True)
    return lambda line: out.print(f"[dim]{prefix}[/] {line}")


def print_status(rows: list[dict]) -> None:
    """`inv status`: one line per service of the run."""
    if not rows:
        print("nothing is running (start with `inv run` or `inv run --native`)")
    for r in rows:
        print(f"{r['name']:<10} {r['mode']:<9} {r['state']:<8} "
              f"{'healthy' if r['healthy'] else 'unhealthy':<9} {r['url'] or '-':<24} {r['id']}")


STYLE = {"pass": ("[green]ok[/]", "green"), "warn": ("[yellow]warn[/]", "yellow"),
         "fail": ("[bold red]FAIL[/]", "red"), "skip": ("[dim]skip[/]", "dim")}


def print_preflight(report, out=None) -> None:
    """A rich table grouped by concern, with the fix column, and a one-line summary."""
    from rich.markup import escape  # heavy: keeps `inv --list` fast
    from rich.table import Table
    out = out or console()
    table = Table(title=f"preflight ({report.mode} mode: {', '.join(report.services) or 'no services'})",
                  show_lines=False, expand=False)
    for col, kw in (("", {"no_wrap": True}), ("check", {"no_wrap": True}), ("detail", {"ratio": 3}),
                    ("fix", {"ratio": 2})):
        table.add_column(col, **kw)
    group = None
    for r in report.results:
        if group is not None and r.group != group:
            table.add_section()
        group = r.group
        badge, colour = STYLE[r.status]
        fix = escape(r.fix or "")
        table.add_row(badge, escape(r.name), escape(r.detail),
                      f"[{colour}]{fix}[/]" if r.status != "skip" else f"[dim]{fix}[/]")
    out.print(table)
    c = report.counts()
    verdict = "[bold red]preflight failed[/]" if report.failed else "[green]preflight passed[/]"
    warnings = f"{c['warn']} warning" + ("" if c["warn"] == 1 else "s")
    out.print(f"{verdict}: {c['pass']} ok, {warnings}, {c['fail']} failed, {c['skip']} skipped "
              f"in {report.seconds:.2f} s")


def print_log_lines(lines, prefixes: list[str] | None) -> None:
    """`inv logs`: (service, line) pairs, prefixed like the run when `prefixes` (the run's services,
    in its colour order) are given, else plain."""
    printer = Printer(["duplex", *prefixes]) if prefixes is not None else None
    for name, line in lines:
        if printer:
            printer.line(name, line)
        else:
            print(line, flush=True)


def print_certs(made) -> None:
    print(f"{'made' if made.made else 'kept'} {made.cert} (valid until {made.not_after[:10]}), key {made.key}")
    print(f"  names: {', '.join(made.dns + made.ips)}")
    print("  serve it: `inv run --tls`, or tls = true under [stack] in stack.toml")
    print("\n".join(trust_instructions(made.ca, made.folder.name)))


def trust_instructions(ca: Path, stack: str) -> list[str]:
    """How to trust the CA where the browser runs (your laptop, not only the GPU box)."""
    return [
        f"Trust {ca} on each machine whose browser opens the stack (copy it there first):",
        f"  Debian/Ubuntu: sudo cp {ca} /usr/local/share/ca-certificates/duplex-{stack}.crt && sudo update-ca-certificates",
        f"  Fedora/RHEL:   sudo cp {ca} /etc/pki/ca-trust/source/anchors/duplex-{stack}.pem && sudo update-ca-trust",
        f"  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca}",
        f"  Windows:       certutil -user -addstore Root {ca.name}   (PowerShell, in the folder you copied it to)",
        f"  Chrome/Chromium on Linux (own NSS store): certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n duplex-{stack} -i {ca}",
        "  Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import"
        " (tick 'trust this CA to identify websites'), or set security.enterprise_roots.enabled = true",
        "  Python clients: SSL_CERT_FILE or ssl.create_default_context(cafile=...) with that file",
        f"Keep {ca.parent / 'ca-key.pem'} private: whoever holds it can impersonate any site to these machines.",
    ]
