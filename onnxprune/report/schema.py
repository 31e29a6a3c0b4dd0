"""The optimize report: a versioned, JSON-ready record of one ``optimize`` run.

The schema is documented in ``docs/report-schema.md``; :data:`SCHEMA_VERSION` changes when a
key is removed or changes meaning (adding keys keeps the version). :func:`validate_report`
checks that a mapping has every required key with the documented type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

STATUS_OK = "ok"
STATUS_GUARD_NOT_MET = "guard_not_met"
STATUS_TARGET_NOT_REACHED = "target_not_reached"

STEP_KEPT = "kept"
STEP_ROLLED_BACK = "rolled_back"


@dataclass
class StepRecord:
    """One pruning attempt: kept, or rolled back because it broke the guard.

    ``step`` is the planned step it belongs to (1-based), ``attempt`` counts tries within it;
    ``kind`` is ``full``, ``halved``, ``protected`` or ``correction`` (extra step to reach a
    measured target). ``macs``/``params`` are counted on the candidate model, ``metric`` is
    measured on the evaluation data and ``drop`` = metric of the original - ``metric``.
    """

    index: int
    step: int
    attempt: int
    kind: str
    status: str
    macs: int
    macs_estimated: int
    params: int
    metric: float | None
    drop: float | None
    removed_clusters: int
    removed_items: dict[str, int] = field(default_factory=dict)
    groups_changed: list[str] = field(default_factory=list)
    protected_groups: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    reason: str | None = None
    seconds: float = 0.0


@dataclass
class GroupWidth:
    """Channels of one group's source layer(s) before and after pruning."""

    index: int
    name: str
    sources: list[str]
    channels_before: int
    channels_after: int
    width: int
    blocked: bool
    protected: bool
    #: the source layers' output channels removed (original numbering), to repeat the cut
    removed_channels: list[int] = field(default_factory=list)


@dataclass
class Report:
    """Everything an ``optimize`` run measured and decided (see docs/report-schema.md)."""

    status: str
    reason: str | None
    input_model: str | None
    output_model: str | None
    target: str
    target_kind: str
    target_value: float
    target_met: bool
    metric_name: str
    metric_source: str
    metric_before: float | None
    metric_after: float | None
    metric_drop: float | None
    max_drop: float
    accuracy_measured: bool
    macs_before: int
    macs_after: int
    macs_after_estimated: int
    params_before: int
    params_after: int
    file_bytes_before: int
    file_bytes_after: int
    latency_ms_before: float | None
    latency_ms_after: float | None
    provider: str
    latency: dict[str, Any] | None
    criterion: str
    data: dict[str, Any]
    groups: list[GroupWidth]
    steps: list[StepRecord]
    options: dict[str, Any] = field(default_factory=dict)
    guard: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    tool_version: str = ""
    task: dict[str, Any] | None = None  # detection/segmentation metrics (report/task.py)
    task_grid_png: bytes | None = field(default=None, repr=False)  # HTML only, not in JSON
    search: dict[str, Any] | None = None  # optimize(search=...): every scheme (pipeline/search)

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    @property
    def params_ratio(self) -> float:
        return self.params_after / self.params_before if self.params_before else 1.0

    @property
    def latency_ratio(self) -> float | None:
        if self.latency_ms_before and self.latency_ms_after is not None:
            return self.latency_ms_after / self.latency_ms_before
        return None

    @property
    def groups_pruned(self) -> int:
        return sum(1 for g in self.groups if g.channels_after < g.channels_before)

    @property
    def groups_protected(self) -> int:
        return sum(1 for g in self.groups if g.protected)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (plain types only), keys in documented order."""
        data = asdict(self)
        data.pop("task_grid_png")
        if data["task"] is None:
            data.pop("task")
        if data["search"] is None:
            data.pop("search")
        ordered: dict[str, Any] = {
            "schema_version": data.pop("schema_version"),
            "tool": "onnxprune",
            "tool_version": data.pop("tool_version"),
        }
        ordered.update(data)
        ordered["macs_ratio"] = self.macs_ratio
        ordered["params_ratio"] = self.params_ratio
        ordered["latency_ratio"] = self.latency_ratio
        ordered["groups_total"] = len(self.groups)
        ordered["groups_pruned"] = self.groups_pruned
        ordered["groups_protected"] = self.groups_protected
        ordered["steps_kept"] = sum(1 for s in self.steps if s.status == STEP_KEPT)
        ordered["steps_rolled_back"] = sum(1 for s in self.steps if s.status == STEP_ROLLED_BACK)
        return _plain(ordered)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers; NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


NUMBER = (int, float)
OPTIONAL_NUMBER = (int, float, type(None))

REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "tool": (str,),
    "tool_version": (str,),
    "status": (str,),
    "reason": (str, type(None)),
    "input_model": (str, type(None)),
    "output_model": (str, type(None)),
    "target": (str,),
    "target_kind": (str,),
    "target_value": NUMBER,
    "target_met": (bool,),
    "metric_name": (str,),
    "metric_source": (str,),
    "metric_before": OPTIONAL_NUMBER,
    "metric_after": OPTIONAL_NUMBER,
    "metric_drop": OPTIONAL_NUMBER,
    "max_drop": NUMBER,
    "accuracy_measured": (bool,),
    "macs_before": (int,),
    "macs_after": (int,),
    "macs_after_estimated": (int,),
    "macs_ratio": NUMBER,
    "params_before": (int,),
    "params_after": (int,),
    "params_ratio": NUMBER,
    "file_bytes_before": (int,),
    "file_bytes_after": (int,),
    "latency_ms_before": OPTIONAL_NUMBER,
    "latency_ms_after": OPTIONAL_NUMBER,
    "latency_ratio": OPTIONAL_NUMBER,
    "provider": (str,),
    "latency": (dict, type(None)),
    "criterion": (str,),
    "data": (dict,),
    "groups": (list,),
    "groups_total": (int,),
    "groups_pruned": (int,),
    "groups_protected": (int,),
    "steps": (list,),
    "steps_kept": (int,),
    "steps_rolled_back": (int,),
    "options": (dict,),
    "seconds": (dict,),
    "notes": (list,),
}

STEP_KEYS: dict[str, tuple[type, ...]] = {
    "index": (int,),
    "step": (int,),
    "attempt": (int,),
    "kind": (str,),
    "status": (str,),
    "macs": (int,),
    "macs_estimated": (int,),
    "params": (int,),
    "metric": OPTIONAL_NUMBER,
    "drop": OPTIONAL_NUMBER,
    "removed_clusters": (int,),
    "groups_changed": (list,),
    "protected_groups": (list,),
    "latency_ms": OPTIONAL_NUMBER,
    "reason": (str, type(None)),
    "seconds": NUMBER,
}

GROUP_KEYS: dict[str, tuple[type, ...]] = {
    "index": (int,),
    "name": (str,),
    "sources": (list,),
    "channels_before": (int,),
    "channels_after": (int,),
    "width": (int,),
    "blocked": (bool,),
    "protected": (bool,),
}
#: group keys added after schema version 1 was published: checked when present
LATER_GROUP_KEYS: dict[str, tuple[type, ...]] = {"removed_channels": (list,)}


#: the optional ``search`` object of ``optimize(search=...)`` (checked when present)
SEARCH_KEYS: dict[str, tuple[type, ...]] = {
    "space": (dict,),
    "schemes": (list,),
    "chosen": (int,),
    "distance_metric": (str,),
    "minutes": OPTIONAL_NUMBER,
    "selection": (str,),
}
SCHEME_ROW_KEYS: dict[str, tuple[type, ...]] = {
    "index": (int,),
    "scheme": (dict,),
    "methods": (dict, type(None)),
    "status": (str,),
    "metric_after": OPTIONAL_NUMBER,
    "metric_drop": OPTIONAL_NUMBER,
    "distance": OPTIONAL_NUMBER,
    "macs_ratio": OPTIONAL_NUMBER,
    "params_ratio": OPTIONAL_NUMBER,
    "progress": OPTIONAL_NUMBER,
    "seconds": NUMBER,
    "error": (str, type(None)),
}
#: search keys added after the search object was first published: checked when present
LATER_SEARCH_KEYS: dict[str, tuple[type, ...]] = {"unresolved": (list,)}
#: scheme row keys added after the search object was first published: checked when present
LATER_SCHEME_ROW_KEYS: dict[str, tuple[type, ...]] = {"sparsity": OPTIONAL_NUMBER}


def validate_report(data: dict[str, Any]) -> list[str]:
    """Problems of a report mapping against the schema (empty list = valid)."""
    problems = _check(data, REQUIRED_KEYS, "")
    if data.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {data.get('schema_version')!r}, not {SCHEMA_VERSION}")
    for position, step in enumerate(data.get("steps") or []):
        problems += _check(step, STEP_KEYS, f"steps[{position}].")
        if step.get("status") not in (STEP_KEPT, STEP_ROLLED_BACK):
            problems.append(f"steps[{position}].status is {step.get('status')!r}")
    for position, group in enumerate(data.get("groups") or []):
        problems += _check(group, GROUP_KEYS, f"groups[{position}].")
        later = {key: types for key, types in LATER_GROUP_KEYS.items() if key in group}
        problems += _check(group, later, f"groups[{position}].")
    if data.get("status") not in (STATUS_OK, STATUS_GUARD_NOT_MET, STATUS_TARGET_NOT_REACHED):
        problems.append(f"status is {data.get('status')!r}")
    if "search" in data:
        problems += _search_problems(data["search"])
    return problems


def _search_problems(search: Any) -> list[str]:
    """Problems of the ``search`` object: its keys, each scheme row's, and a ``chosen`` that
    names a scheme that ran."""
    if not isinstance(search, dict):
        return [f"search has type {type(search).__name__}"]
    problems = _check(search, SEARCH_KEYS, "search.")
    later = {key: types for key, types in LATER_SEARCH_KEYS.items() if key in search}
    problems += _check(search, later, "search.")
    rows = search.get("schemes") if isinstance(search.get("schemes"), list) else []
    for position, row in enumerate(rows):
        problems += _check(row, SCHEME_ROW_KEYS, f"search.schemes[{position}].")
        later = {key: types for key, types in LATER_SCHEME_ROW_KEYS.items() if key in row}
        problems += _check(row, later, f"search.schemes[{position}].")
    chosen = search.get("chosen")
    ran = {row.get("index") for row in rows if row.get("status") != "not_run"}
    if isinstance(chosen, int) and chosen not in ran:
        problems.append(f"search.chosen is {chosen}, not a scheme that ran")
    return problems


def _check(data: dict[str, Any], keys: dict[str, tuple[type, ...]], prefix: str) -> list[str]:
    problems = []
    for key, types in keys.items():
        if key not in data:
            problems.append(f"missing key {prefix}{key}")
            continue
        value = data[key]
        # bool is an int subclass: only accept it where bool is documented.
        if isinstance(value, bool) and bool not in types:
            problems.append(f"{prefix}{key} is a bool")
        elif not isinstance(value, types):
            problems.append(f"{prefix}{key} has type {type(value).__name__}")
    return problems
