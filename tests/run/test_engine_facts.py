"""Engine facts read defensively: `docker network inspect bridge` and `docker info` as different engines
give them (recorded shapes fed to the pure functions), and the real engine's host gateway checked
against what `host-gateway` resolves to inside a real container, which connects back to it."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from duplex import engine as docker_engine
from duplex.machine import Machine
from duplex.plan import Health, plan
from duplex.run.containers import gpu_device_request, run_kwargs
from duplex.stack import load_stack

# `docker network inspect bridge`: Docker 24+ (and most engines)...
WITH_GATEWAY = {"Name": "bridge", "Driver": "bridge",
                "IPAM": {"Driver": "default", "Options": None,
                         "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
                "Options": {"com.docker.network.bridge.name": "docker0",
                            "com.docker.network.bridge.default_bridge": "true"}}
# ...and Debian's docker.io 20.10 started fresh (this machine's engine): no Gateway key.
NO_GATEWAY = {"Name": "bridge", "Driver": "bridge",
              "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.17.0.0/16"}]},
              "Options": {"com.docker.network.bridge.name": "docker0",
                          "com.docker.network.bridge.default_bridge": "true"}}
HOST = {"lo": ["127.0.0.1"], "eth0": ["10.0.2.15"], "docker0": ["172.17.0.1"]}


def test_host_gateway_from_both_inspect_shapes_and_others():
    gw = docker_engine.host_gateway
    assert gw(WITH_GATEWAY, HOST) == ("172.17.0.1", "the bridge network's gateway")
    assert gw(NO_GATEWAY, HOST) == ("172.17.0.1", "the address of docker0, the bridge's interface")
    # a bridge given another address (--bip) and the engine silent about it: the interface says
    assert gw(NO_GATEWAY, {**HOST, "docker0": ["172.17.42.1"]})[0] == "172.17.42.1"
    # a bridge of another name (dockerd --bridge=br0)
    custom = {**NO_GATEWAY, "Options": {"com.docker.network.bridge.name": "br0"}}
    assert gw(custom, {"br0": ["172.17.0.254"], "eth0": ["10.0.2.15"]})[0] == "172.17.0.254"
    # no interface of that name, but an address of this host inside the subnet
    assert gw(custom, {"virbr9": ["172.17.0.9"]})[0] == "172.17.0.9"
    # nothing on this host: the subnet's first host, what the engine gives its bridge
    assert gw(NO_GATEWAY, {"lo": ["127.0.0.1"]}) == ("172.17.0.1", "the bridge subnet's first host")
    # IPv6 first, a gateway with its prefix (some engines), a null or missing anything
    assert gw({"IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"},
                                   {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1/16"}]}}, {})[0] == "172.18.0.1"
    for shape in (None, {}, {"IPAM": None}, {"IPAM": {"Config": None}}, {"IPAM": {"Config": []}},
                  {"IPAM": {"Config": [None, {"Subnet": None, "Gateway": None}]}},
                  {"IPAM": {"Config": [{"Subnet": "garbage", "Gateway": ""}]}, "Options": None},
                  {"IPAM": {"Config": {"Subnet": "172.17.0.0/16"}}}, ["not", "a", "dict"]):
        address, why = gw(shape, {"lo": ["127.0.0.1"]})
        assert address is None and why, shape
    # no bridge shape at all but docker0 is there (an engine that hides its bridge): still found
    assert gw({"IPAM": {"Config": []}}, HOST)[0] == "172.17.0.1"


def test_a_remote_engine_has_no_gateway_on_this_host():
    address, why = docker_engine.probe_host_gateway({"DOCKER_HOST": "tcp://10.9.9.9:2375"})
    assert address is None and "on another host" in why


# `docker info` shapes: Docker 28, Debian's docker.io 20.10, Podman's compat API, a minimal engine.
INFO_SHAPES = [
    {},
    {"ServerVersion": None, "Runtimes": None, "CDISpecDirs": None, "RegistryConfig": None,
     "Architecture": None, "OSType": None},
    {"ServerVersion": "", "Runtimes": [], "CDISpecDirs": [], "RegistryConfig": {"Mirrors": None},
     "Architecture": "", "OSType": ""},
    {"ServerVersion": 5, "Runtimes": ["crun", "runc"], "CDISpecDirs": "/etc/cdi",
     "RegistryConfig": {"Mirrors": ["http://127.0.0.1:5000", None]}, "Architecture": "aarch64"},
    {"Runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "runc": None}, "RegistryConfig": []},
]


@pytest.mark.parametrize("info", INFO_SHAPES)
def test_docker_info_shapes_other_engines_give(info, tmp_path):
    facts = docker_engine.facts_from_info("unix:///x.sock", info, which=lambda _n: None)
    assert facts.reachable and facts.platform.count("/") == 1 and facts.platform.split("/")[1]
    assert all(isinstance(r, str) for r in facts.runtimes) and all(isinstance(m, str) for m in facts.mirrors)
    assert facts.version is None or isinstance(facts.version, str)
    want = "nvidia" if "nvidia" in (info.get("Runtimes") or ()) else None
    assert docker_engine.gpu_request(facts) == want
    assert docker_engine.gpu_paths(facts) == (["nvidia runtime"] if want else [])
    if info.get("Architecture") == "aarch64":
        assert facts.platform == "linux/arm64" and facts.mirrors == ("http://127.0.0.1:5000",)
        assert facts.runtimes == ("crun", "runc")


def test_cdi_specs_of_odd_shapes_are_read_without_failing(tmp_path):
    """`name: 0` is a number in YAML; a null name, a devices map instead of a list, no devices."""
    (tmp_path / "a.yaml").write_text("kind: nvidia.com/gpu\ndevices:\n- name: 0\n- name: null\n- {}\n- name: all\n")
    (tmp_path / "b.yaml").write_text("kind: nvidia.com/gpu\ndevices: {name: x}\n")
    (tmp_path / "c.yaml").write_text("kind: nvidia.com/gpu\ndevices: null\n")
    (tmp_path / "d.json").write_text('{"kind": "nvidia.com/gpu", "devices": [{"name": true}, {"name": "1"}]}')
    assert docker_engine.cdi_devices([tmp_path]) == ["nvidia.com/gpu=0", "nvidia.com/gpu=all", "nvidia.com/gpu=1"]


STACK = """
[stack]
name = "g"
[envs.small]
[services.voice]
env = "small"
app = "voice:app"
port = 9300
gpu = "required"
dockerfile = "x.Dockerfile"
"""


@pytest.mark.parametrize("form,devices,want", [
    ("nvidia", (), {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}),
    ("nvidia", ("1",), {"Driver": "", "Count": 0, "DeviceIDs": ["1"], "Capabilities": [["gpu"]], "Options": {}}),
    ("cdi", (), {"Driver": "cdi", "Count": 0, "DeviceIDs": ["nvidia.com/gpu=all"], "Capabilities": [],
                 "Options": {}}),
    ("cdi", ("0:1",), {"Driver": "cdi", "Count": 0, "DeviceIDs": ["nvidia.com/gpu=0:1"], "Capabilities": [],
                       "Options": {}}),
])
def test_the_gpu_request_the_runner_builds_for_each_engine_form(tmp_path, form, devices, want):
    (tmp_path / "stack.toml").write_text(STACK)
    (tmp_path / "x.Dockerfile").write_text("FROM scratch\n")
    stack = load_stack(tmp_path / "stack.toml")
    the_plan = plan(stack, Machine(gpu_count=1, nvidia_runtime=True, gpu_request=form,
                                   hf_home=str(tmp_path / "hf")))
    import dataclasses
    voice = dataclasses.replace(the_plan.services["voice"], gpu_devices=list(devices))
    assert dict(gpu_device_request(voice)) == want
    assert dict(run_kwargs(voice, "g", "net", "h")["device_requests"][0]) == want


@pytest.mark.docker
def test_the_real_engines_host_gateway_is_where_host_gateway_leads_from_a_container():
    """The real path on this machine's engine (Debian docker.io 20.10: no Gateway key): the address
    found is the one `host-gateway` resolves to in a container, and a container reaches a socket the
    host listens on there (as the dashboard's trace receiver does)."""
    import docker
    address, how = docker_engine.probe_host_gateway(
        {k: v for k, v in os.environ.items() if k.startswith("DOCKER_") or k == "HOME"})
    assert address, how
    got: list[bytes] = []
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, 0))
        server.listen(1)
        server.settimeout(60)
        port = server.getsockname()[1]

        def accept():
            conn, _ = server.accept()
            with conn:
                got.append(conn.recv(100))
        waiter = threading.Thread(target=accept, daemon=True)
        waiter.start()
        client = docker.from_env(timeout=120)
        script = ("import socket; h = open('/etc/hosts').read(); print(h); "
                  f"socket.create_connection(('host.docker.internal', {port}), 20).sendall(b'span')")
        out = client.containers.run(os.environ.get("DUPLEX_BASE_IMAGE", "duplex/python:3.11-bookworm"),
                                    ["python3", "-c", script], extra_hosts={"host.docker.internal": "host-gateway"},
                                    remove=True, stderr=True).decode()
        waiter.join(30)
    assert f"{address}\thost.docker.internal" in out, out
    assert got == [b"span"]


@pytest.mark.docker
@pytest.mark.parametrize("form,asked", [("cdi", 'driver "cdi"'), ("nvidia", 'driver "" with capabilities: [[gpu]]')])
def test_inv_smokes_gpu_check_asks_the_engine_as_the_runner_does(tmp_path, form, asked):
    """`inv smoke`'s GPU row on a machine whose engine takes the CDI form (an H100/H200 host with CDI
    specs and no NVIDIA hook) sends the CDI request, not `count=-1, [["gpu"]]`. Against the real
    engine here (no GPU, no CDI: Debian docker.io 20.10) the engine's refusal names what it was asked."""
    from duplex.run.smoke import smoke_project
    from duplex.run.smoke_results import Target
    (tmp_path / "stack.toml").write_text(STACK)
    (tmp_path / "x.Dockerfile").write_text("FROM scratch\n")
    stack = load_stack(tmp_path / "stack.toml")
    machine = Machine(gpu_count=1, nvidia_runtime=True, gpu_request=form, hf_home=str(tmp_path / "hf"))
    idle = Target("voice", "native", "http://127.0.0.1:9", Health("none", None, 1.0))
    import docker
    engine = docker.from_env()
    before = {c.id for c in engine.containers.list(all=True)}
    report = smoke_project(stack, machine, [idle], services=["gpu"], timeout=5)
    (row,) = report.results
    left = [c for c in engine.containers.list(all=True) if c.id not in before
            and "nvidia-smi" in str((c.attrs.get("Config") or {}).get("Cmd"))]
    assert left == []  # the container whose start the engine refused is removed
    assert row.name == "gpu" and row.status == "fail", row
    assert f"could not select device {asked}" in row.reason, row.reason


@pytest.mark.docker
def test_a_container_run_says_once_when_container_traces_need_a_collector(engine, toy):
    """The dashboard cannot take the containers' exports where they reach this host (here: another
    process holds that port on the gateway): the run's own output says so in one line. Before, the
    dashboard said nothing (or only in its log) and every container span was lost."""
    from tests.support.net import free_port
    address, how = docker_engine.probe_host_gateway()
    assert address, how
    otlp = free_port()
    with socket.socket() as busy:
        busy.bind((address, otlp))
        busy.listen(1)
        proc = toy.inv("run", "--detach", "--services", "api", "--otlp", f"http://127.0.0.1:{otlp}", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = [line for line in proc.stdout.splitlines() if "need a collector" in line]
    assert said == [f"duplex | dashboard: container services' traces need a collector of your own at "
                    f"http://127.0.0.1:{otlp} (cannot listen at {address}:{otlp}, {how} (Address already in use))"], proc.stdout
