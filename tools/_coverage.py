"""Helpers the coverage tools share: one line per analysis for their tables."""

from __future__ import annotations

import re


def blocked_reasons(analysis) -> str:
    """The distinct reasons of the analysis' blocked groups, node names removed, '; '-joined
    ('-' when nothing is blocked)."""
    reasons = {
        re.sub(r" '[^']*'", "", reason)
        for group in analysis.groups
        if not group.prunable
        for reason in group.reasons
    }
    return "; ".join(sorted(reasons)) or "-"
