"""Writing: same input, same bytes; stale generated files go, files a person added stay."""

from __future__ import annotations

from duplex.publish import publish, target_plan
from duplex.publish.write import dump


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_publish_is_deterministic(small, tmp_path):
    publish(target_plan(small, environ={}), out=tmp_path / "a")
    publish(target_plan(small, environ={}), out=tmp_path / "b")
    first = snapshot(tmp_path / "a")
    publish(target_plan(small, environ={}), out=tmp_path / "a")  # again, over itself
    assert snapshot(tmp_path / "a") == first == snapshot(tmp_path / "b")
    assert not [n for n in first if n.split("/")[-1].startswith(".")]  # no temp files left


def test_stale_generated_files_go_and_foreign_files_stay(small, tmp_path):
    out = tmp_path / "deploy"
    publish(target_plan(small, environ={}), out=out)
    (out / "k8s" / "ingress.yaml").write_text("apiVersion: networking.k8s.io/v1\nkind: Ingress\n")
    report = publish(target_plan(small, services=["api"], environ={}, gpus=0), out=out)
    assert sorted(report.removed) == ["compose.cpu.yaml", "k8s/cache.yaml", "k8s/gpu-worker.yaml", "k8s/web.yaml"]
    assert sorted(p.name for p in (out / "k8s").iterdir()) == [
        "api.yaml", "ingress.yaml", "kustomization.yaml", "model-cache.yaml"]
    assert "- api.yaml" in (out / "k8s" / "kustomization.yaml").read_text()


def test_compose_only_leaves_the_manifests_alone(small, tmp_path):
    out = tmp_path / "deploy"
    publish(target_plan(small, environ={}), out=out)
    manifests = snapshot(out / "k8s")
    report = publish(target_plan(small, services=["api"], environ={}), out=out, k8s=False)
    assert report.files == ["compose.yaml", "compose.cpu.yaml"] and snapshot(out / "k8s") == manifests


def test_build_context_is_relative_to_the_output_folder(small, tmp_path):
    publish(target_plan(small, environ={}), out=tmp_path / "small" / "deploy")
    text = (tmp_path / "small" / "deploy" / "compose.yaml").read_text()
    assert "context: ..\n" in text
    assert (tmp_path / "small" / ".duplex" / "build" / "ca.pem").is_file()  # the Dockerfiles COPY it


def test_yaml_is_plain_and_readable():
    text = dump([{"user": "1000:1000", "script": "a\nb", "same": {"x": 1}}, {"n": "8000"}], "# head\n")
    assert text == "# head\nuser: '1000:1000'\nscript: |-\n  a\n  b\nsame:\n  x: 1\n---\nn: '8000'\n"
