"""Model references as the stack names them: `ORG/NAME` or `ORG/NAME@REVISION`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ModelRefError

DEFAULT_REVISION = "main"
COMMIT = re.compile(r"^[0-9a-f]{40}$")
# no `..` anywhere: the revision names a file under the cache's refs/ (kept equal to duplex.syntax.REPO)
_REF = re.compile(r"^(?!.*\.\.)(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9_][\w.-]*)(?:@(?P<rev>\w[\w./-]*))?$")


@dataclass(frozen=True)
class ModelRef:
    repo: str  # ORG/NAME
    revision: str = DEFAULT_REVISION  # a branch, a tag or a commit hash, as asked

    @property
    def is_commit(self) -> bool:
        """A full commit hash is immutable: it needs no resolving, on the hub or in the lock."""
        return bool(COMMIT.fullmatch(self.revision))

    def __str__(self) -> str:
        return self.repo if self.revision == DEFAULT_REVISION else f"{self.repo}@{self.revision}"


def parse_ref(text: str, revision: str | None = None) -> ModelRef:
    """`ORG/NAME[@REV]`; an explicit `revision` (the --revision flag) wins over `@REV`."""
    found = _REF.fullmatch(text.strip())
    if not found:
        raise ModelRefError(f"not a model repo: {text!r}",
                            fix="name it as ORG/NAME or ORG/NAME@REVISION, e.g. Systran/faster-whisper-base")
    return ModelRef(found["repo"], revision or found["rev"] or DEFAULT_REVISION)


def parse_refs(texts: list[str]) -> list[ModelRef]:
    """Parse and de-duplicate; one repo asked at two revisions is refused (one cache pin per repo)."""
    refs: dict[str, ModelRef] = {}
    for text in texts:
        ref = parse_ref(text)
        if ref.repo in refs and refs[ref.repo] != ref:
            raise ModelRefError(f"{ref.repo} is asked at two revisions: {refs[ref.repo].revision} and {ref.revision}",
                                fix="pin one revision per repo across the stack's services")
        refs[ref.repo] = ref
    return list(refs.values())
