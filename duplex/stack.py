"""Load stack.toml into typed objects; every problem becomes one plain line, never a traceback."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal, Union

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .envs.pythons import SUPPORTED_TEXT, admits_supported
from .errors import EnvError, StackError
from .images.references import image_problem
from .syntax import MAX_REPLICAS, NAME, NAME_RULE, REPO, URL
from .textfile import TextFileError, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

STACK_FILE = "stack.toml"
MODES = ("native", "container")
# `{svc.field}` in environment values; the fields each service exposes to others.
TEMPLATE = re.compile(r"\{([A-Za-z0-9_-]+)\.([A-Za-z_]+)\}")
TEMPLATE_FIELDS = ("host", "port", "url", "sessions")  # sessions: the service's `sessions` (empty: unset)
FIXES = ("lhotse",)  # the post-install fixes duplex.envs.fixes runs (a test keeps the two equal)
REVISION = re.compile(r"\{revision:([^}]+)\}")  # a model's pinned commit, from models.lock
# NAME, NAME_RULE: the one naming rule (duplex.layout: names become paths under .duplex/)
# Environment variable names (a service's `environment` keys and `secrets`): what every shell,
# Compose and Kubernetes accept.
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VARIABLE_RULE = "letters, digits and '_', not starting with a digit"
# A Docker image reference: [registry[:port]/]path[:tag][@digest], path components lower case.
IMAGE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
                   r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")
MAX_START_TIMEOUT = 24 * 3600.0  # a day: more is a typo, and publish turns it into probe thresholds
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12")
COMMON_PYTHONS = (*SUPPORTED_PYTHONS, ">=3.10,<3.13")


class _Strict(BaseModel):
    # strict: `port = true` is not port 1 and `start_timeout = "5"` is not 5 seconds
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _names(kind: str):
    """A `before` validator for a table whose keys are names: each must keep the rule."""
    def check(cls, value):
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str) or not NAME.fullmatch(k)]
            if bad:
                raise ValueError(f"expected {kind} names of {NAME_RULE} (a name becomes a folder, "
                                 f"a container and a DNS name), found {', '.join(map(repr, bad))}")
        return value
    return check


def _image(value: str | None) -> str | None:
    r"""An image reference: the IMAGE shape, then a registry that is a real host[:port]. The shape is
    matched here rather than as a Field pattern: pydantic-core's regex engine compiles IMAGE's Unicode
    `[\w.-]{0,127}` into a huge automaton: 60-90 ms of CPU (~230M instructions) on every load."""
    if value is not None and not IMAGE.fullmatch(value):
        raise ValueError(f"expected an image reference such as 'org/name:tag', found {_shown(value)}")
    why = image_problem(value, IMAGE) if value is not None else None
    if why:
        raise ValueError(f"expected an image reference such as 'org/name:tag' ({why}), found {value!r}")
    return value


def _no_nul(value, where: str = ""):
    """Refuse NUL anywhere in the file's strings: no process argument or variable can carry one."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where or 'a key'}: expected text without NUL characters (no process argument "
                         f"or variable can carry one), found {_shown(value)}")
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, where)
            _no_nul(item, f"{where}.{key}" if where else str(key))
    if isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, f"{where}[{i}]")


class StackMeta(_Strict):
    name: str = Field(default="duplex", pattern=NAME.pattern)
    # None: each service's official Python image (python:3.11-slim-bookworm), pulled, pinned in
    # images.lock; the air-gapped path is "duplex/python:3.11-bookworm" (scripts/base-image.sh)
    base_image: str | None = None
    on_crash: Literal["keep", "stop"] = "keep"  # what the others do when one service crashes
    tls: bool = False  # serve https/wss with `inv certs`' files (remote browsers need it for the mic)
    # Off by default: an exporter on a voice stack's audio event loop costs latency. "otlp" hands every
    # service the standard OpenTelemetry variables, pointing at this OTLP/HTTP collector (host's view).
    telemetry: Literal["off", "otlp"] = "off"
    otlp_endpoint: str = Field(default="http://127.0.0.1:4318", pattern=URL.pattern)
    # The torch build `inv publish` gives GPU images (the cluster has no GPU to probe from here):
    # a variant such as "cu126", or unset for the one that runs on the widest range of datacenter
    # GPUs and drivers (duplex/data/torch-builds.toml, [publish]). `inv publish --torch` overrides it.
    publish_torch: str | None = Field(default=None, pattern=r"^(cpu|cu\d{3})$")
    # The project folder, relative to the stack file: where servers/, envs/, dockerfiles/ and
    # `.duplex/` live and what every other path in the file is relative to. A second stack kept in a
    # subfolder (examples/translate/stack.toml) shares the repo's code with `root = "../.."`.
    root: str = "."
    # How the published manifests let GPU services share one GPU (docs/publish.md, 'Sharing a GPU'):
    # "none" gives each its own; "mps" or "time-slicing" co-locates them on one GPU node and writes
    # the NVIDIA device plugin's sharing config. `inv publish --gpu-sharing` overrides it.
    gpu_sharing: Literal["none", "mps", "time-slicing"] = "none"
    # The live dashboard every `inv run` serves on 127.0.0.1 (docs/dashboard.md); false turns it off.
    # No port: 7980, or a free one when that is taken or a service's.
    dashboard: bool = True
    dashboard_port: int | None = Field(default=None, ge=1024, le=65535)

    @field_validator("base_image")
    @classmethod
    def _base_image(cls, value: str | None) -> str | None:
        return _image(value)

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        if not _upward(value):
            raise ValueError(f"expected '.' or a folder above the stack file such as '../..', found {value!r}")
        return value


class EnvSpec(_Strict):
    python: str = ">=3.10,<3.13"
    requirements: str | None = None  # default envs/<name>/requirements.in
    torch: str = "none"
    fixes: list[str] = []
    # `system` is accepted as its older name; given both, `system` is reported (see _describe)
    system_libs: list[str] = Field(default=[], validation_alias=AliasChoices("system_libs", "system"))

    @field_validator("system_libs")
    @classmethod
    def _libs(cls, value: list[str]) -> list[str]:
        for lib in value:
            if not re.fullmatch(r"[A-Za-z0-9][\w.+-]*", lib):
                raise ValueError(f"expected library names like 'opus', found {lib!r}")
        return value

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, value: str | None) -> str | None:
        return value if value is None else _inside("a requirements file", value)

    @property
    def system(self) -> list[str]:
        """The older name of `system_libs`, for readers that still use it."""
        return self.system_libs

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        # Checked at load, so `inv config` catches it too, not only `inv setup`.
        if value in COMMON_PYTHONS:
            return value  # no need to import packaging for the usual values
        try:
            admitted = admits_supported(value) if value.strip() else None
        except EnvError:  # not a version or range at all
            admitted = None
        if admitted is None:
            raise ValueError("expected a version like '3.11' or a range like '>=3.10,<3.13'")
        if not admitted:
            raise ValueError(f"expected a version or range that admits a Python in {SUPPORTED_TEXT} "
                             "(3.13 and later break the stack)")
        return value

    @field_validator("fixes")
    @classmethod
    def _fixes(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FIXES]
        if unknown:
            raise ValueError(f"unknown fix {', '.join(map(repr, unknown))}; expected names of known fixes "
                             f"({', '.join(FIXES)})")
        return value

    @field_validator("torch")
    @classmethod
    def _torch(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|none|cu\d{3}", value):
            raise ValueError("expected 'auto', 'cpu', 'none' or 'cuXXX' (e.g. 'cu124')")
        return value


class Dependency(_Strict):
    required: bool = True




class Budget(_Strict):
    """What one replica must meet to count a load level as served (`inv loadtest`, docs/capacity.md):
    every key is optional; a level meets the budget when every key set holds."""

    final_p95: float | None = Field(default=None, gt=0, le=600)       # s, end of speech -> final
    final_p50: float | None = Field(default=None, gt=0, le=600)
    turnaround_p95: float | None = Field(default=None, gt=0, le=600)  # s, speech-to-speech: end of speech -> reply
    lag_p95: float | None = Field(default=None, gt=0, le=600)         # s, translation: final -> its translation
    wer: float | None = Field(default=None, ge=0, le=10)              # word error rate of the finals
    errors: float = Field(default=0.0, ge=0, le=1)                    # share of sessions that failed or were refused


class EvalSpec(_Strict):
    """`inv eval` (docs/eval.md): the data, the baseline file and how much worse than the baseline
    each figure may get before `inv eval --check` fails."""

    data: str | None = None                 # a manifest or folder, relative to the project; unset: the default set
    baseline: str = Field(default="eval-baseline.json", pattern=r"^[^/\\]+\.json$")  # beside the stack file
    wer: float = Field(default=0.02, ge=0, le=10)        # WER may rise this much (0.02: two points)
    cer: float | None = Field(default=None, ge=0, le=10)  # unset: CER is reported, not judged
    final_p95: float = Field(default=0.5, ge=0, le=600)   # s: end of speech -> final, p95
    lag_p95: float = Field(default=1.0, ge=0, le=600)     # s: end of speech -> translated text, p95
    bleu: float = Field(default=2.0, ge=0, le=100)        # points BLEU may fall
    chrf: float = Field(default=2.0, ge=0, le=100)        # points chrF may fall


class ServiceSpec(_Strict):
    env: str | None = None
    app: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    command: list[str] | None = None
    port: int = Field(ge=1, le=65535)
    health: str | None = None  # "/health" (HTTP GET) or "ws:/api/chat" (WebSocket handshake)
    # warm-up allowance before unhealthy; finite and at most a day (publish writes it into probes)
    start_timeout: float = Field(default=120.0, gt=0, le=MAX_START_TIMEOUT, allow_inf_nan=False)
    modes: list[Literal["native", "container"]] = ["native", "container"]
    dockerfile: str | None = None
    image: str | None = None
    gpu: Literal["none", "optional", "required"] = "none"
    models: list[str] = []
    depends_on: Union[list[str], dict[str, Dependency]] = []
    environment: dict[str, Union[str, int, float, bool]] = {}
    secrets: list[str] = []  # host variables passed through and always masked
    watch: list[str] | None = None  # source dirs --reload watches; default: the app's package
    reload: Literal["restart", "warm"] = "restart"  # native: restart the process, or re-import warm
    preload: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")  # warm: load models once
    persistent: bool = False
    metrics: str | None = Field(default=None, pattern=r"^/[^\s]*$")  # Prometheus endpoint: scrape annotations
    # holds WebSocket sessions (state in the process): published with session affinity; implied by a ws: health
    websocket: bool = False
    # processes (natively) or containers of this service, each on its own port; publish: the fewest pods
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    # publish: the most pods the autoscaler may run (unset: no autoscaler); at least `replicas`
    max_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    # live sessions one replica serves at once (moshi: 1; asr: its ASR_STREAM_MAX_SESSIONS); unset: no limit known
    sessions: int | None = Field(default=None, ge=1, le=10_000)
    budget: Budget | None = None  # `inv loadtest`: the service's capacity is the most sessions meeting it

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas}): "
                             "the autoscaler's ceiling must be at least the replicas it starts with")
        return self

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].strip()):
            raise ValueError(f"expected the program and its arguments, the program first, found {value!r}")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict) -> dict:
        bad = [k for k in value if not VARIABLE.fullmatch(k)]
        if bad:
            raise ValueError(f"expected variable names of {VARIABLE_RULE}, found {', '.join(map(repr, bad))}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: list[str]) -> list[str]:
        bad = [k for k in value if not VARIABLE.fullmatch(k)]
        if bad:
            raise ValueError(f"expected names of host variables ({VARIABLE_RULE}), "
                             f"found {', '.join(map(repr, bad))}")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return _image(value)

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile(cls, value: str | None) -> str | None:
        return value if value is None else _inside("a Dockerfile", value)

    @field_validator("depends_on")
    @classmethod
    def _depends_on(cls, value):
        for name in value:
            if not NAME.fullmatch(name):
                raise ValueError(f"expected service names ({NAME_RULE}), found {name!r}")
        return value

    @field_validator("health")
    @classmethod
    def _health(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(ws:)?/\S*", value):
            raise ValueError("expected an HTTP path like '/health' or 'ws:/api/chat'")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        for repo in value:
            if not REPO.fullmatch(repo):
                raise ValueError(f"expected 'ORG/NAME' or 'ORG/NAME@REVISION', found {repo!r}")
        return value

    @property
    def dependencies(self) -> dict[str, bool]:
        """Dependency name -> required."""
        if isinstance(self.depends_on, list):
            return {name: True for name in self.depends_on}
        return {name: dep.required for name, dep in self.depends_on.items()}


class Stack(_Strict):
    stack: StackMeta = StackMeta()
    envs: dict[str, EnvSpec] = {}
    services: dict[str, ServiceSpec]
    eval: EvalSpec = EvalSpec()
    _path: Path = PrivateAttr(default=Path(STACK_FILE))

    _env_names = field_validator("envs", mode="before")(classmethod(_names("env")))
    _service_names = field_validator("services", mode="before")(classmethod(_names("service")))

    @model_validator(mode="before")
    @classmethod
    def _strings(cls, data):
        _no_nul(data)
        return data

    @property
    def path(self) -> Path:
        return self._path

    @property
    def root(self) -> Path:
        return (self._path.resolve().parent / self.stack.root).resolve()

    @property
    def name(self) -> str:
        return self.stack.name

    @property
    def secret_names(self) -> set[str]:
        """Host variables some service declares in `secrets`: passed through, always masked."""
        return {name for svc in self.services.values() for name in svc.secrets}

    def requirements(self, env: str) -> Path:
        spec = self.envs[env]
        return self.root / (spec.requirements or f"envs/{env}/requirements.in")


def selected_envs(stack: Stack, env: str | None, *, everything: bool = False) -> list[str]:
    """One named env, every env, or (by default) the envs of services that can run natively."""
    if env:
        if env not in stack.envs:
            raise StackError(stack.path, [f"unknown env {env!r}; defined envs: {_list(stack.envs)}"],
                             fix="pass one of the envs above to --env")
        return [env]
    if everything:
        return list(stack.envs)
    return list(dict.fromkeys(s.env for s in stack.services.values() if "native" in s.modes and s.env))


def find_stack(start: Path | None = None) -> Path:
    """$DUPLEX_STACK, else stack.toml in the working directory or its parents."""
    if os.environ.get("DUPLEX_STACK"):
        return Path(os.environ["DUPLEX_STACK"]).expanduser()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / STACK_FILE).is_file():
            return folder / STACK_FILE
    return here / STACK_FILE


def load_stack(path: Path | None = None) -> Stack:
    path = Path(path) if path else find_stack()
    try:
        text = read_text(path, limit=2**20, what="stack file")
    except FileNotFoundError:
        raise StackError(path, ["file not found"],
                         fix="run duplex from your project root, or point DUPLEX_STACK at your stack.toml") from None
    except TextFileError as err:
        raise StackError(path, [err.problem], fix=err.fix) from None
    except OSError as exc:
        raise StackError(path, [f"cannot read: {exc.strerror}"],
                         fix="check the path and its permissions (`ls -l` it)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StackError(path, [f"TOML syntax error: {exc}{_quote_line(text, str(exc))}"],
                         fix="fix the line named above") from None
    try:
        stack = Stack.model_validate(data)
    except ValidationError as exc:
        raise StackError(path, [_describe(err) for err in exc.errors()],
                         fix="see docs/stack.md for every key and its type") from None
    problems = check_references(stack)
    if problems:
        raise StackError(path, problems, fix="see docs/stack.md for how services refer to each other")
    stack._path = path
    problems = check_paths(stack, stack.root)
    if problems:
        raise StackError(path, problems, fix="create them, or fix the paths (relative to the project folder: "
                                             "the stack file's, or its [stack] root)")
    return stack


def root_of(path: Path) -> Path:
    """The project folder of a stack file without validating it (stop, status and logs only need
    where `.duplex/` is): its `[stack] root` when it names a folder above, else its own folder."""
    folder = path.resolve().parent
    try:
        root = tomllib.loads(read_text(path, limit=2**20, what="stack file")).get("stack", {}).get("root", ".")
    except (OSError, TextFileError, tomllib.TOMLDecodeError, AttributeError):  # load_stack says what is wrong
        return folder
    return (folder / root).resolve() if isinstance(root, str) and _upward(root) else folder


def project_root() -> Path:
    """The project folder of the stack file (`DUPLEX_STACK`, else stack.toml here or above; its
    `[stack] root` when set): where the project's `.duplex/` state lives, for tasks that need no more
    than that (stop, status, logs, and the CLI's redactor, which reads the project's .env)."""
    return root_of(find_stack())


def _upward(root: str) -> bool:
    """'.' or a folder above ('..', '../..'): a project folder that holds the stack file."""
    return bool(root.strip()) and all(p in ("..", ".") for p in Path(root).parts)


def _inside(what: str, value: str) -> str:
    """A path in the stack file: relative to its folder and inside it (locks and builds are written
    beside these, and the image build context is the project folder)."""
    parts = Path(value).parts
    if not value.strip() or Path(value).is_absolute() or ".." in parts:
        raise ValueError(f"expected {what} inside the project, as a path relative to the stack file's "
                         f"folder, found {value!r}")
    return value


def check_paths(stack: Stack, root: Path) -> list[str]:
    """Paths the stack names that must already exist: what `--reload` watches."""
    problems = []
    for name, svc in stack.services.items():
        for i, folder in enumerate(svc.watch or []):
            if not (root / folder).exists():
                problems.append(f"services.{name}.watch[{i}]: {folder!r} does not exist under {root}")
    return problems


def _quote_line(text: str, message: str) -> str:
    """The offending line itself, so the user need not count."""
    found = re.search(r"at line (\d+)", message)
    lines = text.splitlines()
    if not found or not 0 < int(found.group(1)) <= len(lines):
        return ""
    return f"\n      {found.group(1)} | {lines[int(found.group(1)) - 1]}"


def _describe(err: dict) -> str:
    loc = _loc(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden" and err["loc"][0] == "envs" and err["loc"][-1] == "system":
        return f"{loc}: expected `system_libs` or its older name `system`, found both (keep `system_libs`)"
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (check its spelling; see docs/stack.md)"
    if kind == "missing":
        return f"{loc}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:]
    if not loc:  # a check over the whole file: its message names the key
        return msg
    if "found " in msg:  # our own validators say what they found (a key, not the whole table)
        return f"{loc}: {msg}"
    if kind == "string_pattern_mismatch":
        msg = f"expected {PATTERNS.get(err.get('ctx', {}).get('pattern'), 'another form')}"
    return f"{loc}: {msg}, found {_shown(err['input'])}"


PATTERNS = {NAME.pattern: NAME_RULE, URL.pattern: "an http(s) URL such as 'http://127.0.0.1:4318'",
            r"^[\w.]+:[\w.]+$": "'module:attr', e.g. 'servers.asr.app:app'",
            r"^(cpu|cu\d{3})$": "'cpu' or 'cuXXX', e.g. 'cu126'"}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _loc(parts: tuple) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("list[str]", "dict[str,Dependency]", "str", "int", "float", "bool"):
            continue  # union branch names pydantic adds; not part of the user's key path
        else:
            out += f".{part}" if out else str(part)
    return out


def check_references(stack: Stack) -> list[str]:
    """Cross-references pydantic cannot see: envs, dependencies, cycles, ports, templates."""
    problems: list[str] = []
    names = set(stack.services)
    ports: dict[int, str] = {}
    for name, svc in stack.services.items():
        where = f"services.{name}"
        if svc.env is not None and svc.env not in stack.envs:
            problems.append(f"{where}.env: unknown env {svc.env!r}; defined envs: {_list(stack.envs)}")
        if "native" in svc.modes and svc.env is None:
            problems.append(f"{where}.env: a service that can run natively needs an env")
        if (svc.app is None) == (svc.command is None):
            problems.append(f"{where}: set exactly one of 'app' (module:attr) or 'command'")
        if svc.reload == "warm" and svc.app is None:
            problems.append(f"{where}.reload: 'warm' re-imports an ASGI app, so it needs 'app' (module:attr)")
        if svc.preload is not None and svc.reload != "warm":
            problems.append(f"{where}.preload: only used with reload = 'warm'; add it or remove preload")
        if "container" in svc.modes and not (svc.dockerfile or svc.image):
            problems.append(f"{where}: a service that can run in a container needs 'dockerfile' or 'image'")
        if not svc.modes:
            problems.append(f"{where}.modes: expected at least one of 'native', 'container'")
        for dep in svc.dependencies:
            if dep not in names:
                problems.append(f"{where}.depends_on: unknown service {dep!r}; services: {_list(names)}")
            elif dep == name:
                problems.append(f"{where}.depends_on: a service cannot depend on itself")
        if svc.port in ports:
            problems.append(f"{where}.port: {svc.port} is already used by services.{ports[svc.port]}")
        ports.setdefault(svc.port, name)
        for key, value in svc.environment.items():
            for repo in REVISION.findall(str(value)):
                if repo not in svc.models and repo not in [m.split("@")[0] for m in svc.models]:
                    problems.append(f"{where}.environment.{key}: {{revision:{repo}}} names a model "
                                    f"the service does not declare in `models`")
            for ref, field in TEMPLATE.findall(str(value)):
                if ref not in names:
                    problems.append(f"{where}.environment.{key}: template names unknown service {ref!r}")
                elif field not in TEMPLATE_FIELDS:
                    problems.append(f"{where}.environment.{key}: unknown field {{{ref}.{field}}}; "
                                    f"use one of {', '.join(TEMPLATE_FIELDS)}")
    cycle = find_cycle({n: list(s.dependencies) for n, s in stack.services.items()})
    if cycle:
        problems.append("depends_on: dependency cycle " + " -> ".join(cycle))
    return problems


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _list(items) -> str:
    return ", ".join(sorted(items)) or "(none)"
