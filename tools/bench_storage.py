"""Sparse weight storage on pretrained EfficientNet-Lite2: file size, identical outputs, speed.

The model is sparsified to ``--sparsity`` (magnitude, the storage does not depend on the
criterion) and written three ways: dense, ``--sparse-storage coo`` (ONNX sparse_initializer)
and ``--sparse-storage bitmask`` (:mod:`onnxprune.io.bitmask`). Measured: file size over the
dense file (plain and gzip), whether ONNX Runtime gives bit-identical outputs on 8 crops, the
session creation time (the bitmask is decoded then) and the CPU p50 latency at batch 1 (interleaved runs,
``onnxprune.runtime.compare_latency``) over the dense file's.

    python tools/bench_storage.py                  # writes the storage section
    python tools/bench_storage.py --sparsity 0.7 --runs 20 --no-write
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, write_section  # noqa: E402

SECTION = "storage"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.7)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    import numpy as np
    import onnx
    import onnxruntime as ort
    from effnet.crops import EVALUATION_PHOTOS, random_crops
    from effnet.model import RESOLUTION, export, load_pretrained

    from onnxprune.runtime.latency import compare_latency
    from onnxprune.sparsity import sparsify
    from onnxprune.sparsity.storage import STORAGE_FORMATS

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        original = export(load_pretrained(), work / "lite2.onnx")
        result = sparsify(str(original), args.sparsity)
        paths = {"dense": work / "dense.onnx"}
        onnx.save(result.model, paths["dense"])
        stored = {}
        for name, store in STORAGE_FORMATS.items():
            model, moved = store(result.model)
            paths[name] = work / f"{name}.onnx"
            onnx.save(model, paths[name])
            stored[name] = len(moved)
        crops = random_crops(EVALUATION_PHOTOS, 8, seed=2, size=RESOLUTION)

        def outputs(path: Path) -> tuple[np.ndarray, float]:
            tick = time.perf_counter()
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            seconds = time.perf_counter() - tick
            return session.run(None, {session.get_inputs()[0].name: crops})[0], seconds

        dense_out, _ = outputs(paths["dense"])
        latency = compare_latency(
            [str(p) for p in paths.values()], runs=args.runs, measure_memory=False
        )
        p50 = [r.p50_ms for r in latency.results]
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        zipped = {name: len(gzip.compress(path.read_bytes(), 6)) for name, path in paths.items()}
        rows = []
        for position, name in enumerate(paths):
            out, init = outputs(paths[name])
            rows.append(
                [
                    name,
                    "-" if name == "dense" else stored[name],
                    f"{sizes[name] / sizes['dense']:.3f}",
                    f"{zipped[name] / sizes['dense']:.3f}",
                    "yes" if np.array_equal(out, dense_out) else "NO",
                    f"{1000 * init:.0f}",
                    f"{p50[position] / p50[0]:.3f}",
                ]
            )
    load = os.getloadavg()
    header = [
        "storage", "tensors stored sparse", "file / dense", "gzip / dense",
        "outputs bit-identical", "session creation ms", "CPU p50 latency / dense",
    ]  # fmt: skip
    body = "\n".join(
        [
            "## Sparse weight storage on EfficientNet-Lite2 (issue 13)",
            "",
            f"Pretrained EfficientNet-Lite2 (260², TorchScript export) sparsified to "
            f"{result.sparsity:.3f} of its Conv/Gemm weights (magnitude, `sparsify "
            f"--sparsity {args.sparsity:g}`), written dense and with each `--sparse-storage` "
            f"format; dense file {sizes['dense'] / 2**20:.2f} MiB. Outputs compared on 8 crops; "
            f"latency: CPU provider, batch 1, p50 of {args.runs} interleaved runs (dense p50 "
            f"{p50[0]:.1f} ms).",
            "",
            markdown_table(header, rows),
            "",
            f"Command: `python tools/bench_storage.py --sparsity {args.sparsity:g} --runs "
            f"{args.runs}`; {time.perf_counter() - started:.0f} s; load average {load[0]:.1f} "
            "at the end (2 CPU cores).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
