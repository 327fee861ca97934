"""Register YAML env specs with Gymnasium: one file per env, so a user adds an env by adding a file.

A spec file is a YAML mapping::

    id: jacrl/DigitsBandit-v0                # registered as written
    entry_point: jacrl.envs.classification_bandit:ClassificationBandit   # "module:Class", lazy
    kwargs: {dataset: digits}                # optional, passed to the class
    max_episode_steps: null                  # optional, a positive integer adds TimeLimit
    reward_threshold: 0.8                    # optional, the "solved" mean return
    description: ...                         # optional, one line for `jacrl envs`

Folders are read in this order: the built-in specs (``jacrl/_data/envs`` inside an installed
wheel, else the repository's top-level ``envs/`` next to an editable checkout), then each folder
in ``$JACRL_ENV_SPECS`` (``os.pathsep``-separated), then the folders passed to
:func:`register_envs`. Two files may not claim the same id.

``import jacrl`` registers them with ``on_error="warn"``: a broken ``$JACRL_ENV_SPECS`` folder or
spec file is reported (a ``UserWarning`` naming it) and the rest is registered, so one
bad file cannot make ``import jacrl`` — and with it every ``jacrl`` command, ``--help`` included —
fail. An explicit :func:`register_envs` call raises.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import gymnasium as gym
import yaml
from gymnasium.envs.registration import EnvSpec

from jacrl.common.errors import ConfigError
from jacrl.common.resources import data_dir

__all__ = [
    "SPEC_DIR_ENV",
    "EnvSpecFile",
    "builtin_spec_dir",
    "check_env_id",
    "list_registered",
    "load_spec",
    "register_envs",
    "spec_dirs",
]

SPEC_DIR_ENV = "JACRL_ENV_SPECS"
_REQUIRED = ("id", "entry_point")
_OPTIONAL = ("kwargs", "max_episode_steps", "reward_threshold", "description")
_ENTRY_POINT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

#: what :func:`register_envs` does with a broken folder or file: raise, or warn and skip it
OnError = Literal["raise", "warn"]


@dataclass(frozen=True)
class EnvSpecFile:
    """One parsed spec file, and the file it came from (for error messages and `jacrl envs`)."""

    id: str
    entry_point: str
    source: Path
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    reward_threshold: float | None = None
    description: str = ""


# id -> spec registered by this module; makes register_envs idempotent and answers list_registered
_REGISTERED: dict[str, EnvSpecFile] = {}


def builtin_spec_dir() -> Path:
    """The folder of the specs shipped with jacrl (wheel layout first, then the checkout's)."""
    try:
        return data_dir("envs")
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from exc


def _report(error: ConfigError, on_error: OnError) -> None:
    """Raise ``error``, or (``on_error="warn"``) warn with it and go on."""
    if on_error == "raise":
        raise error
    warnings.warn(f"{error}; skipped, the other env specs are registered", UserWarning, 3)


def spec_dirs(
    extra: Iterable[str | os.PathLike[str]] = (), on_error: OnError = "raise"
) -> list[Path]:
    """The folders :func:`register_envs` reads, in order (see the module docstring)."""
    from_env = [p for p in os.environ.get(SPEC_DIR_ENV, "").split(os.pathsep) if p]
    dirs = [builtin_spec_dir()]
    for origin, paths in ((f"${SPEC_DIR_ENV}", from_env), ("register_envs()", list(extra))):
        for p in paths:
            folder = Path(p).expanduser()
            if not folder.is_dir():
                problem = ConfigError(
                    f"env spec folder {folder} (from {origin}) is not a directory"
                )
                _report(problem, on_error)
                continue
            dirs.append(folder)
    return dirs


def _field_error(path: Path, name: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: field '{name}' {problem}")


def _check_id(path: Path, value: Any) -> str:
    if not isinstance(value, str):
        raise _field_error(path, "id", f"must be a string like 'jacrl/Name-v0', got {value!r}")
    try:
        gym.envs.registration.parse_env_id(value)
    except gym.error.Error as exc:
        raise _field_error(path, "id", f"is not a valid Gymnasium id: {exc}") from None
    return value


def _check_number(path: Path, name: str, value: Any, integer: bool) -> Any:
    if value is None:
        return None
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and integer:
        ok = value > 0
    if ok and not integer:
        ok = math.isfinite(value)
    if not ok:
        wanted = "a positive integer" if integer else "a finite number"
        raise _field_error(path, name, f"must be {wanted} or null, got {value!r}")
    return value if integer else float(value)


def load_spec(path: str | os.PathLike[str]) -> EnvSpecFile:
    """Parse and validate one spec file.

    :raises ConfigError: naming the file and the offending field.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read env spec: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: an env spec must be a YAML mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        accepted = ", ".join((*_REQUIRED, *_OPTIONAL))
        raise _field_error(path, str(unknown[0]), f"is not a spec field; accepted: {accepted}")
    for name in _REQUIRED:
        if name not in data:
            raise _field_error(path, name, "is required")
    entry_point = data["entry_point"]
    if not isinstance(entry_point, str) or not _ENTRY_POINT_RE.match(entry_point):
        raise _field_error(path, "entry_point", f"must be 'module:Class', got {entry_point!r}")
    kwargs = data.get("kwargs") or {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise _field_error(path, "kwargs", f"must be a mapping of names to values, got {kwargs!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise _field_error(path, "description", f"must be a string, got {description!r}")
    return EnvSpecFile(
        id=_check_id(path, data["id"]),
        entry_point=entry_point,
        source=path.resolve(),
        kwargs=dict(kwargs),
        max_episode_steps=_check_number(
            path, "max_episode_steps", data.get("max_episode_steps"), integer=True
        ),
        reward_threshold=_check_number(
            path, "reward_threshold", data.get("reward_threshold"), integer=False
        ),
        description=description,
    )


def _spec_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    except OSError as exc:
        raise ConfigError(f"env spec folder {folder} cannot be read: {exc}") from exc


def register_envs(
    extra_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
    on_error: OnError = "raise",
) -> list[str]:
    """Register every spec with Gymnasium; safe to call again (``import jacrl`` calls it).

    A spec already registered from the same file is re-registered only if the file changed.

    :param extra_dirs: more spec folders, read after the built-in ones and ``$JACRL_ENV_SPECS``.
    :param on_error: ``"raise"`` at the first broken folder or file, or ``"warn"``: an
        ``UserWarning`` for each, and register the rest (what ``import jacrl`` does).
    :return: the ids the specs define, in registration order.
    :raises ConfigError: for a malformed file, or an id claimed by two files or by another package.
    """
    if on_error not in get_args(OnError):
        raise ConfigError(f"on_error={on_error!r}: expected one of {get_args(OnError)}")
    if isinstance(extra_dirs, (str, os.PathLike)):
        extra_dirs = [extra_dirs]
    specs: dict[str, EnvSpecFile] = {}
    for folder in spec_dirs(extra_dirs, on_error):
        try:
            paths = _spec_files(folder)
        except ConfigError as exc:
            _report(exc, on_error)
            continue
        for path in paths:
            try:
                spec = load_spec(path)
                if spec.id in specs:
                    raise ConfigError(
                        f"{path}: field 'id' {spec.id!r} is already defined by "
                        f"{specs[spec.id].source}"
                    )
            except ConfigError as exc:
                _report(exc, on_error)
                continue
            specs[spec.id] = spec
    registered = []
    for spec in specs.values():
        try:
            _register(spec)
        except ConfigError as exc:
            _report(exc, on_error)
            continue
        registered.append(spec.id)
    return registered


def _register(spec: EnvSpecFile) -> None:
    previous = _REGISTERED.get(spec.id)
    if previous == spec:
        return
    if previous is not None and previous.source != spec.source:
        raise ConfigError(
            f"{spec.source}: field 'id' {spec.id!r} is already registered from {previous.source}"
        )
    if previous is None and spec.id in gym.registry:
        raise ConfigError(
            f"{spec.source}: field 'id' {spec.id!r} is already registered by another package"
        )
    gym.registry.pop(spec.id, None)  # an edited file replaces its old version without a warning
    gym.register(
        id=spec.id,
        entry_point=spec.entry_point,
        kwargs=spec.kwargs,
        max_episode_steps=spec.max_episode_steps,
        reward_threshold=spec.reward_threshold,
    )
    _REGISTERED[spec.id] = spec


def list_registered() -> list[dict[str, Any]]:
    """The specs jacrl has registered, sorted by id, as plain dicts (what `jacrl envs` prints).

    Keys: the fields of :class:`EnvSpecFile` (``id``, ``entry_point``, ``source`` — the spec file
    — ``kwargs``, ``max_episode_steps``, ``reward_threshold``, ``description``); copies, so
    editing one does not change the registry.
    """
    return [asdict(_REGISTERED[env_id]) for env_id in sorted(_REGISTERED)]


def check_env_id(env_id: str) -> EnvSpec:
    """The Gymnasium spec of ``env_id``, or a :class:`ConfigError` that says where ids are listed.

    Every entry point that takes an env id (agents, ``jacrl train``, ``jacrl compare``) asks
    here, so an unknown id gets the same answer everywhere.
    """
    try:
        return gym.spec(env_id)
    except gym.error.Error as exc:
        raise ConfigError(
            f"unknown env id '{env_id}' ({exc}); run `jacrl envs` to list jacrl's own ids "
            "(registered on `import jacrl`); any Gymnasium id (e.g. CartPole-v1) works too"
        ) from exc
