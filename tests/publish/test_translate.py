"""`inv publish` for the translation stack (examples/translate) the way its team deploys it: asr and mt
sharing one GPU through MPS, probes from start_timeout, Prometheus annotations, sticky WebSocket
sessions, and an Argo CD Application checked strictly against Argo CD's documented Application fields."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from duplex.publish import PublishError
from duplex.publish.argocd import application, validate_application
from tests.conftest import run_inv
from tests.support.stackcopy import copy_translate as copy_stack_files

GB = 1000 ** 3
WEIGHTS = {"Systran/faster-whisper-medium": ("model.bin", 3 * GB // 2),
           "Qwen/Qwen3-4B": ("model.safetensors", 8 * GB)}


def copy_translate(dest: Path) -> Path:
    return copy_stack_files(dest, WEIGHTS)


def docs(path: Path) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    stack = copy_translate(tmp_path_factory.mktemp("translate-publish") / "repo")
    proc = run_inv("publish", "--argocd", "https://git.example.com/speech/linguagap.git", "--json",
                   env={"DUPLEX_STACK": str(stack)}, cwd=stack.parent, timeout=300, check=True)
    return stack.parent / "deploy", json.loads(proc.stdout)


def test_the_stack_publishes_and_every_output_validates(published):
    out, report = published
    assert report["services"] == ["asr", "mt", "frontend"] and report["out"] == str(out)
    assert {"compose.yaml", "k8s/asr.yaml", "k8s/mt.yaml", "k8s/gpu-sharing.yaml",
            "argocd-application.yaml"} <= set(report["files"])
    assert report["validated"]["compose"].startswith("docker compose 2.")
    assert report["validated"]["kubernetes"].startswith("kubernetes-validate, strict")
    assert report["validated"]["argocd"].startswith("Argo CD Application schema")
    kustomized = yaml.safe_load((out / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert "gpu-sharing.yaml" not in kustomized  # the device plugin's namespace, not the app's


def test_asr_and_mt_share_one_gpu_through_mps(published):
    out, report = published
    # MPS splits memory equally: Qwen3-4B's ~9.6 GB x 2 replicas, said before a 16 GB card OOMs
    assert ("gpu sharing mps: each of the 2 replicas gets 1/2 of the GPU's memory and mt needs ~9.6 GB, "
            "so the GPU needs ~19 GB or more") in " ".join(report["warnings"])
    shared = []
    for name in ("asr", "mt"):
        pod = docs(out / "k8s" / f"{name}.yaml")["Deployment"]["spec"]["template"]
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
        assert pod["metadata"]["labels"]["dev.duplex/gpu-group"] == "translate"
        term = pod["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert term == {"labelSelector": {"matchLabels": {"dev.duplex/gpu-group": "translate"}},
                        "topologyKey": "kubernetes.io/hostname"}
        shared.append(pod["metadata"]["annotations"]["dev.duplex/gpu-sharing"])
    # placement's needs, summed: (1.5 + 8) GB of weights x 1.2
    assert shared[0] == shared[1] and "mps: asr + mt share one GPU (~11.4 GB together)" in shared[0]
    frontend = docs(out / "k8s" / "frontend.yaml")["Deployment"]["spec"]["template"]
    assert "affinity" not in frontend["spec"] and "resources" not in frontend["spec"]["containers"][0]
    config = docs(out / "k8s" / "gpu-sharing.yaml")["ConfigMap"]
    plugin = yaml.safe_load(config["data"]["translate"])
    assert plugin == {"version": "v1", "sharing": {"mps": {"failRequestsGreaterThanOne": True, "resources": [
        {"name": "nvidia.com/gpu", "replicas": 2}]}}}


@pytest.mark.parametrize("name, timeout, metrics, sticky", [
    ("asr", 300, True, False), ("mt", 600, True, True), ("frontend", 120, False, True)])
def test_probes_annotations_and_affinity_follow_the_stack(published, name, timeout, metrics, sticky):
    out, _ = published
    both = docs(out / "k8s" / f"{name}.yaml")
    pod = both["Deployment"]["spec"]["template"]
    startup = pod["spec"]["containers"][0]["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] == math.ceil(timeout / 10) * 10
    assert startup["httpGet"] == {"path": "/health?duplex-probe=1", "port": "http"}
    notes = pod["metadata"].get("annotations", {})
    if metrics:
        port = str(pod["spec"]["containers"][0]["ports"][0]["containerPort"])
        assert {k: notes[k] for k in notes if k.startswith("prometheus.io/")} == {
            "prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": port}
    else:
        assert not any(k.startswith("prometheus.io/") for k in notes)
    service = both["Service"]["spec"]
    assert (service.get("sessionAffinity") == "ClientIP") is sticky
    if sticky:
        assert service["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_the_argocd_application_points_at_the_kustomization(published):
    out, _ = published
    app = docs(out / "argocd-application.yaml")["Application"]
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["metadata"]["namespace"] == "argocd"
    assert app["spec"]["source"] == {"repoURL": "https://git.example.com/speech/linguagap.git",
                                     "targetRevision": "HEAD", "path": "examples/translate/deploy/k8s"}
    assert app["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "translate"}
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_the_argocd_schema_rejects_what_argocd_would():
    good = application("translate", "git@github.com:team/app.git", "deploy/k8s")
    assert validate_application(good).startswith("Argo CD Application schema")
    typo = json.loads(json.dumps(good))
    typo["spec"]["source"]["targetRevison"] = "main"  # misspelt: the API server would drop it silently
    del typo["spec"]["destination"]["server"]
    typo["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
    with pytest.raises(PublishError) as err:
        validate_application(typo)
    text = str(err.value)
    assert "spec.source: Additional properties are not allowed ('targetRevison' was unexpected)" in text
    assert "spec.syncPolicy.automated.prune: 'yes' is not of type 'boolean'" in text
    missing = json.loads(json.dumps(good))
    del missing["spec"]["source"]["repoURL"]
    with pytest.raises(PublishError, match="spec.source: 'repoURL' is a required property"):
        validate_application(missing)


@pytest.mark.parametrize("args, message", [
    (["--argocd", "not a url"], "--argocd 'not a url' is not a git repository URL"),
    (["--path", "deploy/k8s"], "--path names the kustomization's folder for --argocd, which was not given"),
    (["--argocd", "https://h.example/r.git", "--path", "../x"], "--path '../x' is not a folder inside the repository"),
    (["--argocd", "https://h.example/r.git", "--compose"], "--argocd points Argo CD at the Kubernetes manifests"),
])
def test_argocd_mistakes_get_one_line_and_write_nothing(tmp_path, args, message):
    stack = copy_translate(tmp_path / "repo")
    proc = run_inv("publish", *args, env={"DUPLEX_STACK": str(stack)}, cwd=stack.parent, timeout=120)
    assert proc.returncode == 1 and message in proc.stderr, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and not (stack.parent / "deploy").exists()


def test_gpu_sharing_flag_is_checked_and_none_gives_each_its_own_gpu(tmp_path):
    stack = copy_translate(tmp_path / "repo")
    bad = run_inv("publish", "--gpu-sharing", "mig", env={"DUPLEX_STACK": str(stack)}, cwd=stack.parent)
    assert bad.returncode == 2 and "--gpu-sharing" in bad.stderr and "Traceback" not in bad.stderr
    run_inv("publish", "--k8s", "--gpu-sharing", "none", env={"DUPLEX_STACK": str(stack)}, cwd=stack.parent,
            timeout=120, check=True)
    k8s = stack.parent / "deploy" / "k8s"
    assert not (k8s / "gpu-sharing.yaml").exists()
    pod = docs(k8s / "mt.yaml")["Deployment"]["spec"]["template"]
    assert "affinity" not in pod["spec"] and "dev.duplex/gpu-group" not in pod["metadata"]["labels"]
