"""The translator: a causal LM and its tokenizer from the shared Hugging Face cache, prompted to
translate one text at a time (greedy decoding: the same input gives the same output)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .languages import ISO_639_1, known
from .settings import Settings

log = logging.getLogger("uvicorn.error").getChild("mt")
THINKING = re.compile(r"<think>.*?</think>\s*", re.S)  # Qwen3 may think aloud before answering


class ModelMissing(Exception):
    """The model is not on disk; the message says how to get it there."""


@dataclass(frozen=True)
class Translation:
    text: str
    prompt_tokens: int
    output_tokens: int
    generate_s: float


def language_name(code: str) -> str:
    """The English name the prompt uses: 'Modern Greek (1453-)' -> 'Modern Greek'."""
    return ISO_639_1[known(code)].split(" (")[0]


def pad_token_id(tokenizer) -> int | None:
    """The tokenizer's pad id, else its end-of-sequence id: a pad id of 0 is a real id, not a missing one."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def resolve_model(spec: str, revision: str | None) -> Path:
    """A local directory as is, else `ORG/NAME` from the cache with no network call (a miss names
    `inv prefetch`, the command that fills it)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    from huggingface_hub import snapshot_download
    where = f"{spec}@{revision}" if revision else spec
    try:
        return Path(snapshot_download(spec, revision=revision, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, a bad repo id, a partial snapshot ...
        raise ModelMissing(f"model {where} is not in the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}): "
                           f"run `inv prefetch --repo {spec}` on the host, or set MT_MODEL to a local directory "
                           f"({type(exc).__name__}: {exc})") from exc


class Translator:
    """Loads once (`load`), then translates one request at a time (`translate`, from a thread)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.model_path: Path | None = None
        self.device = settings.device
        self.precision: str | None = None
        self.architecture: str | None = None
        self._model = self._tokenizer = None
        self._lock = threading.Lock()  # one generate at a time: a second one would only halve both

    def load(self) -> None:
        self.model_path = resolve_model(self.settings.model, self.settings.model_revision)  # before torch: a miss is said at once
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
        self._model = model.to(self.device).eval()
        self.precision = str(dtype).removeprefix("torch.")
        self.architecture = type(model).__name__

    def prompt(self, text: str, source: str, target: str) -> str:
        instruction = (f"Translate the following {language_name(source)} text into {language_name(target)}. "
                       f"Answer with the translation only.\n\n{text}")
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False)
        return f"{instruction}\n\n{language_name(target)}:"

    def translate(self, text: str, source: str, target: str) -> Translation:
        import torch
        inputs = self._tokenizer(self.prompt(text, source, target), return_tensors="pt",
                                 return_token_type_ids=False).to(self.device)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        with self._lock, torch.inference_mode():
            started = time.monotonic()
            out = self._model.generate(**inputs, max_new_tokens=self.settings.max_new_tokens, do_sample=False,
                                       pad_token_id=pad_token_id(self._tokenizer))
            took = time.monotonic() - started
        new = out[0, prompt_tokens:]
        answer = THINKING.sub("", self._tokenizer.decode(new, skip_special_tokens=True)).strip()
        return Translation(answer, prompt_tokens, int(new.shape[0]), took)
