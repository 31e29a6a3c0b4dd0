"""Gradient criteria on the zoo exported at old opsets: does ``fisher`` run, and what it says.

For each zoo model (``models.SMALL_CONFIG`` sizes, TorchScript export) at the given opsets:
preprocess, analyse, then ``score_clusters(analysis, "fisher")`` on 3 standard-normal inputs
(the backward graph runs on ``autodiff.prepare.gradient_ready``'s opset-17 copy). Cells:
``ok``, the one-line ``InputError`` a user would see, or ``INTERNAL`` (a bug).

    python tools/gradient_opset_coverage.py                 # opsets 8, 9, 11, 13
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "gradient-opset-coverage"


def probe(name: str, opset: int, folder: Path) -> str:
    import numpy as np
    import onnx

    from models import SMALL_CONFIG, build_onnx
    from onnxprune.analysis import analyze
    from onnxprune.errors import InputError
    from onnxprune.importance import score_clusters
    from onnxprune.passes import preprocess

    try:
        path = build_onnx(
            name, folder / f"{name}-{opset}.onnx", "torchscript", opset=opset, **SMALL_CONFIG[name]
        )
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # exporters and the checker raise many types
        return f"no valid export ({type(error).__name__})"
    model = preprocess(onnx.load(str(path))).model
    analysis = analyze(model)
    value = model.graph.input[0]
    shape = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]
    shape[0] = 3
    rng = np.random.default_rng(0)
    data = {value.name: rng.standard_normal(shape).astype(np.float32)}
    if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        return "skipped (integer input)"
    try:
        scores = score_clusters(analysis, "fisher", calibration=data)
    except InputError as error:
        return f"InputError: {str(error)[:90]}"
    except Exception as error:  # anything else is a bug: say so
        return f"INTERNAL {type(error).__name__}: {str(error)[:80]}"
    return "ok" if np.isfinite(scores).all() else "non-finite scores"


def main(argv: list[str] | None = None) -> None:
    from models import SMALL_CONFIG

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opsets", default="8,9,11,13")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    opsets = [int(o) for o in args.opsets.split(",")]
    names = [name for name in SMALL_CONFIG if not name.startswith("bert")]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            row = [name]
            for opset in opsets:
                row.append(probe(name, opset, Path(folder)))
                print(name, opset, row[-1], flush=True)
            rows.append(row)
    body = "\n".join([
        "## Gradient criteria at old opsets",
        "",
        "`fisher` channel scores (ONNX backward graph in ONNX Runtime) on each zoo model "
        "exported by TorchScript at the opset of the column; the backward graph runs on an "
        "opset-17 copy made by the ONNX version converter (`autodiff.prepare`). BERTs are left "
        "out (integer inputs; they are covered at opset 17 by tests/importance).",
        "",
        markdown_table(["model", *(f"opset {o}" for o in opsets)], rows),
        "",
        f"Command: `python tools/gradient_opset_coverage.py --opsets {args.opsets}` — "
        f"{(time.perf_counter() - started) / 60:.1f} min, 2 CPU cores.",
    ])  # fmt: skip
    publish(SECTION, body, not args.no_write)


if __name__ == "__main__":
    main()
