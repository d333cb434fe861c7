"""`inv eval`, whole: the data (the stack's, the user's or the default set), the measuring, the
baseline (`--save` writes it, `--check` judges against it) and the report files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..layout import Layout
from ..project import Project
from . import baseline, data, report, runner, score, synth


@dataclass(frozen=True)
class Outcome:
    doc: dict
    json_path: Path
    html_path: Path
    saved: Path | None

    @property
    def exit_code(self) -> int:
        return 1 if self.doc["breaches"] else 0


def evaluate_stack(*, data_path: Path | None = None, services: list[str] | None = None,
                   modes: tuple[str, ...] = runner.MODES, save: bool = False, check: bool = False,
                   baseline_path: Path | None = None, out: Path | None = None,
                   say: Callable[[str], None] = print) -> Outcome:
    score.need()
    project = Project.load()
    spec = project.stack.eval
    path = baseline_path or project.stack.path.resolve().parent / spec.baseline
    base = baseline.load(path) if check else None  # a missing baseline: said before any audio is sent
    chosen = runner.choose(project, services, modes)
    if data_path is None and spec.data:
        data_path = project.root / spec.data
    folder = Layout(project.root).base / "eval"
    dataset = data.load(data_path) if data_path is not None else synth.default_set(folder, say=say)
    doc = runner.measure(dataset, chosen, modes=modes, project=project, say=say)
    if base is None and not save and path.is_file():
        try:
            base = baseline.load(path)  # shown beside the figures, judged only with --check
        except baseline.BaselineError as exc:
            say(f"(baseline not shown: {exc})")
    if base is not None:
        doc = baseline.compare(doc, base, spec, runner.relative_to_project(path, project.root))
        if not check:
            doc["breaches"] = []
    saved = baseline.save(doc, path) if save else None
    json_path, html_path = report.write(doc, out or folder)
    return Outcome(doc, json_path, html_path, saved)

