"""The layers hold: every import points down a layer, no circle between modules or between the
packages of duplex/, the scripts in duplex/standalone/ import no duplex, the plan imports no I/O.

docs/architecture.md says what may import what; these tests are how it stays true.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Scripts that run outside duplex (a service's venv, an image): checked apart, by `test_standalone_...`.
STANDALONE = ROOT / "duplex" / "standalone"
PREFLIGHT_RUNNER = "duplex.preflight"  # the one library module that runs the checks

# Each module's layer, lowest first: a module imports only from its own layer and those below. A
# module takes the layer of the longest prefix listed here (a package's modules inherit the package's
# unless listed). docs/architecture.md draws the same table.
LAYERS = ("model", "adapter", "project", "feature", "cli")
LAYER = {
    # the model: pure data and decisions (a plan from a stack and a machine); reads only a user's file
    **dict.fromkeys(["duplex", "duplex.errors", "duplex.layout", "duplex.images.references", "duplex.textfile",
                     "duplex.stack", "duplex.machine", "duplex.plan", "duplex.vram", "duplex.images",
                     "duplex.redact", "duplex.warm", "duplex.standalone", "duplex.envs.pythons",
                     "duplex.envs.torch_builds", "duplex.models.refs", "duplex.models.errors", "duplex.vendor.errors",
                     "duplex.scoring", "duplex.syntax", "duplex.capacity", "duplex.svgplot",
                     "duplex.remote.target"], "model"),
    # adapters: each talks to one thing outside (the engine, a registry, NVML, the hub, files, a venv)
    **dict.fromkeys(["duplex.engine", "duplex.images.registry", "duplex.bounded", "duplex.gpu", "duplex.certs",
                     "duplex.host", "duplex.hostnames", "duplex.envfile", "duplex.asr_stream", "duplex.launch_json", "duplex.tts",
                     "duplex.envs.commands", "duplex.envs.layout", "duplex.envs.lock", "duplex.envs.sources",
                     "duplex.envs.torch_choice", "duplex.envs.installer", "duplex.models.lock",
                     "duplex.models.cache", "duplex.models.hub", "duplex.remote.ssh", "duplex.remote.sync"], "adapter"),
    "duplex.project": "project",  # the composition root: stack + token + pins + machine + plan
    # features: one package or module per task, acting through the layers below
    **dict.fromkeys(["duplex.run", "duplex.dashboard", "duplex.envs", "duplex.models", "duplex.vendor",
                     "duplex.publish", "duplex.loadtest", "duplex.evaluation", "duplex.preflight", "duplex.pinning", "duplex.debug", "duplex.remote",
                     "checks"], "feature"),
    **dict.fromkeys(["duplex.report", "duplex.flags", "tasks"], "cli"),  # the CLI: flags in, text out
}
# Modules that do I/O (processes, sockets, HTTP, the engine, NVML, the hub, TLS, threads).
IO_MODULES = {"docker", "subprocess", "socket", "pynvml", "httpx", "urllib.request", "requests", "ssl",
              "http.client", "asyncio", "huggingface_hub", "websockets", "threading", "selectors",
              "concurrent.futures", "shutil", "tempfile", "cryptography"}


def modules() -> dict[str, tuple[Path, list[str]]]:
    """Module name -> (file, package parts) for duplex/, checks/ and tasks.py."""
    found = {}
    files = [*(ROOT / "duplex").rglob("*.py"), *(ROOT / "checks").rglob("*.py"), ROOT / "tasks.py"]
    for path in files:
        if STANDALONE in path.parents and path.name != "__init__.py":
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = parts
        else:
            package = parts[:-1]
        found[".".join(parts)] = (path, package)
    return found


def imported(path: Path, package: list[str], *, module_level: bool = False) -> set[tuple[str, str | None]]:
    """(module, name) for every import in a file: `import a.b` -> ("a.b", None), `from a import b` ->
    ("a", "b"), relative ones made absolute. All of them (inside functions and TYPE_CHECKING too),
    or with `module_level` only what importing the file runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if module_level:
        nodes = [n for n in tree.body if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]
        nodes = [sub for n in nodes for sub in ast.walk(n)
                 if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    else:
        nodes = list(ast.walk(tree))
    found: set[tuple[str, str | None]] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.update((base, alias.name) for alias in node.names)
    return found


def graph(*, module_level: bool = False) -> dict[str, set[str]]:
    """Edges between our own modules: `from pkg import mod` is an edge to pkg.mod when that is a
    module, else to pkg; any other name resolves to the longest of our modules it starts with."""
    mods = modules()

    def own(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    def target(module: str, name: str | None) -> str | None:
        return own(f"{module}.{name}") if name and f"{module}.{name}" in mods else own(module)
    return {me: {t for m, n in imported(path, package, module_level=module_level)
                 if (t := target(m, n)) and t != me}
            for me, (path, package) in mods.items()}


def io_imports(path: Path, package: list[str]) -> list[str]:
    found = imported(path, package, module_level=True)
    names = {m for m, _ in found} | {f"{m}.{n}" for m, n in found if n}
    return sorted(n for n in names if n in IO_MODULES or n.split(".")[0] in IO_MODULES)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))
    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_duplex_checks_and_tasks():
    edges = graph()
    assert "duplex.plan" in edges and "checks.docker" in edges and "tasks" in edges  # the walk sees them
    assert cycles(edges) == []


def layer_of(module: str) -> str:
    name = module
    while name not in LAYER or (name == "duplex" != module):
        name = name.rpartition(".")[0]
        assert name, f"{module} has no layer: add it (or its package) to LAYER and docs/architecture.md"
    return LAYER[name]


def upward(edges: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted(f"{me} ({layer_of(me)}) -> {dep} ({layer_of(dep)})" for me, deps in edges.items()
                  for dep in deps if rank[layer_of(dep)] > rank[layer_of(me)])


def test_every_import_points_down_or_sideways():
    assert upward(graph()) == []


def test_the_layer_rule_sees_an_upward_import():
    assert upward({"duplex.plan": {"duplex.run.start"}, "duplex.run.start": {"duplex.plan"}}) == [
        "duplex.plan (model) -> duplex.run.start (feature)"]


def packages(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between duplex's top-level modules and subpackages (duplex.run.start -> duplex.run)."""
    def top(name: str) -> str:
        return ".".join(name.split(".")[:2]) if name.startswith("duplex.") else name.split(".")[0]
    found: dict[str, set[str]] = {}
    for me, deps in edges.items():
        found.setdefault(top(me), set()).update(top(d) for d in deps if top(d) != top(me))
    return found


def test_no_circle_between_packages():
    edges = packages(graph())
    assert {"duplex.run", "duplex.dashboard", "duplex.plan", "checks"} <= set(edges)
    assert cycles(edges) == []


def test_every_module_is_in_the_architecture_doc():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = {m.rpartition(".")[2] for m in modules() if m.startswith("duplex.") and m.count(".") >= 1}
    assert sorted(n for n in named if f"`{n}" not in text and f"{n}`" not in text and f"{n}.py" not in text) == []


def test_standalone_scripts_import_no_duplex():
    """They run where duplex is not installed: a service's venv, an image, `python -c` in Compose."""
    scripts = sorted(STANDALONE.rglob("*.py"))
    assert len(scripts) >= 10  # the walk sees them: the log pump, the guard, wscheck, the warm reloader...
    offenders = {}
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                ["." * node.level + (node.module or "")] if isinstance(node, ast.ImportFrom) else []
            bad = [n for n in names if n.startswith(".") or n.split(".")[0] == "duplex"]
            offenders.update({str(path.relative_to(ROOT)): bad} if bad else {})
    assert offenders == {}


# What a module may import inside a function: packages whose import costs `inv --list`, `inv config`
# or a native run time they do not need (each such import says why in a comment beside it).
HEAVY = {"docker", "cryptography", "ssl", "huggingface_hub", "tqdm", "rich", "pynvml", "uvicorn", "yaml",
         "jsonschema", "kubernetes_validate", "websockets", "google", "opentelemetry", "psutil", "dotenv",
         "packaging",  # packaging: its requirements and wheel-tag parsers (platform, sysconfig) cost inv config
         "jiwer", "sacrebleu", "whisper_normalizer"}  # inv eval's scoring (the eval extra): rapidfuzz, numpy, regex tables


def function_level_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, has a reason comment) for each import inside a function."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    name = "." * getattr(sub, "level", 0) + (sub.module or "" if isinstance(sub, ast.ImportFrom)
                                                              else sub.names[0].name)
                    first = sub.lineno - 1  # the reason may stand once above a run of imports, or on the line
                    while first > 0 and lines[first - 1].lstrip().startswith(("from ", "import ", "#")):
                        first -= 1
                    found.append((sub.lineno, name, any("#" in line for line in lines[first:sub.end_lineno])))
    return sorted(set(found))


def test_imports_inside_functions_are_heavy_packages_with_a_reason():
    """duplex's own imports sit at the top of each file, where a reader looks for what it depends on;
    inside a function only a heavy package, with its reason. tasks.py is the one exception (the CLI
    imports the library per task so `inv --list` loads none of it)."""
    bad = []
    for path in sorted((ROOT / "duplex").rglob("*.py")):
        if STANDALONE in path.parents:
            continue
        for line, name, reason in function_level_imports(path):
            if name.split(".")[0] not in HEAVY or not reason:
                bad.append(f"{path.relative_to(ROOT)}:{line} {name}{'' if reason else ' (no reason given)'}")
    assert bad == []


def test_the_function_import_rule_sees_an_own_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from .plan import plan\n\n\ndef g():\n    import docker  # heavy: why\n")
    assert function_level_imports(bad) == [(2, ".plan", False), (6, "docker", True)]


def test_checks_sit_above_the_library():
    edges = graph()
    below = {m: sorted(d for d in deps if d.split(".")[0] == "checks")
             for m, deps in edges.items() if m.split(".")[0] == "duplex" and m != PREFLIGHT_RUNNER}
    assert {m: d for m, d in below.items() if d} == {}


def test_the_library_never_imports_tasks():
    assert [m for m, deps in graph().items() if "tasks" in deps and m != "tasks"] == []


def closure(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return seen


def test_the_plan_and_everything_it_imports_names_no_io_module():
    """Statically: nothing that importing the plan runs (module-level imports, followed through our
    own modules) names an I/O module. The certs module (socket) once came in this way."""
    mods, edges = modules(), graph(module_level=True)
    reached = closure("duplex.plan", edges)
    assert {"duplex.plan", "duplex.stack", "duplex.machine", "duplex.layout"} <= reached
    offenders = {name: bad for name in sorted(reached) if (bad := io_imports(*mods[name]))}
    assert offenders == {}


def test_the_io_finder_sees_an_io_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom subprocess import run\n\ndef f():\n    import socket\n")
    assert io_imports(bad, ["duplex"]) == ["subprocess", "subprocess.run"]


def test_importing_the_plan_loads_no_io_module():
    """At run time, in a fresh interpreter. pydantic (the stack model) loads importlib.metadata on its
    first validation, which pulls in socket, shutil, tempfile and threading through the email
    package: those are measured as what the plan adds on top of pydantic; the rest must not be
    loaded at all."""
    probe = ("import sys, json, pydantic\n"
             "class M(pydantic.BaseModel):\n    x: int = 0\n"
             "M(x=1)\n"  # the first validation loads pydantic's plugins: importlib.metadata and the rest
             "base = set(sys.modules)\n"
             "import duplex.plan\n"
             "print(json.dumps({'all': sorted(sys.modules), 'added': sorted(set(sys.modules) - base)}))")
    out = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout)
    never = {"docker", "subprocess", "pynvml", "httpx", "urllib.request", "requests", "ssl", "http.client",
             "asyncio", "huggingface_hub", "websockets", "cryptography", "concurrent.futures"}
    assert sorted(never & set(out["all"])) == []
    assert sorted(IO_MODULES & set(out["added"])) == []
    assert "duplex.plan" in out["added"] and "duplex.stack" in out["added"]


def test_plans_are_frozen():
    import dataclasses

    from duplex.plan import Plan, ServicePlan
    assert Plan.__dataclass_params__.frozen and ServicePlan.__dataclass_params__.frozen
    assert all(dataclasses.is_dataclass(c) for c in (Plan, ServicePlan))


def test_making_a_plan_loads_no_io_module():
    """Planning itself (both modes) loads nothing new once the stack is loaded."""
    probe = ("import sys, json\n"
             "from duplex.stack import load_stack\n"
             "from duplex.machine import Machine\n"
             "from duplex.plan import plan\n"
             "stack = load_stack()\n"
             "base = set(sys.modules)\n"
             "plan(stack, Machine()); plan(stack, Machine(gpu_count=1, nvidia_runtime=True), native=True)\n"
             "print(json.dumps(sorted(set(sys.modules) - base)))")
    environ = {k: v for k, v in os.environ.items() if k != "DUPLEX_STACK"}  # the repo's own stack.toml
    added = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=environ, capture_output=True,
                                      text=True, check=True).stdout)
    assert added == []
