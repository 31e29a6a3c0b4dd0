"""The zoo exported at other opsets: prunable share and mask equivalence, per model.

For each (exporter, opset) and zoo model (``models.SMALL_CONFIG`` sizes): export, preprocess,
analyse without norm statistics (``allow_norm_stats=False``: every prunable group must be
mask-equivalent), and run the mask-equivalence oracle (``tests/oracle.py``) on two random
removals (tolerance 1e-4). Opset 17 is the zoo's own; the others test what older and newer
exporters write (Slice-1 attribute bounds before 10, decomposed LayerNorm before 17, dynamo's
opset 18+ forms, IR 3 with every weight also listed as a graph input at opsets 7 and 8).

    python tools/opset_coverage.py            # writes the opset-coverage section
    python tools/opset_coverage.py --no-write --runs torchscript:11
    python tools/opset_coverage.py --runs torchscript:7 torchscript:8   # IR 3 exports
    python tools/opset_coverage.py --runs dynamo:18 dynamo:23 --models bert_sdpa vit_tiny_mha
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

SECTION = "opset-coverage"
RUNS = ("torchscript:9", "torchscript:11", "torchscript:13", "torchscript:17", "dynamo:20")
DYNAMO_MODELS = ("resnet18", "mobilenetv3_small", "efficientnet_b0", "convnext", "vit_tiny",
                 "vit_tiny_mha", "yolo", "unet", "bert", "bert_sdpa")  # fmt: skip


def probe(name: str, exporter: str, opset: int, folder: Path) -> str:
    import onnx

    from models import SMALL_CONFIG, build_onnx
    from onnxprune.analysis import analyze
    from onnxprune.passes import preprocess
    from tests.oracle import prove_random_removals

    try:
        path = build_onnx(
            name, folder / f"{name}-{exporter}-{opset}.onnx", exporter, opset=opset,
            **SMALL_CONFIG[name],
        )  # fmt: skip
    except Exception as error:  # exporters raise many types
        return f"no export ({type(error).__name__})"
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # the checker raises several types
        return f"invalid export ({str(error).splitlines()[0][:60]})"
    analysis = analyze(preprocess(onnx.load(str(path))).model, allow_norm_stats=False)
    share = analysis.prunable_macs() / max(analysis.total_macs, 1)
    proof = prove_random_removals(analysis)
    prunable = sum(group.prunable for group in analysis.groups)
    return f"{share:.1%} ({prunable}/{len(analysis.groups)}), {proof}"


def main(argv: list[str] | None = None) -> None:
    from models import SMALL_CONFIG

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), help="exporter:opset ...")
    parser.add_argument("--models", nargs="+", help="zoo models (default: all)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    runs = [(run.split(":")[0], int(run.split(":")[1])) for run in args.runs]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models or SMALL_CONFIG:
            row = [name]
            for exporter, opset in runs:
                skip = exporter == "dynamo" and name not in DYNAMO_MODELS
                row.append("-" if skip else probe(name, exporter, opset, Path(folder)))
                print(name, exporter, opset, row[-1], flush=True)
            rows.append(row)
    header = ["model", *(f"{e} opset {o}" for e, o in runs)]
    section = (
        SECTION
        if args.runs == list(RUNS) and not args.models
        else "-".join(
            [SECTION, *(run.replace(":", "_") for run in args.runs), *(args.models or [])]
        )
    )
    title = "## The zoo at other opsets: prunable MAC share and mask equivalence"
    if section != SECTION:
        title += f" ({', '.join(args.runs)})"
    body = "\n".join([
        title,
        "",
        "Each cell: prunable MAC share without norm statistics (prunable / all groups), and "
        "whether two random removals are mask-equivalent (ONNX Runtime, relative tolerance "
        "1e-4). `-`: not exported with dynamo here (slow); `no export`: the exporter refuses "
        "that opset; `invalid export`: the exported file fails the onnx checker (a node "
        "newer than the opset), so onnxprune refuses it at the door.",
        "",
        markdown_table(header, rows),
        "",
        f"Command: `python tools/opset_coverage.py --runs {' '.join(args.runs)}"
        f"{' --models ' + ' '.join(args.models) if args.models else ''}` — "
        f"{(time.perf_counter() - started) / 60:.1f} min, 2 CPU cores.",
    ])  # fmt: skip
    publish(section, body, not args.no_write)


if __name__ == "__main__":
    main()
