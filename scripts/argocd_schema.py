"""Turn Argo CD's Application CRD into the JSON schema `inv publish --argocd` validates against.

    git show v3.x.y:manifests/crds/application-crd.yaml > /tmp/application-crd.yaml   # in argoproj/argo-cd
    python scripts/argocd_schema.py /tmp/application-crd.yaml COMMIT > duplex/data/argocd-application.schema.json

Kept from the CRD: its v1alpha1 openAPIV3Schema, descriptions dropped (size). Added, as kubeconform's
strict mode does: `additionalProperties: false` on every object that lists its properties and does not
preserve unknown fields, so a misspelt key is an error here, not a field the API server drops silently.
"""

from __future__ import annotations

import json
import sys

import yaml


def strict(node):
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items() if k != "description"}
        if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def main(crd_path: str, commit: str) -> None:
    crd = yaml.safe_load(open(crd_path, encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["$comment"] = (f"Argo CD's Application CRD (argoproj.io/v1alpha1), from github.com/argoproj/argo-cd "
                          f"manifests/crds/application-crd.yaml at {commit}, Apache License 2.0; made by "
                          "scripts/argocd_schema.py")
    json.dump(schema, sys.stdout, indent=None, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
