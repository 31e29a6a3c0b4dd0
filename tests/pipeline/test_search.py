"""Scheme search (``optimize(search=...)``): the space, the ranking, and runs on the digits
models that must equal plain ``optimize`` runs of the chosen scheme."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate import Dataset
from onnxprune.pipeline.api import optimize
from onnxprune.pipeline.scheme import Scheme
from onnxprune.pipeline.search import (
    MAX_SCHEMES,
    NOT_RUN,
    SchemeRow,
    default_space,
    expand_space,
    parse_space,
    rank_key,
    within_noise,
)
from onnxprune.pipeline.target import parse_target
from onnxprune.report.html import render_html
from onnxprune.report.schema import validate_report
from onnxprune.report.terminal import search_rows

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


# -- the space ------------------------------------------------------------------------------


def test_parse_space_reads_items_mappings_and_auto():
    assert parse_space(None) is None
    assert parse_space("auto") is None
    assert parse_space(["AUTO"]) is None
    assert parse_space(["criterion=obs,taylor", "max-ratio=0.5,0.8", "steps=2"]) == {
        "criterion": ["obs", "taylor"],
        "max_ratio": [0.5, 0.8],
        "steps": [2],
    }
    assert parse_space({"recover": "lsq", "units": ["channels", "channels+blocks"]}) == {
        "recover": ["lsq"],
        "units": ["channels", "channels,blocks"],
    }
    assert parse_space(["criterion=obs,obs,l1"]) == {"criterion": ["obs", "l1"]}
    # kind options are searchable too, their values read as --kind-option reads them
    assert parse_space(["gain-metric=rel_mse,std_mse", "min_size=1024,4096"]) == {
        "gain_metric": ["rel_mse", "std_mse"],
        "min_size": [1024, 4096],
    }


@pytest.mark.parametrize(
    ("space", "words"),
    [
        (["colour=red"], "unknown key 'colour'"),
        (["criterion=obs", "criterion=l1"], "given twice"),
        (["steps=two"], "takes int values"),
        (["max_ratio=0.5,"], "empty value"),
        (["criterion"], "KEY=V1,V2"),
        (["auto", "criterion=obs"], "give it alone"),
        ({}, "names no key"),
        ({"criterion": []}, "lists no value"),
    ],
)
def test_parse_space_refuses_bad_spaces(space, words):
    with pytest.raises(InputError, match=words):
        parse_space(space)


def test_expand_space_is_the_grid_last_key_fastest_without_duplicates():
    base = Scheme(criterion="obs", steps=3)
    schemes = expand_space(base, {"criterion": ["obs", "l1"], "recover": ["lsq", "bias"]})
    assert [(s.criterion, s.recover) for s in schemes] == [
        ("obs", "lsq"),
        ("obs", "bias"),
        ("l1", "lsq"),
        ("l1", "bias"),
    ]
    assert all(s.steps == 3 for s in schemes)  # the run's own options stay
    assert expand_space(base, {"criterion": ["obs"]}) == [base]
    too_many = {"max_ratio": [i / 100 for i in range(MAX_SCHEMES + 1)]}
    with pytest.raises(InputError, match="narrow it"):
        expand_space(base, too_many)


def test_expand_space_merges_kind_options_over_the_runs_own():
    base = Scheme(kind_options=(("min_size", 512), ("sensitivity_metric", "kl")))
    schemes = expand_space(base, {"sensitivity_metric": ["kl", "rel_mse"]})
    assert [dict(s.kind_options) for s in schemes] == [
        {"min_size": 512, "sensitivity_metric": "kl"},
        {"min_size": 512, "sensitivity_metric": "rel_mse"},
    ]
    assert schemes[1].plan_options({"min_size": 64, "gain_metric": "std_mse"}) == {
        "min_size": 512,
        "gain_metric": "std_mse",
        "sensitivity_metric": "rel_mse",
    }


def test_default_space_per_target_kind_and_data():
    macs, sparsity = parse_target("macs=0.5"), parse_target("sparsity=0.5")
    assert default_space(macs, True) == {
        "criterion": ["obs", "taylor"],
        "recover": ["lsq", "reconstruct"],
    }
    assert default_space(macs, False) == {
        "allocation": ["global", "uniform"],
        "max_ratio": [0.5, 0.8],
    }
    assert default_space(sparsity, True) == {"gain_metric": ["rel_mse", "std_mse"]}
    assert default_space(sparsity, False) == {"criterion": ["magnitude"]}


# -- the ranking ----------------------------------------------------------------------------


def _row(index, status="ok", drop=0.0, macs=0.5, progress=1.0, distance=0.1) -> SchemeRow:
    ran = status != NOT_RUN
    return SchemeRow(
        index=index,
        scheme={},
        methods={} if ran else None,
        status=status,
        metric_after=None if drop is None else 90.0 - drop,
        metric_drop=drop,
        distance=distance if ran else None,
        macs_ratio=macs if ran else None,
        params_ratio=macs if ran else None,
        progress=progress if ran else None,
        seconds=1.0,
        error=None if ran else "why",
    )


def test_rank_key_prefers_met_targets_then_loss_distance_macs_then_order():
    rows = [
        _row(0, NOT_RUN, drop=None),
        _row(1, "guard_not_met", drop=0.1, macs=0.8, progress=0.6),
        _row(2, "guard_not_met", drop=0.5, macs=0.7, progress=0.9),
        _row(3, "ok", drop=0.4, macs=0.5),
        _row(4, "ok", drop=0.2, macs=0.5),
        _row(5, "ok", drop=0.2, macs=0.49),
        _row(6, "ok", drop=0.2, macs=0.49),
        _row(7, "ok", drop=None),
        _row(8, "ok", drop=0.2, macs=0.6, distance=0.05),  # same loss, closer outputs
        _row(9, "guard_not_met", drop=0.5, macs=0.7, progress=0.9, distance=0.01),
    ]
    order = [row.index for row in sorted(rows, key=rank_key)]
    assert order == [8, 5, 6, 4, 3, 7, 9, 2, 1, 0]


def test_within_noise_lists_same_status_schemes_the_floor_cannot_separate():
    rows = [
        _row(0, "ok", drop=0.35),
        _row(1, "ok", drop=0.10),
        _row(2, "ok", drop=0.55),  # 0.45 from the winner: beyond a floor of 0.3
        _row(3, "guard_not_met", drop=0.12, progress=0.5),  # another status class
        _row(4, NOT_RUN, drop=None),
    ]
    assert within_noise(rows, 1, 0.3) == [0]
    assert within_noise(rows, 1, 0.5) == [0, 2]
    assert within_noise(rows, 3, 1.0) == []


# -- runs on the digits models --------------------------------------------------------------


ORIGINAL_SHA256: dict[str, str] = {}


@pytest.fixture(scope="module")
def digits():
    path = DIGITS / "digits_mbv2.onnx"
    ORIGINAL_SHA256[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    calib = np.load(DIGITS / "digits_calib.npz")
    test = np.load(DIGITS / "digits_test.npz")
    return (
        str(DIGITS / "digits_mbv2.onnx"),
        {"input": calib["input"][:96], "labels": calib["labels"][:96]},
        Dataset({"input": test["input"][:96]}, test["labels"][:96]),
    )


RUN = {"steps": 1, "measure_latency": False}


@pytest.fixture(scope="module")
def searched(digits):
    model, calib, evaluation = digits
    return optimize(
        model,
        "macs=0.7",
        data=calib,
        eval_data=evaluation,
        search={"criterion": ["l1", "obs"], "recover": ["none", "lsq"]},
        **RUN,
    )


def test_search_runs_every_scheme_and_writes_the_best(searched):
    report = searched.report
    search = report.search
    rows = search["schemes"]
    assert [(r["scheme"]["criterion"], r["scheme"]["recover"]) for r in rows] == [
        ("l1", "none"),
        ("l1", "lsq"),
        ("obs", "none"),
        ("obs", "lsq"),
    ]
    assert all(r["status"] != NOT_RUN for r in rows)
    ranked = sorted((SchemeRow(**r) for r in rows), key=rank_key)
    assert search["chosen"] == ranked[0].index
    chosen = rows[search["chosen"]]
    assert report.metric_after == pytest.approx(chosen["metric_after"])
    assert report.macs_after / report.macs_before == pytest.approx(chosen["macs_ratio"])
    assert chosen["methods"]["criterion"] == report.criterion
    assert search["selection"] in report.notes and "optimistic" in search["selection"]
    assert search["distance_metric"] == "kl"  # top-1 guard on class scores
    floor = report.guard["noise"]["floor"]
    assert search["unresolved"] == within_noise(
        [SchemeRow(**r) for r in rows], search["chosen"], floor
    )
    assert all(r["distance"] >= 0.0 for r in rows)
    document = json.loads(report.to_json())
    assert validate_report(document) == []
    assert document["search"]["space"] == {"criterion": ["l1", "obs"], "recover": ["none", "lsq"]}


def test_the_chosen_scheme_alone_gives_the_same_model(searched, digits):
    """One session shared by the schemes changes nothing: optimize with the chosen scheme
    writes the same MACs and metric."""
    model, calib, evaluation = digits
    chosen = searched.report.search["schemes"][searched.report.search["chosen"]]["scheme"]
    alone = optimize(
        model,
        "macs=0.7",
        data=calib,
        eval_data=evaluation,
        criterion=chosen["criterion"],
        recover=chosen["recover"],
        **RUN,
    )
    assert alone.report.macs_after == searched.report.macs_after
    assert alone.report.metric_after == pytest.approx(searched.report.metric_after)
    assert alone.model.SerializeToString() == searched.model.SerializeToString()


def test_schemes_that_reuse_the_sessions_scores_and_table_match_their_own_runs(digits):
    """The second scheme reads the analysis, the obs scores and the sensitivity table the
    first one made (same criterion, both repaired): each row equals optimize's own run."""
    model, calib, evaluation = digits
    space = {"recover": ["bias", "lsq"]}
    common = {"data": calib, "eval_data": evaluation, "criterion": "obs", **RUN}
    searched = optimize(model, "macs=0.7", search=space, **common)
    for row in searched.report.search["schemes"]:
        alone = optimize(model, "macs=0.7", recover=row["scheme"]["recover"], **common).report
        assert row["macs_ratio"] == pytest.approx(alone.macs_after / alone.macs_before)
        assert row["metric_after"] == pytest.approx(alone.metric_after)
        assert row["status"] == alone.status


def test_search_report_renders_as_table_and_html(searched):
    rows = search_rows(searched.report)
    assert len(rows) == 4
    assert sum(row[0].endswith("*") for row in rows) == 1
    assert rows[0][1] == "criterion=l1 recover=none"
    html = render_html(searched.report)
    assert "Schemes searched" in html and "optimistic" in html


def test_a_sparsity_search_reports_each_schemes_zero_share(digits):
    model, calib, evaluation = digits
    result = optimize(
        model,
        "sparsity=0.3",
        data=calib,
        eval_data=evaluation,
        search="auto",
        max_drop=100.0,
        **RUN,
    )
    report = result.report
    rows = report.search["schemes"]
    assert [row["scheme"]["gain_metric"] for row in rows] == ["rel_mse", "std_mse"]
    for row in rows:
        assert row["sparsity"] == pytest.approx(0.3, abs=0.02)
    chosen = rows[report.search["chosen"]]
    assert chosen["sparsity"] == pytest.approx(report.plan["sparsity"]["sparsity_after"], abs=1e-3)
    assert search_rows(report)[0][6] == f"{100 * rows[0]['sparsity']:.1f}"
    assert "zeros %" in render_html(report)
    assert validate_report(json.loads(report.to_json())) == []


def test_a_scheme_that_cannot_run_is_recorded_and_the_search_goes_on(digits):
    model, _, _ = digits
    result = optimize(
        model,
        "macs=0.8",
        synthesize="gaussian",
        search=["allocation=sensitivity,global"],
        **RUN,
    )
    first, second = result.report.search["schemes"]
    assert first["status"] == NOT_RUN and "calibration data" in first["error"]
    assert second["status"] != NOT_RUN and result.report.search["chosen"] == 1
    assert validate_report(json.loads(result.report.to_json())) == []


def test_when_no_scheme_can_run_the_first_error_is_raised(digits):
    model, _, _ = digits
    with pytest.raises(InputError, match="calibration data"):
        optimize(model, "macs=0.8", synthesize="gaussian", search=["allocation=sensitivity"], **RUN)


def test_no_scheme_starts_after_the_time_limit(digits):
    model, _, _ = digits
    result = optimize(
        model,
        "macs=0.8",
        synthesize="gaussian",
        search=["max_ratio=0.5,0.8"],
        search_minutes=1e-9,
        **RUN,
    )
    first, second = result.report.search["schemes"]
    assert first["status"] != NOT_RUN  # the first always runs
    assert second["status"] == NOT_RUN and "time limit" in second["error"]


def test_bad_spaces_fail_before_any_work(tmp_path):
    missing = str(tmp_path / "absent.onnx")  # never read: the space is refused first
    with pytest.raises(InputError, match="scheme criterion=nope: unknown criterion"):
        optimize(missing, search=["criterion=obs,nope"])
    with pytest.raises(InputError, match="search minutes"):
        optimize(missing, search="auto", search_minutes=0)
    with pytest.raises(InputError, match="give search"):
        optimize(missing, search_minutes=5)


def test_validate_report_checks_the_search_object(searched):
    document = json.loads(searched.report.to_json())
    document["search"]["chosen"] = 99
    assert any("search.chosen" in p for p in validate_report(document))
    del document["search"]["schemes"][0]["status"]
    assert "missing key search.schemes[0].status" in validate_report(document)


def test_the_input_model_is_not_modified(digits, searched):
    model, _, _ = digits
    assert hashlib.sha256(Path(model).read_bytes()).hexdigest() == ORIGINAL_SHA256[model]
