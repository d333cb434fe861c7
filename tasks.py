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


@task(help={
    "native": "run services natively where the stack allows (hot reload); the rest in containers",
    "services": "comma-separated services to run (plus what they require)",
    "detach": "start, wait until healthy, print the endpoints and return",
    "skip_preflight": "skip the port, GPU and model-cache checks before starting",
})
@_cli
def run(c, native=False, services=None, detach=False, skip_preflight=False):
    """Run the stack: every service in a container, or natively with --native."""
    from duplex.plan import plan
    from duplex.probe import probe_machine
    from duplex.run import up
    from duplex.stack import load_stack
    stack = load_stack()
    machine = probe_machine()
    the_plan = plan(stack, machine, native=native, services=_names(services))
    code = up(the_plan, machine, on_crash=stack.stack.on_crash, detach=detach,
              skip_checks=skip_preflight)
    if code:
        raise Exit(code=code)


@task(help={"services": "comma-separated services to stop (default: all)",
            "all": "also remove persistent containers kept warm between runs"})
@_cli
def stop(c, services=None, all=False):
    """Stop what is running (also what a killed run left behind)."""
    from duplex.run import stop as stop_stack
    from duplex.stack import find_stack
    stopped = stop_stack(find_stack().resolve().parent, services=_names(services), everything=all)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@task(help={"json": "print a JSON list for scripts"})
@_cli
def status(c, json=False):
    """Show each service's mode, state, health, url and pid or container."""
    from duplex import report
    from duplex.run import status as stack_status
    from duplex.stack import find_stack
    rows = stack_status(find_stack().resolve().parent)
    if json:
        report.print_json(rows)
        return
    if not rows:
        print("nothing is running (start with `inv run` or `inv run --native`)")
    for r in rows:
        print(f"{r['name']:<10} {r['mode']:<9} {r['state']:<8} "
              f"{'healthy' if r['healthy'] else 'unhealthy':<9} {r['url'] or '-':<24} {r['id']}")


@task(help={"service": "the service whose log to show", "follow": "keep printing new lines",
            "lines": "how many past lines to show"})
@_cli
def logs(c, service, follow=False, lines=200):
    """Show a service's log (kept per service in .duplex/logs)."""
    from duplex.run import logs as stack_logs
    from duplex.stack import find_stack
    for line in stack_logs(find_stack().resolve().parent, service, follow=follow, lines=lines):
        print(line, flush=True)
