"""How much GPU memory a service needs, and which GPU each GPU service gets: pure, for the plan.

A service's need is the sum over its models of the figure upstream publishes for that model where
it states one (Kyutai: moshi's bf16 PyTorch checkpoints want a 24 GB GPU), else its weights x 1.2
(activations, KV cache and the CUDA context on top). Weights are the files a model's weights live
in, `.nemo` archives (NeMo checkpoints) included.

Placement puts each GPU service of a run on one CUDA device (a GPU, or a MIG instance): the one
with the most free memory left after what the services placed before it need, biggest need first,
so that services sharing a GPU are summed and a busy GPU is passed over.
"""

from __future__ import annotations

from dataclasses import dataclass

from .machine import GpuInfo

OVERHEAD = 1.2
WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".nemo")
GB = 1000 ** 3
# Published per-model figures: repo -> (bytes of GPU memory, where upstream says so).
FIGURES = {
    "kyutai/moshiko-pytorch-bf16": (24 * GB, "Kyutai's moshi README: a GPU with 24GB for the PyTorch bf16 model"),
    "kyutai/moshika-pytorch-bf16": (24 * GB, "Kyutai's moshi README: a GPU with 24GB for the PyTorch bf16 model"),
}


@dataclass(frozen=True)
class Need:
    bytes: int | None  # None: unknown (a model's size is not known yet)
    how: str  # "published: ..." or "weights 15.4 GiB x 1.2"


def is_weights(path: str) -> bool:
    return path.endswith(WEIGHTS)


def base_repo(repo: str) -> str:
    return repo.split("@", 1)[0]


def need(models: list[str], weights: dict[str, int | None]) -> Need:
    """A service's GPU memory from its models: published figures first, else weights x OVERHEAD."""
    total, hows = 0, []
    for repo in models:
        figure = FIGURES.get(base_repo(repo))
        if figure:
            total += figure[0]
            hows.append(f"{base_repo(repo)}: {figure[0] / GB:.0f} GB ({figure[1]})")
            continue
        size = weights.get(repo, weights.get(base_repo(repo)))
        if size is None:
            return Need(None, f"{base_repo(repo)}: size unknown")
        total += int(size * OVERHEAD)
        hows.append(f"{base_repo(repo)}: weights {size / 1024 ** 3:.1f} GiB x {OVERHEAD}")
    return Need(total, "; ".join(hows))


def place(needs: dict[str, int | None], gpus: tuple[GpuInfo, ...]) -> dict[str, GpuInfo]:
    """Service -> the device it gets. Biggest need first (unknown needs last, in the order given),
    each on the device with the most free memory after what is already placed there; a device whose
    free memory NVML does not report (unified memory) counts as its total, or as empty."""
    if not gpus:
        return {}
    taken: dict[GpuInfo, int] = {g: 0 for g in gpus}
    order = sorted(needs, key=lambda n: -(needs[n] or 0))
    out = {}
    for name in order:
        def left(g: GpuInfo) -> int:
            room = g.memory_free if g.memory_free is not None else (g.memory_total or 0)
            return room - taken[g]
        best = max(gpus, key=left)  # ties: the first device (max keeps the first of equals)
        out[name] = best
        taken[best] += needs[name] or 0
    return out
