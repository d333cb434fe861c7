"""An Argo CD `Application` pointing at the published kustomization, checked against a schema of
Argo CD's documented Application fields (duplex/data/argocd-application.schema.json, written for duplex:
Argo CD's own CRD file is not vendored). Pure but for reading that schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .common import PublishError
from .validate import ValidatorMissing

FILE = "argocd-application.yaml"  # beside k8s/, not in it: it lives in Argo CD's namespace
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "argocd-application.schema.json"
# https://, http://, ssh://, or scp-like git@host:org/repo(.git)
REPO_URL = re.compile(r"^(?:(?:https?|ssh|git)://[^\s/]+/\S+|[\w.-]+@[\w.-]+:\S+)$")
IN_CLUSTER = "https://kubernetes.default.svc"


def check_repo(repo: str) -> str:
    if not REPO_URL.fullmatch(repo):
        raise PublishError(f"--argocd {repo!r} is not a git repository URL",
                           fix="give the repo Argo CD syncs from, e.g. --argocd https://github.com/team/app.git")
    return repo


def check_path(path: str) -> str:
    if not path.strip() or path.startswith("/") or ".." in Path(path).parts:
        raise PublishError(f"--path {path!r} is not a folder inside the repository",
                           fix="give the kustomization's folder relative to the repo root, e.g. --path deploy/k8s")
    return path.strip("/") or "."


def application(stack: str, repo: str, path: str, *, revision: str = "HEAD", namespace: str | None = None,
                project: str = "default") -> dict:
    """The team's Application (background/ deployment page), made from the stack: automated sync with
    prune and self-heal, the namespace created on first sync."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": stack, "namespace": "argocd",
                         "labels": {"app.kubernetes.io/part-of": stack, "app.kubernetes.io/managed-by": "duplex"},
                         # delete what it deployed when the Application is deleted
                         "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
            "spec": {"project": project,
                     "source": {"repoURL": check_repo(repo), "targetRevision": revision, "path": check_path(path)},
                     "destination": {"server": IN_CLUSTER, "namespace": namespace or stack},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                                    "syncOptions": ["CreateNamespace=true"]}}}


def validate_application(doc: dict) -> str:
    """Strictly (unknown keys are errors: the CRD would drop them silently); returns what checked it."""
    try:
        import jsonschema  # heavy: only `inv publish --argocd` validates
    except ImportError as exc:
        raise ValidatorMissing("cannot validate the Argo CD Application: jsonschema is not installed",
                               fix="pip install jsonschema") from exc
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    problems = [f"{'.'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    if problems:
        raise PublishError(f"{FILE} does not validate against the Argo CD Application schema:\n  " + "\n  ".join(problems),
                           fix="this is a duplex bug if stack.toml loads: please report it with the file")
    return "Argo CD Application schema (Argo CD's documented fields), strict"
