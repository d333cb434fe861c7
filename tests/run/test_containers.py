"""Container runs against the real Docker engine (CI starts one; a missing engine fails here)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.run.conftest import labelled, lines_of, wait_for

pytestmark = pytest.mark.docker


def networks(engine, toy) -> list[str]:
    return [n.name for n in engine.networks.list(names=["duplex-toy"])]


def test_container_run_builds_discovers_publishes_on_loopback_and_stops(engine, toy):
    proc = toy.inv("run", "--detach", "--services", "web", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = toy.get("web", "/env")
    assert env["PEER_URL"] == "http://api:18501"  # container to container: the network alias
    assert env["services__api__http__0"] == "http://api:18501"
    assert env["HF_HOME"] == "/cache/huggingface"
    web = engine.containers.get("duplex-toy-web")
    ports = web.attrs["HostConfig"]["PortBindings"]
    assert ports == {"18502/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(toy.ports["web"])}]}
    assert web.labels["dev.duplex.service"] == "web" and web.labels["dev.duplex.stack"] == "toy"
    assert web.exec_run("id -u").output.decode().strip() != "0"  # non-root
    mounts = {m["Destination"]: m for m in web.attrs["Mounts"]}
    assert "/cache/huggingface" in mounts
    assert web.exec_run(["python", "-c", "import os; print(os.access('/cache/huggingface', os.R_OK))"]
                        ).output.decode().strip() == "True"
    assert "Application startup complete" in toy.inv("logs", "--service", "web").stdout
    every = toy.inv("logs").stdout.splitlines()  # detached: the engine keeps the logs, not the files
    for name in ("api", "web"):
        assert any(l.startswith(f"{name}    | ") and "Application startup complete" in l for l in every), every
    follow = toy.popen("logs", "--follow", "--lines", "0")
    out, seen = lines_of(follow), []
    for n in range(100):  # until the follower reads: --lines 0 drops what came before it
        toy.get("api", f"/version?m=ready{n}")
        try:
            assert wait_for(out, f"ready{n}", seen, timeout=0.5).startswith("api    | ")
            break
        except AssertionError:
            continue
    toy.get("web", "/version?m=from-web")
    assert wait_for(out, "from-web", seen).startswith("web    | ")
    assert toy.inv("stop").returncode == 0
    assert follow.wait(timeout=30) == 0  # the containers are gone: --follow ends
    assert labelled(engine, toy) == []
    assert networks(engine, toy) == []  # left behind, each would hold one of the engine's ~30 pools


def test_native_service_reaches_a_container_dependency_on_loopback(engine, toy):
    toy.edit('dockerfile = "toy.Dockerfile"\n[services.api.environment]',
             'dockerfile = "toy.Dockerfile"\nmodes = ["container"]\n[services.api.environment]')
    proc = toy.inv("run", "--native", "--detach", "--services", "web", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert toy.get("web", "/env")["PEER_URL"] == toy.url("api")
    modes = {r["name"]: r["mode"] for r in toy.state()["services"].values()}
    assert modes == {"api": "container", "web": "native"}
    assert toy.inv("stop").returncode == 0
    assert labelled(engine, toy) == []


def test_killed_duplex_then_stop_removes_containers(engine, toy):
    run = toy.popen("run", "--services", "api")
    toy.wait_healthy("api", timeout=600, proc=run)
    run.kill()
    run.wait(timeout=10)
    assert len(labelled(engine, toy)) == 1  # containers outlive a SIGKILLed duplex...
    assert toy.inv("stop").returncode == 0  # ...and `inv stop` cleans up by label
    assert labelled(engine, toy) == [] and networks(engine, toy) == []


def test_persistent_container_survives_the_run_and_is_reused(engine, toy):
    toy.edit('TOY_NAME = "api"', 'TOY_NAME = "api"\n')
    toy.edit('start_timeout = 20\ndockerfile = "toy.Dockerfile"\n[services.api',
             'start_timeout = 20\npersistent = true\ndockerfile = "toy.Dockerfile"\n[services.api')
    first = toy.popen("run", "--services", "api")
    toy.wait_healthy("api", timeout=600, proc=first)
    time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    (kept,) = labelled(engine, toy)
    assert kept.status == "running"
    assert networks(engine, toy) == ["duplex-toy"]
    second = toy.inv("run", "--detach", "--services", "api", timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "reused" in second.stdout
    assert [c.id for c in labelled(engine, toy)] == [kept.id]
    toy.inv("stop")
    assert len(labelled(engine, toy)) == 1  # plain stop keeps it warm
    assert networks(engine, toy) == ["duplex-toy"]  # and the network it is on
    third = toy.inv("run", "--detach", "--services", "api", timeout=600)  # and the next run takes it
    assert third.returncode == 0 and "reused" in third.stdout, third.stdout + third.stderr
    assert [c.id for c in labelled(engine, toy)] == [kept.id]
    assert toy.inv("stop", "--all").returncode == 0
    assert labelled(engine, toy) == []
    assert networks(engine, toy) == []


def test_build_failure_names_the_failing_step(engine, toy):
    dockerfile = toy.root / "toy.Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("COPY *.py /app/", "RUN echo boom-marker && false"))
    proc = toy.inv("run", "--services", "api", timeout=600)
    assert proc.returncode == 1
    assert "image build failed at Step" in proc.stderr and "RUN echo boom-marker && false" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert labelled(engine, toy) == []


def test_engine_down_is_a_clear_error(toy):
    proc = toy.inv("run", "--services", "api", extra={"DOCKER_HOST": "unix:///tmp/no-docker-here.sock"})
    assert proc.returncode == 1
    assert "Docker engine at unix:///tmp/no-docker-here.sock is not answering" in proc.stderr
    assert "inv run --native" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_base_image_is_a_clear_error(toy):
    proc = toy.inv("run", "--services", "api", extra={"DUPLEX_BASE_IMAGE": "nope/python:0"})
    assert proc.returncode == 1
    # not here, and no registry has it (Docker Hub is out of reach; CI's mirror lacks it): both ways out
    assert ("no registry answered for nope/python:0" in proc.stderr
            or "nope/python:0 does not exist in" in proc.stderr), proc.stderr
    assert "scripts/base-image.sh" in proc.stderr and "--registry-mirror" in proc.stderr


def test_sigterm_during_a_container_health_wait_removes_it(engine, toy):
    toy.edit('TOY_NAME = "api"', 'TOY_NAME = "api"\nTOY_BOOT_DELAY = "60"')  # answers 503 for a minute
    run = toy.popen("run", "--services", "api")
    out, seen = lines_of(run), []
    wait_for(out, "api: started (container", seen, timeout=600)
    time.sleep(0.5)
    assert len(labelled(engine, toy)) == 1
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 143, "\n".join(seen)
    text = "\n".join(seen + list(out.queue))
    assert "SIGTERM during start-up: stopped what had started (api)" in text and "Traceback" not in text
    assert labelled(engine, toy) == [] and networks(engine, toy) == []  # the attached run removed its network


def test_sigterm_during_a_build_stops_it_and_starts_nothing(engine, toy):
    marker = f"slow-step-{toy.ports['api']}"  # a fresh layer: never a cache hit
    dockerfile = toy.root / "toy.Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("COPY *.py /app/", f"RUN echo {marker} && sleep 60\nCOPY *.py /app/"))
    run = toy.popen("run", "--services", "api")
    out, seen = lines_of(run), []
    wait_for(out, f"RUN echo {marker}", seen, timeout=600)
    time.sleep(1)  # the step's container is running
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 143, "\n".join(seen)
    text = "\n".join(seen + list(out.queue))
    assert "SIGTERM during start-up: stopped what had started (nothing had started yet)" in text
    assert labelled(engine, toy) == []
    deadline = time.monotonic() + 20  # the engine cancels the build once its client is gone
    while time.monotonic() < deadline and _step_containers(engine, marker):
        time.sleep(0.5)
    assert _step_containers(engine, marker) == []


def _step_containers(engine, marker: str) -> list:
    return [c for c in engine.containers.list(all=True) if marker in " ".join(c.attrs["Config"]["Cmd"] or [])]


def test_ca_bundle_that_is_not_a_file_stops_the_run_before_any_build(engine, toy):
    proc = toy.inv("run", "--services", "api", extra={"DUPLEX_CA_BUNDLE": str(toy.root / "typo.pem")})
    assert proc.returncode == 1
    assert f"DUPLEX_CA_BUNDLE={toy.root / 'typo.pem'} cannot be read: No such file or directory" in proc.stderr
    assert "fix: point DUPLEX_CA_BUNDLE at a readable PEM bundle" in proc.stderr
    assert "Traceback" not in proc.stderr and "building" not in proc.stdout
    assert labelled(engine, toy) == []


def test_an_image_whose_torch_lock_was_never_made_names_inv_lock_not_the_dockerfile(engine, toy):
    """A GPU env's image COPYs envs/ENV/requirements.<TORCH>.lock (as moshi's does): a build for a
    variant nobody locked says which lock and the command that makes it, not "fix the Dockerfile"."""
    (toy.root / "lock.Dockerfile").write_text(
        "ARG BASE_IMAGE=duplex/python:3.11-bookworm\nFROM ${BASE_IMAGE}\nARG TORCH=cpu\n"
        "COPY envs/web/requirements.${TORCH}.lock /tmp/requirements.lock\n")
    toy.edit('[envs.web]', '[envs.web]\ntorch = "cu126"')
    toy.edit('dockerfile = "toy.Dockerfile"\n[services.api.environment]',
             'dockerfile = "lock.Dockerfile"\nmodes = ["container"]\n[services.api.environment]')
    run = toy.inv("run", "--detach", "--skip-preflight", "--services", "api", timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "api: the image installs torch cu126 from envs/web/requirements.cu126.lock, which does not exist" \
        in run.stderr, run.stderr
    assert "`inv lock --env web --torch cu126`" in run.stderr and "fix lock.Dockerfile" not in run.stderr
    assert "Traceback" not in run.stderr and labelled(engine, toy) == []


def test_replicas_in_containers_each_published_named_and_reached_by_its_dependents(engine, toy):
    from tests.run.test_replicas import free_run
    base = free_run(2)
    toy.env["DUPLEX_PORT_API"] = str(base)
    proc = toy.inv("run", "--detach", "--services", "web", "--replicas", "api=2", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("building") + proc.stderr.count("building") <= 2  # api's replicas: one build
    env = toy.get("web", "/env")
    assert env["PEER_URL"] == "http://api:18501,http://api_1:18501"  # each replica's network alias
    assert env["services__api__http__1"] == "http://api_1:18501"
    for k, name in enumerate(("duplex-toy-api", "duplex-toy-api_1")):
        box = engine.containers.get(name)
        assert box.attrs["HostConfig"]["PortBindings"] == {
            "18501/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(base + k)}]}  # same inside, own host port
        assert box.labels["dev.duplex.service"] == ("api", "api_1")[k]
    web = engine.containers.get("duplex-toy-web")
    reach = ["python", "-c", "import urllib.request; print(urllib.request.urlopen('http://api_1:18501/health').status)"]
    assert web.exec_run(reach).output.decode().strip() == "200"
    rows = {r["name"]: r for r in json.loads(toy.inv("status", "--json").stdout)}
    assert {n: (r["mode"], r["healthy"]) for n, r in rows.items()} == {
        "api": ("container", True), "api_1": ("container", True), "web": ("container", True)}
    assert rows["api_1"]["url"] == f"http://127.0.0.1:{base + 1}"
    assert toy.inv("stop").returncode == 0
    assert labelled(engine, toy) == [] and networks(engine, toy) == []


def test_persistent_replicas_are_each_kept_warm_and_reused(engine, toy):
    from tests.run.test_replicas import free_run
    toy.env["DUPLEX_PORT_API"] = str(free_run(2))
    toy.edit('start_timeout = 20\ndockerfile = "toy.Dockerfile"\n[services.api',
             'start_timeout = 20\npersistent = true\ndockerfile = "toy.Dockerfile"\n[services.api')
    first = toy.inv("run", "--detach", "--services", "api", "--replicas", "api=2", timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    kept = sorted(c.name for c in labelled(engine, toy))
    assert kept == ["duplex-toy-api", "duplex-toy-api_1"]
    stopped = toy.inv("stop")
    assert "api_1: kept warm (persistent)" in stopped.stdout, stopped.stdout + stopped.stderr
    again = toy.inv("run", "--detach", "--services", "api", "--replicas", "api=2", timeout=600)
    assert again.returncode == 0 and again.stdout.count("reused") >= 2, again.stdout + again.stderr
    assert sorted(c.name for c in labelled(engine, toy)) == kept
    assert toy.inv("stop", "--all").returncode == 0
    assert labelled(engine, toy) == []
