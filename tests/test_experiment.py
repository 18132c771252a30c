"""The experiment protocol and `xstf benchmark`: split, hidden test images, report, numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xstf
from xstf import experiment
from xstf.cli import main as cli_main

SCORES = ["rmse", "ssim", "psnr", "sam", "cc", "ergas"]


def test_split_follows_the_survey_shares():
    pairs = pd.date_range("2013-04-01", periods=51, freq="30D")
    train, test = experiment.split_test_dates(pairs)
    assert (len(train), len(test)) == (43, 8)
    assert pairs[0] in train and pairs[-1] in train  # every test date is bracketed
    assert not set(train) & set(test)
    train, test = experiment.split_test_dates(pairs[:13])  # proportional: round(13 * 8/51) = 2
    assert len(test) == 2
    train, test = experiment.split_test_dates(pairs[:5], 0.4)  # 2 of the 3 interior pairs
    assert len(test) == 2 and len(train) == 3 and pairs[0] in train and pairs[4] in train


def test_split_explicit_and_errors():
    pairs = pd.date_range("2020-01-01", periods=6, freq="16D")
    train, test = experiment.split_test_dates(pairs, [pairs[2]])
    assert list(test) == [pairs[2]] and len(train) == 5
    with pytest.raises(xstf.CubeError, match=r"not pairs of the cube"):
        experiment.split_test_dates(pairs, ["2020-01-02"])
    with pytest.raises(xstf.CubeError, match=r"has 2 pair\(s\).*0 interior"):
        experiment.split_test_dates(pairs[:2])


def test_variability_is_the_spatial_std_of_the_coarse_change():
    time = pd.date_range("2020-01-01", periods=3, freq="8D")
    rng = np.random.default_rng(0)
    base = 290 + rng.normal(0, 1, (8, 8))
    coarse = np.stack([base, base + 3.0, base + rng.normal(0, 4, (8, 8))]).astype("float32")
    ds = xr.Dataset(
        {"coarse": (("time", "y", "x"), coarse), "fine": (("time", "y", "x"), coarse)},
        coords={"time": time, "y": np.arange(8.0), "x": np.arange(8.0)},
    )
    v = experiment.variability(ds, time[1:], time[:1], threshold=1.0)
    expected = [np.std(coarse[1] - coarse[0]), np.std(coarse[2] - coarse[0])]
    np.testing.assert_allclose(v.change_std.values, expected, rtol=1e-5)
    assert list(v.strong.values) == [False, True]  # a uniform +3 K is easy, a patchy change is not
    np.testing.assert_allclose(v.change_mean.values[0], 3.0, atol=1e-4)


@pytest.fixture(scope="module")
def cube():
    return xstf.datasets.synthetic(size=56, days=260, seed=4, cloud_fraction=0.1)


def test_test_images_are_hidden_from_methods(cube, monkeypatch):
    seen = {}
    import xstf.fusion.estarfm as mod

    real = mod.estarfm

    def spy(ds, *args, **kwargs):
        seen["cube"] = ds
        return real(ds, *args, **kwargs)

    monkeypatch.setattr(mod, "estarfm", spy)
    res = experiment.run(cube, ["estarfm"], progress=False, options={"estarfm": {"half_window": 5}})
    fine_seen = seen["cube"]["fine"].sel(time=res.test_dates)
    assert bool(fine_seen.isnull().all())
    assert bool(cube.fine.sel(time=res.test_dates).notnull().any())  # the real cube still has them


@pytest.mark.slow
def test_benchmark_cli_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["benchmark", "--synthetic", "--size", "56", "--days", "260", "--seed", "4",
            "--cloud-fraction", "0.1", "--methods", "estarfm,starfm,edcstfn", "--epochs", "1",
            "--half-window", "5", "--quiet", "--out", str(out)]  # fmt: skip
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "coarse_only" in printed and "report written" in printed
    for name in ["report.md", "scores.csv", "scores.nc", "predictions.nc", "scores_rmse.png",
                 "compare_best.png", "compare_worst.png", "scatter_estarfm.png"]:  # fmt: skip
        assert (out / name).stat().st_size > 0, name

    table = pd.read_csv(out / "scores.csv", parse_dates=["time"])
    methods = {"coarse_only", "estarfm", "starfm", "edcstfn"}
    assert set(table["method"]) == methods
    preds = xr.open_dataset(out / "predictions.nc")
    dates = pd.DatetimeIndex(preds.time.values)
    assert len(table) == len(methods) * len(dates)  # every method x date ...
    assert set(SCORES) <= set(table.columns)  # ... x score
    assert table[SCORES].notna().all().all()

    # the numbers are metrics() on the saved predictions, against the held-out Landsat images
    ds = xstf.datasets.synthetic(size=56, days=260, seed=4, cloud_fraction=0.1)
    again = xstf.metrics(
        preds,
        ds.fine.sel(time=dates),
        ratio=30 / 1000,
        baseline=preds["coarse_only"],
        common_mask=True,
    )
    stored = xr.open_dataset(out / "scores.nc")
    for s in [*SCORES, "ubrmse", "bias", "skill_rmse", "n_valid"]:
        np.testing.assert_allclose(
            stored[s].transpose("method", "time").values,
            again[s].sel({"method": stored.method.values}).transpose("method", "time").values,
            rtol=1e-6,
        )
    report = (out / "report.md").read_text()
    assert "Command: `xstf benchmark --synthetic" in report and "Versions:" in report
    assert "one common mask per date" in report and "beat coarse_only in ubrmse" in report
    for d in dates:
        assert str(d.date()) in report


@pytest.mark.realdata
def test_orleans_benchmark(tmp_path: Path, orleans_data: Path):
    data = orleans_data
    out = tmp_path / "orleans"
    argv = ["benchmark", "--orleans", str(data), "--methods", "estarfm,ubestarfm",
            "--test", "0.4", "--quiet", "--out", str(out)]  # fmt: skip
    assert cli_main(argv) == 0
    table = pd.read_csv(out / "scores.csv")
    assert set(table["method"]) == {"coarse_only", "estarfm", "ubestarfm"}
    print((out / "report.md").read_text())


def test_benchmark_from_a_zarr_cube(tmp_path, cube, capsys):
    store = tmp_path / "cube.zarr"
    xstf.to_zarr(cube, store)
    out = tmp_path / "rep"
    argv = ["benchmark", "--cube", str(store), "--methods", "estarfm", "--half-window", "5",
            "--quiet", "--out", str(out)]  # fmt: skip
    assert cli_main(argv) == 0
    table = pd.read_csv(out / "scores.csv")
    assert set(table["method"]) == {"coarse_only", "estarfm"}
    assert cli_main(argv) == 2  # an existing report is not replaced unless asked
    assert "overwrite=True" in capsys.readouterr().err


# -- method table, common mask, report, warnings -------------------------------------------------
@pytest.fixture(scope="module")
def small_run(cube):
    return experiment.run(
        cube,
        ["estarfm", "starfm"],
        progress=False,
        options={"estarfm": {"half_window": 5}, "starfm": {"half_window": 5}},
    )


def test_common_mask_gives_every_method_the_same_n_valid(cube, small_run):
    s = small_run.scores
    n = s.n_valid.transpose("method", "time").values
    assert (n == n[0]).all() and n.min() > 0
    preds = small_run.predictions
    truth = cube.fine.sel(time=small_run.test_dates)
    ok = truth.notnull()
    for m in preds.data_vars:
        ok = ok & preds[m].notnull()
    np.testing.assert_array_equal(n[0], ok.sum(("y", "x")).values)
    # skill against the baseline, computed by hand on the common pixels
    for m in ("estarfm", "starfm"):
        for t in small_run.test_dates:
            v = ok.sel(time=t).values
            d = (preds[m].sel(time=t).values - truth.sel(time=t).values)[v]
            db = (preds["coarse_only"].sel(time=t).values - truth.sel(time=t).values)[v]
            want = 1 - np.sqrt(np.mean(d**2)) / np.sqrt(np.mean(db**2))
            got = float(s.skill_rmse.sel({"method": m, "time": t}))
            assert got == pytest.approx(want, rel=1e-4)
    assert {"ubrmse", "bias", "skill_rmse", "skill_ubrmse"} <= set(small_run.table().columns)
    assert small_run.info["common_mask"] is True and "command" not in small_run.info


def test_per_method_masks_on_request(cube):
    res = experiment.run(
        cube, ["estarfm"], progress=False, options={"estarfm": {"half_window": 5}},
        common_mask=False,
    )  # fmt: skip
    truth = cube.fine.sel(time=res.test_dates)
    for m in res.predictions.data_vars:
        want = (res.predictions[m].notnull() & truth.notnull()).sum(("y", "x")).values
        np.testing.assert_array_equal(res.scores.n_valid.sel({"method": m}).values, want)
    assert "skill_rmse" not in res.scores


def test_registered_method_is_dispatched_with_the_hidden_cube(cube):
    seen = {}

    def plus_one(train_cube, targets, *, fine, coarse, offset=1.0):
        seen["fine"] = train_cube[fine].sel(time=targets)
        return train_cube[coarse].sel(time=targets) + offset

    experiment.register_method("plus_one", plus_one, description="coarse + 1 K")
    try:
        res = experiment.run(
            cube, ["plus_one"], progress=False, options={"plus_one": {"offset": 2.0}}
        )
    finally:
        experiment.METHODS.pop("plus_one")
    assert bool(seen["fine"].isnull().all())  # the test images are hidden
    bias = res.scores.bias.sel({"method": "plus_one"}) - res.scores.bias.sel(
        {"method": "coarse_only"}
    )
    np.testing.assert_allclose(bias.values, 2.0, atol=1e-4)
    with pytest.raises(ValueError, match="already"):
        experiment.register_method("estarfm", plus_one)


def test_unknown_method_is_refused_before_any_work():
    # an empty Dataset would fail validation: the name check must come first
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['estarfn'\].*estarfm"):
        experiment.run(xr.Dataset(), ["estarfn"])
    with pytest.raises(ValueError, match="not run"):
        experiment.run(xr.Dataset(), ["estarfm"], options={"starfm": {}})


def test_method_warnings_reach_the_caller_and_the_report(cube, tmp_path):
    import warnings

    import dask.array as dsa

    def warn_in_a_dask_thread(block):
        warnings.warn("the split has no validation date (test)", UserWarning, stacklevel=1)
        warnings.warn("a library deprecation", DeprecationWarning, stacklevel=1)
        return block

    def noisy(train_cube, targets, *, fine, coarse):
        lazy = train_cube[coarse].sel(time=targets).chunk({"time": 1})
        return lazy.copy(data=dsa.map_blocks(warn_in_a_dask_thread, lazy.data))

    experiment.register_method("noisy", noisy)
    try:
        with pytest.warns(UserWarning, match="noisy: the split has no validation date"):
            res = experiment.run(cube, ["noisy"], progress=False)
    finally:
        experiment.METHODS.pop("noisy")
    assert res.info["warnings"]["noisy"][0].startswith("the split has no validation date")
    assert not any("deprecation" in w for w in res.info["warnings"]["noisy"])  # not xstf's
    report = experiment.write_report(res, tmp_path / "r", cube).read_text()
    assert "`noisy`: the split has no validation date" in report
    assert "Run from Python" in report


def test_report_does_not_switch_the_matplotlib_backend(cube, small_run, tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        path = experiment.write_report(small_run, tmp_path / "rep", cube)
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    text = path.read_text()
    assert "one common mask per date" in text
    for d in small_run.test_dates:
        assert f"| {d.date()} |" in text
    assert "beat coarse_only in rmse" in text and "ubRMSE (°C)" in text
    table = pd.read_csv(tmp_path / "rep" / "scores.csv")
    assert {"ubrmse", "bias", "skill_rmse", "n_valid"} <= set(table.columns)
