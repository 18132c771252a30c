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
    again = xstf.metrics(preds, ds.fine.sel(time=dates), ratio=30 / 1000)
    stored = xr.open_dataset(out / "scores.nc")
    for s in SCORES:
        np.testing.assert_allclose(
            stored[s].transpose("method", "time").values,
            again[s].sel({"method": stored.method.values}).transpose("method", "time").values,
            rtol=1e-6,
        )
    report = (out / "report.md").read_text()
    assert "Command:" in report and "Versions:" in report and "xstf" in report
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
