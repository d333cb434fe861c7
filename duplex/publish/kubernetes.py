"""Pure translation: a container plan -> Kubernetes manifests (Deployment + Service per service,
one PVC for the model cache, a kustomization; with GPU sharing, the NVIDIA device plugin's config).
No I/O."""

from __future__ import annotations

import math

from ..plan import CACHE_IN_CONTAINER, Plan, ServicePlan
from ..run.health import marked
from .common import (
    CACHE_VOLUME,
    SECRET_NAME,
    drain_command,
    health_path,
    image_name,
    secret_keys,
    user_ids,
    websocket_check,
)
from .scaling import BUSY_METRIC, METRIC, Scaling

PERIOD = 10  # seconds between startup and readiness probes
GPU = "nvidia.com/gpu"
GPU_GROUP = "dev.duplex/gpu-group"  # pods that share one GPU carry it; podAffinity keeps them on one node
SHARING_KEYS = {"mps": "mps", "time-slicing": "timeSlicing"}  # ours -> the device plugin's config key
STICKY_SECONDS = 3 * 3600  # a WebSocket session's client stays on its pod this long after its last packet
ADAPTER_FILE = "prometheus-adapter.yaml"  # the adapter's rules: its namespace, outside the kustomization
SCALE_DOWN_WINDOW = 600  # s the autoscaler waits before it removes a pod (each one drains its sessions)
BUSY_WINDOW = "2m"  # the one-slot server's busy share is its failed readiness probes over this window


def manifests(plan: Plan, *, registry: str | None = None, storage_class: str | None = None,
              cache_size: str = "50Gi", gpu_sharing: str = "none",
              scaling: dict[str, Scaling] | None = None) -> dict[str, list[dict]]:
    """{file name: [manifest, ...]}: one file per service plus the shared model-cache claim.
    `kustomization.yaml` lists them so `kubectl apply -k` can add a namespace or retag images.
    `gpu_sharing` ("mps", "time-slicing"): the GPU services share one GPU (see `device_plugin_config`).
    `scaling` (publish.scaling): replicas, a PodDisruptionBudget and the drain of a pod that can be
    taken away while others serve, a HorizontalPodAutoscaler where `max_replicas` is set."""
    files: dict[str, list[dict]] = {"model-cache.yaml": [_claim(plan, storage_class, cache_size)]}
    sharing = _sharing(plan, gpu_sharing)
    scaling = scaling or {}
    for name in plan.start_order:
        svc = plan.services[name]
        scale = scaling.get(name, Scaling())
        docs = [_deployment(plan, svc, registry, sharing, scale), _service(plan, svc)]
        if scale.replicas > 1 or scale.max_replicas is not None:
            docs.append(_disruption_budget(plan, svc))
        if scale.max_replicas is not None:
            docs.append(_autoscaler(plan, svc, scale))
        files[f"{name}.yaml"] = docs
    return files


def adapter_rules(plan: Plan, scaling: dict[str, Scaling]) -> dict | None:
    """The Prometheus adapter's rules that serve the autoscalers' per-pod metrics, as the ConfigMap
    its `--config` reads (the Helm chart: the same list under `rules.custom`). It belongs in the
    adapter's namespace, so it is not in the kustomization. None when nothing autoscales."""
    counts = {s.count for n, s in scaling.items() if n in plan.services and s.max_replicas is not None}
    if not counts:
        return None
    def per_pod() -> dict:  # a fresh dict per rule: the dumped YAML carries no anchors
        return {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}}
    rules = []
    if "metrics" in counts:  # the servers' own gauge, scraped from their pods (prometheus.io annotations)
        rules.append({"seriesQuery": f'{METRIC}{{namespace!="",pod!=""}}', "resources": per_pod(),
                      "name": {"matches": f"^{METRIC}$", "as": METRIC},
                      "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"})
    if "handshake" in counts:  # the kubelet's probe counts: the share of readiness probes that failed
        probes = 'probe_type="Readiness"'
        rules.append({"seriesQuery": f'prober_probe_total{{{probes},namespace!="",pod!=""}}', "resources": per_pod(),
                      "name": {"matches": "^prober_probe_total$", "as": BUSY_METRIC},
                      "metricsQuery": (f'sum(rate(<<.Series>>{{<<.LabelMatchers>>,{probes},result="failed"}}[{BUSY_WINDOW}])) '
                                       f"by (<<.GroupBy>>) / sum(rate(<<.Series>>{{<<.LabelMatchers>>,{probes}}}"
                                       f"[{BUSY_WINDOW}])) by (<<.GroupBy>>)")})
    import yaml  # heavy: only a publish with an autoscaler writes this
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{plan.stack}-prometheus-adapter",
                         "labels": {"app.kubernetes.io/part-of": plan.stack, "app.kubernetes.io/managed-by": "duplex"},
                         "annotations": {"dev.duplex/note": "the Prometheus adapter's rules for the stack's "
                                         "HorizontalPodAutoscalers: apply in the adapter's namespace and point its "
                                         "--config at config.yaml (Helm: these rules under rules.custom); "
                                         "docs/publish.md, 'Replicas and autoscaling'"}},
            "data": {"config.yaml": yaml.safe_dump({"rules": rules}, sort_keys=False, width=4096)}}


def gpu_users(plan: Plan) -> list[str]:
    return [n for n in plan.start_order if plan.services[n].gpu]


def _sharing(plan: Plan, mode: str) -> dict | None:
    """What the GPU services sharing one GPU are told: who shares it and how much memory they need
    together (duplex.vram's needs summed, as `inv run` places them on one device)."""
    users = gpu_users(plan)
    if mode == "none" or not users:
        return None
    needs = [plan.services[n].gpu_need for n in users]
    total = f"~{sum(needs) / 1e9:.1f} GB together" if all(needs) else "memory need not known until `inv prefetch`"
    return {"mode": mode, "users": users,
            "note": f"{mode}: {' + '.join(users)} share one GPU ({total}); the NVIDIA device plugin "
                    f"hands out {len(users)} replicas of it (k8s/gpu-sharing.yaml, docs/publish.md)"}


def mps_warning(plan: Plan, mode: str) -> str | None:
    """MPS gives each replica an equal share of the GPU's memory: the largest need sets the GPU's size."""
    users = gpu_users(plan)
    needs = {n: plan.services[n].gpu_need for n in users}
    if mode != "mps" or len(users) < 2 or not all(needs.values()):
        return None
    largest = max(needs, key=lambda n: needs[n])
    replicas = max(2, len(users))
    return (f"gpu sharing mps: each of the {replicas} replicas gets 1/{replicas} of the GPU's memory and "
            f"{largest} needs ~{needs[largest] / 1e9:.1f} GB, so the GPU needs "
            f"~{needs[largest] * replicas / 1e9:.0f} GB or more; on a smaller one use time-slicing "
            "(no per-pod limit: their sum must fit) or a smaller model")


def device_plugin_config(plan: Plan, mode: str) -> dict | None:
    """The ConfigMap the NVIDIA device plugin (or the GPU Operator's ClusterPolicy devicePlugin.config)
    reads: each GPU advertised as one `nvidia.com/gpu` replica per sharing service, so they fit on one.
    It belongs in the device plugin's namespace, so it is not in the kustomization."""
    users = gpu_users(plan)
    if mode == "none" or not users:
        return None
    import yaml  # heavy: only `inv publish` with GPU sharing writes this
    config = {"version": "v1", "sharing": {SHARING_KEYS[mode]: {
        "failRequestsGreaterThanOne": True,  # a pod asking for 2 replicas would get one GPU, not two
        "resources": [{"name": GPU, "replicas": max(2, len(users))}]}}}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{plan.stack}-gpu-sharing",
                         "labels": {"app.kubernetes.io/part-of": plan.stack, "app.kubernetes.io/managed-by": "duplex"},
                         "annotations": {"dev.duplex/note": "apply in the device plugin's namespace, then point "
                                         "devicePlugin.config (GPU Operator) or --config-file at it: docs/publish.md"}},
            "data": {plan.stack: yaml.safe_dump(config, sort_keys=False)}}


def kustomization(files: list[str]) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": sorted(files)}


def claim_name(plan: Plan) -> str:
    return f"{plan.stack}-{CACHE_VOLUME}"


def _labels(plan: Plan, name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": plan.stack}


def _claim(plan: Plan, storage_class: str | None, size: str) -> dict:
    spec: dict = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name(plan), "labels": {
                "app.kubernetes.io/part-of": plan.stack, "app.kubernetes.io/managed-by": "duplex"},
                "annotations": {"dev.duplex/note": "shared Hugging Face cache (HF_HOME) of every "
                                "service: ReadWriteMany lets pods on different nodes share it"}},
            "spec": spec}


def _service(plan: Plan, svc: ServicePlan) -> dict:
    """Named like the service, so discovery values such as http://asr:8000 resolve in the namespace.
    A service that holds WebSocket sessions keeps each client on one pod (ClientIP affinity) once
    it is scaled out; an ingress in front needs its own sticky setting (docs/publish.md)."""
    spec: dict = {"selector": _labels(plan, svc.name),
                  "ports": [{"name": "http", "port": svc.container_port, "targetPort": "http"}]}
    if svc.sticky:
        spec.update(sessionAffinity="ClientIP",
                    sessionAffinityConfig={"clientIP": {"timeoutSeconds": STICKY_SECONDS}})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc.name, "labels": {**_labels(plan, svc.name),
                                                      "app.kubernetes.io/managed-by": "duplex"}},
            "spec": spec}


def _disruption_budget(plan: Plan, svc: ServicePlan) -> dict:
    """A node drain or cluster upgrade takes one pod of the service at a time (each drains first)."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": svc.name, "labels": {**_labels(plan, svc.name),
                                                      "app.kubernetes.io/managed-by": "duplex"}},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(plan, svc.name)}}}


def _autoscaler(plan: Plan, svc: ServicePlan, scale: Scaling) -> dict:
    """autoscaling/v2 on the pods' live sessions (a Pods metric the Prometheus adapter serves)."""
    milli = round(scale.target * 1000)
    target = str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
    annotations = {"dev.duplex/target": f"{target} {scale.metric} per pod: {scale.target_from}"}
    if scale.per_replica is not None:
        annotations["dev.duplex/per-replica"] = str(scale.per_replica)
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": svc.name, "labels": {**_labels(plan, svc.name),
                                                      "app.kubernetes.io/managed-by": "duplex"},
                         "annotations": annotations},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
                     "minReplicas": scale.replicas, "maxReplicas": scale.max_replicas,
                     "metrics": [{"type": "Pods", "pods": {"metric": {"name": scale.metric},
                                                           "target": {"type": "AverageValue", "averageValue": target}}}],
                     # out at once; in one pod at a time, slowly: each removed pod drains its sessions
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW,
                                                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]}}}}


def _deployment(plan: Plan, svc: ServicePlan, registry: str | None, sharing: dict | None = None,
                scale: Scaling | None = None) -> dict:
    scale = scale or Scaling()
    container: dict = {
        "name": svc.name, "image": image_name(svc, registry), "imagePullPolicy": "IfNotPresent",
        "args": [_escape(a) for a in svc.command],  # args = the image's CMD, as Compose `command`
        "ports": [{"name": "http", "containerPort": svc.container_port}],
        "env": _env(plan, svc),
        **_probes(svc, busy_readiness=scale.busy_readiness),
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if scale.drains:  # taken out of the Service first; the kubelet's SIGTERM waits for this to return
        how = "metrics" if scale.count == "metrics" else "handshake"
        path = svc.metrics if how == "metrics" else health_path(svc)
        container["lifecycle"] = {"preStop": {"exec": {"command": [_escape(a) for a in drain_command(
            svc.container_port, how, scale.session_limit, path=path or "/",
            tls=svc.health.url is not None and svc.health.url.startswith("wss"))]}}}
    if svc.gpu:
        container["resources"] = {"limits": {GPU: 1}}
    pod: dict = {"enableServiceLinks": False,  # no ASR_PORT=tcp://... clashing with app variables
                 "securityContext": _pod_security(svc), "containers": [container]}
    if any(m.target.startswith(CACHE_IN_CONTAINER) for m in svc.mounts):
        container["volumeMounts"] = [{"name": CACHE_VOLUME, "mountPath": CACHE_IN_CONTAINER}]
        pod["volumes"] = [{"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name(plan)}}]
    if svc.gpu:
        pod["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    if scale.drains:  # the drain's bound is the session limit; the server's own shutdown comes after
        pod["terminationGracePeriodSeconds"] = scale.grace
        annotations_drain = {"dev.duplex/drain": f"preStop waits up to {scale.session_limit} s for live sessions "
                                                 f"to end ({scale.session_limit_from})"}
    else:
        annotations_drain = {}
    labels = _labels(plan, svc.name)
    template: dict = {"labels": labels}
    annotations: dict[str, str] = dict(annotations_drain)
    if svc.metrics:  # the prometheus.io convention Prometheus' kubernetes_sd examples relabel on
        annotations.update({"prometheus.io/scrape": "true", "prometheus.io/path": svc.metrics,
                            "prometheus.io/port": str(svc.container_port)})
    if svc.gpu and sharing:
        template["labels"] = {**labels, GPU_GROUP: plan.stack}
        annotations["dev.duplex/gpu-sharing"] = sharing["note"]
        if len(sharing["users"]) > 1:  # replicas of one GPU exist per node: share the node
            pod["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {GPU_GROUP: plan.stack}}, "topologyKey": "kubernetes.io/hostname"}]}}
    if annotations:
        template["annotations"] = annotations
    spec: dict = {}
    if scale.max_replicas is None:  # with an autoscaler it owns the count: `kubectl apply` must not reset it
        spec["replicas"] = scale.replicas
    spec["strategy"] = _strategy(svc, scale)
    spec.update(selector={"matchLabels": labels}, template={"metadata": template, "spec": pod})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": svc.name, "labels": {**labels, "app.kubernetes.io/managed-by": "duplex"}},
            "spec": spec}


def _strategy(svc: ServicePlan, scale: Scaling) -> dict:
    """A GPU is not shared by a rolling update: the old pod must let go first. One pod: Recreate;
    several: one at a time, none extra, so the others keep serving while each is replaced."""
    if not svc.gpu:
        return {"type": "RollingUpdate"}
    if scale.replicas > 1 or scale.max_replicas is not None:
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return {"type": "Recreate"}


def _pod_security(svc: ServicePlan) -> dict:
    ctx: dict = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    ids = user_ids(svc)
    if ids:  # fsGroup makes the claim writable for the Dockerfiles' duplex user
        ctx.update(runAsUser=ids[0], runAsGroup=ids[1], fsGroup=ids[1])
    return ctx


def _env(plan: Plan, svc: ServicePlan) -> list[dict]:
    secrets = set(secret_keys(svc))
    out = []
    for key, value in sorted(svc.environment.items()):
        if key in secrets:
            out.append({"name": key, "valueFrom": {"secretKeyRef": {
                "name": SECRET_NAME.format(stack=plan.stack), "key": key, "optional": True}}})
        else:
            out.append({"name": key, "value": _escape(value)})
    return out


def _probes(svc: ServicePlan, busy_readiness: bool = False) -> dict:
    """startupProbe carries the warm-up allowance (start_timeout), so readiness and liveness can be
    strict afterwards without killing a pod that is still loading its weights. `busy_readiness` (a
    one-slot WebSocket server): readiness is the handshake too, so a pod in a conversation is not
    ready and its Service sends the next conversation elsewhere; liveness stays any HTTP answer."""
    path = health_path(svc)
    if path is None:
        return {}
    startup_failures = max(3, math.ceil(svc.health.timeout / PERIOD))
    if svc.health.kind == "websocket":
        # Startup: the real handshake (0x00 = weights loaded). Liveness afterwards: any HTTP answer, since
        # a handshake waits on moshi's one-conversation lock and would kill a busy, healthy pod
        # (duplex.standalone.wscheck). Readiness: the same, unless busy is what it should say.
        tls = svc.health.url.startswith("wss")
        def check(phase: str) -> dict:
            return {"exec": {"command": [_escape(a) for a in
                                         websocket_check(svc.container_port, path, 4, tls=tls, phase=phase)]}}
        return {"startupProbe": {**check("ready"), "periodSeconds": PERIOD, "timeoutSeconds": 5,
                                 "failureThreshold": startup_failures},
                "readinessProbe": {**check("ready" if busy_readiness else "alive"), "periodSeconds": PERIOD,
                                   "timeoutSeconds": 5, "failureThreshold": 1 if busy_readiness else 3},
                "livenessProbe": {**check("alive"), "periodSeconds": 20, "timeoutSeconds": 5,
                                  "failureThreshold": 3}}
    get = {"httpGet": {"path": marked(path), "port": "http"}}  # the kubelet's probes: out of the access log
    return {"startupProbe": {**get, "periodSeconds": PERIOD, "timeoutSeconds": 3,
                             "failureThreshold": startup_failures},
            "readinessProbe": {**get, "periodSeconds": PERIOD, "timeoutSeconds": 3, "failureThreshold": 3},
            "livenessProbe": {**get, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3}}


def _escape(value: str) -> str:
    """Kubernetes expands $(VAR) in env values and args; `$$(` keeps a literal."""
    return str(value).replace("$(", "$$(")
