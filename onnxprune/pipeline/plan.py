"""One pruning plan over every kind of removal: channels, weight masks, blocks.

A *plan* is a frozenset of *items*. A channel item is a cluster id (``int``) of the channel
analysis; an item of any other kind is a tuple whose first element is the kind's name (for
example ``("sparsity", "conv3", 2)``). The guarded loop (:mod:`~onnxprune.pipeline.loop`) only
grows and shrinks that set; it never knows which kinds it holds.

A kind is a :class:`PlanKind`: its name, its place in the build order and ``apply(model,
items)``, which realizes its items on the model built by the kinds before it. Kinds are
registered by name (:func:`register_kind`) with a factory that, given the run's
:class:`PlanContext`, returns the kind and the :class:`~onnxprune.allocate.schedule.RemovalUnit`
candidates it offers. :meth:`Plan.build` applies the kinds in ``order``: structural kinds first
(channels 0, blocks 10), weight masks last (sparsity 20), so masks are computed on the weights
that remain.

Contract of ``apply``: a pure function of (model, items) — the same items give the same model —
returning a checked model with the original input and output names.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from onnx import ModelProto

from onnxprune.allocate.schedule import RemovalUnit
from onnxprune.errors import InputError

CHANNELS = "channels"


def item_kind(item: Hashable) -> str:
    """The kind an item belongs to: the tuple's first element, ``channels`` for an int."""
    return str(item[0]) if isinstance(item, tuple) else CHANNELS


@dataclass
class PlanKind:
    """One kind of removal: how its items become a model, and how it is reported.

    * ``apply(model, items) -> ModelProto`` — realize ``items`` (all of this kind) on ``model``;
    * ``order`` — build order (lower first);
    * ``group_names`` — display name of each unit group key (step records, protection);
    * ``describe(items) -> dict`` — the report's summary of a set of this kind's items;
    * ``estimate_macs(items) -> float`` — MACs the items remove, in the channel analysis'
      estimated units (0 when absent: e.g. masks, which save no MACs on dense runtimes);
    * ``apply_quick(model, items)`` — the same removal without repair (recovery): a graph
      rewrite that reads no data, fast enough to be called a few times per step. The loop
      ranks the groups of a failed step on it, and counts (MACs, parameters) what a removal
      takes away to size its steps (``apply`` when absent: then steps are sized on the
      estimates, :meth:`Plan.counts_quickly`);
    * ``summarize(before, after) -> dict`` — figures measured on the model before the loop and
      the written model, merged into ``describe``'s summary (e.g. per-layer weight sparsity).
    """

    name: str
    apply: Callable[[ModelProto, frozenset], ModelProto]
    order: int = 0
    group_names: dict[Hashable, str] = field(default_factory=dict)
    describe: Callable[[frozenset], dict[str, Any]] | None = None
    estimate_macs: Callable[[frozenset], float] | None = None
    apply_quick: Callable[[ModelProto, frozenset], ModelProto] | None = None
    summarize: Callable[[ModelProto, ModelProto], dict[str, Any]] | None = None


@dataclass
class PlanContext:
    """What a kind's factory may read: the models, the analysis, data, scores and options.

    ``options`` holds the run's keyword options (``max_ratio``, ``round_to``, ``ignore``,
    ``ratio_for``, ``seed``, kind-specific ones such as ``sparsity_for``) so that adding a kind
    never changes this class.
    """

    original: ModelProto
    prepared: ModelProto
    analysis: Any
    calibration: Any
    target: Any
    input_shapes: dict[str, list[int]]
    progress: Callable[[str], None]
    options: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass
class KindSetup:
    """A kind ready for a run: the kind, its ranked candidate units, notes for the report and
    the wall time of its phases (``seconds``, merged into the report's timings)."""

    kind: PlanKind
    units: list[RemovalUnit]
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


KindFactory = Callable[[PlanContext], KindSetup]
KIND_FACTORIES: dict[str, KindFactory] = {}
#: The kind-specific option names each kind reads from ``PlanContext.options`` (besides the
#: run's shared ones), so that a misspelt option is bad input instead of silently unused.
KIND_OPTIONS: dict[str, frozenset[str]] = {}


def register_kind(name: str, options: Iterable[str] = ()) -> Callable[[KindFactory], KindFactory]:
    """Decorator registering the factory of the plan kind ``name`` and the kind-specific
    option names it reads (``options``)."""

    def decorate(factory: KindFactory) -> KindFactory:
        KIND_FACTORIES[name] = factory
        KIND_OPTIONS[name] = frozenset(options)
        return factory

    return decorate


def check_kind_options(kinds: Iterable[str], options: dict[str, Any] | None) -> None:
    """Every key of ``options`` is read by one of ``kinds``; else :class:`InputError` naming
    the known ones."""
    kinds = list(kinds)
    known = set().union(*(KIND_OPTIONS.get(kind, frozenset()) for kind in kinds))
    unknown = sorted(set(options or {}) - known)
    if unknown:
        raise InputError(
            f"unknown kind option(s) {', '.join(unknown)} for {', '.join(kinds)}; known: "
            f"{', '.join(sorted(known)) or '(none)'}"
        )


def setup_kinds(names: Iterable[str], context: PlanContext) -> list[KindSetup]:
    """Run the factories of ``names`` (unknown names are bad input)."""
    setups = []
    for name in names:
        if name not in KIND_FACTORIES:
            raise InputError(
                f"unknown kind of pruning '{name}'; known: {', '.join(sorted(KIND_FACTORIES))}"
            )
        setups.append(KIND_FACTORIES[name](context))
    return setups


def merge_units(orders: list[list[RemovalUnit]]) -> list[RemovalUnit]:
    """One ranking from several kinds' rankings: lowest score first, each input order kept.

    Meaningful only when the kinds' scores share a unit (e.g. measured drop per MAC); with one
    kind it returns that kind's order unchanged.
    """
    if len(orders) == 1:
        return list(orders[0])
    return list(heapq.merge(*orders, key=lambda unit: unit.score))


class Plan:
    """The kinds of one run and the model every set of items stands for."""

    def __init__(self, base: ModelProto, kinds: list[PlanKind]) -> None:
        self.base = base
        self.kinds = sorted(kinds, key=lambda kind: kind.order)
        self._by_name = {kind.name: kind for kind in self.kinds}

    def split(self, removed: Iterable[Hashable]) -> dict[str, frozenset]:
        """Items by kind; an item of a kind this plan does not hold is our bug."""
        parts: dict[str, set] = {}
        for item in removed:
            parts.setdefault(item_kind(item), set()).add(item)
        unknown = set(parts) - set(self._by_name)
        if unknown:
            raise RuntimeError(f"plan holds items of unknown kinds {sorted(unknown)}")
        return {name: frozenset(items) for name, items in parts.items()}

    def build(self, removed: Iterable[Hashable]) -> ModelProto:
        """The base model with every kind's items applied, in build order."""
        return self._build(removed, quick=False)

    def build_quick(self, removed: Iterable[Hashable]) -> ModelProto:
        """:meth:`build` without repair (each kind's ``apply_quick`` where it has one)."""
        return self._build(removed, quick=True)

    def _build(self, removed: Iterable[Hashable], quick: bool) -> ModelProto:
        parts = self.split(removed)
        model = self.base
        for kind in self.kinds:
            items = parts.get(kind.name)
            if items:
                apply = kind.apply_quick if quick and kind.apply_quick else kind.apply
                model = apply(model, items)
        return model

    @property
    def counts_quickly(self) -> bool:
        """Every kind has a repair-free ``apply_quick``, so :meth:`build_quick` is cheap
        enough to count the MACs and parameters of candidate removals."""
        return all(kind.apply_quick is not None for kind in self.kinds)

    @property
    def group_names(self) -> dict[Hashable, str]:
        names: dict[Hashable, str] = {}
        for kind in self.kinds:
            names.update(kind.group_names)
        return names

    def counts(self, removed: Iterable[Hashable]) -> dict[str, int]:
        """Number of items of each kind in ``removed``."""
        return {name: len(items) for name, items in self.split(removed).items()}

    def estimated_macs_removed(self, removed: Iterable[Hashable]) -> float:
        """Sum of every kind's MAC estimate for its items in ``removed``."""
        parts = self.split(removed)
        return sum(
            kind.estimate_macs(parts[kind.name])
            for kind in self.kinds
            if kind.estimate_macs is not None and kind.name in parts
        )

    def describe(
        self,
        removed: Iterable[Hashable],
        before: ModelProto | None = None,
        after: ModelProto | None = None,
    ) -> dict[str, Any]:
        """Per-kind report summaries of ``removed`` (kinds without ``describe`` give counts),
        with each kind's ``summarize(before, after)`` merged in when both models are given."""
        parts = self.split(removed)
        summary: dict[str, Any] = {}
        for kind in self.kinds:
            items = parts.get(kind.name, frozenset())
            summary[kind.name] = kind.describe(items) if kind.describe else {"items": len(items)}
            if kind.summarize is not None and before is not None and after is not None:
                summary[kind.name].update(kind.summarize(before, after))
        return summary
