"""The GPU request follows what the Docker engine says, not what NVML says: `docker info` dicts as
recorded from real engines, planning from Machine data (a GPU cannot exist here)."""

from __future__ import annotations

import os
import textwrap

from checks import Context
from checks import docker as docker_check
from duplex import engine as docker_engine
from duplex.host import probe_machine
from duplex.machine import Machine
from duplex.plan import plan
from duplex.preflight import Probes, run_preflight
from duplex.run.containers import run_kwargs
from duplex.run.start import plan_run
from duplex.stack import load_stack

# `docker info`, the keys that matter, as recorded: this machine's engine (Debian docker.io, no toolkit)...
PLAIN = {"ServerVersion": "20.10.24+dfsg1", "DefaultRuntime": "runc", "CDISpecDirs": None,
         "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "io.containerd.runtime.v1.linux": {"path": "runc"},
                      "runc": {"path": "runc"}}}
# ...an engine after `nvidia-ctk runtime configure --runtime=docker`...
TOOLKIT = {"ServerVersion": "27.3.1", "DefaultRuntime": "runc", "CDISpecDirs": [],
           "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"},
                        "runc": {"path": "runc"}}}
# ...and one with CDI enabled (Docker 28 lists the spec directories only then).
CDI_ON = {"ServerVersion": "28.0.4", "DefaultRuntime": "runc", "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
          "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}}
LOCAL = "unix:///var/run/docker.sock"
# What `nvidia-ctk cdi generate` writes (trimmed): one device per GPU index, MIG device and `all`.
CDI_SPEC = """cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: "0:1"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia-caps/nvidia-cap21
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
"""


def no_hook(_name):
    return None


def test_gpu_paths_read_from_recorded_docker_info(tmp_path):
    assert docker_engine.gpu_paths(docker_engine.facts_from_info(LOCAL, PLAIN, which=no_hook)) == []
    assert docker_engine.gpu_paths(docker_engine.facts_from_info(LOCAL, TOOLKIT, which=no_hook)) == ["nvidia runtime"]
    hook = docker_engine.facts_from_info(LOCAL, PLAIN, which=lambda n: f"/usr/bin/{n}")
    assert docker_engine.gpu_paths(hook) == ["nvidia-container-runtime-hook"]
    remote = docker_engine.facts_from_info("tcp://gpu-box:2376", PLAIN, which=lambda n: f"/usr/bin/{n}")
    assert docker_engine.gpu_paths(remote) == []  # a hook on *this* host says nothing about a remote engine

    spec = tmp_path / "cdi"
    spec.mkdir()
    (spec / "empty.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n")
    enabled = docker_engine.facts_from_info(LOCAL, {**CDI_ON, "CDISpecDirs": [str(spec)]}, which=no_hook)
    assert docker_engine.gpu_paths(enabled) == []  # a spec that defines no device hands out nothing
    (spec / "nvidia.yaml").write_text(CDI_SPEC)
    enabled = docker_engine.facts_from_info(LOCAL, {**CDI_ON, "CDISpecDirs": [str(spec)]}, which=no_hook)
    assert docker_engine.gpu_paths(enabled) == ["CDI spec for nvidia.com/gpu"]
    assert enabled.cdi_devices == ("nvidia.com/gpu=0", "nvidia.com/gpu=0:1", "nvidia.com/gpu=all")
    assert docker_engine.gpu_request(enabled) == "cdi"
    off = docker_engine.facts_from_info(LOCAL, TOOLKIT | {"Runtimes": PLAIN["Runtimes"]}, which=no_hook,
                                       cdi=lambda dirs: True)  # spec files on disk, CDI off in the engine
    assert docker_engine.gpu_paths(off) == []
    down = docker_engine.DockerFacts(False, LOCAL, "not answering", "start Docker", runtimes=("nvidia",))
    assert docker_engine.gpu_paths(down) == []


def test_a_host_gpu_alone_is_not_enough_the_real_engine_is_asked():
    """NVML may see a GPU (given here as data): the answer is the real engine's, whatever it has."""
    environ = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_") or k == "HOME"}
    engine = docker_engine.probe_docker(environ, [], "gpus")
    assert engine.reachable  # CI starts one
    expected = bool(docker_engine.gpu_paths(engine))  # False here (no NVIDIA toolkit); True on a GPU host with one
    assert probe_machine(environ, gpus=1).nvidia_runtime is expected
    nowhere = probe_machine({**environ, "DOCKER_HOST": "unix:///tmp/no-docker-here.sock"}, gpus=1)
    assert nowhere.nvidia_runtime is False  # an engine that does not answer hands out nothing


STACK = """
[stack]
name = "gpus"

[envs.small]

[services.asr]
env = "small"
app = "app:app"
port = 18611
dockerfile = "asr.Dockerfile"
gpu = "optional"

[services.voice]
env = "small"
command = ["python", "-m", "voice", "--port", "{port}"]
port = 18612
modes = ["container"]
dockerfile = "voice.Dockerfile"
gpu = "required"
"""


def stack_at(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "stack.toml").write_text(textwrap.dedent(STACK))
    return load_stack(tmp_path / "stack.toml")


def planned(tmp_path, info: dict, gpus: int = 1, native: bool = False):
    stack = stack_at(tmp_path)
    asked = []

    def engine_probe(environ, images, name, timeout=3.0):
        asked.append((images, name))
        return docker_engine.facts_from_info(LOCAL, info, images={i: True for i in images}, which=no_hook)
    machine = Machine(gpu_count=gpus, hf_home=str(tmp_path / "hf"))
    the_plan, machine, engine = plan_run(stack, lambda m: plan(stack, m, native=native), {},
                                         machine=machine, engine_probe=engine_probe)
    return stack, the_plan, machine, engine, asked


def test_gpu_requested_when_the_engine_has_the_nvidia_runtime(tmp_path):
    _, the_plan, machine, engine, asked = planned(tmp_path, TOOLKIT)
    assert len(asked) == 1 and asked[0][1] == "gpus"  # one engine probe for the whole run
    assert machine.nvidia_runtime is True
    for name in ("asr", "voice"):
        svc = the_plan.services[name]
        assert svc.gpu is True
        assert run_kwargs(svc, "gpus", "net", "h")["device_requests"][0].capabilities == [["gpu"]]
    assert not [w for w in the_plan.warnings if "CPU" in w]


def test_without_the_runtime_optional_runs_on_cpu_with_a_warning_and_required_fails_preflight(tmp_path):
    stack, the_plan, machine, engine, asked = planned(tmp_path, PLAIN)
    assert len(asked) == 1 and machine.nvidia_runtime is False
    asr, voice = the_plan.services["asr"], the_plan.services["voice"]
    assert asr.gpu is False and voice.gpu is False
    assert "device_requests" not in run_kwargs(asr, "gpus", "net", "h")
    assert "asr: no GPU available to containers; it runs on the CPU" in the_plan.warnings
    assert any(w.startswith("voice needs a GPU but Docker cannot hand one") for w in the_plan.warnings)

    results = {r.name: r for r in docker_check.check(Context(stack, the_plan, {}), engine, host_gpus=1)}
    assert results["docker.gpu.voice"].status == "fail" and "nvidia-ctk" in results["docker.gpu.voice"].fix
    assert results["docker.gpu.asr"].status == "warn" and "runs on the CPU" in results["docker.gpu.asr"].detail

    again = []  # `inv run` hands these facts to preflight: it must not ask the engine a second time
    report = run_preflight(stack, the_plan, environ={"HF_HOME": str(tmp_path / "hf")}, for_run=True,
                           probes=Probes(docker=lambda *a, **k: again.append(a) or engine))
    assert len(again) == 1 and "docker.gpu.voice" in [r.name for r in report.failed]


def test_engine_not_asked_without_a_host_gpu_or_without_gpu_containers(tmp_path):
    _, the_plan, machine, engine, asked = planned(tmp_path / "a", TOOLKIT, gpus=0)
    assert asked == [] and engine is None and not machine.nvidia_runtime
    assert not any(s.gpu for s in the_plan.services.values())
    quiet = STACK.replace('gpu = "optional"', 'gpu = "none"').replace('gpu = "required"', 'gpu = "none"')
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "stack.toml").write_text(quiet)
    stack = load_stack(tmp_path / "b" / "stack.toml")
    _, _, engine = plan_run(stack, lambda m: plan(stack, m), {}, machine=Machine(gpu_count=1),
                            engine_probe=lambda *a: (_ for _ in ()).throw(AssertionError("asked")))
    assert engine is None


def test_a_cdi_only_engine_gets_the_cdi_form_and_preflight_checks_the_same_names(tmp_path):
    """Docker 25+ with CDI on and `nvidia-ctk cdi generate` specs, but no NVIDIA runtime hook: the
    `--gpus` form (count=-1, [["gpu"]]) fails there with `could not select device driver`."""
    from duplex.machine import GpuInfo
    spec = tmp_path / "cdi"
    spec.mkdir()
    (spec / "nvidia.yaml").write_text(CDI_SPEC)
    info = {**CDI_ON, "CDISpecDirs": [str(spec)]}
    stack = stack_at(tmp_path / "p")
    engine = docker_engine.facts_from_info(LOCAL, info, images={}, which=no_hook)
    assert docker_engine.gpu_request(engine) == "cdi"
    a100 = (GpuInfo(0, "A100 MIG 3g.40gb", (8, 0), 40 * 2 ** 30, 40 * 2 ** 30, "MIG-aaaa", mig=1),)
    the_plan, machine, _ = plan_run(stack, lambda m: plan(stack, m), {},
                                    machine=Machine(gpu_count=1, gpus=a100, hf_home=str(tmp_path / "hf")),
                                    engine_probe=lambda *a, **k: engine)
    voice = the_plan.services["voice"]
    assert machine.gpu_request == "cdi" and voice.gpu and voice.gpu_devices == ["0:1"]
    request = run_kwargs(voice, "gpus", "net", "h")["device_requests"][0]
    assert request.driver == "cdi" and request.device_ids == ["nvidia.com/gpu=0:1"]
    results = {r.name: r for r in docker_check.check(Context(stack, the_plan, {}), engine, host_gpus=1)}
    assert results["docker.gpu.voice"].status == "pass" and "nvidia.com/gpu=0:1" in results["docker.gpu.voice"].detail
    (spec / "nvidia.yaml").write_text(CDI_SPEC.replace('"0:1"', '"0:2"'))  # the spec predates a MIG change
    stale = docker_engine.facts_from_info(LOCAL, info, images={}, which=no_hook)
    results = {r.name: r for r in docker_check.check(Context(stack, the_plan, {}), stale, host_gpus=1)}
    assert results["docker.gpu.voice"].status == "fail" and "nvidia-ctk cdi generate" in results["docker.gpu.voice"].fix
    assert "nvidia.com/gpu=0:1" in results["docker.gpu.voice"].detail


def test_the_engine_here_has_no_cdi_and_says_so():
    """Debian's docker.io 20.10 (this machine's engine) predates CDI (Docker 25): `docker info` lists no
    CDISpecDirs, so duplex never sends the CDI form to it."""
    environ = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_") or k == "HOME"}
    engine = docker_engine.probe_docker(environ, [], "gpus")
    if engine.version and int(engine.version.split(".")[0]) < 25:
        assert not engine.cdi_nvidia and docker_engine.gpu_request(engine) != "cdi"


def test_a_gpu_required_image_with_cpu_torch_fails_preflight_with_the_reason(tmp_path):
    """T4 on driver 470 with a torch range that starts at 2.8: no build fits, so the image would get
    CPU torch; before, `docker.lock.moshi` passed (\"installs torch cpu\") and moshi crashed at start."""
    text = STACK.replace('[envs.small]', '[envs.small]\ntorch = "auto"')
    (tmp_path / "envs" / "small").mkdir(parents=True)
    (tmp_path / "envs" / "small" / "requirements.in").write_text("torch>=2.8,<2.14\n")
    (tmp_path / "stack.toml").write_text(textwrap.dedent(text))
    stack = load_stack(tmp_path / "stack.toml")
    from duplex.host import torch_choices
    from duplex.machine import GpuInfo, NvmlFacts
    t4 = NvmlFacts(driver_version="470.82.01", cuda_driver=11040, gpus=(GpuInfo(0, "Tesla T4", (7, 5)),))
    variants, notes = torch_choices(stack, t4)
    assert variants == {"small": "cpu"} and "no torch build fits" in notes["small"]
    machine = Machine(gpu_count=1, nvidia_runtime=True, torch_envs=variants, torch_notes=notes,
                      hf_home=str(tmp_path / "hf"))
    the_plan = plan(stack, machine)
    assert the_plan.services["voice"].build_args["TORCH"] == "cpu"
    results = {r.name: r for r in docker_check.check_torch_builds(Context(stack, the_plan, {}))}
    bad = results["docker.torch.voice"]
    assert bad.status == "fail" and "would install CPU torch" in bad.detail and "470.82.01" in bad.detail
    assert "driver to >= 525.60.13" in bad.fix and "allow torch 2.7 (cu118" in bad.fix
    assert "docker.torch.asr" not in results  # gpu = "optional": the CPU is an answer there
