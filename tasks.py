"""duplex tasks: the CLI. Thin on purpose: parse flags, call the duplex library, render.

Run `inv --list` for the tasks and `inv --help TASK` for each one's flags.
"""

from __future__ import annotations

import functools

from invoke import Exit, task

from duplex.errors import DuplexError


def _cli(fn):
    """Turn duplex errors into a clear message and an exit code: never a traceback for users."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DuplexError as err:
            raise Exit(f"duplex: {err.render()}", code=err.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("duplex: interrupted", code=130) from None
    return wrapper


def _names(services: str | None) -> list[str] | None:
    return [s.strip() for s in services.split(",") if s.strip()] if services else None


def _plan(native: bool, services: str | None):
    from duplex.plan import plan
    from duplex.probe import probe_machine
    from duplex.stack import load_stack
    return plan(load_stack(), probe_machine(), native=native, services=_names(services))


@task(help={
    "native": "plan native processes where the stack allows (development mode)",
    "services": "comma-separated services to include (plus what they require)",
    "json": "print the plan as JSON for scripts and CI",
})
@_cli
def config(c, native=False, services=None, json=False):
    """Show the resolved plan: what runs where, with which ports, variables and start order."""
    from duplex import report
    the_plan = _plan(native, services)
    if json:
        report.print_json(report.plan_dict(the_plan))
    else:
        report.print_plan(the_plan)
