"""What ``onnxprune prune --blocks N`` does, kept out of the prune command module."""

from __future__ import annotations

import json
from pathlib import Path

from onnxprune.blocks.api import remove_blocks


def run_prune_blocks(
    model: str,
    out_path: Path,
    count: int,
    *,
    input_shapes: dict[str, list[int]] | None,
    force: bool,
    json_path: str | None,
    quiet: bool,
    data: str | None = None,
    criterion: str | None = None,
    refit: bool = False,
) -> None:
    """Remove the ``count`` lowest-scored residual units of ``model``, write ``out_path``,
    optionally the JSON decision (``json_path``, '-' = stdout), and print a summary."""
    import click

    result = remove_blocks(
        model,
        count,
        calibration=data,
        criterion=criterion,
        input_shapes=input_shapes,
        refit=refit,
    )
    result.save(out_path, force=force, input_path=model)
    if json_path:
        text = json.dumps(result.to_dict(), indent=2, default=str)
        if json_path == "-":
            click.echo(text)
        else:
            Path(json_path).write_text(text)
    if not quiet and json_path != "-":
        from onnxprune.blocks.report import print_removal

        print_removal(result, out_path)
