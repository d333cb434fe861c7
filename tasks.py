"""duplex tasks: the CLI. Thin on purpose: parse flags, call the duplex library, render.

Run `inv --list` for the tasks and `inv --help TASK` for each one's flags. Everything a task
decides lives in the library (`duplex.project.Project` is where each task starts); this file turns
flags into calls, results into output, and errors into a message and an exit code.
"""

from __future__ import annotations

import atexit
import functools
import gc
import sys

from invoke import Exit, task

# invoke turns bytecode writing off for the whole process (its --write-pyc: so tasks.py leaves no .pyc),
# and duplex's modules then compiled from source on every command: +270M instructions of `inv config`,
# +650M of a no-op `inv setup`. Back to the interpreter's own choice (-B, PYTHONDONTWRITEBYTECODE).
sys.dont_write_bytecode = sys.flags.dont_write_bytecode

from duplex import flags
from duplex.errors import DuplexError

# The last thing at exit: the interpreter then skips its final collection over all a task loaded
# (the plan, pydantic, rich), and `inv` ends 0.05-0.1 s sooner; a stopped `inv run` is timed by that.
atexit.register(gc.freeze)


def _cli(fn):
    """The CLI's boundary: every output passes duplex.redact (no secret in any line, whatever a
    server answered), duplex errors become a clear message and an exit code, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from duplex.envfile import secret_values
        from duplex.redact import RedactingStream, Redactor
        redactor = Redactor(secret_values({}, _root_or_none()))
        redactor.add(kwargs.get("hf_token"))  # `inv setup --hf-token`: not in .env yet
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = RedactingStream(sys.stdout, redactor), RedactingStream(sys.stderr, redactor)
        try:
            return fn(*args, **kwargs)
        except DuplexError as err:
            raise Exit(f"duplex: {redactor(err.render())}", code=err.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("duplex: interrupted", code=130) from None
        except Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - disk errors said in one line, anything else a bug's traceback
            from duplex.errors import disk_error
            err = disk_error(exc)  # a full or read-only disk wherever it struck: one line, not a traceback
            if err is not None:
                raise Exit(f"duplex: {redactor(err.render())}", code=1) from None
            import traceback  # a bug: its traceback for the report, with any secret in it masked
            traceback.print_exc()
            raise Exit(code=1) from None
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            sys.stdout, sys.stderr = streams
    return wrapper


def _root_or_none():
    try:
        from duplex.stack import project_root
        return project_root()
    except Exception:  # noqa: BLE001 - no project yet: only the environment's secrets are known
        return None


def _usage(message: str) -> Exit:
    return Exit(f"duplex: {message}", code=2)


def _show(json: bool, data, render, code: int = 0) -> None:
    """JSON for scripts or `render()` for people; then a non-zero `code` becomes the exit status."""
    from duplex import report
    report.print_json(data) if json else render()
    if code:
        raise Exit(code=code)


@task(help={
    "native": "plan native processes where the stack allows (development mode)",
    "services": "comma-separated services to include (plus what they require)",
    "json": "print the plan as JSON for scripts and CI",
    "otlp": "plan with OpenTelemetry export to this OTLP/HTTP collector URL",
    "replicas": "SERVICE=COUNT: plan COUNT replicas of it, as `inv run --replicas` (repeat, or asr=2,mt=3)",
}, iterable=["replicas"])
@_cli
def config(c, native=False, services=None, json=False, otlp=None, replicas=None):
    """Show the resolved plan: what runs where, with which ports, variables and start order."""
    from duplex import report
    from duplex.project import Project
    the_plan = Project.load().plan(native=native, services=flags.names(services), otlp=flags.otlp(otlp),
                                   replicas=flags.replicas(replicas))
    _show(json, report.plan_dict(the_plan), lambda: report.print_plan(the_plan))


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
    from duplex.envfile import use_project_secrets, write_secret
    from duplex.envs import provision_env
    from duplex.stack import load_stack, selected_envs
    env, installer = flags.name(env, "--env", "env"), flags.choice(installer, "--installer", ("uv", "pip"))
    torch, python, hf_token = flags.torch(torch), flags.python(python), flags.hf_token(hf_token)
    # the stack is all setup needs: Project.load() would also import the plan and the host probe
    # (~66M instructions of a no-op setup's 1,332M)
    stack = load_stack()
    use_project_secrets(stack.root, stack.secret_names)
    say = report.say("setup")
    if hf_token:
        say(f"HF_TOKEN saved to {write_secret(stack.root, 'HF_TOKEN', hf_token)} (readable only by you)")
    results = [provision_env(stack.root, name, stack.envs[name], python=python, force=force,
                             installer=installer, torch=torch, progress=say)
               for name in selected_envs(stack, env, everything=all)]
    _show(json, [r.as_dict() for r in results],
             lambda: [say(f"[yellow]warning:[/] {r.name}: {w}") for r in results for w in r.warnings])


@task(help={"env": "only this env (default: every env with a requirements file)",
            "torch": "lock for this torch variant (cpu or cuXXX) instead of this machine's",
            "images": "pin every base image to the digest its tag names now, in images.lock (no env locks)"})
@_cli
def lock(c, env=None, torch=None, images=False):
    """Resolve envs/NAME/requirements.in into a hash-pinned lock that setup installs from."""
    from duplex import report
    from duplex.envs import lock_env
    from duplex.project import Project
    from duplex.stack import selected_envs
    env, torch = flags.name(env, "--env", "env"), flags.torch(torch)
    say = report.say("lock")
    if images:
        from duplex.pinning import lock_project_images
        path = lock_project_images(Project.load(), say=say)
        say(f"wrote {path.name}")
        return
    stack = Project.load().stack
    for name in selected_envs(stack, env, everything=True):
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
    "dashboard": "serve the live dashboard on 127.0.0.1 (default; --no-dashboard: not this run)",
    "replicas": "SERVICE=COUNT: run COUNT replicas of it on ports port, port+1, ... (repeat, or asr=2,mt=3; "
                "default: the stack's `replicas`)",
    "on": "ssh://user@host[:port][/path]: run it on that machine, its ports forwarded to 127.0.0.1 here "
          "(bare --on: [remote] on = … in duplex.local.toml; docs/remote.md)",
}, iterable=["replicas"], optional=["on"])
@_cli
def run(c, native=False, services=None, detach=False, skip_preflight=False, smoke=False, debug=None,
        debug_wait=False, tls=False, otlp=None, dashboard=True, replicas=None, on=None):
    """Run the stack: every service in a container, or natively with --native."""
    from duplex import report
    if on is not None:
        if debug:
            raise flags.UsageError("--debug with --on: attach a debugger on that machine, or run here")
        from duplex.remote.session import RunRequest, run_remote
        code = run_remote(on, RunRequest(native=native, services=flags.names(services), detach=detach,
                                         preflight=not skip_preflight, smoke=smoke, tls=tls, otlp=flags.otlp(otlp),
                                         dashboard=dashboard, replicas=flags.replicas(replicas) or {}),
                          say=report.say)
        if code:
            raise Exit(code=code)
        return
    from duplex.run.start import run_project
    code = run_project(native=native, services=flags.names(services), detach=detach, preflight=not skip_preflight,
                       debug=flags.names(debug, "--debug"), debug_wait=debug_wait, tls=True if tls else None,
                       otlp=flags.otlp(otlp), smoke=smoke, dashboard=dashboard, say=report.say,
                       replicas=flags.replicas(replicas))
    if code:
        raise Exit(code=code)


@task(help={
    "services": "only the models of these services and what they require (default: every service's)",
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
    from duplex import report
    from duplex.models import RichProgress, prefetch_project
    from duplex.project import Project
    ref = flags.repos(repo, revision, services)
    project = Project.load()
    repos = [ref] if ref is not None else project.model_repos(flags.names(services))
    if not repos:
        print("no models to fetch: the chosen services declare none (`models = [...]` in stack.toml)")
        return
    result = prefetch_project(project, repos, progress=None if json else RichProgress(), dry_run=dry_run,
                              update=update, verify=verify)
    if json:
        report.print_json(result.to_json())


@task(help={
    "native": "check native mode (envs, interpreters, torch, system libraries) instead of containers",
    "services": "comma-separated services to check (plus what they require)",
    "json": "print a JSON list of the results for CI",
    "replicas": "SERVICE=COUNT: check for COUNT replicas of it (their ports), as `inv run --replicas`",
}, iterable=["replicas"])
@_cli
def preflight(c, native=False, services=None, json=False, replicas=None):
    """Check GPU, driver, token, licence, disk, ports, Docker and envs in seconds, each with its fix."""
    from duplex import report
    from duplex.preflight import run_preflight
    from duplex.project import Project
    project = Project.load()
    result = run_preflight(project.stack, project.plan(native=native, services=flags.names(services),
                                                       replicas=flags.replicas(replicas)))
    _show(json, result.as_list(), lambda: report.print_preflight(result), result.exit_code)


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
    from duplex.stack import project_root
    if sum(map(bool, (tag is not None, check, rollback))) != 1:
        raise _usage("give exactly one of --tag vX.Y.Z, --check or --rollback")
    source, url = flags.choice(source, "--source", ("pypi", "git")), flags.git_url(url)
    from_ = flags.path(from_, "--from", "the path of a moshi sdist, wheel or unpacked folder")
    root = project_root()
    progress = (lambda _: None) if json else report.say("vendor")
    if check:
        result = vendor.check(root)
    elif rollback:
        result = vendor.rollback(root, progress=progress)
    else:
        result = vendor.vendor(root, tag, source=source, url=url, from_path=from_, dry_run=dry_run,
                               allow_moved_tag=allow_moved_tag, progress=progress)
    _show(json, result.to_dict(), lambda: print(result.summary()), result.exit_code if check else 0)


@task(help={
    "compose": "write the Compose file (default: both Compose and Kubernetes)",
    "k8s": "write the Kubernetes manifests (default: both)",
    "out": "output folder (default: deploy/ beside stack.toml)",
    "services": "comma-separated services to publish (plus what they require)",
    "bind": "host address Compose publishes ports on: 127.0.0.1 (default) or 0.0.0.0",
    "registry": "image registry prefix for built images, e.g. ghcr.io/team (what a cluster pulls)",
    "push": "build the images, push them to --registry and refer to them by digest",
    "torch": "torch build for GPU images: cu126, cu130 ... (default: [stack] publish_torch, else the widest)",
    "gpu_sharing": "none, mps or time-slicing: GPU services share one GPU (default: [stack] gpu_sharing)",
    "argocd": "also write an Argo CD Application syncing the manifests from this git repo URL",
    "path": "with --argocd: the manifests' folder in that repo (default: OUT/k8s relative to the project)",
    "capacity": "the file `inv loadtest` wrote (.duplex/loadtest/loadtest.json): each autoscaler aims at 0.8 x its measured per_replica",
    "json": "print the report as JSON",
})
@_cli
def publish(c, compose=False, k8s=False, out="deploy", services=None, bind="127.0.0.1", registry=None,
            torch=None, push=False, gpu_sharing=None, argocd=None, path=None, capacity=None, json=False):
    """Write the stack as a Compose file and Kubernetes manifests, validated with the real tools."""
    from duplex import report
    from duplex.project import Project
    from duplex.publish import publish_project
    flags.path(out, "--out", "a folder, e.g. --out deploy")
    if push and not registry:
        raise _usage("--push needs --registry HOST[:PORT]/PREFIX: where to push the images")
    result = publish_project(Project.load(), out=out, compose=compose, k8s=k8s, services=flags.names(services),
                             bind=bind, registry=flags.registry(registry), push=push,
                             torch=flags.choice(torch, "--torch", ("cpu",), r"cu\d{3}", " or cuXXX (e.g. cu126)"),
                             gpu_sharing=flags.choice(gpu_sharing, "--gpu-sharing", ("none", "mps", "time-slicing")),
                             argocd=flags.path(argocd, "--argocd", "a git repository URL"),
                             argocd_path=flags.path(path, "--path", "a folder in the repository"),
                             capacity=flags.path(capacity, "--capacity", "the file `inv loadtest` wrote (.duplex/loadtest/loadtest.json, or in its --out folder)"),
                             progress=None if json else report.say("publish"))
    _show(json, result.to_dict(), lambda: print(result.summary()))


@task(help={"services": "comma-separated services to stop (default: all)",
            "all": "also remove persistent containers kept warm between runs",
    "on": "ssh://user@host[:port][/path]: stop the run there, and its forwarded ports here "
          "(bare --on: [remote] on = … in duplex.local.toml; docs/remote.md)",
}, optional=["on"])
@_cli
def stop(c, services=None, all=False, on=None):
    """Stop what is running (also what a killed run left behind), dependents first."""
    if on is not None:
        return _there(on, ["stop", *(["--services", services] if services else []), *(["--all"] if all else [])])
    from duplex.run.stop import stop as stop_stack
    from duplex.stack import project_root
    stopped = stop_stack(project_root(), services=flags.names(services), everything=all, say=print,
                         known=_stack_services)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def _there(on, args: list[str], send: bool = False) -> None:
    """`inv stop --on`, `inv status --on`, `inv logs --on`, `inv restart asr --on` (`send`: the project
    synced first): the same command in the remote folder, its output here."""
    from duplex import report
    from duplex.remote.session import remote_inv
    code = remote_inv(on, args, say=report.say, send=send)
    if code:
        raise Exit(code=code)


def _stack_services() -> set[str]:
    """The stack's service names, when its file loads (`inv stop` works without one too)."""
    try:
        from duplex.stack import load_stack
        return set(load_stack().services)
    except DuplexError:
        return set()


@task(help={"open": "also open it in the web browser"})
@_cli
def dashboard(c, open=False):
    """Print the link (with its token) of the run in progress's live dashboard."""
    from duplex.run.dashboard import current
    from duplex.stack import project_root
    board = current(project_root())
    print(board.link)
    if open:
        import webbrowser
        webbrowser.open(board.link)


@task(help={"name": "the service to restart (stop, start, wait until healthy)",
            "code": "warm services: re-import the app in place, the loaded models kept",
            "model": "warm services: a fresh server process, so the preload loads the models again",
    "on": "ssh://user@host[:port][/path]: send this project's edits there, then restart the service of the "
          "run there (a detached `inv run --on`; bare --on: [remote] on = … in duplex.local.toml; docs/remote.md)",
}, optional=["on"])
@_cli
def restart(c, name, code=False, model=False, on=None):
    """Restart one service of the run in progress, with the same plan and health gating as `inv run`."""
    from duplex.run import service as actions
    from duplex.stack import project_root
    name = flags.name(name, "NAME")
    if code and model:
        raise flags.UsageError("--code and --model are two different reloads: choose one "
                               "(--model reloads the code too)")
    if on is not None:
        return _there(on, ["restart", name, *(["--code"] if code else []), *(["--model"] if model else [])], send=True)
    if code or model:
        actions.reload_service(project_root(), name, "code" if code else "model", say=print)
        return
    took = actions.restart_service(project_root(), name, say=print)
    print(f"{name}: restarted in {took:.2f}s")


@task(help={"json": "print a JSON list for scripts",
    "on": "ssh://user@host[:port][/path]: the run there "
          "(bare --on: [remote] on = … in duplex.local.toml; docs/remote.md)",
}, optional=["on"])
@_cli
def status(c, json=False, on=None):
    """Show each service's mode, state, health, url and pid or container."""
    if on is not None:
        return _there(on, ["status", *(["--json"] if json else [])])
    from duplex import report
    from duplex.run.status import status as stack_status
    from duplex.stack import project_root
    rows = stack_status(project_root())
    _show(json, rows, lambda: report.print_status(rows))


@task(help={"service": "only this service's log, plain (its replicas': each line prefixed; default: every service of the current or last run, prefixed)",
            "follow": "keep printing new lines until the run ends (Ctrl-C to stop watching)",
            "lines": "how many past lines to show per service (default 200)",
    "on": "ssh://user@host[:port][/path]: the logs there "
          "(bare --on: [remote] on = … in duplex.local.toml; docs/remote.md)",
}, optional=["on"])
@_cli
def logs(c, service=None, follow=False, lines=None, on=None):
    """Show the logs of the current or last run, with the run's name prefixes (kept in .duplex/logs)."""
    if on is not None:
        return _there(on, ["logs", *(["--service", service] if service else []), *(["--follow"] if follow else []),
                           *(["--lines", str(lines)] if lines else [])])
    from duplex import report
    from duplex.run.logs import log_names
    from duplex.run.logs import logs as stack_logs
    from duplex.stack import project_root
    service = flags.name(service, "--service")
    lines = flags.number(lines, "--lines", default=200, high=1_000_000)
    root = project_root()
    # one service's replicas come as one stream, each line prefixed with the replica's name
    plain = service is not None and len(log_names(root, service)) == 1
    report.print_log_lines(stack_logs(root, service, follow=follow, lines=lines),
                           prefixes=None if plain else log_names(root))


@task(help={
    "services": "comma-separated services to check (default: every running one; `gpu` = the GPU container check)",
    "timeout": "seconds each check may take (default 30)",
    "json": "print the report as JSON for scripts and CI",
    "latency": "also stream speech at real time to each asr service (WS /stream) and to moshi: end of speech -> final (moshi: -> its first audio frame), "
               "onset -> first partial, partial cadence, WER of the finals",
})
@_cli
def smoke(c, services=None, timeout=None, json=False, latency=False):
    """Speak to each running service once (transcribe, page, handshake, nvidia-smi) and time it."""
    from duplex.run.smoke import smoke_running
    timeout = flags.number(timeout, "--timeout", default=30.0, kind=float, low=0.1, high=3600)
    result = smoke_running(services=flags.names(services), timeout=timeout, latency=latency)
    _show(json, result.as_dict(), lambda: print("\n".join(result.lines())), result.exit_code)


@task(help={
    "services": "comma-separated services to measure (default: every running asr and mt service)",
    "most": "the most concurrent sessions to try (default 64): levels 1, 2, 4, ... up to it",
    "seconds": "how long each simulated user speaks per level (default 12)",
    "direct": "open sessions on the services themselves, not through the frontend's relays",
    "speech": "a folder of 16 kHz mono WAV files, each with a .txt of its words (default: flite's voices)",
    "out": "the folder for loadtest.json and loadtest.html (default .duplex/loadtest)",
    "json": "print the capacity document as JSON (progress goes to stderr)",
})
@_cli
def loadtest(c, services=None, most=None, seconds=None, direct=False, speech=None, out=None, json=False):
    """Simulated users speaking at real time, at rising concurrency: each service's capacity per budget."""
    from pathlib import Path

    from duplex.loadtest import ladder, report
    most = flags.number(most, "--most", default=64, kind=int, low=1, high=1024)
    seconds = flags.number(seconds, "--seconds", default=12.0, kind=float, low=2, high=600)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if json else (lambda line: print(line, flush=True))
    doc, data, page = ladder.loadtest(services=flags.names(services), most=most, seconds=seconds, direct=direct,
                                      speech_dir=Path(speech).expanduser() if speech else None,
                                      out=Path(out).expanduser() if out else None, say=say)
    for line in [*report.summary(doc), f"wrote {data} and {page}"]:
        say(line)
    unmet = [n for n, s in doc["services"].items() if s["capacity"] is None]
    _show(json, doc, lambda: None, 1 if unmet else 0)


@task(name="eval", help={
    "data": "a NeMo-style JSONL manifest or a folder of audio with .txt transcripts (default: stack.toml's "
            "[eval] data, else duplex's synthetic set)",
    "services": "comma-separated services to evaluate (default: every running asr and mt service)",
    "modes": "batch, stream or both (default batch,stream); mt needs stream",
    "save": "write the figures as the baseline beside the stack (commit it)",
    "check": "fail (exit 1, one line per breach) when a figure is worse than the baseline by more than its budget",
    "baseline": "the baseline file (default: stack.toml's [eval] baseline, eval-baseline.json beside the stack)",
    "out": "the folder for eval.json and eval.html (default .duplex/eval)",
    "json": "print the document as JSON (progress goes to stderr)",
})
@_cli
def eval_(c, data=None, services=None, modes=None, save=False, check=False, baseline=None, out=None, json=False):
    """Word error rate, latency and translation quality of the running stack, against a baseline."""
    from pathlib import Path

    from duplex.evaluation import report, runner
    from duplex.evaluation.evaluate import evaluate_stack
    chosen = flags.modes(modes, runner.MODES)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if json else (lambda line: print(line, flush=True))
    got = evaluate_stack(data_path=Path(flags.path(data, "--data", "a manifest or folder")).expanduser() if data else None,
                         services=flags.names(services), modes=chosen, save=save, check=check,
                         baseline_path=Path(flags.path(baseline, "--baseline", "a file")).expanduser() if baseline else None,
                         out=Path(flags.path(out, "--out", "a folder")).expanduser() if out else None, say=say)
    lines = [*report.summary(got.doc), f"wrote {got.json_path} and {got.html_path}"]
    if got.saved:
        lines.append(f"saved the baseline {got.saved} (commit it)")
    for line in lines:
        say(line)
    _show(json, got.doc, lambda: None, got.exit_code)


@task(help={
    "name": "another host name or IP the stack is reached by (repeat for more)",
    "force": "reissue the server certificate even when it is still good (the CA is kept)",
    "json": "print the files and names as JSON",
}, iterable=["name"])
@_cli
def certs(c, name=None, force=False, json=False):
    """Make a local CA and this stack's TLS certificate, for https/wss when the browser is remote."""
    from duplex import report
    from duplex.certs import make_stack_certs
    from duplex.project import Project
    made = make_stack_certs(Project.load().stack, flags.hosts(name or []), force=force)
    _show(json, made.as_dict(), lambda: report.print_certs(made))
