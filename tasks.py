"""duplex tasks: the CLI. Thin on purpose: parse flags, call the duplex library, render.

Run `inv --list` for the tasks and `inv --help TASK` for each one's flags.
"""

from __future__ import annotations

import functools
import re

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
    from duplex.envs.secrets import read_secret
    from duplex.stack import find_stack
    if os.environ.get("HF_TOKEN"):
        return
    token = read_secret(find_stack().resolve().parent, "HF_TOKEN")
    if token:
        os.environ["HF_TOKEN"] = token


def _names(services: str | None) -> list[str] | None:
    return [s.strip() for s in services.split(",") if s.strip()] if services else None


def _pins(stack) -> dict[str, str]:
    """Each model's pinned commit from models.lock (written by `inv prefetch`)."""
    from duplex.models.lock import pinned_revision  # light: no download machinery
    repos = {m for s in stack.services.values() for m in s.models}
    return {r: c for r in repos if (c := pinned_revision(stack.root, r))}


def _plan(native: bool, services: str | None, otlp: str | None = None):
    from duplex.plan import plan
    from duplex.probe import probe_machine
    from duplex.stack import load_stack
    stack = load_stack()
    return plan(stack, probe_machine(keep=stack.secret_names), native=native, services=_names(services),
                pins=_pins(stack),
                otlp=_otlp(otlp))


def _otlp(url: str | None) -> str | None:
    """`--otlp URL`: the collector every service exports traces to (OTLP over HTTP)."""
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        raise Exit(f"duplex: --otlp {url!r} is not a collector URL: give the OTLP/HTTP endpoint, "
                   "e.g. --otlp http://127.0.0.1:4318", code=2)
    return url


@task(help={
    "native": "plan native processes where the stack allows (development mode)",
    "services": "comma-separated services to include (plus what they require)",
    "json": "print the plan as JSON for scripts and CI",
    "otlp": "plan with OpenTelemetry export to this OTLP/HTTP collector URL",
})
@_cli
def config(c, native=False, services=None, json=False, otlp=None):
    """Show the resolved plan: what runs where, with which ports, variables and start order."""
    from duplex import report
    the_plan = _plan(native, services, otlp)
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
    "smoke": "once everything is healthy, run `inv smoke` (a detached run exits 1 when a check fails)",
    "debug": "comma-separated native services to start under debugpy (prints how to attach)",
    "debug_wait": "with --debug: start those services only once a debugger attaches",
    "tls": "serve https/wss with the certificates of `inv certs` (default: the stack's tls)",
    "otlp": "export OpenTelemetry traces to this OTLP/HTTP collector URL (default: the stack's telemetry)",
})
@_cli
def run(c, native=False, services=None, detach=False, skip_preflight=False, smoke=False, debug=None,
        debug_wait=False, tls=False, otlp=None):
    """Run the stack: every service in a container, or natively with --native."""
    from duplex.plan import plan
    from duplex.run import plan_run, up
    from duplex.stack import load_stack
    stack = load_stack()
    # the Docker engine is asked once whether containers can get a GPU; preflight reuses the answer
    the_plan, machine, engine = plan_run(stack, lambda m: plan(
        stack, m, native=native, services=_names(services), pins=_pins(stack),
        tls=True if tls else None, otlp=_otlp(otlp)))
    if any(s.url.startswith("https://") for s in the_plan.services.values()):
        from duplex.certs import require_certs
        require_certs(stack.root, stack.name)
    if debug:
        _debug(stack, the_plan, _names(debug), debug_wait)
    if not skip_preflight:
        _preflight_or_exit(stack, the_plan, engine)
    code = up(the_plan, machine, on_crash=stack.stack.on_crash, detach=detach,
              env_state=lambda env: _env_state(stack, env),
              on_healthy=(lambda: _smoke_once(stack, machine, the_plan)) if smoke else None)
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
    if revision and not repo:  # the stack's models carry their own revisions (ORG/NAME@REV in stack.toml)
        raise Exit("duplex: --revision needs --repo ORG/NAME; to pin a stack model, write it as "
                   "ORG/NAME@REV in stack.toml", code=2)
    if repo and services:
        raise Exit("duplex: give either --repo or --services, not both", code=2)
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


def _preflight_or_exit(stack, the_plan, engine=None) -> None:
    """What would make `inv run` fail, caught before anything is built or started.
    `engine`: Docker facts already gathered for this plan, reused rather than asked again."""
    from duplex.preflight import Probes, run_preflight
    probes = Probes(docker=lambda *_args, **_kw: engine) if engine is not None else None
    result = run_preflight(stack, the_plan, for_run=True, probes=probes)
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


def _optional_positionals(**optional: str) -> None:
    """invoke has no optional positional arguments and `inv logs [SERVICE]` wants one: just before
    invoke checks that every positional was given, give the optional one (task=arg) an empty value."""
    from invoke.parser.parser import ParseMachine
    original = getattr(ParseMachine, "complete_context", None)
    if original is None:  # another invoke: SERVICE is then required, nothing else changes
        return

    def complete_context(self) -> None:
        for arg in (self.context.positional_args if self.context else []):
            if arg.value is None and arg.name == optional.get(self.context.name):
                arg.set_value("", cast=False)
        original(self)
    ParseMachine.complete_context = complete_context


_optional_positionals(logs="service")


@task(positional=["service"],
      help={"service": "the service whose log to show (default: every service of the current or last run)",
            "follow": "keep printing new lines until the run ends (Ctrl-C to stop watching)",
            "lines": "how many past lines to show per service"})
@_cli
def logs(c, service=None, follow=False, lines=200):  # service "" (not given): every service
    """Show the logs of the current or last run, with the run's name prefixes (kept in .duplex/logs)."""
    from duplex.printer import Printer
    from duplex.run import log_names, logs as stack_logs
    from duplex.stack import find_stack
    root = find_stack().resolve().parent
    printer = Printer(["duplex", *log_names(root)]) if not service else None
    for name, line in stack_logs(root, service, follow=follow, lines=lines):
        if printer:
            printer.line(name, line)
        else:
            print(line, flush=True)


def _smoke_once(stack, machine, the_plan) -> int:
    """`inv run --smoke`: one smoke pass once everything is healthy; its exit code."""
    from duplex.smoke import plan_targets
    result = _smoke_report(stack, machine, plan_targets(the_plan))
    say = _say("smoke")
    for line in result.lines():
        say(line)
    return result.exit_code


def _smoke_report(stack, machine, targets, services=None, timeout=30.0):
    from duplex.certs import ca_path
    from duplex.smoke import gpu_check, smoke as run_smoke
    ca = ca_path(stack.root)
    image = machine.env.get("DUPLEX_BASE_IMAGE", stack.stack.base_image)
    return run_smoke(targets, services=services, timeout=timeout, gpu=gpu_check(machine.nvidia_runtime, image),
                     ca=ca if ca.exists() else None)


@task(help={
    "services": "comma-separated services to check (default: every running one; `gpu` = the GPU container check)",
    "timeout": "seconds each check may take",
    "json": "print the report as JSON for scripts and CI",
})
@_cli
def smoke(c, services=None, timeout=30.0, json=False):
    """Speak to each running service once (transcribe, page, handshake, nvidia-smi) and time it."""
    from duplex import report
    from duplex.plan import plan
    from duplex.probe import probe_machine
    from duplex.smoke import targets_at
    from duplex.stack import load_stack
    from duplex.state import read_state
    stack = load_stack()
    machine = probe_machine(keep=stack.secret_names)
    native = read_state(stack.root).get("mode") == "native"
    targets = targets_at(stack.root, plan(stack, machine, native=native, pins=_pins(stack)))
    if not targets:
        raise Exit("duplex: nothing is running to smoke (`inv run --detach` or `inv run --native --detach` first)",
                   code=1)
    result = _smoke_report(stack, machine, targets, _names(services), float(timeout))
    if json:
        report.print_json(result.as_dict())
    else:
        print("\n".join(result.lines()))
    if result.exit_code:
        raise Exit(code=result.exit_code)


@task(help={
    "name": "another host name or IP the stack is reached by (repeat for more)",
    "force": "reissue the server certificate even when it is still good (the CA is kept)",
    "json": "print the files and names as JSON",
}, iterable=["name"])
@_cli
def certs(c, name=None, force=False, json=False):
    """Make a local CA and this stack's TLS certificate, for https/wss when the browser is remote."""
    from duplex import report
    from duplex.certs import make_certs, trust_instructions
    from duplex.stack import load_stack
    stack = load_stack()
    # Service names and host.docker.internal: containers and native services reach each other by them.
    made = make_certs(stack.root, stack.name, [*(name or []), *stack.services, "host.docker.internal"],
                      force=force)
    if json:
        report.print_json(made.as_dict())
        return
    print(f"{'made' if made.made else 'kept'} {made.cert} (valid until {made.not_after[:10]}), key {made.key}")
    print(f"  names: {', '.join(made.dns + made.ips)}")
    print("  serve it: `inv run --tls`, or tls = true under [stack] in stack.toml")
    print("\n".join(trust_instructions(made.ca, stack.name)))


def _debug(stack, the_plan, names: list[str], wait: bool) -> None:
    """Wrap the named native services with debugpy and write VS Code attach configurations."""
    from duplex.debug import (LaunchJsonError, attach_config, debug_service, debugpy_dir, free_ports,
                              how_to_attach, write_launch_json)
    from duplex.native import venv_python
    unknown = [n for n in names if n not in the_plan.services]
    if unknown:
        raise Exit(f"duplex: --debug {', '.join(unknown)}: not in this run "
                   f"(running: {', '.join(the_plan.services)})", code=2)
    say = _say("debug")
    ports = free_ports(len(names))
    for name, port in zip(names, ports):
        svc = the_plan.services[name]
        the_plan.services[name] = debug_service(svc, port, wait, debugpy_dir(stack.root, venv_python(stack.root, svc.env)))
        say(how_to_attach(name, port, wait))
    try:
        path = write_launch_json(stack.root, [attach_config(n, p) for n, p in zip(names, ports)])
        say(f"VS Code: attach configurations in {path}")
    except LaunchJsonError as err:
        say(f"[yellow]warning:[/] {err.render()}")
