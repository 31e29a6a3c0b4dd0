"""Pass: give every reader of a shared run-time broadcast its own copy of it.

A run-time broadcast is an ``Expand`` of a tensor computed at run time, followed by at most
:data:`MAX_CHAIN` layout ops (Reshape, Squeeze, Unsqueeze, Transpose, Identity), each read only
by the next. The attention padding mask of ``nn.MultiheadAttention`` is one: [B, T] is
expanded over the heads ([B, H, 1, T]) and reshaped, and the dynamo exporter computes it once
and adds it to the scores of every layer. The channel analysis can shrink such a broadcast
with the heads of the scores it meets (``analysis/rules/expanded_operand.py``), but one tensor
cannot follow the heads of two layers pruned differently, so the shared mask blocked every
layer's heads.

Contract: every node reads the same values as before (each copy computes the same tensor from
the same inputs); after the pass the last tensor of such a chain has one reader node. Expands
of constants are left alone (the analysis slices their constant instead).
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.passes._graph import output_names, readers
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

CHAIN_OPS = ("Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity")
MAX_CHAIN = 6


def _chain_from(expand: gs.Node, outputs: set[str]) -> list[gs.Node]:
    """The Expand and the private layout ops after it, in order."""
    chain = [expand]
    tensor = expand.outputs[0]
    while len(chain) <= MAX_CHAIN and tensor.name not in outputs:
        reading = readers(tensor)
        if len(reading) != 1 or reading[0].op not in CHAIN_OPS or reading[0].domain:
            break
        if reading[0].inputs[0] is not tensor or len(tensor.outputs) != 1:
            break
        chain.append(reading[0])
        tensor = reading[0].outputs[0]
    return chain


@register_pass("unshare_expanded_operands")
def unshare_expanded_operands(graph: gs.Graph, ctx: PassContext) -> bool:
    """Copy each shared run-time broadcast chain for every reader after the first."""
    outputs = output_names(graph)
    taken = {tensor.name for tensor in graph.tensors().values()}
    added: list[gs.Node] = []
    for expand in [node for node in graph.nodes if node.op == "Expand" and not node.domain]:
        if not expand.inputs or isinstance(expand.inputs[0], gs.Constant):
            continue
        chain = _chain_from(expand, outputs)
        last = chain[-1].outputs[0]
        reading = readers(last)
        if last.name in outputs or len(reading) < 2:
            continue
        for index, reader in enumerate(reading[1:], 1):
            copies = []
            previous = None
            for node in chain:
                name = f"{node.outputs[0].name}__{index}"
                while name in taken:
                    name += "_"
                taken.add(name)
                output = gs.Variable(name, node.outputs[0].dtype, node.outputs[0].shape)
                inputs = list(node.inputs)
                if previous is not None:
                    inputs[0] = previous
                copies.append(
                    gs.Node(node.op, f"{node.name}__{index}", dict(node.attrs), inputs, [output])
                )
                copies[-1].domain = node.domain
                previous = output
            for position, tensor in enumerate(reader.inputs):
                if tensor is last:
                    reader.inputs[position] = previous
            added.extend(copies)
    if not added:
        return False
    graph.nodes.extend(added)
    graph.toposort()
    ctx.note(f"unshare_expanded_operands copied {len(added)} node(s) of shared run-time broadcasts")
    return True
