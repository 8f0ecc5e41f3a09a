"""The accuracy benchmark's metrics, data handling, table and harness (benchmarks/accuracy.py).

The metrics are checked on tiny frames computed by hand; the harness runs end to end with
a plain-pandas model, so that none of this needs statsforecast, which only the tests that
say so import (``pytest.importorskip``).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_module():
    spec = importlib.util.spec_from_file_location(
        "benchmarks.accuracy", ROOT / "benchmarks" / "accuracy.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up here
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


acc = _load_module()


def _series(uid: str, values, start: str = "2020-01-01", freq: str = "D") -> pd.DataFrame:
    stamps = pd.date_range(start, periods=len(values), freq=freq)
    return pd.DataFrame({"unique_id": uid, "ds": stamps, "y": np.asarray(values, float)})


def _cv(uid: str, train: pd.DataFrame, cutoff_index: int, actual, forecast, **bounds):
    """A cross-validation frame of one window of ``uid`` after ``train``'s ``cutoff_index``."""
    stamps = train["ds"].iloc[cutoff_index + 1 : cutoff_index + 1 + len(actual)]
    frame = pd.DataFrame(
        {
            "unique_id": uid,
            "ds": stamps.to_numpy(),
            "cutoff": train["ds"].iloc[cutoff_index],
            "y": actual,
            "M": forecast,
        }
    )
    return frame.assign(**bounds)


# -- MASE -----------------------------------------------------------------------------------


def test_insample_scale_is_taken_up_to_each_cutoff():
    # season 1: |diffs| = 1, 2, 3, 4, 5, 6, 7 at positions 1..7
    train = _series("a", [0, 1, 3, 6, 10, 15, 21, 28])
    pairs = pd.DataFrame({"unique_id": ["a", "a", "a"], "cutoff": train["ds"].iloc[[3, 5, 0]]})
    scale = acc.insample_scale(train, pairs, season=1)
    assert scale.tolist()[:2] == [2.0, 3.0]  # mean(1, 2, 3); mean(1, .., 5)
    assert math.isnan(scale.iloc[2])  # no seasonal difference before the first value


def test_insample_scale_uses_the_season_and_each_series_alone():
    a = _series("a", [1, 2, 5, 2, 4, 10])  # season 3: |2-1|, |4-2|, |10-5| = 1, 2, 5
    b = _series("b", [100, 0, 0, 0])  # b's values must not leak into a's differences
    train = pd.concat([b, a], ignore_index=True)
    pairs = pd.DataFrame({"unique_id": ["a", "a", "b"], "cutoff": [a.ds[4], a.ds[5], b.ds[3]]})
    scale = acc.insample_scale(train, pairs, season=3)
    assert scale.tolist() == [1.5, pytest.approx(8 / 3), 100.0]


def test_mase_scales_each_cutoff_by_its_own_history():
    train = _series("a", [0, 1, 3, 6, 10, 15, 21, 28])
    first = _cv("a", train, 3, actual=[10, 15], forecast=[12, 15])  # mae 1, scale 2
    second = _cv("a", train, 5, actual=[21, 28], forecast=[15, 28])  # mae 3, scale 3
    value, left_out = acc.mase(pd.concat([first, second]), train, "M", season=1)
    assert value == pytest.approx((1 / 2 + 3 / 3) / 2)
    assert left_out == 0


def test_mase_averages_series_cutoffs_not_rows():
    a = _series("a", [0, 2, 4, 6, 8, 10])  # scale 2 up to any cutoff
    b = _series("b", [0, 1, 2, 3, 4, 5])  # scale 1
    cv = pd.concat(
        [
            _cv("a", a, 3, actual=[8, 10], forecast=[8, 6]),  # errors 0, 4: mae 2 -> 1
            _cv("b", b, 4, actual=[5], forecast=[8]),  # error 3 -> 3
        ]
    )
    value, _ = acc.mase(cv, pd.concat([a, b]), "M", season=1)
    assert value == pytest.approx((1 + 3) / 2)


def test_mase_leaves_out_constant_histories_and_missing_forecasts():
    flat = _series("flat", [5, 5, 5, 5, 6])
    a = _series("a", [0, 1, 2, 3, 4])
    cv = pd.concat(
        [
            _cv("flat", flat, 3, actual=[6], forecast=[5]),  # scale 0: left out
            _cv("a", a, 2, actual=[3, 4], forecast=[3, np.nan]),  # a missing forecast
            _cv("a", a, 1, actual=[2], forecast=[4]),  # scale 1, error 2
        ]
    )
    value, left_out = acc.mase(cv, pd.concat([flat, a]), "M", season=1)
    assert value == 2.0
    assert left_out == 2


# -- sMAPE and coverage ---------------------------------------------------------------------


def test_smape_in_percent_with_zero_over_zero_as_zero():
    cv = pd.DataFrame({"y": [0.0, 0.0, 1.0, 1.0, -2.0], "M": [0.0, 1.0, 1.0, 3.0, 2.0]})
    # 0 (0/0), 200, 0, 200 * 2/4 = 100, 200 * 4/4 = 200
    assert acc.smape(cv, "M") == pytest.approx((0 + 200 + 0 + 100 + 200) / 5)


def test_smape_does_not_hide_missing_forecasts():
    cv = pd.DataFrame({"y": [1.0, 1.0], "M": [1.0, np.nan]})
    assert math.isnan(acc.smape(cv, "M"))


def test_coverage_counts_actuals_within_inclusive_bounds():
    cv = pd.DataFrame(
        {
            "y": [1.0, 2.0, 3.0, 4.0, 5.0],
            "M-lo-80": [1.0, 0.0, 3.5, np.nan, 0.0],
            "M-hi-80": [2.0, 1.9, 4.0, 9.0, 5.0],
        }
    )
    # in (on the bound), out (above), out (below), out (no bound), in (on the bound)
    assert acc.coverage(cv, "M", 80) == pytest.approx(40.0)


def test_coverage_without_any_bounds_is_nan():
    cv = pd.DataFrame({"y": [1.0], "M-lo-95": [np.nan], "M-hi-95": [np.nan]})
    assert math.isnan(acc.coverage(cv, "M", 95))


def test_check_cv_frame_names_missing_columns():
    cv = pd.DataFrame(columns=["unique_id", "ds", "cutoff", "y", "M", "M-lo-80", "M-hi-80"])
    with pytest.raises(ValueError, match=r"M-lo-95"):
        acc.check_cv_frame(cv, "M")
    acc.check_cv_frame(cv, "M", levels=[80])


# -- data -----------------------------------------------------------------------------------


def test_freq_groups_split_mixed_quarterly_anchors():
    dec = _series("prison", range(8), start="2005-03-01", freq="QS-DEC")
    jan = _series("qgas", range(8), start="2005-01-01", freq="QS-JAN")
    df = pd.concat([dec, jan], ignore_index=True)
    freqs = acc.series_freqs(df)
    groups = acc.freq_groups(df, freqs)
    assert len(groups) == 2
    assert {tuple(frame["unique_id"].unique()) for _, frame in groups} == {("prison",), ("qgas",)}
    for freq, frame in groups:  # each group's dates lie on its own freq
        stamps = frame["ds"]
        assert (pd.date_range(stamps.iloc[0], periods=len(stamps), freq=freq) == stamps).all()


def test_fill_gaps_interpolates_interior_gaps_only():
    df = _series("a", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], freq="h").drop(index=[2, 3])
    df = pd.concat([df, _series("b", [7.0, 8.0, 9.0], freq="h")], ignore_index=True)
    freqs = acc.series_freqs(df)
    assert freqs.to_dict() == {"a": "h", "b": "h"}
    filled, count = acc.fill_gaps(df, freqs)
    assert count == 2
    assert filled.loc[filled.unique_id == "a", "y"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert filled.loc[filled.unique_id == "b", "y"].tolist() == [7.0, 8.0, 9.0]


def test_check_lengths_refuses_short_series():
    spec = acc.DatasetSpec("tiny", h=2, n_windows=2, season=3, file=None)
    acc.check_lengths(_series("a", range(8)), spec)  # 2 x 2 + 3 + 1
    with pytest.raises(ValueError, match=r"1 series have fewer than 8"):
        acc.check_lengths(_series("a", range(7)), spec)


# -- table and targets ----------------------------------------------------------------------


def _row(dataset, model, **values):
    row = dict.fromkeys(
        ("mase", "smape", "cov80", "cov95", "seconds", "ets_ratio", "mase_left_out", "n_forecasts")
    )
    row.update(dataset=dataset, model=model, status="ok", reason="", n_series=1)
    row.update(values)
    return row


def test_format_table_one_markdown_table():
    rows = [
        _row("monthly", "AutoETS", mase=1.23456, smape=5.4321, cov80=81.25, cov95=93.75,
             seconds=6.789, ets_ratio=1.0),
        _row("monthly", "SeasonalNaive", mase=1.5, smape=7.0, cov80=60.0, cov95=80.0,
             seconds=0.02, ets_ratio=339.46),
        _row("monthly", "RNNFlow", status="not available", reason="no cross_validation yet"),
        _row("taylor", "AutoETS", status="skipped", reason="exceeded the 60 s budget"),
    ]  # fmt: skip
    lines = acc.format_table(rows).splitlines()
    assert lines[0] == (
        "| dataset | model | MASE | sMAPE | cov80 | cov95 | seconds | ETS-time/model-time |"
    )
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    assert lines[2] == "| monthly | AutoETS | 1.235 | 5.43 | 81.2 | 93.8 | 6.79 | 1.00 |"
    assert lines[3] == "| monthly | SeasonalNaive | 1.500 | 7.00 | 60.0 | 80.0 | 0.02 | 339.5 |"
    assert lines[4] == (
        "| monthly | RNNFlow | not available: no cross_validation yet | - | - | - | - | - |"
    )
    assert (
        lines[5] == "| taylor | AutoETS | skipped: exceeded the 60 s budget | - | - | - | - | - |"
    )
    assert len(lines) == 6
    assert all(line.count("|") == 9 for line in lines)


def test_speed_ratios_divide_the_reference_time_per_dataset():
    rows = [
        _row("d1", "AutoETS", seconds=10.0),
        _row("d1", "RNNFlow", seconds=0.25),
        _row("d2", "RNNFlow", seconds=1.0),  # no AutoETS on d2
        _row("d1", "AutoTheta", status="skipped", seconds=None),
    ]
    acc.add_speed_ratios(rows)
    assert [r["ets_ratio"] for r in rows] == [1.0, 40.0, None, None]


def test_target_lines_check_each_target():
    rows = [
        _row("monthly", "SeasonalNaive", mase=1.5),
        _row("monthly", "AutoETS", mase=1.2),
        _row("monthly", "RNNFlow", mase=1.3, cov80=77.0, cov95=89.0, ets_ratio=25.0),
        _row("daily_elec", "SeasonalNaive", mase=1.0),
        _row("daily_elec", "AutoETS", mase=0.5),
        _row("daily_elec", "RNNFlow", mase=0.9, cov80=80.0, cov95=95.0, ets_ratio=5.0),
        _row("quarterly", "RNNFlow", status="not available", reason="later"),
    ]
    assert acc.target_lines(rows) == [
        "- monthly: MASE 1.300 <= SeasonalNaive 1.500: PASS",
        "- monthly: MASE 1.300 <= AutoETS 1.200: FAIL",
        "- monthly: cov80 77.0 within 5 of 80: PASS",
        "- monthly: cov95 89.0 within 5 of 95: FAIL",
        "- monthly: 25.0x faster than AutoETS (>= 20x): PASS",
        "- daily_elec: MASE 0.900 <= SeasonalNaive 1.000: PASS",  # no AutoETS target here
        "- daily_elec: cov80 80.0 within 5 of 80: PASS",
        "- daily_elec: cov95 95.0 within 5 of 95: PASS",
        "- daily_elec: 5.00x faster than AutoETS (>= 20x): FAIL",
    ]
    assert acc.target_lines(rows[:2]) == []


def test_target_lines_say_n_a_without_a_peer():
    rows = [_row("sample", "RNNFlow", mase=0.8, cov80=80.0, cov95=95.0)]
    assert acc.target_lines(rows)[0] == (
        "- sample: MASE <= SeasonalNaive: n/a (SeasonalNaive has no result)"
    )
    assert (
        acc.target_lines(rows)[-1] == "- sample: >= 20x faster than AutoETS: n/a (no AutoETS time)"
    )


# -- the harness ----------------------------------------------------------------------------


def naive_model(df, h, n_windows, step_size, freq, season, level):
    """Seasonal naive in plain pandas, with +-1 intervals: a model for the harness."""
    frames = []
    for uid, group in df.groupby("unique_id"):
        y, ds = group["y"].to_numpy(), group["ds"].to_numpy()
        for window in range(n_windows):
            end = len(y) - h - (n_windows - 1 - window) * step_size
            forecast = np.resize(y[end - season : end], h)
            frame = pd.DataFrame(
                {"unique_id": uid, "ds": ds[end : end + h], "cutoff": ds[end - 1],
                 "y": y[end : end + h], "Naive": forecast}
            )  # fmt: skip
            for lv in level:
                frame[f"Naive-lo-{lv}"], frame[f"Naive-hi-{lv}"] = forecast - 1, forecast + 1
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def unavailable_model(df, h, n_windows, step_size, freq, season, level):
    raise acc.NotAvailable("not here")


def failing_model(df, h, n_windows, step_size, freq, season, level):
    raise ZeroDivisionError("boom")


@pytest.mark.parametrize("budget", [0.0, 60.0])
def test_run_dataset_scores_each_model_and_reports_failures(budget):
    t = np.arange(40)
    a = _series("a", 10 + (t % 4) + t / 20, freq="MS")  # seasonal differences all 0.2
    b = _series("b", 20 + 2 * (t % 4) + t / 10, start="2020-03-01", freq="QS-DEC")  # 0.4
    spec = acc.DatasetSpec("toy", h=4, n_windows=2, season=4, file=None)
    models = {"Naive": naive_model, "Gone": unavailable_model, "Bad": failing_model}
    rows, filled = acc.run_dataset(spec, pd.concat([a, b]), models, budget)
    assert filled == 0
    naive, gone, bad = rows
    assert naive["status"] == "ok" and naive["n_forecasts"] == 2 * 2 * 4
    # seasonal naive misses by one season's trend, its in-sample error: MASE 1
    assert naive["mase"] == pytest.approx(1.0) and naive["mase_left_out"] == 0
    assert naive["smape"] > 0
    assert naive["cov80"] == naive["cov95"] == 100.0  # off by 0.2 and 0.4, within +-1
    assert naive["seconds"] >= 0
    assert (gone["status"], gone["reason"]) == ("not available", "not here")
    assert bad["status"] == "error" and bad["reason"] == "ZeroDivisionError: boom"


def test_run_isolated_skips_work_over_budget():
    import time

    def slow():
        time.sleep(30)

    outcome = acc.run_isolated(slow, budget=0.5)
    assert (outcome.status, outcome.reason) == ("skipped", "exceeded the 0.5 s budget")


def test_rnnflow_entry_is_not_available_without_cross_validation(monkeypatch):
    forecast = pytest.importorskip("rnncore.forecast")

    class Bare:
        def __init__(self, **_):
            pass

    monkeypatch.setattr(forecast, "Forecaster", Bare)
    with pytest.raises(acc.NotAvailable, match="no cross_validation"):
        acc.rnnflow_model(pd.DataFrame(), 2, 1, 2, "h", 24, [80, 95])


def test_rnnflow_entry_calls_the_dataframe_api(monkeypatch):
    forecast = pytest.importorskip("rnncore.forecast")
    calls = {}

    class Fake:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def cross_validation(self, df, **kwargs):
            calls["cv"] = kwargs
            return "frame"

    monkeypatch.setattr(forecast, "Forecaster", Fake)
    assert acc.rnnflow_model(pd.DataFrame(), 12, 3, 12, "MS", 12, (80, 95)) == "frame"
    assert calls["init"] == {"horizon": 12, "freq": "MS"}  # seasons from the frequency
    assert calls["cv"] == {"h": 12, "n_windows": 3, "step_size": 12, "level": [80, 95]}


def test_the_learned_entry_asks_for_the_learned_encoder_under_its_alias(monkeypatch):
    forecast = pytest.importorskip("rnncore.forecast")
    calls = {}

    class Fake:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def cross_validation(self, df, **kwargs):
            return pd.DataFrame(
                columns=["unique_id", "ds", "cutoff", "y", "RNNFlow", "RNNFlow-lo-80"]
            )

    monkeypatch.setattr(forecast, "Forecaster", Fake)
    cv = acc.MODELS["RNNFlowLearned"](pd.DataFrame(), 12, 3, 12, "MS", 12, (80,))
    assert calls["init"] == {"horizon": 12, "freq": "MS", "encoder": "learned"}
    assert list(cv.columns) == [
        "unique_id",
        "ds",
        "cutoff",
        "y",
        "RNNFlowLearned",
        "RNNFlowLearned-lo-80",
    ]


def test_every_dataset_has_a_season_and_the_models_are_registered():
    assert list(acc.DATASETS) == [
        "monthly", "quarterly", "daily_elec", "halfhourly_taylor", "sample",
    ]  # fmt: skip
    assert {s.season for s in acc.DATASETS.values()} == {12, 4, 7, 48, 24}
    assert list(acc.MODELS) == [
        "SeasonalNaive", "AutoETS", "AutoTheta", "RNNFlow", "RNNFlowLearned",
    ]  # fmt: skip


def test_command_line_rejects_unknown_names():
    with pytest.raises(SystemExit):
        acc.parse_args(["--models", "SeasonalNaive,Prophet"])
    args = acc.parse_args(["--datasets", "monthly, quarterly"])
    assert args.datasets == ["monthly", "quarterly"]
    assert args.models == list(acc.MODELS)


# -- with statsforecast and utilsforecast ---------------------------------------------------


def test_metrics_agree_with_utilsforecast_per_cutoff():
    losses = pytest.importorskip("utilsforecast.losses")
    if "cutoff_col" not in inspect.signature(losses.mase).parameters:
        pytest.skip("this utilsforecast scales MASE per series, not per series and cutoff")
    rng = np.random.default_rng(0)
    train = pd.concat(
        [_series(uid, rng.normal(10, 3, 30).cumsum(), freq="MS") for uid in ("a", "b")],
        ignore_index=True,
    )
    windows = []
    for uid in ("a", "b"):
        series = train[train.unique_id == uid].reset_index(drop=True)
        for cut in (20, 23, 26):
            actual = series["y"].to_numpy()[cut + 1 : cut + 4]
            bounds = {"M-lo-80": actual - 4, "M-hi-80": actual + 4}
            forecast = actual + rng.normal(0, 5, 3)
            windows.append(_cv(uid, series, cut, actual=actual, forecast=forecast, **bounds))
    cv = pd.concat(windows, ignore_index=True)
    theirs = losses.mase(cv, ["M"], seasonality=2, train_df=train)
    assert len(theirs) == 6  # one scale per series and cutoff
    assert acc.mase(cv, train, "M", season=2)[0] == pytest.approx(theirs["M"].mean())
    assert acc.smape(cv, "M") == pytest.approx(200 * losses.smape(cv, ["M"])["M"].mean())
    got = losses.coverage(cv, ["M"], level=80)["M"].mean()
    assert acc.coverage(cv, "M", 80) == pytest.approx(100 * got)


@pytest.mark.slow  # fits StatsForecast's models
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # AutoTheta's, on the constant series
def test_command_line_runs_statsforecast_on_the_sample(tmp_path, capsys):
    pytest.importorskip("statsforecast")
    out = tmp_path / "rows.json"
    argv = ["--models", "SeasonalNaive,AutoTheta,RNNFlow", "--datasets", "sample", "--json",
            str(out), "--sample-series", "4", "--sample-steps", str(24 * 7 * 2)]  # fmt: skip
    assert acc.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("| sample |") == 3
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["SeasonalNaive", "AutoTheta", "RNNFlow"]
    for row in rows[:2]:
        assert row["status"] == "ok", row
        assert 0 < row["mase"] < 10 and 0 <= row["cov95"] <= 100
        assert row["n_forecasts"] == 4 * 3 * 24
    assert rows[2]["status"] in ("ok", "not available", "error")
