"""FitFC: agreement with a plain-numpy reference, chunk invariance, laziness, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from reference_fitfc import fitfc_reference
from reference_fusion import make_scene, scene_cube

import xstf
from xstf.fusion.fitfc import fitfc

TARGET = pd.Timestamp("2021-01-09")


def _check(layers, rw, sw, n_similar, chunks=None):
    ds = scene_cube(layers, chunks=chunks)
    got = fitfc(ds, targets=[TARGET], half_window=sw, regression_window=rw, n_similar=n_similar)
    # the nearest pair of 2021-01-09 is 2021-01-01 (8 days each way: the earlier)
    assert pd.Timestamp(got.reference_pair_1.values[0]) == pd.Timestamp("2021-01-01")
    f1, c1, _, _, c0 = layers
    ref, info = fitfc_reference(f1, c1, c0, rw, sw, n_similar)
    g = got.isel(time=0).values
    np.testing.assert_array_equal(np.isnan(g), np.isnan(ref))
    assert np.isfinite(ref).sum() > 0.8 * ref.size
    np.testing.assert_allclose(g[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=0, atol=1e-3)
    return got, info


@pytest.mark.parametrize(("rw", "sw", "n_similar"), [(4, 2, 10), (6, 3, 30)])
def test_matches_reference_with_clouds_and_edges(rw, sw, n_similar):
    _, info = _check(make_scene(seed=rw), rw, sw, n_similar)
    assert info["slope"] > 0 and info["few_similar"] > 0  # clouds and edges leave few pixels


def test_matches_reference_flat_coarse_and_ties():
    layers = make_scene(seed=9)
    layers[1][:, :10] = 290.0  # flat C_k: no slope estimated there (a = 1)
    layers[0][10:20, 25:35] = np.round(layers[0][10:20, 25:35])  # many tied |ΔF|
    _, info = _check(layers, 3, 3, 12)
    assert info["flat"] > 0 and info["slope"] > 0


def test_divergent_response_followed_from_the_target_coarse():
    # the target's coarse warms the right half by 8 K: FitFC follows it (a pair-only
    # method would not); the kernel also agrees with the reference there
    layers = make_scene(seed=4, clouds=False)
    xx = np.arange(layers[0].shape[1])
    layers[4] = (layers[1] + np.where(xx >= 20, 8.0, 0.0)).astype(np.float32)
    got, _ = _check(layers, 3, 3, 10)
    g = got.isel(time=0).values
    f1 = layers[0]
    assert np.nanmean(g[:, 24:] - f1[:, 24:]) > 6.0
    assert abs(np.nanmean(g[:, :16] - f1[:, :16])) < 2.0


def test_metadata_accessor_and_leave_one_out():
    ds = xstf.datasets.synthetic(size=40, days=60, seed=8, cloud_fraction=0.0)
    pairs = xstf.cube.pair_dates(ds)
    kw = {"half_window": 3, "regression_window": 4, "n_similar": 8}
    a = ds.stf.fitfc(targets=[pairs[1]], **kw)
    b = fitfc(ds, targets=[pairs[1]], **kw)
    xr.testing.assert_identical(a, b)
    # a pair date is predicted from the nearest other pair
    near = xstf.cube.reference_pairs(pairs, pairs[1], n=1)
    assert pd.Timestamp(a.reference_pair_1.values[0]) == near[0] != pairs[1]
    assert a.dtype == np.float32 and a.attrs["units"] == "K"
    assert json.loads(a.attrs["parameters"])["n_similar"] == 8
    assert "fitfc" in xstf.fusion.__doc__.lower()


def test_default_regression_window_from_resolution():
    ds = xstf.datasets.synthetic(size=48, days=20, seed=1, cloud_fraction=0.0)
    ds.attrs.update(fine_resolution=30.0, coarse_resolution=300.0)  # ratio 10
    pred = fitfc(ds, targets=ds.time[[3]], half_window=2, n_similar=4)
    assert json.loads(pred.attrs["parameters"])["regression_window"] == 15


def test_errors_same_as_estarfm():
    ds = scene_cube(make_scene(seed=1))
    cloudy = ds.copy(deep=True)
    cloudy["coarse"][1] = np.nan
    msg = r"target date\(s\) \['2021-01-09'\] have no valid"
    with pytest.raises(xstf.CubeError, match=msg):
        fitfc(cloudy, targets=[TARGET], half_window=3, regression_window=3)
    with pytest.raises(xstf.CubeError, match=msg):
        xstf.estarfm(cloudy, targets=[TARGET], half_window=3)
    with pytest.raises(xstf.CubeError, match="no target dates"):
        fitfc(ds.isel(time=[0, 2]), half_window=3, regression_window=3)
    no_pair = ds.copy(deep=True)
    no_pair["fine"][:] = np.nan
    no_pair["fine"][0, 0, 0] = 290.0
    with pytest.raises(xstf.CubeError, match="usable pair"):
        fitfc(no_pair, targets=[TARGET], half_window=3, regression_window=3)
    with pytest.raises(xstf.CubeError, match="regression_window=30"):
        fitfc(ds, targets=[TARGET], half_window=3, regression_window=30)
    with pytest.raises(ValueError, match="n_similar must be >= 1"):
        fitfc(ds, targets=[TARGET], half_window=3, regression_window=3, n_similar=0)
    with pytest.raises(TypeError, match="regression_window must be an int"):
        fitfc(ds, targets=[TARGET], half_window=3, regression_window=2.5)


def test_progress_bar_on_eager_runs_only(capsys):
    ds = xstf.datasets.synthetic(size=24, days=20, seed=2, cloud_fraction=0.0)
    kw = {"half_window": 2, "regression_window": 3, "n_similar": 4}
    targets = xstf.cube.target_dates(ds)[:3]
    quiet = fitfc(ds, targets=targets, **kw)  # default: no bar when stderr is not a tty
    assert "FitFC" not in capsys.readouterr().err
    shown = fitfc(ds, targets=targets, progress=True, **kw)
    err = capsys.readouterr().err
    assert "FitFC" in err and "3/3" in err
    np.testing.assert_array_equal(quiet.values, shown.values)
    fitfc(ds.chunk({"time": 1}), targets=targets, progress=True, **kw)  # lazy: nothing to show
    assert "FitFC" not in capsys.readouterr().err
    xstf.estarfm(ds, targets=targets, half_window=2, progress=True)
    assert "ESTARFM" in capsys.readouterr().err
    xstf.starfm(ds, targets=targets, half_window=2, progress=True)
    assert "STARFM" in capsys.readouterr().err
