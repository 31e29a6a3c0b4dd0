"""The default 2:4 ``sparsify`` (channel reorder on) on the third-party models of
tools/bench_third_party.py: which channel groups were reordered and the measured output
difference of the proof. ``--write`` puts the table in the ``nm-permutation-third-party``
section of docs/benchmarks.md.

    python tools/nm_permutation_third_party.py --write
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from _markdown import markdown_table, publish  # noqa: E402

SECTION = "nm-permutation-third-party"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    import bench_third_party as third_party

    from onnxprune import sparsify

    rows = []
    for name, spec in {**third_party.MODELS, **third_party.PRUNE_MODELS}.items():
        path = third_party.model_path(spec[0], spec[1])
        tick = time.perf_counter()
        result = sparsify(str(path), pattern="2:4")
        seconds = time.perf_counter() - tick
        permutation = result.permutation
        if permutation is None:
            rows.append([name, "no 2:4 layer", "-", "-", f"{seconds:.1f}"])
        else:
            searched = len(permutation.plan.groups)
            moved = sum(
                1 for g in permutation.plan.groups if g.order is not None and g.after > g.before
            )
            rows.append([
                name, permutation.skipped or f"{moved} of {searched} groups reordered",
                f"{sum(layer.holds_nm for layer in result.layers)} of {len(result.layers)}",
                f"{permutation.max_error:.1e}", f"{seconds:.1f}",
            ])  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    body = "\n".join([
        "`python tools/nm_permutation_third_party.py --write` — `sparsify(path, pattern=\"2:4\")` "
        "with its defaults (magnitude, no data: the reorder is proven on valid random inputs).",
        "",
        markdown_table(
            ["model", "channel reorder", "layers holding 2:4", "proof: largest relative "
             "output difference", "s"],
            rows,
        ),
    ])  # fmt: skip
    publish(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
