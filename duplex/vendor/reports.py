"""What a vendor command did or found, for people (`summary()`) and scripts (`to_json()`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class VendorReport:
    action: str                     # "vendored" | "unchanged" | "dry-run" | "rolled-back"
    path: str                       # the vendored tree (third_party/moshi)
    tag: str = ""
    version: str = ""
    source: str = ""                # "pypi" | "git" | "local"
    url: str = ""
    archive_sha256: str | None = None
    sha256_verified: str = "none"   # "index" | "pip" | "cache" | "commit" | "none"
    commit: str | None = None
    tree: str = ""                  # tree hash of the new (or, for dry-run, the would-be) tree
    previous: dict | None = None    # {"version", "tree"} of the tree it replaced (kept for rollback)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    patches: list[dict] = field(default_factory=list)
    licences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        head = {"vendored": f"vendored moshi {self.version} ({self.tag}) into {self.path}",
                "unchanged": f"moshi {self.version} is already vendored in {self.path}; nothing changed",
                "dry-run": f"dry run: vendoring moshi {self.version} ({self.tag}) would change {self.path}",
                "rolled-back": f"rolled {self.path} back to moshi {self.version}"}[self.action]
        lines = [head, f"  source   {self.source}: {self.url}"]
        if self.archive_sha256:
            lines.append(f"  sha256   {self.archive_sha256} (verified: {self.sha256_verified})")
        if self.commit:
            lines.append(f"  commit   {self.commit}")
        lines.append(f"  tree     {self.tree}")
        if self.previous:
            lines.append(f"  previous moshi {self.previous.get('version', '?')} ({self.previous.get('tree', '?')})"
                         + (" - `inv vendor-moshi --rollback` restores it" if self.action == "vendored" else ""))
        lines.append(f"  files    {len(self.added)} added, {len(self.removed)} removed, {len(self.modified)} modified")
        if self.action == "dry-run":
            lines += [f"    {mark} {p}" for mark, paths in (("+", self.added), ("-", self.removed),
                                                             ("~", self.modified)) for p in paths]
        for patch in self.patches:
            lines.append(f"  patch    {patch['name']}")
        lines += [f"  note     {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class CheckReport:
    path: str
    ok: bool
    tag: str = ""
    version: str = ""
    recorded_tree: str = ""
    actual_tree: str = ""
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    problem: str = ""               # no tree / no MOSHI_VERSION

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {**asdict(self), "exit_code": self.exit_code}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        if self.problem:
            return f"{self.path}: {self.problem}"
        if self.ok:
            return f"{self.path}: moshi {self.version} ({self.tag}) matches MOSHI_VERSION ({self.recorded_tree})"
        lines = [f"{self.path}: differs from MOSHI_VERSION (moshi {self.version}, {self.tag})"]
        lines += [f"  modified  {p}" for p in self.modified]
        lines += [f"  missing   {p}" for p in self.missing]
        lines += [f"  added     {p}" for p in self.added]
        lines.append("  fix: move local edits into third_party/patches/moshi/*.patch and re-vendor "
                     "(`inv vendor-moshi --tag " + (self.tag or "vX.Y.Z") + "`), or restore with "
                     "`git checkout -- third_party/moshi`")
        return "\n".join(lines)
