"""Render plans and results for people (rich) and for scripts (JSON). No decisions here."""

from __future__ import annotations

import json
import sys

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


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def console(stderr: bool = False):
    from rich.console import Console  # lazy: keeps `inv --list` fast
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_plan(plan: Plan) -> None:
    from rich.table import Table
    out = console()
    mode = "native (development)" if plan.native else "containers (production parity)"
    table = Table(title=f"stack [bold]{plan.stack}[/] — {mode}", title_justify="left")
    for col in ("service", "mode", "url", "runs", "depends on", "gpu"):
        table.add_column(col)
    for name in plan.start_order:
        s = plan.services[name]
        runs = " ".join(s.command) if s.mode == "native" else f"{s.image}"
        deps = ", ".join(d if r else f"{d} (optional)" for d, r in s.depends_on.items()) or "-"
        table.add_row(name, s.mode, s.url, runs, deps, "yes" if s.gpu else "-")
    out.print(table)
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
