"""State shared by the op rules while they walk the graph.

Rules read labels of their inputs and write labels of their outputs; on the way they record:

* **unions** — pairs of label arrays whose positions must be pruned together (residual Add,
  SE gate Mul, shared weights, attention contractions);
* **slices** — constant inputs to slice along an axis, with the labels of that axis;
* **fixups** — attribute and shape-constant edits that depend on how many channels survive
  (``group`` of a depthwise conv, Reshape targets, Split sizes, Slice bounds);
* **blocks** — atoms that must never be pruned, each with the reason (fail closed);
* **mask edges** — where the mask-equivalence oracle must zero a dynamic consumer input;
* **slab ties** — fallback unions applied after the walk only where still needed (see
  :class:`SlabTie`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from onnxprune.analysis.graph_view import GraphView, NodeView
from onnxprune.analysis.labels import FIXED, has_atoms

if TYPE_CHECKING:
    from onnxprune.rewrite.editor import GraphEditor

KeepFn = Callable[[np.ndarray], np.ndarray]
Fixup = Callable[["GraphEditor", KeepFn], None]

ROLE_OUT = "out"  # producer weight rows (the channel is computed here)
ROLE_IN = "in"  # consumer weight columns (the channel is read here)
ROLE_PARAM = "param"  # per-channel parameters (bias, norm scale/shift, elementwise constants)


@dataclass
class SliceRequest:
    """Slice constant ``constant`` along ``axis``: position i is kept iff ``labels[i]`` is kept."""

    constant: str
    axis: int
    labels: np.ndarray
    node: str
    role: str


@dataclass
class MaskEdge:
    """For the oracle: multiply input ``input_index`` of ``node`` by the keep mask of ``labels``."""

    node: str
    input_index: int
    labels: np.ndarray


@dataclass
class AtomTable:
    """Every atom (source channel): the node that creates it and its channel index there."""

    source_node: list[str] = field(default_factory=list)
    source_channel: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.source_node)

    def new(self, node: str, count: int) -> np.ndarray:
        start = len(self.source_node)
        self.source_node.extend([node] * count)
        self.source_channel.extend(range(count))
        return np.arange(start, start + count, dtype=np.int64)


@dataclass
class Taint:
    """A shape tensor's elements that hold channel counts (``mask``) and the atoms they count."""

    mask: np.ndarray
    atoms: np.ndarray


@dataclass
class SlabTie:
    """Fallback for channels a Reshape spreads over several axes ([C] -> [g, C/g]): when no
    other constraint makes them whole slabs of one axis, the largest of ``axes`` stays the
    channel axis and position i of every slab along each other axis is pruned together
    (channel shuffle: channel i of both branches)."""

    labels: np.ndarray
    axes: list[int]
    reason: str

    def tied_axes(self) -> list[int]:
        """Every axis but the largest (the first of equal sizes)."""
        sizes = [self.labels.shape[axis] for axis in self.axes]
        free = self.axes[sizes.index(max(sizes))]
        return [axis for axis in self.axes if axis != free]


class AnalysisContext:
    """Mutable analysis state plus the helpers the op rules use."""

    def __init__(self, view: GraphView, *, head_dim: bool = False) -> None:
        self.view = view
        # Attention: prune the same head_dim positions in every head instead of whole heads.
        self.head_dim = head_dim
        self.atoms = AtomTable()
        self.labels: dict[str, np.ndarray] = {}
        self.taints: dict[str, Taint] = {}
        self.unions: list[tuple[np.ndarray, np.ndarray]] = []
        self.blocks: list[tuple[np.ndarray, str]] = []
        self.stats_coupled: list[tuple[np.ndarray, str]] = []
        self.slices: list[SliceRequest] = []
        self.fixups: list[tuple[str, Fixup]] = []
        self.mask_edges: list[MaskEdge] = []
        # Weight-free nodes (attention MatMuls) whose work shrinks with these atoms' clusters.
        self.shrinking: list[tuple[str, np.ndarray]] = []
        self.min_keep: list[np.ndarray] = []
        self.post_checks: list[Callable[[np.ndarray], list[tuple[np.ndarray, str]]]] = []
        self.slab_ties: list[SlabTie] = []
        self.source_nodes: dict[str, str] = {}  # node name -> op type of channel sources

    # --- labels -------------------------------------------------------------------------
    def labels_of(self, name: str) -> np.ndarray | None:
        return self.labels.get(name) if name else None

    def set_labels(self, name: str, labels: np.ndarray | None) -> None:
        if name and has_atoms(labels):
            self.labels[name] = np.asarray(labels, dtype=np.int64)

    def new_atoms(self, node: NodeView, count: int) -> np.ndarray:
        self.source_nodes[node.name] = node.op_type
        return self.atoms.new(node.name, count)

    # --- constraints --------------------------------------------------------------------
    def block(self, labels: np.ndarray | None, reason: str) -> None:
        """Never prune the atoms in ``labels`` (fail closed), recording why."""
        if labels is None:
            return
        atoms = np.unique(labels[labels >= 0])
        if atoms.size:
            self.blocks.append((atoms, reason))

    def block_inputs(self, node: NodeView, reason: str) -> None:
        """Block every atom reaching ``node`` through any input (labels or shape taint)."""
        for name in {*node.inputs, *node.subgraph_inputs}:
            self.block(self.labels_of(name), f"{reason} ({node.op_type} '{node.name}')")
            taint = self.taints.get(name)
            if taint is not None:
                self.block(taint.atoms, f"{reason} ({node.op_type} '{node.name}')")

    def union(self, first: np.ndarray, second: np.ndarray, reason: str) -> None:
        """Positions of ``first`` and ``second`` (broadcast together) are pruned together.

        Where one side is an atom and the other FIXED, the atom is blocked with ``reason``.
        """
        a, b = np.broadcast_arrays(first, second)
        both = (a >= 0) & (b >= 0)
        if both.any():
            self.unions.append((a[both].copy(), b[both].copy()))
        self.block(np.where((a >= 0) & (b < 0), a, FIXED), reason)
        self.block(np.where((b >= 0) & (a < 0), b, FIXED), reason)

    def mark_stats_coupled(self, labels: np.ndarray, reason: str) -> None:
        """These channels feed statistics (LayerNorm/GroupNorm): pruning is valid, not mask-equivalent."""
        atoms = np.unique(labels[labels >= 0])
        if atoms.size:
            self.stats_coupled.append((atoms, reason))

    def request_slice(
        self, constant: str, axis: int, labels: np.ndarray, node: NodeView, role: str
    ) -> None:
        """Slice ``constant`` along ``axis`` by the 1-D ``labels`` when the plan is applied."""
        vector = np.asarray(labels, dtype=np.int64).reshape(-1)
        if (vector >= 0).any():
            self.slices.append(SliceRequest(constant, axis, vector, node.name, role))

    def add_fixup(self, node: NodeView, fixup: Fixup) -> None:
        self.fixups.append((node.name, fixup))

    def shrinks_with(self, node: NodeView, labels: np.ndarray | None) -> None:
        """``node`` (no weight to slice) does less work when the atoms of ``labels`` go."""
        if labels is None:
            return
        atoms = np.unique(labels[labels >= 0])
        if atoms.size:
            self.shrinking.append((node.name, atoms))

    def add_mask_edge(self, node: NodeView, input_index: int, labels: np.ndarray) -> None:
        self.mask_edges.append(MaskEdge(node.name, input_index, labels))

    def tie_slabs(self, labels: np.ndarray, axis: int, reason: str) -> None:
        """Unite position i of every slab of ``labels`` along ``axis`` with that of slab 0."""
        first = labels.take([0], axis=axis)
        for index in range(1, labels.shape[axis]):
            self.union(first, labels.take([index], axis=axis), reason)

    def require_one_kept(self, labels: np.ndarray) -> None:
        """At least one position of ``labels`` must survive (a Split output or Slice range)."""
        atoms = np.unique(labels[labels >= 0])
        if atoms.size:
            self.min_keep.append(atoms)

    # --- shapes -------------------------------------------------------------------------
    def static_shape(self, name: str) -> tuple[int, ...] | None:
        return self.view.static_shape(name)

    def rank(self, name: str) -> int | None:
        return self.view.rank(name)

    def constant(self, name: str) -> np.ndarray | None:
        """Value of a constant input (converted on demand; prefer ``weight_shape`` for weights)."""
        return self.view.constant(name)

    def weight_shape(self, name: str) -> tuple[int, ...] | None:
        """Shape of a constant input without reading its data; None when not a constant."""
        return self.view.constant_shape(name)
