"""A stack with `tls = true` publishes plain HTTP (no local certs exist there) and says so."""

from __future__ import annotations

from duplex.plan import plan
from duplex.publish import TLS_WARNING, publish, target_plan
from duplex.stack import load_stack
from tests.publish.conftest import copy_default


def tls_stack(tmp_path):
    path = copy_default(tmp_path / "repo", "tlspub")
    text = path.read_text().replace("[stack]\n", "[stack]\ntls = true\n", 1)
    path.write_text(text)
    stack = load_stack(path)
    assert stack.stack.tls
    return stack


def test_tls_stack_publishes_plain_http_with_a_warning(tmp_path):
    stack = tls_stack(tmp_path)
    # The plan `inv run` would use does carry TLS: what publish must not inherit.
    run_plan = plan(stack, _machine(), native=False)
    assert "https://" in str(run_plan.services["frontend"].environment)
    report = publish(target_plan(stack, environ={}), out=tmp_path / "deploy")
    texts = {p.name: p.read_text() for p in (tmp_path / "deploy").rglob("*.yaml")}
    assert {"compose.yaml", "frontend.yaml", "moshi.yaml"} <= set(texts)
    for name, text in texts.items():
        for marker in ("https://", "wss://", "SSL_CERT_FILE", "--ssl", "/certs"):
            assert marker not in text, (name, marker)
    assert "http://asr:8000" in texts["compose.yaml"] and "ws://moshi:8998" in texts["moshi.yaml"] + texts["frontend.yaml"]
    assert TLS_WARNING in report.warnings and "ingress or reverse proxy" in report.summary()


def test_plain_stack_has_no_tls_warning(default_stack, tmp_path):
    assert TLS_WARNING not in target_plan(default_stack, environ={}).warnings


def _machine():
    from duplex.machine import Machine
    return Machine(gpu_count=1, nvidia_runtime=True, hf_home="/cache/huggingface", hf_hub_cache=None,
                   uid=1000, gid=1000, env={})
