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
            _load_token()
            return fn(*args, **kwargs)
        except DuplexError as err:
            raise Exit(f"duplex: {err.render()}", code=err.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("duplex: interrupted", code=130) from None
    return wrapper


def _load_token() -> None:
    """HF_TOKEN from the environment, else from the project's .env (`inv setup --hf-token`)."""
    import os
    from duplex.stack import find_stack
    if os.environ.get("HF_TOKEN"):
        return
    dotenv = find_stack().resolve().parent / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text(encoding="utf-8").splitlines():
            if line.startswith("HF_TOKEN=") and line[9:].strip():
                os.environ["HF_TOKEN"] = line[9:].strip()


def _names(services: str | None) -> list[str] | None:
    return [s.strip() for s in services.split(",") if s.strip()] if services else None


def _pins(stack) -> dict[str, str]:
    """Each model's pinned commit from models.lock (written by `inv prefetch`)."""
    from duplex.models import pinned_revision
    repos = {m for s in stack.services.values() for m in s.models}
    return {r: c for r in repos if (c := pinned_revision(stack.root, r))}


def _plan(native: bool, services: str | None):
    from duplex.plan import plan
    from duplex.probe import probe_machine
    from duplex.stack import load_stack
    stack = load_stack()
    return plan(stack, probe_machine(), native=native, services=_names(services), pins=_pins(stack))


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


def _say(prefix: str):
    from duplex import report
    out = report.console(stderr=True)
    return lambda line: out.print(f"[dim]{prefix}[/] {line}")


@task(help={
    "env": "only this env (default: the envs of services that can run natively)",
    "all": "every env of the stack, container-only ones (moshi) included",
    "python": "the interpreter to use: a version like 3.11 or a path (must be within 3.10-3.12)",
    "force": "rebuild even when the env is up to date",
    "installer": "uv (default when available) or pip (virtualenv + pip)",
    "torch": "override the torch variant: cpu or cuXXX (default: the stack's, auto = from the driver)",
    "hf_token": "save this Hugging Face token to .env (mode 0600) for prefetch and the services",
    "json": "print a JSON list of {env, python, path, torch, state}",
})
@_cli
def setup(c, env=None, all=False, python=None, force=False, installer=None, torch=None, hf_token=None,
          json=False):
    """Create or update the pinned venvs: right interpreter, torch for the driver, fixes applied."""
    from duplex import report
    from duplex.envs import provision_env, write_secret
    from duplex.stack import load_stack, selected_envs
    stack = load_stack()
    if hf_token:
        path = write_secret(stack.root, "HF_TOKEN", hf_token)
        _say("setup")(f"HF_TOKEN saved to {path} (readable only by you)")
    names = selected_envs(stack, env, everything=all)
    say = _say("setup")
    results = [provision_env(stack.root, name, stack.envs[name], python=python, force=force,
                             installer=installer, torch=torch, progress=say) for name in names]
    if json:
        report.print_json([r.as_dict() for r in results])
        return
    for r in results:
        for warning in r.warnings:
            say(f"[yellow]warning:[/] {r.name}: {warning}")


@task(help={"env": "only this env (default: every env with a requirements file)",
            "torch": "lock for this torch variant (cpu or cuXXX) instead of this machine's"})
@_cli
def lock(c, env=None, torch=None):
    """Resolve envs/NAME/requirements.in into a hash-pinned lock that setup installs from."""
    from duplex.envs import lock_env
    from duplex.stack import load_stack, selected_envs
    stack = load_stack()
    say = _say("lock")
    names = selected_envs(stack, env, everything=True)
    for name in names:
        path = lock_env(stack.root, name, stack.envs[name], torch=torch, progress=say)
        say(f"{name}: wrote {path.relative_to(stack.root)}")


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
    the_plan = plan(stack, machine, native=native, services=_names(services), pins=_pins(stack))
    if not skip_preflight:
        _preflight_or_exit(stack, the_plan)
    code = up(the_plan, machine, on_crash=stack.stack.on_crash, detach=detach,
              env_state=lambda env: _env_state(stack, env))
    if code:
        raise Exit(code=code)


@task(help={
    "services": "only the models of these services (default: every service's models)",
    "repo": "one ad-hoc repo ORG/NAME instead of the stack's models (like `hf download`)",
    "revision": "with --repo: a branch, tag or commit",
    "dry_run": "show what would be downloaded, and how big, without downloading",
    "update": "re-resolve pinned revisions on the hub and move the pins",
    "verify": "hash every cached file against models.lock",
    "json": "print the report as JSON",
})
@_cli
def prefetch(c, services=None, repo=None, revision=None, dry_run=False, update=False, verify=False,
             json=False):
    """Download the stack's Hugging Face models once into the shared cache, pinned in models.lock."""
    import os
    from duplex import report
    from duplex.models import RichProgress, prefetch as fetch
    from duplex.probe import probe_machine
    from duplex.stack import load_stack
    stack = load_stack()
    if repo:
        repos = [f"{repo}@{revision}" if revision else repo]
    else:
        chosen = _names(services) or list(stack.services)
        unknown = [n for n in chosen if n not in stack.services]
        if unknown:
            raise Exit(f"duplex: unknown service: {', '.join(unknown)} (choose from: {', '.join(stack.services)})", 1)
        repos = list(dict.fromkeys(m for n in chosen for m in stack.services[n].models))
    if not repos:
        print("no models to fetch: the chosen services declare none (`models = [...]` in stack.toml)")
        return
    machine = probe_machine(gpus=0)
    result = fetch(stack.root, repos, hf_home=machine.hf_home, hub_cache=machine.hf_hub_cache,
                   token_present=bool(os.environ.get("HF_TOKEN")),
                   progress=None if json else RichProgress(), dry_run=dry_run, update=update,
                   verify=verify)
    if json:
        report.print_json(result.to_json())


@task(help={
    "native": "check native mode (envs, interpreters, torch, system libraries) instead of containers",
    "services": "comma-separated services to check (plus what they require)",
    "json": "print a JSON list of the results for CI",
})
@_cli
def preflight(c, native=False, services=None, json=False):
    """Check GPU, driver, token, licence, disk, ports, Docker and envs in seconds, each with its fix."""
    from duplex.preflight import print_report, run_preflight
    from duplex.stack import load_stack
    stack = load_stack()
    result = run_preflight(stack, _plan(native, services))
    if json:
        print(result.to_json())
    else:
        print_report(result)
    if result.exit_code:
        raise Exit(code=result.exit_code)


def _preflight_or_exit(stack, the_plan) -> None:
    """What would make `inv run` fail, caught before anything is built or started."""
    from duplex.preflight import run_preflight
    result = run_preflight(stack, the_plan, for_run=True)
    if result.failed:
        lines = [f"  - {r.name}: {r.detail}\n    fix: {r.fix}" for r in result.failed]
        raise Exit("duplex: cannot start the stack, preflight found:\n" + "\n".join(lines)
                   + "\n(`inv preflight` shows every check; --skip-preflight starts anyway)", code=1)


@task(help={
    "tag": "the moshi release to vendor, e.g. v0.2.13 (= version 0.2.13; moshi-v0.2.13 also works)",
    "source": "where to fetch it: pypi (default; the index pip uses) or git (needs --url)",
    "url": "the git repository for --source git (upstream tags look like moshi-v0.2.13)",
    "from_": "a local sdist, wheel, zip or unpacked folder instead of a download (air-gapped machines)",
    "check": "verify third_party/moshi against MOSHI_VERSION; exit 1 naming the files that differ",
    "rollback": "restore the previously vendored tree exactly (the snapshot the last update kept)",
    "dry_run": "show the files that would be added, removed or modified; change nothing",
    "allow_moved_tag": "take a git tag that now names another commit than MOSHI_VERSION recorded",
    "json": "print the report as JSON for scripts and CI",
})
@_cli
def vendor_moshi(c, tag=None, source="pypi", url=None, from_=None, check=False, rollback=False,
                 dry_run=False, allow_moved_tag=False, json=False):
    """Vendor moshi's source into third_party/moshi at a pinned release; --check, --rollback, --dry-run."""
    from duplex import report, vendor
    from duplex.stack import find_stack
    root = find_stack().resolve().parent
    if sum(map(bool, (tag, check, rollback))) != 1:
        raise Exit("duplex: give exactly one of --tag vX.Y.Z, --check or --rollback", code=2)
    progress = (lambda _: None) if json else _say("vendor")
    if check:
        result = vendor.check(root)
    elif rollback:
        result = vendor.rollback(root, progress=progress)
    else:
        result = vendor.vendor(root, tag, source=source, url=url, from_path=from_, dry_run=dry_run,
                               allow_moved_tag=allow_moved_tag, progress=progress)
    if json:
        report.print_json(result.to_dict())
    else:
        print(result.summary())
    if check and result.exit_code:
        raise Exit(code=result.exit_code)


@task(help={
    "compose": "write the Compose file (default: both Compose and Kubernetes)",
    "k8s": "write the Kubernetes manifests (default: both)",
    "out": "output folder (default: deploy/ beside stack.toml)",
    "services": "comma-separated services to publish (plus what they require)",
    "bind": "host address Compose publishes ports on: 127.0.0.1 (default) or 0.0.0.0",
    "registry": "image registry prefix for built images, e.g. ghcr.io/team (what a cluster pulls)",
    "json": "print the report as JSON",
})
@_cli
def publish(c, compose=False, k8s=False, out="deploy", services=None, bind="127.0.0.1", registry=None,
            json=False):
    """Write the stack as a Compose file and Kubernetes manifests, validated with the real tools."""
    from pathlib import Path
    from duplex import report
    from duplex.publish import publish as write_out, target_plan
    from duplex.stack import load_stack
    stack = load_stack()
    both = not (compose or k8s)
    folder = Path(out) if Path(out).is_absolute() else stack.root / out
    result = write_out(target_plan(stack, services=_names(services), pins=_pins(stack)), out=folder,
                       compose=compose or both, k8s=k8s or both, bind=bind, registry=registry,
                       progress=None if json else _say("publish"), stack_file=stack.path.name)
    if json:
        report.print_json(result.to_dict())
    else:
        print(result.summary())


def _env_state(stack, env: str) -> str:
    from duplex.envs import env_status
    return env_status(stack.root, env, stack.envs[env]) if env in stack.envs else "ok"


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
