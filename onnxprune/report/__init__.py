"""Reports of ``optimize``: versioned JSON schema, terminal summary, self-contained HTML."""

from onnxprune.report.html import render_html, write_html
from onnxprune.report.schema import (
    SCHEMA_VERSION,
    GroupWidth,
    Report,
    StepRecord,
    validate_report,
)
from onnxprune.report.terminal import print_summary

__all__ = [
    "SCHEMA_VERSION",
    "GroupWidth",
    "Report",
    "StepRecord",
    "print_summary",
    "render_html",
    "validate_report",
    "write_html",
]
