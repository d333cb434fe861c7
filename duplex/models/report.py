"""What prefetch plans for each model and what it did, as plain data (the --json report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .lock import FileEntry


@dataclass
class ModelPlan:
    repo: str
    revision: str
    commit: str
    size: int
    files: int
    fetch: list[FileEntry]  # to download: missing from the cache, or damaged
    link: list[FileEntry]  # missing from this snapshot, but the content is cached (another commit)
    damaged: list[str]  # paths whose size (or hash, with verify) did not match the lock
    source: str  # "lock": pinned earlier, no network needed; "hub": resolved in this run
    status: str = "planned"  # planned | cached | linked | downloaded | repaired
    snapshot: str = ""

    @property
    def fetch_bytes(self) -> int:
        return sum(f.size for f in self.fetch)


@dataclass
class PrefetchReport:
    models: list[ModelPlan]
    hub_cache: str
    lock: str
    endpoint: str
    dry_run: bool
    network: bool  # whether the hub was asked anything
    seconds: float
    downloaded_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-ready dict (for `inv prefetch --json`)."""
        data = asdict(self)
        for model, plan in zip(data["models"], self.models, strict=True):
            model["fetch"] = [f.path for f in plan.fetch]
            model["link"] = [f.path for f in plan.link]
            model["fetch_bytes"] = plan.fetch_bytes
        return data
