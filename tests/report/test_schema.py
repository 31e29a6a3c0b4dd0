"""JSON report: every documented key, derived counts, plain JSON types, validation."""

from __future__ import annotations

import json
import re
from pathlib import Path

from onnxprune.report import SCHEMA_VERSION, validate_report
from onnxprune.report.schema import GROUP_KEYS, LATER_GROUP_KEYS, REQUIRED_KEYS, STEP_KEYS

DOC = Path(__file__).resolve().parents[2] / "docs" / "report-schema.md"


def test_json_has_every_required_key_and_validates(report):
    data = json.loads(report.to_json())
    assert validate_report(data) == []
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert set(REQUIRED_KEYS) <= set(data)
    assert data["macs_ratio"] == 0.48
    assert data["latency_ratio"] == 0.6
    assert data["groups_pruned"] == 1 and data["groups_protected"] == 1
    assert data["steps_kept"] == 3 and data["steps_rolled_back"] == 1
    assert data["steps"][1]["status"] == "rolled_back"
    assert data["steps"][1]["drop"] == 3.0


def test_validation_reports_missing_and_mistyped_keys(report):
    data = report.to_dict()
    del data["macs_after"]
    data["metric_before"] = "high"
    data["steps"][0]["status"] = "maybe"
    problems = validate_report(data)
    assert "missing key macs_after" in problems
    assert "metric_before has type str" in problems
    assert "steps[0].status is 'maybe'" in problems


def test_nan_becomes_null(report):
    report.metric_after = float("nan")
    assert json.loads(report.to_json())["metric_after"] is None


def test_every_key_is_documented():
    text = DOC.read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, flags=re.M))
    assert (
        set(REQUIRED_KEYS) | set(STEP_KEYS) | set(GROUP_KEYS) | set(LATER_GROUP_KEYS) <= documented
    )


def test_removed_channels_are_checked_when_present(report):
    data = report.to_dict()
    assert all("removed_channels" in group for group in data["groups"])
    del data["groups"][0]["removed_channels"]  # a report written before the key existed
    assert validate_report(data) == []
    data["groups"][0]["removed_channels"] = "0,1"
    assert validate_report(data) == ["groups[0].removed_channels has type str"]
