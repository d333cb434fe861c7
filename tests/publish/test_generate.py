"""Plan -> Compose file and Kubernetes manifests, as data: the translation rules one by one."""

from __future__ import annotations

import pytest

from duplex.machine import Machine
from duplex.plan import plan
from duplex.publish import PublishError, target_plan
from duplex.publish.compose import CPU_FILE, FILE, INIT, Reset, compose_files
from duplex.publish.kubernetes import manifests


def by_kind(files, kind, name):
    return next(d for docs in files.values() for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(files, name):
    return by_kind(files, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def test_default_stack_keeps_the_gpu_service_on_a_machine_without_gpu(default_stack):
    p = target_plan(default_stack, environ={})
    assert p.start_order == ["asr", "moshi", "frontend"] and not p.left_out
    files = compose_files(p, context="..")
    svc = files[FILE]["services"]
    assert list(svc) == [INIT, "asr", "moshi", "frontend"]
    assert svc["moshi"]["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "deploy" in svc["asr"] and "deploy" not in svc["frontend"]  # optional GPU: the target has one
    assert files[CPU_FILE]["services"]["moshi"] == {"profiles": ["gpu"]}
    assert isinstance(files[CPU_FILE]["services"]["asr"]["deploy"], Reset)


def test_compose_service_from_the_plan(default_stack):
    p = target_plan(default_stack, environ={"DUPLEX_PORT_ASR": "9001", "HF_TOKEN": "hf_secret_value"})
    asr = compose_files(p, context="..")[FILE]["services"]["asr"]
    assert asr["image"] == "duplex-duplex-asr:dev"
    assert asr["build"] == {"context": "..", "dockerfile": "dockerfiles/asr.Dockerfile",
                            "args": {"BASE_IMAGE": "python:3.11-slim-bookworm", "GID": "1000", "UID": "1000"}}
    assert asr["command"] == ["python", "-m", "uvicorn", "servers.asr.app:app", "--host", "0.0.0.0",
                              "--port", "8000"]
    assert asr["user"] == "1000:1000"
    assert asr["ports"] == ["127.0.0.1:${DUPLEX_PORT_ASR:-9001}:8000"]  # host port from the plan
    assert asr["volumes"] == ["model-cache:/cache/huggingface"]
    assert asr["environment"] == {"ASR_BACKEND": "pocketsphinx", "HF_HOME": "/cache/huggingface"}
    check = asr["healthcheck"]
    assert check["test"][:3] == ["CMD", "python", "-c"] and "http://127.0.0.1:8000/health" in check["test"][3]
    assert check["start_period"] == "120s"
    assert asr["depends_on"] == {INIT: {"condition": "service_completed_successfully"}}
    assert asr["labels"] == {"dev.duplex.stack": "duplex", "dev.duplex.service": "asr",
                             "dev.duplex.publisher": "compose"}  # no host path: `inv stop` never matches


def test_discovery_uses_service_names_and_optional_dependencies_stay_optional(default_stack):
    p = target_plan(default_stack, environ={})
    front = compose_files(p, context="..")[FILE]["services"]["frontend"]
    assert front["environment"]["ASR_URL"] == "http://asr:8000"
    assert front["environment"]["services__asr__http__0"] == "http://asr:8000"
    assert front["environment"]["MOSHI_WS_URL"] == "ws://moshi:8998/api/chat"
    assert front["depends_on"]["asr"] == {"condition": "service_healthy", "required": True}
    assert front["depends_on"]["moshi"] == {"condition": "service_healthy", "required": False}
    k8s = manifests(p)
    env = {e["name"]: e.get("value") for e in container(k8s, "frontend")["env"]}
    assert env["ASR_URL"] == "http://asr:8000"  # the Service named asr, port 8000, same namespace
    assert by_kind(k8s, "Service", "asr")["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]


def test_secrets_are_references_never_values(small):
    p = target_plan(small, environ={})
    assert p.services["gpu-worker"].secrets == {"HF_TOKEN"}
    svc = compose_files(p, context="..")[FILE]["services"]
    assert svc["gpu-worker"]["environment"]["HF_TOKEN"] == "${HF_TOKEN:-}"
    assert svc["api"]["environment"]["API_TOKEN"] == "${API_TOKEN:-}"
    env = {e["name"]: e for e in container(manifests(p), "gpu-worker")["env"]}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "small-secrets", "key": "HF_TOKEN", "optional": True}}}
    # A plan made on a developer machine carries the real value: it must not leak either.
    leaky = plan(small, Machine(gpu_count=1, nvidia_runtime=True, env={"HF_TOKEN": "hf_LEAK", "API_TOKEN": "tok_LEAK"}))
    text = repr(compose_files(leaky, context="..")) + repr(manifests(leaky))
    assert "LEAK" not in text


def test_dollar_signs_are_escaped_for_each_target(small):
    p = target_plan(small, environ={})
    assert compose_files(p, context="..")[FILE]["services"]["api"]["environment"]["PRICE"] == "$$5 and $$(HOME)"
    env = {e["name"]: e.get("value") for e in container(manifests(p), "api")["env"]}
    assert env["PRICE"] == "$5 and $$(HOME)"  # Kubernetes expands only $(VAR)


def test_small_stack_compose(small):
    p = target_plan(small, environ={})
    files = compose_files(p, context="../src", bind="0.0.0.0")
    svc = files[FILE]["services"]
    assert svc["web"]["ports"] == ["${DUPLEX_PORT_WEB:-9400}:9400"]  # --bind 0.0.0.0: every interface
    assert svc["web"]["depends_on"]["gpu-worker"] == {"condition": "service_healthy", "required": False}
    # no health check on cache: wait for it to start, not to be healthy
    assert svc["web"]["depends_on"]["cache"] == {"condition": "service_started", "required": False}
    assert "healthcheck" not in svc["cache"] and "build" not in svc["cache"] and "user" not in svc["cache"]
    assert svc["cache"]["image"] == "redis:7"
    assert svc["gpu-worker"]["command"] == ["python", "-m", "worker", "--port", "9200"]
    ws = svc["gpu-worker"]["healthcheck"]
    assert "def handshake(" in ws["test"][3] and ws["start_period"] == "600s"  # duplex.standalone.wscheck, inlined
    assert ws["test"][4:] == ["--port", "9200", "--path", "/stream", "--timeout", "3", "--no-tls",
                              "--once", "/tmp/duplex-ready"]  # handshake once, then any HTTP answer
    assert svc["gpu-worker"]["environment"]["HF_HUB_OFFLINE"] == "1"
    assert files[CPU_FILE]["services"] == {"api": {"deploy": Reset({})}, "gpu-worker": {"profiles": ["gpu"]}}


def test_small_stack_kubernetes(small):
    p = target_plan(small, environ={})
    files = manifests(p, registry="registry.example.com/team", storage_class="nfs", cache_size="200Gi")
    assert set(files) == {"model-cache.yaml", "api.yaml", "gpu-worker.yaml", "cache.yaml", "web.yaml"}
    claim = files["model-cache.yaml"][0]
    assert claim["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "200Gi"}},
                             "storageClassName": "nfs"}
    worker = by_kind(files, "Deployment", "gpu-worker")
    pod = worker["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "registry.example.com/team/duplex-small-gpu-worker:dev"
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert worker["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert c["startupProbe"]["exec"]["command"][:2] == ["python", "-c"]
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 600
    assert c["startupProbe"]["exec"]["command"][-2:] == ["--phase", "ready"]  # the handshake
    assert c["readinessProbe"]["exec"]["command"][-2:] == ["--phase", "alive"]  # never the session
    assert c["livenessProbe"]["exec"]["command"][-2:] == ["--phase", "alive"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["fsGroup"] == 1000
    assert pod["enableServiceLinks"] is False
    assert pod["volumes"] == [{"name": "model-cache", "persistentVolumeClaim": {"claimName": "small-model-cache"}}]
    web = container(files, "web")
    assert web["readinessProbe"]["httpGet"] == {"path": "/ready?duplex-probe=1", "port": "http"}  # out of the access log
    assert web["startupProbe"]["failureThreshold"] == 12  # 120 s default warm-up / 10 s
    assert "resources" not in web
    cache = by_kind(files, "Deployment", "cache")["spec"]["template"]["spec"]
    assert cache["containers"][0]["image"] == "redis:7"  # not ours: no registry prefix, no uid
    assert "runAsUser" not in cache["securityContext"] and "startupProbe" not in cache["containers"][0]


def test_selected_services_drop_what_is_not_published(small):
    p = target_plan(small, services=["web"], environ={})
    assert p.start_order == ["api", "web"]  # web requires api; the optional ones stay out
    web = compose_files(p, context="..")[FILE]["services"]["web"]
    assert set(web["depends_on"]) == {INIT, "api"} and "WORKER_WS" not in web["environment"]
    assert any("WORKER_WS not set" in w for w in p.warnings)


def test_a_cpu_target_leaves_the_gpu_service_out(small):
    p = target_plan(small, environ={}, gpus=0)
    assert "gpu-worker" in p.left_out
    files = compose_files(p, context="..")
    assert "deploy" not in files[FILE]["services"]["api"] and CPU_FILE not in files


def test_native_only_services_and_bad_names_are_refused(tmp_path):
    from duplex.publish import publish
    from duplex.stack import load_stack
    from tests.publish.conftest import write_stack
    native = load_stack(write_stack(tmp_path / "n", """
        [envs.e]
        [services.dev]
        env = "e"
        app = "app:app"
        port = 9000
        modes = ["native"]
        """))
    with pytest.raises(PublishError, match="dev can only run natively") as err:
        publish(target_plan(native, environ={}), out=tmp_path / "out")
    assert "modes" in err.value.fix
    from duplex.errors import StackError
    with pytest.raises(StackError, match="expected service names of lower-case letters"):
        load_stack(write_stack(tmp_path / "b", """
        [services.My_Api]
        command = ["serve"]
        port = 9000
        modes = ["container"]
        image = "x:1"
        """))  # the one naming rule is the stack file's now: such a name never reaches publish
    bad = load_stack(write_stack(tmp_path / "c", """
        [services.api]
        command = ["serve"]
        port = 9000
        modes = ["container"]
        image = "x:1"
        """))
    with pytest.raises(PublishError, match="not an IP address"):
        publish(target_plan(bad, environ={}), out=tmp_path / "out", bind="everywhere")
