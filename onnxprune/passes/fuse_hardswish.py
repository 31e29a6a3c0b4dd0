"""Pass: decomposed hard-swish becomes one HardSwish node.

HardSwish(x) = x·clamp(x/6 + 1/2, 0, 1). We match Mul(k1·x, g) followed by a scale-only chain
k2, where the gate g = clamp(a·x + b, lo, hi) (a clamp chain after an affine chain, or a
HardSigmoid with lo = 0, hi = 1). With k = k1·k2 > 0:
k·x·clamp(a·x + b, lo, hi) = x·clamp(k·a·x + k·b, k·lo, k·hi), which is HardSwish when
k·lo = 0, k·hi = 1, k·a = 1/6 and k·b = 1/2. Covers x·Clip(x+3, 0, 6)/6, (x·Relu6(x+3))/6,
x·Min(Max(x+3, 0), 6)·(1/6) and x·HardSigmoid(x) (Paddle2ONNX, PyTorch decompositions).
HardSwish needs opset 14; below that (when the opset cannot be raised) the pattern becomes
x·HardSigmoid(x; 1/6, 1/2), which is still a single gate for the analysis.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.passes._affine import affine_after, affine_before, clamp_before, close
from onnxprune.passes._graph import NameGen, detach, output_names, private, producer
from onnxprune.passes._opset import raise_opset
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

HARDSWISH_OPSET = 14


def _gate(tensor: gs.Tensor, graph_outputs: set[str]):
    """(x, a, b, lo, hi, is_hardsigmoid_node) with tensor = clamp(a·x + b, lo, hi), or None."""
    if not private(tensor, graph_outputs):
        return None
    node = producer(tensor)
    if node is not None and node.op == "HardSigmoid" and len(node.inputs) == 1:
        alpha = float(node.attrs.get("alpha", 0.2))
        beta = float(node.attrs.get("beta", 0.5))
        return node.inputs[0], alpha, beta, 0.0, 1.0, True
    clamp = clamp_before(tensor, graph_outputs)
    if clamp is None:
        return None
    pre = affine_before(clamp.source, graph_outputs)
    return pre.source, pre.scale, pre.offset, clamp.lo, clamp.hi, False


def _is_hardswish(k: float, a: float, b: float, lo: float, hi: float) -> bool:
    return (
        k > 0
        and close(k * lo, 0.0)
        and close(k * hi, 1.0)
        and close(k * a, 1.0 / 6.0)
        and close(k * b, 0.5)
    )


def _match(mul: gs.Node, graph_outputs: set[str]):
    """(x, end tensor, already-canonical flag) when ``mul`` is the core of a hard-swish."""
    if len(mul.inputs) != 2 or len(mul.outputs) != 1:
        return None
    for gate_index in (1, 0):
        gate = _gate(mul.inputs[gate_index], graph_outputs)
        if gate is None:
            continue
        x, a, b, lo, hi, is_hardsigmoid = gate
        linear = affine_before(mul.inputs[1 - gate_index], graph_outputs)
        if linear.source is not x or not close(linear.offset, 0.0):
            continue
        for post in reversed(affine_after(mul.outputs[0], graph_outputs)):
            if not close(post.offset, 0.0):
                continue
            if _is_hardswish(linear.scale * post.scale, a, b, lo, hi):
                canonical = is_hardsigmoid and not linear.nodes and not post.nodes
                return x, post.output, canonical
    return None


@register_pass("fuse_hardswish")
def fuse_hardswish(graph: gs.Graph, ctx: PassContext) -> bool:
    """Replace decomposed hard-swish (module docstring) by HardSwish(x); the result keeps its name.

    Contract: exact algebraic identity up to float rounding; below opset 14 (not raisable) the
    pattern becomes Mul(x, HardSigmoid(x; 1/6, 1/2)) instead.
    """
    graph_outputs = output_names(graph)
    names = NameGen(graph)
    fused = 0
    for mul in list(graph.nodes):
        if mul.op != "Mul" or not mul.outputs:
            continue
        match = _match(mul, graph_outputs)
        if match is None:
            continue
        x, end, canonical = match
        use_hardswish = raise_opset(graph, ctx, HARDSWISH_OPSET)
        if canonical and not use_hardswish:
            continue
        detach(producer(end))
        if use_hardswish:
            node = gs.Node("HardSwish", names(f"{end.name}_hardswish"), inputs=[x], outputs=[end])
            graph.nodes.append(node)
        else:
            gate = gs.Variable(names(f"{end.name}_gate"), dtype=end.dtype, shape=end.shape)
            graph.nodes.append(
                gs.Node(
                    "HardSigmoid",
                    names(f"{end.name}_hardsigmoid"),
                    attrs={"alpha": 1.0 / 6.0, "beta": 0.5},
                    inputs=[x],
                    outputs=[gate],
                )
            )
            graph.nodes.append(
                gs.Node("Mul", names(f"{end.name}_mul"), inputs=[x, gate], outputs=[end])
            )
        fused += 1
    if fused:
        target = "HardSwish" if ctx.opset >= HARDSWISH_OPSET else "Mul(x, HardSigmoid(x))"
        ctx.note(f"fused {fused} decomposed hard-swish pattern(s) into {target}")
        graph.cleanup(remove_unused_graph_inputs=False).toposort()
    return fused > 0
