"""The synthetic cube: structure, noise, bias, clouds, determinism, dask."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import xstf
from xstf.datasets import CLASSES, SyntheticParams, _static


@pytest.fixture(scope="module")
def cube():
    return xstf.datasets.synthetic(size=96, days=365, seed=3)


def test_convention_and_attrs(cube):
    assert cube.stf.validate() is cube
    for v in ("truth", "fine", "coarse"):
        assert cube[v].dims == ("time", "y", "x")
        assert cube[v].dtype == np.float32
        assert cube[v].attrs["units"] == "K"
    assert cube.landcover.dims == ("y", "x")
    assert cube.rio.crs.to_epsg() == 32631
    assert np.allclose(np.diff(cube.x.values), 30.0) and np.allclose(np.diff(cube.y.values), -30.0)
    params = json.loads(cube.attrs["synthetic_parameters"])
    assert params["seed"] == 3 and params["days"] == 365
    assert cube.attrs["coarse_resolution"] / cube.attrs["fine_resolution"] == pytest.approx(
        1000 / 30
    )


def test_landsat_cadence(cube):
    days = np.flatnonzero(cube.landsat.values)
    assert np.all(np.diff(days) == 16)
    assert np.isnan(cube.fine.values[~cube.landsat.values]).all()


def test_land_cover_is_coherent(cube):
    lc = cube.landcover.values
    assert set(np.unique(lc)) == set(CLASSES)
    same = np.mean(lc[1:, :] == lc[:-1, :]) + np.mean(lc[:, 1:] == lc[:, :-1])
    assert same / 2 > 0.8  # patches, not salt-and-pepper


def test_fine_is_truth_plus_landsat_noise(cube):
    d = (cube.fine - cube.truth).values[cube.landsat.values]
    d = d[np.isfinite(d)]
    assert abs(d.mean()) < 0.02
    assert d.std() == pytest.approx(0.5, rel=0.05)


def test_plausible_lst_with_seasons(cube):
    truth = cube.truth
    assert 250 < float(truth.min()) and float(truth.max()) < 340
    summer = float(truth.sel(time="2021-07").mean())
    winter = float(truth.sel(time="2021-01").mean())
    assert summer - winter > 10
    # spatial contrast is larger in summer than in winter
    assert float(truth.sel(time="2021-07").std(("y", "x")).mean()) > float(
        truth.sel(time="2021-01").std(("y", "x")).mean()
    )


def _cell_means(ds, day: int, field: str) -> np.ndarray:
    p = SyntheticParams(**json.loads(ds.attrs["synthetic_parameters"]))
    cell = _static(p)["cell"]
    v = ds[field].values[day].ravel()
    counts = np.bincount(cell)
    return np.bincount(cell, weights=v) / counts


def test_coarse_cell_means_follow_truth_up_to_bias():
    kw = dict(size=120, days=3, seed=1, cloud_fraction=0.0, coarse_noise=0.0, coarse_bias_sd=0.0,
              class_offset_sd=0.0, psf_sigma=0.01, resampling="bilinear")  # fmt: skip
    a = xstf.datasets.synthetic(coarse_bias=0.0, **kw)
    b = xstf.datasets.synthetic(coarse_bias=5.0, **kw)
    for day in range(3):
        da = _cell_means(a, day, "coarse") - _cell_means(a, day, "truth")
        db = _cell_means(b, day, "coarse") - _cell_means(b, day, "truth")
        # without noise, coarse cells are the truth's cell means up to a near-constant offset
        assert da.std() < 0.7
        # and the bias parameter shifts them by exactly that much
        np.testing.assert_allclose(db - da, 5.0, atol=1e-3)


def test_coarse_is_noisy_and_smooth(cube):
    day = int(np.flatnonzero(cube.landsat.values)[5])
    c, t = cube.coarse.values[day], cube.truth.values[day]
    ok = np.isfinite(c)
    # MODIS misses the fine detail: its fine-scale gradient is far smaller than the truth's
    assert np.nanmean(np.abs(np.diff(c, axis=1))) < 0.3 * np.mean(np.abs(np.diff(t, axis=1)))
    assert np.corrcoef(c[ok], t[ok])[0, 1] > 0.2


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6])
def test_cloud_fraction_as_asked(fraction):
    ds = xstf.datasets.synthetic(size=48, days=730, seed=2, cloud_fraction=fraction)
    fine = ds.fine.values[ds.landsat.values]
    missing = np.isnan(fine).mean()
    assert missing == pytest.approx(fraction, abs=0.12)
    if fraction == 0.0:
        assert not np.isnan(ds.coarse.values).any()


def test_overcast_everywhere():
    ds = xstf.datasets.synthetic(size=32, days=20, cloud_fraction=1.0)
    assert np.isnan(ds.fine.values).all() and np.isnan(ds.coarse.values).all()


def test_deterministic_by_seed():
    a = xstf.datasets.synthetic(size=40, days=20, seed=7)
    b = xstf.datasets.synthetic(size=40, days=20, seed=7)
    c = xstf.datasets.synthetic(size=40, days=20, seed=8)
    np.testing.assert_array_equal(a.coarse.values, b.coarse.values)
    np.testing.assert_array_equal(a.fine.values, b.fine.values)
    assert not np.allclose(a.truth.values, c.truth.values)


@pytest.mark.parametrize("chunks", [{"time": 3}, {"time": 1, "y": 16, "x": 24}, {"time": -1}])
def test_dask_equals_numpy(chunks):
    ref = xstf.datasets.synthetic(size=40, days=20, seed=5)
    lazy = xstf.datasets.synthetic(size=40, days=20, seed=5, chunks=chunks)
    assert lazy.coarse.chunks is not None
    for v in ("truth", "fine", "coarse"):
        np.testing.assert_array_equal(lazy[v].values, ref[v].values)


def test_lazy_build_computes_only_what_is_asked():
    ds = xstf.datasets.synthetic(size=64, days=3650, chunks={"time": 1})
    assert ds.fine.data.npartitions == 3650
    one = ds.coarse.isel(time=100).compute()  # only one date rendered
    assert one.shape == (64, 64)


def test_strong_variability_dates():
    ds = xstf.datasets.synthetic(size=64, days=365, seed=0)
    events = pd.Series(ds.event.values)
    assert {"rain", "cold_front"} <= set(events.unique())
    assert 0.02 < (events != "").mean() < 0.12


def test_bad_parameters():
    with pytest.raises(ValueError, match="cloud_fraction"):
        xstf.datasets.synthetic(size=32, days=5, cloud_fraction=1.5)
    with pytest.raises(ValueError, match="size must be"):
        xstf.datasets.synthetic(size=4, days=5)
    with pytest.raises(ValueError, match="ratio"):
        xstf.datasets.synthetic(size=32, days=5, ratio=0.5)


def test_resolution_attrs_are_round_numbers():
    ds = xstf.datasets.synthetic(size=16, days=2)
    assert ds.attrs["coarse_resolution"] == 1000.0  # not 1000.0000000000001
    assert repr(ds.attrs["coarse_resolution"]) == "1000.0"
