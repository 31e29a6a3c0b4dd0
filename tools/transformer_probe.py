"""Coverage of one model with whichever onnxprune is first on ``sys.path``.

Kept free of path set-up so that ``tools/bench_transformer.py`` can run it in a subprocess
against an older checkout of the repository (the "before" column).
"""

from __future__ import annotations

TEXT = ("input_ids", "attention_mask", "token_type_ids")
ZOO_LENGTH = 64


def input_shapes_for(path: str) -> dict[str, list[int]] | None:
    """Batch 1 and sequence ZOO_LENGTH for token inputs; None (defaults) for images."""
    import onnx

    names = [value.name for value in onnx.load(path, load_external_data=False).graph.input]
    if set(TEXT) <= set(names):
        return {name: [1, ZOO_LENGTH] for name in TEXT}
    return None


def measure_coverage(path: str) -> dict:
    """Counted MACs and prunable MACs of the model at ``path``."""
    import onnx

    from onnxprune.analysis import analyze
    from onnxprune.passes import preprocess
    from onnxprune.stats import count_macs

    shapes = input_shapes_for(path)
    model = onnx.load(path)
    counted = count_macs(model, shapes).total
    analysis = analyze(preprocess(model, input_shapes=shapes).model, shapes)
    return {"counted": int(counted), "prunable": int(analysis.prunable_macs())}
