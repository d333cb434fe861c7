"""The vendoring workflow: fetch -> verify -> extract -> keep moshi + licences -> patch -> swap -> record."""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import patches, pick, record, sources, swap
from .errors import HashMismatchError, VendorError
from .extract import extract, is_archive
from .reports import CheckReport, VendorReport
from .tree import diff, manifest, tree_hash

TARGET = Path("third_party") / "moshi"
SNAPSHOT = "previous"
SOURCES = ("pypi", "git")
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def vendor(root: Path, tag: str, *, source: str = "pypi", url: str | None = None, from_path: Path | None = None,
           dry_run: bool = False, allow_moved_tag: bool = False, index_url: str | None = None,
           progress: Progress = _quiet) -> VendorReport:
    """Vendor moshi ``tag`` into third_party/moshi; on any error the tree stays exactly as it was."""
    root = Path(root).resolve()
    target = root / TARGET
    started = time.monotonic()
    if from_path is None and source not in SOURCES:
        raise VendorError(f"unknown source {source!r}", fix=f"use one of: {', '.join(SOURCES)} (or --from PATH)")
    if from_path is None and source == "git" and not url:
        raise VendorError("--source git needs --url", fix="e.g. `--url https://github.com/kyutai-labs/moshi`")
    with swap.locked(root):
        if swap.settle(root):
            progress("finished an update that was interrupted")
        swap.clean_staging(root)
        work = Path(tempfile.mkdtemp(prefix="staging-", dir=swap.state_dir(root)))
        try:
            if from_path is not None:
                fetched = sources.fetch_local(Path(from_path), tag)
            elif source == "git":
                fetched = sources.fetch_git(root, url, tag, work / "clone", progress)
            else:
                fetched = sources.fetch_pypi(root, tag, progress, base=index_url)
            current = record.read(target) if target.is_dir() else None
            _refuse_moved_tag(current, fetched, allow_moved_tag)
            if fetched.path.is_dir():
                unpacked = fetched.path
            elif is_archive(fetched.path):
                progress(f"extracting {fetched.path.name}")
                unpacked = extract(fetched.path, work / "unpacked")
            else:
                raise VendorError(f"{fetched.path.name}: not an sdist, wheel or zip",
                                  fix="pass a .tar.gz, .whl or .zip, or an unpacked folder")
            new = work / "tree"
            licences = pick.assemble(unpacked, new, fetched.version, tag)
            applied = patches.apply_all(root, new, progress)
            files = manifest(new)
            meta = {"tag": fetched.tag, "version": fetched.version, "source": fetched.source, "url": fetched.url,
                    "archive_sha256": fetched.sha256, "sha256_verified": fetched.verified,
                    "commit": fetched.commit, "tree": tree_hash(files),
                    "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "patches": applied, "licences": licences}
            live = manifest(target) if target.is_dir() else {}
            change = diff(live, files)
            report = VendorReport("vendored", str(TARGET), fetched.tag, fetched.version, fetched.source, fetched.url,
                                  fetched.sha256, fetched.verified, fetched.commit, meta["tree"],
                                  **change.to_dict(), patches=applied, licences=licences, notes=list(fetched.notes))
            if current:
                report.previous = {"version": current[0].get("version", "?"), "tag": current[0].get("tag", "?"),
                                   "tree": tree_hash(live)}
                edits = diff(current[1], live)
                if edits.changed:
                    report.notes.append(f"local edits outside the patch queue ({edits.summary()}) are replaced; "
                                        "they stay in the rollback snapshot (`--rollback`)")
            if current and not change.changed and _same_origin(current[0], meta):
                report.action = "unchanged"
            elif dry_run:
                report.action = "dry-run"
            else:
                if current or target.is_dir():
                    meta["previous"] = report.previous or {"version": "unrecorded", "tree": tree_hash(live)}
                record.write(new, meta, files)
                progress(f"swapping in moshi {fetched.version} ({change.summary()})")
                swap.commit(root, target, new, swap.state_dir(root) / SNAPSHOT)
            report.seconds = round(time.monotonic() - started, 3)
            return report
        finally:
            if not (swap.state_dir(root) / swap.JOURNAL).exists():  # else the next run settles the swap
                shutil.rmtree(work, ignore_errors=True)


def rollback(root: Path, progress: Progress = _quiet) -> VendorReport:
    """Put the previous vendored tree back exactly; the tree it replaces becomes the new snapshot."""
    root = Path(root).resolve()
    target = root / TARGET
    started = time.monotonic()
    with swap.locked(root):
        swap.settle(root)
        swap.clean_staging(root)
        snapshot = swap.state_dir(root) / SNAPSHOT
        if not snapshot.is_dir():
            raise VendorError("there is no previous vendored version to roll back to",
                              fix="a snapshot is kept on this machine by each `inv vendor-moshi --tag ...`; "
                                  "without one, vendor the version you want, or `git checkout` an older commit")
        restored = manifest(snapshot)
        rec = record.read(snapshot)
        meta, files = rec if rec else ({"tag": "unrecorded", "version": "unrecorded"}, restored)
        live = manifest(target) if target.is_dir() else {}
        current = record.read(target) if target.is_dir() else None
        cur_meta = current[0] if current else {}
        meta = {**meta, "rolled_back_from": {"version": cur_meta.get("version", "unrecorded"),
                                             "tag": cur_meta.get("tag", "unrecorded"), "tree": tree_hash(live)},
                "rolled_back_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        meta.pop("previous", None)
        record.write(snapshot, meta, files)
        progress(f"restoring moshi {meta.get('version')} ({tree_hash(restored)})")
        swap.commit(root, target, snapshot, snapshot)
        change = diff(live, restored)
        return VendorReport("rolled-back", str(TARGET), meta.get("tag", ""), meta.get("version", ""),
                            meta.get("source", ""), meta.get("url", ""), meta.get("archive_sha256"),
                            meta.get("sha256_verified", "none"), meta.get("commit"), tree_hash(restored),
                            previous=meta["rolled_back_from"], **change.to_dict(),
                            patches=meta.get("patches", []), licences=meta.get("licences", []),
                            seconds=round(time.monotonic() - started, 3))


def check(root: Path) -> CheckReport:
    """Compare third_party/moshi with what MOSHI_VERSION records; ``exit_code`` 1 and the files if not."""
    root = Path(root).resolve()
    target = root / TARGET
    if (swap.state_dir(root) / swap.JOURNAL).is_file():
        with swap.locked(root):
            swap.settle(root)
    if not target.is_dir():
        return CheckReport(str(TARGET), False, problem="no vendored moshi here; run `inv vendor-moshi --tag vX.Y.Z`")
    rec = record.read(target)
    if rec is None:
        return CheckReport(str(TARGET), False, problem="MOSHI_VERSION is missing, so the tree cannot be verified; "
                                                       "re-vendor with `inv vendor-moshi --tag vX.Y.Z`")
    meta, files = rec
    actual = manifest(target)
    change = diff(files, actual)
    report = CheckReport(str(TARGET), not change.changed, meta.get("tag", ""), meta.get("version", ""),
                         meta.get("tree", ""), tree_hash(actual), change.modified, change.removed, change.added)
    if tree_hash(files) != meta.get("tree"):
        report.ok = False
        report.problem = ("MOSHI_VERSION's [files] table does not add up to its tree hash (edited by hand?); "
                          "re-vendor with `inv vendor-moshi --tag " + (meta.get("tag") or "vX.Y.Z") + "`")
    return report


def _same_origin(old: dict, new: dict) -> bool:
    keys = ("tag", "version", "source", "url", "archive_sha256", "commit")
    return all(old.get(k) == new.get(k) for k in keys) and old.get("patches", []) == new["patches"]


def _refuse_moved_tag(current, fetched: sources.Fetched, allowed: bool) -> None:
    """A git tag that now names another commit than the one recorded is refused (tags can move)."""
    if not current or fetched.source != "git" or allowed:
        return
    meta = current[0]
    if meta.get("source") == "git" and meta.get("url") == fetched.url and meta.get("tag") == fetched.tag \
            and meta.get("commit") and meta["commit"] != fetched.commit:
        raise HashMismatchError(
            f"tag {fetched.tag} at {fetched.url} moved: MOSHI_VERSION recorded {meta['commit'][:12]}, "
            f"the remote now says {fetched.commit[:12]}",
            fix="find out why upstream re-tagged; to take the new commit anyway pass --allow-moved-tag")
