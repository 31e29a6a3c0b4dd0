"""Options of ``optimize`` and their config file (TOML or YAML).

A config file holds the command's options under their CLI names, dashes or underscores
(``max-drop = 0.5`` or ``max_drop: 0.5``), optionally inside an ``[optimize]`` table. Paths in
it are relative to the file's folder. Precedence: defaults < config file < command-line flags.
A ``[task]`` table (top level or inside ``[optimize]``) holds the detection/segmentation
options: ``name`` (or ``task``) = detect | segment, ``decoder``, ``score-threshold``,
``nms-iou``, ``mask-threshold``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from onnxprune.errors import InputError

PATH_KEYS = ("model", "output", "data", "eval", "report_json", "report_html")
TASK_THRESHOLDS = ("score_threshold", "nms_iou", "mask_threshold")


@dataclass
class OptimizeOptions:
    """Every option of ``onnxprune optimize`` with its default (field names = config keys)."""

    model: str | None = None
    output: str | None = None
    target: str = "macs=0.5"
    data: str | None = None
    eval: str | None = None
    eval_split: float = 0.3
    metric: str | None = None
    task: str | None = None  # detect | segment (onnxprune.evaluate.tasks)
    decoder: str | None = None
    score_threshold: float | None = None
    nms_iou: float | None = None
    mask_threshold: float | None = None
    max_drop: str | None = None  # number (metric's unit), 'Nx' (x noise floor), or default
    noise_sigma: float = 0.01  # relative input noise of the guard's noise floor (0: off)
    synthesize: str = "auto"  # without data: auto | inverted | gaussian inputs
    steps: int = 4
    criterion: str | None = None  # obs with --data, else l1
    allocation: str | None = None  # sensitivity with --data, else global
    recover: str | None = None  # lsq / reconstruct (>= 256 samples) with --data, else none
    units: str | None = None  # kinds of pruning, comma-separated (default: the target's)
    allow_norm_stats: bool = True  # prune groups feeding LayerNorm/GroupNorm statistics
    allow_output_change: bool = False  # let a graph output's width follow the pruning
    attention_unit: str = "head"  # head: whole heads go; head_dim: every head narrower
    max_ratio: float = 0.8
    round_to: int | None = None  # the provider's channel block (onnxprune.defaults)
    ignore: list[str] = field(default_factory=list)
    ratio_for: dict[str, float] = field(default_factory=dict)
    kind_options: dict[str, Any] = field(default_factory=dict)  # a kind's own options
    search: list[str] | dict[str, Any] = field(default_factory=list)  # KEY=V1,V2 | auto
    search_minutes: float | None = None  # no scheme of a search starts after this
    input_shape: dict[str, list[int]] = field(default_factory=dict)
    provider: str = "cpu"
    batch_size: int = 64
    max_eval_samples: int | None = None
    seed: int = 0
    force: bool = False
    report_json: str | None = None
    report_html: str | None = None
    json: bool = False
    quiet: bool = False

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def normalize_key(key: str) -> str:
    """``max-drop`` / ``max_drop`` / ``MAX_DROP`` -> ``max_drop``; ``input-shapes`` and
    ``eval-data`` aliases map to their option."""
    name = str(key).strip().lower().replace("-", "_")
    return {"input_shapes": "input_shape", "eval_data": "eval", "out": "output"}.get(name, name)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a mapping of options with
    normalised keys; unknown keys and unreadable files raise InputError."""
    source = Path(path)
    try:
        text = source.read_text()
    except OSError as error:
        raise InputError(f"cannot read config '{source}': {error.strerror or error}") from None
    suffix = source.suffix.lower()
    if suffix == ".toml":
        raw = _parse_toml(text, source)
    elif suffix in (".yaml", ".yml"):
        raw = _parse_yaml(text, source)
    else:
        raise InputError(f"config '{source}': expected a .toml, .yaml or .yml file")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(f"config '{source}': expected a mapping of options at the top level")
    task_table = raw.get("task") if isinstance(raw.get("task"), dict) else None
    if isinstance(raw.get("optimize"), dict):
        raw = raw["optimize"]
    raw = _flatten_task(dict(raw), task_table, source)
    known = set(OptimizeOptions.names())
    options: dict[str, Any] = {}
    for key, value in raw.items():
        name = normalize_key(key)
        if name not in known:
            raise InputError(f"config '{source}': unknown option '{key}'")
        if name in PATH_KEYS and isinstance(value, str):
            value = str(source.parent / value) if not Path(value).is_absolute() else value
        options[name] = value
    return options


def _flatten_task(raw: dict[str, Any], outer: dict | None, source: Path) -> dict[str, Any]:
    """Options of a ``[task]`` table moved to the top level (``name`` becomes ``task``)."""
    table = raw.pop("task") if isinstance(raw.get("task"), dict) else outer
    if table is None:
        return raw
    for key, value in table.items():
        name = normalize_key(key)
        name = "task" if name == "name" else name
        if name not in ("task", "decoder", *TASK_THRESHOLDS):
            raise InputError(f"config '{source}': unknown option '{key}' in [task]")
        raw[name] = value
    return raw


def _parse_toml(text: str, source: Path) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise InputError("TOML config needs Python >= 3.11 or the 'tomli' package") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"config '{source}': invalid TOML: {error}") from None


def _parse_yaml(text: str, source: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(
            f"config '{source}': invalid YAML: {' '.join(str(error).split())}"
        ) from None


def merge_options(config: dict[str, Any], flags: dict[str, Any]) -> OptimizeOptions:
    """Defaults, overridden by ``config``, overridden by the flags that were given (not None,
    not empty, not False). Values are checked and converted to the fields' types."""
    merged: dict[str, Any] = {}
    for source in (config, flags):
        for key, value in source.items():
            name = normalize_key(key)
            explicit_off = value is False and getattr(OptimizeOptions(), name, False) is True
            empty = value is None or value == () or value == [] or value == {}
            if empty or (value is False and not explicit_off):
                continue
            merged[name] = value
    unknown = set(merged) - set(OptimizeOptions.names())
    if unknown:
        raise InputError(f"unknown option(s): {', '.join(sorted(unknown))}")
    options = OptimizeOptions()
    for name, value in merged.items():
        setattr(options, name, _convert(name, value, getattr(options, name)))
    return options


def _convert(name: str, value: Any, default: Any) -> Any:
    """Coerce a config or flag value to the type of the option's default."""
    label = name.replace("_", "-")
    try:
        if name == "ignore":
            return [value] if isinstance(value, str) else [str(v) for v in value]
        if name == "ratio_for":
            return _ratio_for(value)
        if name == "input_shape":
            return _input_shapes(value)
        if name == "kind_options":
            return parse_kind_options(value)
        if name == "search":
            return _search(value)
        if name == "search_minutes":
            return float(value)
        if name in ("max_eval_samples", "round_to"):
            return int(value)
        if name in TASK_THRESHOLDS:
            return float(value)
        if name == "max_drop":
            text = str(value).strip()
            return text if text.lower().endswith("x") else float(text)
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(value, dict | list):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise InputError(f"option {label}: invalid value {value!r}") from None


def _ratio_for(value: Any) -> dict[str, float]:
    from onnxprune.option_text import parse_ratio_for

    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    items = [value] if isinstance(value, str) else list(value)
    return parse_ratio_for(tuple(str(v) for v in items))


def parse_kind_options(value: Any) -> dict[str, Any]:
    """A mapping (config file) or ``KEY=VALUE`` strings (flags) of kind options; a value is
    read as JSON when it parses (numbers, true/false, null), else kept as text."""
    if isinstance(value, dict):
        return {normalize_key(k): v for k, v in value.items()}
    items = [value] if isinstance(value, str) else list(value)
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError
        try:
            options[normalize_key(key)] = json.loads(text)
        except json.JSONDecodeError:
            options[normalize_key(key)] = text.strip()
    return options


def _input_shapes(value: Any) -> dict[str, list[int]]:
    from onnxprune.option_text import parse_input_shapes

    if isinstance(value, dict):
        return {str(k): [int(d) for d in v] for k, v in value.items()}
    items = [value] if isinstance(value, str) else list(value)
    return parse_input_shapes(tuple(str(v) for v in items))


def _search(value: Any) -> list[str] | dict[str, Any]:
    """``search`` from a flag or a config file: ``"auto"``, a list of ``KEY=V1,V2`` items, or a
    table ``{key: [values]}`` (read by :func:`onnxprune.pipeline.search.parse_space`)."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]
