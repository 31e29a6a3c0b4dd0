"""Scheme search: several schemes run on one session under one guard; the best one is kept.

A *scheme* (:class:`~onnxprune.pipeline.scheme.Scheme`) is the methods of one guarded run:
channel or sparsity criterion, allocation, recovery, kinds of pruning (``units``), the
per-group cap (``max_ratio``) and the number of steps. ``optimize(..., search=SPACE)`` opens
one session — the model loaded and preprocessed once, the data split once, the original
evaluated and the guard's noise floor measured once — runs every scheme of SPACE's grid on it
toward the same target under the same guard, finishes the best run (latency, report) and
writes it; the report's ``search`` object lists every scheme with its figures.

SPACE is ``"auto"`` (:func:`default_space`) or a mapping ``{key: [values]}`` over
:data:`SEARCH_KEYS` and the kinds' options (``--kind-option`` keys such as ``gain_metric`` or
``sensitivity_metric``, :data:`onnxprune.pipeline.plan.KIND_OPTIONS`); the command line writes
it ``--search KEY=V1,V2`` (repeatable; kinds of one scheme joined by ``+``:
``units=channels,channels+blocks``). A key the space does not name keeps the run's own option
(``--criterion``, ``--recover``, ``--kind-option``, ...).

**Selection is on the guard's data.** Every scheme is judged on the evaluation samples the
guard reads, so the chosen scheme's figure is the best of N measurements on the same samples
and is optimistic; the report says so and names ``onnxprune validate`` on other data as the
unbiased check.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from onnxprune.errors import InputError, InternalError
from onnxprune.pipeline.drop_metric import guard_drop_metric
from onnxprune.pipeline.plan import KIND_OPTIONS
from onnxprune.pipeline.scheme import Scheme, SchemeRun, Session, check_scheme, run_scheme
from onnxprune.pipeline.target import Target
from onnxprune.report.schema import STATUS_OK
from onnxprune.sensitivity.metrics import resolve_drop_metric

__all__ = [
    "SEARCH_KEYS",
    "SchemeRow",
    "default_space",
    "expand_space",
    "parse_space",
    "rank_key",
    "run_search",
    "scheme_row",
    "within_noise",
]

#: the scheme fields a search may vary, with the type of one value
SEARCH_KEYS: dict[str, type] = {
    "criterion": str,
    "allocation": str,
    "recover": str,
    "units": str,
    "max_ratio": float,
    "steps": int,
}
AUTO = "auto"
#: most schemes one search runs (a grid beyond it is bad input: narrow the space)
MAX_SCHEMES = 32
SELECTION_NOTE = (
    "scheme chosen among {count} on the guard's {samples} evaluation samples: its figure is "
    "the best of {count} measured on the same samples and so optimistic; confirm it on other "
    "data (onnxprune validate ORIGINAL PRUNED --data OTHER)"
)
UNRESOLVED_NOTE = (
    "scheme(s) {others} reached the same status with a loss within the guard's noise floor "
    "({floor:.4g}) of the written scheme's: these samples do not tell them apart"
)


def parse_space(space: str | Iterable[str] | Mapping[str, Any] | None) -> dict[str, list] | None:
    """The search space as ``{key: [values]}``, or None for ``"auto"`` (resolved by
    :func:`default_space` once the session knows whether calibration data exists).

    Accepts ``"auto"``, ``"KEY=V1,V2"``, an iterable of such items (``"auto"`` alone), or a
    mapping of keys to a value or a list of values. Keys are :data:`SEARCH_KEYS` or kind
    options (dashes or underscores); in ``units`` values, ``+`` joins the kinds of one scheme;
    a kind option's value is read as JSON when it parses (numbers, true/false), else as text.
    Raises InputError on an unknown key, an empty or repeated key, or a value of the wrong
    type."""
    if space is None:
        return None
    if isinstance(space, str):
        space = [space]
    items: list[tuple[str, Any]]
    if isinstance(space, Mapping):
        items = list(space.items())
    else:
        texts = [str(item).strip() for item in space]
        if any(text.lower() == AUTO for text in texts):
            if len(texts) > 1:
                raise InputError("search: 'auto' is the whole default space; give it alone")
            return None
        items = []
        for text in texts:
            key, sep, values = text.partition("=")
            if not sep or not values.strip():
                raise InputError(f"search expects KEY=V1,V2 or 'auto', got {text!r}")
            items.append((key, values.split(",")))
    parsed: dict[str, list] = {}
    for key, values in items:
        name = str(key).strip().lower().replace("-", "_")
        if name not in SEARCH_KEYS and name not in _kind_option_names():
            raise InputError(
                f"search: unknown key '{key}'; keys: {', '.join(SEARCH_KEYS)} or a kind "
                f"option ({', '.join(sorted(_kind_option_names()))})"
            )
        if name in parsed:
            raise InputError(f"search: key '{name}' given twice; list its values once")
        listed = values if isinstance(values, list | tuple) else [values]
        if not listed:
            raise InputError(f"search: '{name}' lists no value")
        parsed[name] = _values(name, listed)
    if not parsed:
        raise InputError("search: the space names no key")
    return parsed


def _kind_option_names() -> set[str]:
    """Every kind option a registered kind reads (:data:`~onnxprune.pipeline.plan.KIND_OPTIONS`)."""
    return set().union(*KIND_OPTIONS.values())


def _values(name: str, values: Iterable[Any]) -> list:
    """The distinct values of key ``name``, converted to its type (``units``: ``+`` → ``,``;
    a kind option: JSON when it parses, else text)."""
    kind = SEARCH_KEYS.get(name)
    converted: list = []
    for value in values:
        text = str(value).strip()
        if not text:
            raise InputError(f"search: an empty value of '{name}'")
        if kind is None:  # a kind option, read as --kind-option reads it
            item = value if not isinstance(value, str) else _option_value(text)
            if item not in converted:
                converted.append(item)
            continue
        try:
            item: Any = kind(text) if kind is not str else text
        except ValueError:
            raise InputError(
                f"search: '{name}' takes {kind.__name__} values, got {text!r}"
            ) from None
        if name == "units":
            item = ",".join(part.strip() for part in text.split("+"))
        if item not in converted:
            converted.append(item)
    return converted


def default_space(target: Target, has_calibration: bool) -> dict[str, list]:
    """The space of ``"auto"``, per target kind and data.

    * Channel targets (``macs``, ``params``, ``latency``, ``ratio``) with calibration data:
      criterion ``obs`` (second order) and ``taylor`` (first order, gradients) × recovery
      ``lsq`` (readers of removed channels refitted) and ``reconstruct`` (every layer refitted
      to the unpruned model): the two choices whose best differs most between models in this
      project's benchmarks (docs/benchmarks.md).
    * Channel targets without data: allocation ``global`` and ``uniform`` × per-group cap 0.5
      and 0.8 (the data-free criterion is l1 either way).
    * ``sparsity`` with data: the measure of each layer's gain to the outputs that orders the
      layers, ``rel_mse`` and ``std_mse`` (kind option ``gain_metric``). With data every
      candidate is rebuilt by the OBS sweep at the zero counts the loop chose, so the
      criterion does not change the model (measured: three criteria, one model); the order of
      the layers does. Without data only ``magnitude`` is data-free: one scheme."""
    if target.kind == "sparsity":
        if has_calibration:
            return {"gain_metric": ["rel_mse", "std_mse"]}
        return {"criterion": ["magnitude"]}
    if has_calibration:
        return {"criterion": ["obs", "taylor"], "recover": ["lsq", "reconstruct"]}
    return {"allocation": ["global", "uniform"], "max_ratio": [0.5, 0.8]}


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def expand_space(base: Scheme, space: Mapping[str, list]) -> list[Scheme]:
    """Every scheme of the grid: ``base`` with each combination of the space's values (keys
    in the space's order, the last varying fastest; a kind option replaces the base's value of
    that option); duplicates dropped. More than :data:`MAX_SCHEMES` is InputError."""
    keys = list(space)
    count = math.prod(len(space[key]) for key in keys)
    if count > MAX_SCHEMES:
        raise InputError(
            f"search: the space holds {count} schemes, more than {MAX_SCHEMES}; narrow it"
        )
    schemes: list[Scheme] = []
    for values in itertools.product(*(space[key] for key in keys)):
        chosen = dict(zip(keys, values, strict=True))
        fields = {key: value for key, value in chosen.items() if key in SEARCH_KEYS}
        options = {key: value for key, value in chosen.items() if key not in SEARCH_KEYS}
        if options:
            merged = {**dict(base.kind_options), **options}
            fields["kind_options"] = tuple(sorted(merged.items()))
        scheme = replace(base, **fields)
        if scheme not in schemes:
            schemes.append(scheme)
    return schemes


def check_space(
    schemes: list[Scheme],
    keys: Iterable[str],
    target: Target,
    data: Any,
    plan_options: dict | None,
) -> None:
    """Every scheme's option errors before any work (InputError naming the scheme by the
    space's ``keys``)."""
    for scheme in schemes:
        try:
            check_scheme(scheme, target, data, plan_options)
        except InputError as error:
            raise InputError(f"search: scheme {describe(scheme, keys)}: {error}") from None


def describe(scheme: Scheme, keys: Iterable[str]) -> str:
    """``criterion=obs recover=lsq``: the scheme's values of ``keys`` (the space's)."""
    values = scheme_values(scheme)
    return " ".join(f"{key}={values.get(key)}" for key in keys)


def scheme_values(scheme: Scheme) -> dict[str, Any]:
    """Every searchable field of ``scheme`` and its kind options, as plain values (a callable
    recovery by its name; None = the run's default)."""
    values = {key: _plain(getattr(scheme, key)) for key in SEARCH_KEYS}
    values.update(dict(scheme.kind_options))
    return values


@dataclass
class SchemeRow:
    """One scheme's line of the report's ``search`` table.

    ``scheme``: the fields as given (None = left to the defaults); ``methods``: criterion,
    allocation and recovery the run resolved to; ``status``: the run's (``ok``,
    ``guard_not_met``, ``target_not_reached``) or ``not_run`` (``error`` says why);
    ``metric_drop`` is signed by the metric's direction (positive = worse); ``distance``: how
    far the best model's outputs are from the original's on the same data (the search's
    ``distance_metric``, lower is closer); ``progress``: the share of the target's gap the
    best model closed; ``sparsity``: the share of all Conv/ConvTranspose/Gemm/MatMul weights
    that are zero in the best model (runs with weight masks only, else None)."""

    index: int
    scheme: dict[str, Any]
    methods: dict[str, str] | None
    status: str
    metric_after: float | None
    metric_drop: float | None
    distance: float | None
    macs_ratio: float | None
    params_ratio: float | None
    progress: float | None
    seconds: float
    error: str | None = None
    sparsity: float | None = None

    @property
    def ran(self) -> bool:
        return self.status != NOT_RUN

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NOT_RUN = "not_run"


def rank_key(row: SchemeRow) -> tuple:
    """Order of preference, smallest first: schemes that met the target within the guard,
    among them the smallest metric loss, then the smallest distance of the outputs to the
    original's (a label metric such as top-1 ties often on a small held-out set: all schemes
    at 100 %; the distance still tells them apart), then the fewest MACs kept; then the schemes
    that stopped short, the largest share of the target's gap closed first, then the smallest
    loss and distance; a scheme that did not run last. Ties go to the earlier scheme of the
    space (never to run time, which the machine's load decides). A figure that was not
    measured counts as infinite."""
    loss = math.inf if row.metric_drop is None else row.metric_drop
    distance = math.inf if row.distance is None else row.distance
    if not row.ran:
        return (2, 0.0, 0.0, 0.0, row.index)
    if row.status == STATUS_OK:
        macs = row.macs_ratio if row.macs_ratio is not None else 1.0
        return (0, loss, distance, macs, row.index)
    return (1, -(row.progress or 0.0), loss, distance, row.index)


def run_search(
    session: Session,
    schemes: list[Scheme],
    keys: Iterable[str],
    *,
    minutes: float | None = None,
) -> tuple[SchemeRun, dict[str, Any]]:
    """Run ``schemes`` one after the other on ``session`` and return the best run by
    :func:`rank_key` with the report's ``search`` object (``schemes``: one :class:`SchemeRow`
    each, in order; ``chosen``: the winner's index; ``selection``: the selection-bias note;
    ``minutes``: the time limit); progress lines name the schemes by the space's ``keys``. A scheme whose methods do not apply to
    this model (InputError, e.g. a gradient criterion through an op without a gradient rule)
    is recorded as not run and the search goes on; when none ran, the first such error is
    raised. After ``minutes`` no new scheme starts (the rest are recorded as not run)."""
    say, evaluator = session.say, session.evaluator
    keys = list(keys)
    distance_name, drop = resolve_drop_metric(guard_drop_metric(evaluator.metric))
    deadline = None if minutes is None else time.perf_counter() + 60.0 * minutes
    rows: list[SchemeRow] = []
    best: tuple[tuple, SchemeRun, int] | None = None
    first_error: InputError | None = None
    for index, scheme in enumerate(schemes):
        given = scheme_values(scheme)
        if deadline is not None and best is not None and time.perf_counter() > deadline:
            rows.append(_not_run(index, given, f"time limit of {minutes:g} min reached"))
            continue
        say(f"scheme {index + 1}/{len(schemes)}: {describe(scheme, keys)}")
        tick = time.perf_counter()
        try:
            run = run_scheme(session, scheme)
        except InputError as error:
            first_error = first_error or error
            say(f"note: scheme {index + 1} not run: {error}")
            rows.append(_not_run(index, given, str(error), time.perf_counter() - tick))
            continue
        row = scheme_row(index, given, run, session, time.perf_counter() - tick, drop)
        rows.append(row)
        key = rank_key(row)
        if best is None or key < best[0]:
            best = (key, run, index)
    if best is None:
        if first_error is None:  # expand_space never yields an empty grid
            raise InternalError("a scheme search was given no scheme")
        raise first_error
    _, run, chosen = best
    ran = sum(1 for row in rows if row.ran)
    floor = float(evaluator.noise.floor)
    unresolved = within_noise(rows, chosen, floor)
    selection = SELECTION_NOTE.format(count=ran, samples=len(evaluator.evaluation))
    if unresolved:
        others = ", ".join(str(index + 1) for index in unresolved)
        selection += "; " + UNRESOLVED_NOTE.format(others=others, floor=floor)
    search = {
        "schemes": [row.to_dict() for row in rows],
        "chosen": chosen,
        "unresolved": unresolved,
        "distance_metric": distance_name,
        "minutes": minutes,
        "selection": selection,
    }
    return run, search


def within_noise(rows: list[SchemeRow], chosen: int, floor: float) -> list[int]:
    """Indices of the schemes that ran to the chosen one's status class (target met within the
    guard, or not) with a metric loss within ``floor`` (the guard's noise floor) of the chosen
    one's: a difference the guard itself calls noise, so the data did not decide between
    them (the ranking then fell to the distance, the MACs or the grid order)."""
    winner = rows[chosen]
    met = winner.status == STATUS_OK
    if winner.metric_drop is None:
        return []
    return [
        row.index
        for row in rows
        if row.index != chosen
        and row.ran
        and (row.status == STATUS_OK) == met
        and row.metric_drop is not None
        and abs(row.metric_drop - winner.metric_drop) <= floor
    ]


def scheme_row(
    index: int, given: dict, run: SchemeRun, session: Session, seconds: float, drop=None
) -> SchemeRow:
    """The table row of ``run`` (scheme number ``index``, fields ``given``) on ``session``;
    ``drop``: the drop metric of its ``distance`` (None: not measured)."""
    best = run.outcome.best
    evaluator = session.evaluator
    distance = None
    if drop is not None and best.removed:
        distance = evaluator.distance(best.model, drop)
    elif drop is not None:
        distance = 0.0  # nothing removed: the original's own outputs
    return SchemeRow(
        index=index,
        scheme=given,
        methods={
            "criterion": run.criterion,
            "allocation": run.allocation,
            "recovery": run.recovery,
        },
        status=run.outcome.status,
        metric_after=best.metric,
        metric_drop=evaluator.loss(best.metric),
        distance=distance,
        macs_ratio=best.macs / session.macs_before if session.macs_before else None,
        params_ratio=best.params / session.params_before if session.params_before else None,
        progress=run.progress,
        seconds=seconds,
        sparsity=_weight_sparsity(best.model) if "sparsity" in run.kinds else None,
    )


def _weight_sparsity(model) -> float:
    """Σ zeros / Σ weights over the Conv/ConvTranspose/Gemm/MatMul weights of ``model``."""
    from onnxprune.sparsity.measure import weight_sparsity

    layers = weight_sparsity(model)
    total = sum(layer.size for layer in layers)
    return sum(layer.zeros for layer in layers) / total if total else 0.0


def _not_run(index: int, given: dict, why: str, seconds: float = 0.0) -> SchemeRow:
    return SchemeRow(
        index=index,
        scheme=given,
        methods=None,
        status=NOT_RUN,
        metric_after=None,
        metric_drop=None,
        distance=None,
        macs_ratio=None,
        params_ratio=None,
        progress=None,
        seconds=seconds,
        error=why,
    )


def _plain(value: Any) -> Any:
    """A scheme field for JSON: a callable recovery by its name."""
    if callable(value):
        return getattr(value, "__name__", "custom")
    return value
