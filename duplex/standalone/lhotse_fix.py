"""The `lhotse` post-install fix as a script the env's own Python runs (standard library only).

`inv setup` runs it with a built env's interpreter (duplex.envs.fixes.lhotse); the NeMo image runs
the same file at build time (dockerfiles/asr-nemo.Dockerfile), so native and container envs get the
same lhotse. Prints one JSON object: lhotse and torch versions, the files patched, a message.

With torch >= 2.10, lhotse's CutSampler (and the stateless sampler) call
super().__init__(data_source=None), which torch's Sampler no longer accepts:
"TypeError: object.__init__() takes exactly one argument". Upstream fixed it in lhotse PR #1543 by
calling super().__init__() with no argument; this rewrites exactly that call where it remains.
`--verify` then builds a SimpleCutSampler, which fails on an unfixed lhotse.
"""

import importlib.metadata as md
import importlib.util
import json
import re
import sys
from pathlib import Path

CALL = re.compile(r"super\(\)\.__init__\(\s*data_source\s*=\s*None\s*\)")
TORCH_WITHOUT_DATA_SOURCE = (2, 10)
VERIFY = ("from lhotse import CutSet\nfrom lhotse.dataset import SimpleCutSampler\n"
          "SimpleCutSampler(CutSet(), max_duration=10.0)\n")


def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def release(text):
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:2])


def fix():
    lhotse, torch = version("lhotse"), version("torch")
    out = {"lhotse": lhotse, "torch": torch, "patched": [], "changed": False}
    if not lhotse:
        return {**out, "message": "lhotse is not installed in this env: nothing to fix"}
    if not torch or release(torch) < TORCH_WITHOUT_DATA_SOURCE:
        return {**out, "message": f"torch {torch or '(none)'} still accepts Sampler(data_source=...): nothing to fix"}
    spec = importlib.util.find_spec("lhotse")
    for folder in (spec.submodule_search_locations if spec else []):
        for source in sorted((Path(folder) / "dataset" / "sampling").rglob("*.py")):
            text = source.read_text(encoding="utf-8")
            new = CALL.sub("super().__init__()", text)
            if new != text:
                tmp = source.with_suffix(".py.duplex-tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(source)
                for cached in (source.parent / "__pycache__").glob(source.stem + ".*.pyc"):
                    cached.unlink()
                out["patched"].append(source.relative_to(folder).as_posix())
    if out["patched"]:
        return {**out, "changed": True, "message": f"patched super().__init__(data_source=None) in lhotse "
                                                   f"{lhotse}: {', '.join(out['patched'])}"}
    return {**out, "message": f"lhotse {lhotse} is already fixed: nothing to do"}


if __name__ == "__main__":
    result = fix()
    print(json.dumps(result))
    if "--verify" in sys.argv[1:] and result["lhotse"]:
        exec(VERIFY)  # raises (exit 1) on an lhotse the fix does not cover
