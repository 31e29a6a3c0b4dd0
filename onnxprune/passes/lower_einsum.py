"""Pass: rewrite ``Einsum`` as ReduceSum / Transpose / Reshape / Unsqueeze / MatMul / Squeeze.

``torch.einsum`` reaches ONNX as an ``Einsum`` node with both PyTorch exporters (attention
written ``"bthd,bshd->bhts"``, dense layers ``"btd,df->btf"``). The channel analysis, the MAC
counter, the recovery targets and the gradient rules all understand MatMul; none of them reads
an einsum equation, so every channel that met one was blocked and its MACs were not counted.
This pass writes each Einsum of one or two operands as the MatMul it is:

For operands A (letters ``a``) and B (letters ``b``) and output letters ``o``, every letter is
one of: *batch* (in a, b and o), *contracted* (in a and b, not in o), *free* (in o and one
operand), or *summed alone* (in one operand only). Then

    Einsum(A, B) = T_o( Squeeze( MatMul( A', B' ) ) )

with A' = U(R(T(Σ_alone A))) laid out [P..., M, K] and B' laid out [P..., K, N]: Σ sums the
letters one operand holds alone (ReduceSum), T orders the axes, R merges two or more contracted
letters into K (a Reshape whose other entries copy their axis, 0), U inserts size-1 axes
(Unsqueeze) where an operand lacks a letter of P or where M, N or K has no letter. M is the
last free letter of A in output order, N the last free letter of B, and P the output's other
letters in output order — the batch letters and the remaining free letters, which MatMul
broadcasts over (a size-1 axis in the operand that lacks them). MatMul computes
``Σ_K A'[P, M, K] · B'[P, K, N]``, which is the einsum's sum over the contracted letters for
every output index; the size-1 axes are squeezed and T_o puts the axes in output order. One
operand is ``T_o(Σ_alone A)``. Constant operands are transformed in numpy (their new layout is
a new initializer).

Three or more operands are contracted pairwise from the left, each step keeping the letters a
later operand or the output still needs (:func:`onnxprune.graph.einsum.chain_steps`).

Contract: the output equals the Einsum's for every input (sums regrouped: float results agree
to rounding); the output tensor keeps its name. Left as they are (the analysis then blocks
them with the op named, as before): a letter repeated within one
term (diagonals, traces), an ellipsis over an operand of unknown rank, implicit output mode
with mixed-case letters or an ellipsis (their output order is left to the runtime), and
non-float outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.graph.einsum import EinsumTerms, chain_steps, parse_equation
from onnxprune.passes._emit import NodeEmitter, finish_lowering, write_to
from onnxprune.passes._graph import output_names
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

#: A size-1 axis inserted for M, N or K when no letter fills it.
DUMMY = "_"
_FLOAT_TYPES = (np.float16, np.float32, np.float64)


class _Emitter(NodeEmitter):
    """The shared emitter plus the reshapes an einsum needs."""

    def __init__(self, einsum: gs.Node, opset: int) -> None:
        super().__init__(einsum, opset, "einsum")

    def reduce_sum(self, tensor: gs.Tensor, axes: Sequence[int]) -> gs.Tensor:
        if not axes:
            return tensor
        if isinstance(tensor, gs.Constant):
            return self.constant(np.asarray(tensor.values).sum(axis=tuple(axes)))
        return self.axes_op("ReduceSum", tensor, axes, keepdims=0)

    def merge_trailing(self, tensor: gs.Tensor, keep: int) -> gs.Tensor:
        """Merge every axis after the first ``keep`` into one (Reshape [0]*keep + [-1])."""
        if isinstance(tensor, gs.Constant):
            values = np.asarray(tensor.values)
            return self.constant(values.reshape(*values.shape[:keep], -1))
        return self.reshape(tensor, [0] * keep + [-1])

    def reshape_tail(self, tensor: gs.Tensor, keep: int, dims: Sequence[int]) -> gs.Tensor:
        """Replace the last axis by ``dims`` (Reshape [0]*keep + dims; no dims: squeeze it)."""
        return self.reshape(tensor, [0] * keep + [int(d) for d in dims])


def _sum_alone(emit: _Emitter, tensor: gs.Tensor, letters: str, keep: set[str]):
    """ReduceSum over the letters not in ``keep``; the tensor and its remaining letters."""
    axes = [i for i, char in enumerate(letters) if char not in keep]
    return emit.reduce_sum(tensor, axes), "".join(c for c in letters if c in keep)


def _arrange(emit: _Emitter, tensor: gs.Tensor, letters: str, order: Sequence[str]):
    """Transpose ``tensor`` (axes ``letters``) to ``order``."""
    return emit.transpose(tensor, [letters.index(char) for char in order])


def _with_dummies(emit: _Emitter, tensor: gs.Tensor, present: list[str], final: list[str]):
    """Unsqueeze so that the layout ``present`` becomes ``final`` (its extra entries size 1)."""
    axes = [i for i, char in enumerate(final) if char not in present or char == DUMMY]
    return emit.unsqueeze(tensor, axes)


def _aligned(batch: list[str], letters: str) -> list[str]:
    """The batch letters an operand's layout spans: from the first it holds to the end (MatMul
    broadcasts leading missing axes itself)."""
    held = [i for i, char in enumerate(batch) if char in letters]
    return batch[held[0] :] if held else []


def _lower_pair(emit: _Emitter, a, b, terms: EinsumTerms) -> gs.Tensor:
    a_letters, b_letters = terms.operands
    out = terms.output
    a, a_letters = _sum_alone(emit, a, a_letters, set(b_letters) | set(out))
    b, b_letters = _sum_alone(emit, b, b_letters, set(a_letters) | set(out))
    contracted = [c for c in a_letters if c in b_letters and c not in out]
    a_free = [c for c in out if c in a_letters and c not in b_letters]
    b_free = [c for c in out if c in b_letters and c not in a_letters]
    m = a_free[-1] if a_free else None
    n = b_free[-1] if b_free else None
    batch = [c for c in out if c not in (m, n)]
    k_axis = "".join(contracted) if contracted else DUMMY

    a_batch = [c for c in batch if c in a_letters]
    a = _arrange(emit, a, a_letters, a_batch + ([m] if m else []) + contracted)
    a_present = a_batch + ([m] if m else [])
    if len(contracted) > 1:
        a = emit.merge_trailing(a, len(a_present))
    if contracted:
        a_present.append(k_axis)
    a = _with_dummies(emit, a, a_present, [*_aligned(batch, a_letters), m or DUMMY, k_axis])

    b_batch = [c for c in batch if c in b_letters]
    b_present = list(b_batch)
    if len(contracted) > 1 and n and not isinstance(b, gs.Constant):
        b = _arrange(emit, b, b_letters, [*b_batch, n, *contracted])
        b = emit.merge_trailing(b, len(b_batch) + 1)
        rank = len(b_batch) + 2
        b = emit.transpose(b, [*range(rank - 2), rank - 1, rank - 2])
    else:
        b = _arrange(emit, b, b_letters, b_batch + contracted + ([n] if n else []))
        if len(contracted) > 1:
            b = _merge_middle(emit, b, len(b_batch), len(contracted))
    b_present += ([k_axis] if contracted else []) + ([n] if n else [])
    b = _with_dummies(emit, b, b_present, [*_aligned(batch, b_letters), k_axis, n or DUMMY])

    product = emit.matmul(a, b)
    layout = [*batch, m or DUMMY, n or DUMMY]
    dummies = [i for i, char in enumerate(layout) if char == DUMMY]
    product = emit.squeeze(product, dummies)
    layout = [char for char in layout if char != DUMMY]
    return emit.transpose(product, [layout.index(char) for char in out])


def _merge_middle(emit: _Emitter, tensor: gs.Tensor, before: int, count: int) -> gs.Tensor:
    """Merge ``count`` axes after the first ``before`` into one (constants, or N absent: they
    are then the trailing axes)."""
    if isinstance(tensor, gs.Constant):
        values = np.asarray(tensor.values)
        shape = (*values.shape[:before], -1, *values.shape[before + count :])
        return emit.constant(values.reshape(shape))
    return emit.merge_trailing(tensor, before)


def _dense_form(a, b, terms: EinsumTerms) -> bool:
    """True when one operand is a constant whose every letter is contracted, free or summed
    alone (no batch letter): the einsum is then a dense layer (:func:`_lower_dense`)."""
    if isinstance(a, gs.Constant) == isinstance(b, gs.Constant):
        return False
    a_letters, b_letters = terms.operands
    weight, other = (b_letters, a_letters) if isinstance(b, gs.Constant) else (a_letters, b_letters)
    return not any(c in other and c in terms.output for c in weight)


def _lower_dense(
    emit: _Emitter, a, b, terms: EinsumTerms, bias: gs.Constant | None = None
) -> gs.Tensor:
    """X[free..., K...] · W[K..., F...] as one MatMul by a [K, F] matrix: the constant W is
    transposed and reshaped in numpy, X's contracted letters are merged into one trailing
    axis, and a Reshape whose leading entries copy their axis (0) splits F again. This is the
    layout of an exported ``nn.Linear`` followed by a view, which the channel analysis reads
    as a dense layer (a batched constant weight, the general form, would block it).

    ``bias``: a constant the einsum's output is added to that varies only along the unit
    letters F (:func:`_unit_bias`); it is added to the [.., F] product before the split, as a
    Linear's bias, so that it is one vector per unit (a bias [h, k] after the split would span
    two channel axes, which the channel analysis cannot slice)."""
    if isinstance(a, gs.Constant):
        a, b = b, a
        terms = EinsumTerms(terms.operands[::-1], terms.output)
    x_letters, w_letters = terms.operands
    out = terms.output
    x, x_letters = _sum_alone(emit, a, x_letters, set(w_letters) | set(out))
    weight = np.asarray(b.values)
    axes = [i for i, c in enumerate(w_letters) if c not in x_letters and c not in out]
    weight = weight.sum(axis=tuple(axes)) if axes else weight
    w_letters = "".join(c for i, c in enumerate(w_letters) if i not in axes)
    contracted = [c for c in x_letters if c in w_letters]
    free = [c for c in out if c in x_letters]
    units = [c for c in out if c in w_letters]
    x = _arrange(emit, x, x_letters, free + contracted)
    if len(contracted) > 1:
        x = emit.merge_trailing(x, len(free))
    elif not contracted:
        x = emit.unsqueeze(x, [len(free)])
    order = [w_letters.index(c) for c in contracted + units]
    unit_dims = [weight.shape[w_letters.index(c)] for c in units]
    matrix = np.transpose(weight, order).reshape(-1 if contracted else 1, int(np.prod(unit_dims)))
    product = emit.matmul(x, emit.constant(matrix))
    if bias is not None:
        product = emit.add(product, emit.constant(_unit_bias(bias, out, units, unit_dims)))
    if len(units) != 1:
        product = emit.reshape_tail(product, len(free), unit_dims)
    layout = free + units
    return emit.transpose(product, [layout.index(c) for c in out])


def _unit_bias(bias: gs.Constant, out: str, units: list[str], unit_dims: list[int]):
    """The bias as one vector over the flattened units (``units`` order), or None when it
    varies along another output letter or does not broadcast to the output's rank."""
    values = np.asarray(bias.values)
    if values.ndim > len(out):
        return None
    values = values.reshape((1,) * (len(out) - values.ndim) + values.shape)
    if any(
        size != 1 for letter, size in zip(out, values.shape, strict=True) if letter not in units
    ):
        return None
    if any(values.shape[out.index(c)] not in (1, d) for c, d in zip(units, unit_dims, strict=True)):
        return None
    over_units = values.reshape([values.shape[out.index(c)] for c in sorted(units, key=out.index)])
    over_units = np.transpose(over_units, [sorted(units, key=out.index).index(c) for c in units])
    return np.broadcast_to(over_units, unit_dims).reshape(-1)


def _following_bias(node: gs.Node, graph_outputs: set[str]) -> gs.Node | None:
    """The Add of a constant that is the only reader of the Einsum's output, else None."""
    output = node.outputs[0]
    if output.name in graph_outputs or len(output.outputs) != 1:
        return None
    add = output.outputs[0]
    if add.op != "Add" or add.domain or len(add.inputs) != 2 or add.inputs[0] is add.inputs[1]:
        return None
    if (
        not isinstance(_other_input(add, output), gs.Constant)
        or add.outputs[0].dtype != output.dtype
    ):
        return None
    return add


def _lower_chain(emit: _Emitter, operands: list[gs.Tensor], terms: EinsumTerms) -> gs.Tensor:
    """Three or more operands, contracted pairwise from the left
    (:func:`onnxprune.graph.einsum.chain_steps`): each step keeps the letters a later operand
    or the output still needs, in order of first appearance."""
    result, letters = operands[0], terms.operands[0]
    for index, step in enumerate(chain_steps(terms)):
        pair = EinsumTerms((letters, terms.operands[index + 1]), step)
        result = _lower_pair(emit, result, operands[index + 1], pair)
        letters = step
    return result


def _lower_single(emit: _Emitter, a, terms: EinsumTerms) -> gs.Tensor:
    (letters,) = terms.operands
    a, letters = _sum_alone(emit, a, letters, set(terms.output))
    return _arrange(emit, a, letters, list(terms.output))


def _rank(tensor: gs.Tensor) -> int | None:
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values).ndim
    return len(tensor.shape) if tensor.shape is not None else None


def lowerable(node: gs.Node) -> EinsumTerms | str:
    """The parsed equation of an Einsum this pass rewrites, or why it is left as it is."""
    if not node.inputs or len(node.outputs) != 1:
        return f"{len(node.inputs)} operands and {len(node.outputs)} outputs"
    dtype = node.outputs[0].dtype
    if dtype is None or np.dtype(dtype).type not in _FLOAT_TYPES:
        return "a non-float output"
    equation = node.attrs.get("equation")
    if isinstance(equation, bytes):
        equation = equation.decode()
    if not isinstance(equation, str):
        return "no equation attribute"
    return parse_equation(equation, [_rank(tensor) for tensor in node.inputs])


@register_pass("lower_einsum")
def lower_einsum(graph: gs.Graph, ctx: PassContext) -> bool:
    """Replace every lowerable Einsum (module docstring) by its MatMul form."""
    lowered, kept = 0, []
    for node in [n for n in graph.nodes if n.op == "Einsum" and not n.domain]:
        terms = lowerable(node)
        if isinstance(terms, str):
            kept.append(f"'{node.name}' ({terms})")
            continue
        emit = _Emitter(node, ctx.opset)
        add = None
        if len(terms.operands) == 1:
            result = _lower_single(emit, node.inputs[0], terms)
        elif len(terms.operands) > 2:
            result = _lower_chain(emit, list(node.inputs), terms)
        elif _dense_form(node.inputs[0], node.inputs[1], terms):
            add = _split_bias_add(node, terms, output_names(graph))
            bias = None if add is None else _other_input(add, node.outputs[0])
            result = _lower_dense(emit, node.inputs[0], node.inputs[1], terms, bias)
        else:
            result = _lower_pair(emit, node.inputs[0], node.inputs[1], terms)
        _write_to(emit, result, node, add)
        graph.nodes.extend(emit.built())
        lowered += 1
    return finish_lowering(graph, ctx, "lower_einsum", "Einsum", lowered, kept, "MatMul")


def _split_bias_add(node: gs.Node, terms: EinsumTerms, graph_outputs: set[str]):
    """The Add that :func:`_lower_dense` takes in before its split (several unit letters and
    a constant varying only along them), else None."""
    add = _following_bias(node, graph_outputs)
    if add is None:
        return None
    a, b = node.inputs
    weight_letters = terms.operands[0 if isinstance(a, gs.Constant) else 1]
    units = [c for c in terms.output if c in weight_letters]
    if len(units) < 2:
        return None
    weight = a if isinstance(a, gs.Constant) else b
    dims = [np.asarray(weight.values).shape[weight_letters.index(c)] for c in units]
    bias = _other_input(add, node.outputs[0])
    return add if _unit_bias(bias, terms.output, units, dims) is not None else None


def _other_input(add: gs.Node, tensor: gs.Tensor) -> gs.Tensor:
    return add.inputs[1] if add.inputs[0] is tensor else add.inputs[0]


def _write_to(emit: _Emitter, result: gs.Tensor, einsum: gs.Node, add: gs.Node | None = None):
    """Make the last replacement node write the Einsum's own output tensor (or that of the
    ``add`` it took in), then detach what it replaced."""
    output = (einsum if add is None else add).outputs[0]
    if add is not None:
        add.inputs.clear()
        add.outputs.clear()
    write_to(emit, result, output)
    einsum.inputs.clear()
    einsum.outputs.clear()
