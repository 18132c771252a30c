"""fill_gaps: progressive focal mean and temporal interpolation against plain-numpy references."""

from __future__ import annotations

import warnings

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xstf
from xstf.gapfill import fill_gaps, focal_fill


def _focal_reference(a: np.ndarray, max_window: int, min_valid: int = 1) -> np.ndarray:
    """Loops written from the method's description: smallest window with enough valid pixels."""
    out = a.copy()
    ny, nx = a.shape
    for i in range(ny):
        for j in range(nx):
            if not np.isnan(a[i, j]):
                continue
            for w in range(3, max_window + 1, 2):
                h = w // 2
                win = a[max(0, i - h) : i + h + 1, max(0, j - h) : j + h + 1]
                vals = win[~np.isnan(win)]
                if vals.size >= min_valid:
                    out[i, j] = vals.astype(np.float64).mean()
                    break
    return out


def _cube(days=6, ny=21, nx=23, seed=0, holes=0.3):
    rng = np.random.default_rng(seed)
    data = (290 + rng.normal(0, 3, size=(days, ny, nx))).astype("float32")
    data[rng.random(data.shape) < holes] = np.nan
    data[1, 5:14, 4:15] = np.nan  # a hole larger than small windows
    data[3] = np.nan  # a fully clouded date
    t = pd.to_datetime(
        ["2021-01-01", "2021-01-03", "2021-01-04", "2021-01-10", "2021-01-11", "2021-01-20"][:days]
    )
    da = xr.DataArray(
        data, dims=("time", "y", "x"), coords={"time": t, "y": np.arange(ny), "x": np.arange(nx)}
    )
    return xr.Dataset({"fine": da, "coarse": da + 1.0})


@pytest.mark.parametrize("max_window", [3, 7])
def test_focal_matches_reference_numpy_and_dask_any_chunks(max_window):
    ds = _cube()
    ref = np.stack([_focal_reference(p, max_window) for p in ds.fine.values.astype(np.float64)])
    eager = focal_fill(ds.fine, max_window=max_window).values
    np.testing.assert_allclose(eager, ref.astype(np.float32), rtol=1e-6, equal_nan=True)
    lazy = focal_fill(ds.fine.chunk({"time": 2, "y": 5, "x": 4}), max_window=max_window)
    assert isinstance(lazy.data, dsa.Array)
    np.testing.assert_array_equal(lazy.values, eager)  # bit-identical whatever the chunks


def test_focal_min_valid_and_unfillable_pixels_stay_nan():
    a = np.full((9, 9), np.nan)
    a[0, 0] = 1.0
    a[0, 1] = 3.0
    da = xr.DataArray(a, dims=("y", "x"))
    out = focal_fill(da, max_window=5, min_valid=2).values
    np.testing.assert_allclose(out, _focal_reference(a, 5, 2), equal_nan=True)
    assert out[1, 1] == 2.0 and np.isnan(out[8, 8])


def test_fill_gaps_focal_masks_attrs_and_warning():
    ds = _cube()
    with pytest.warns(UserWarning, match=r"fine: \d+ pixel\(s\) filled"):
        out = fill_gaps(ds, method="focal", max_window=5)
    for v in ("fine", "coarse"):
        mask = out[f"{v}_filled"]
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask.values, ds[v].isnull().values & out[v].notnull().values)
        assert "focal" in out[v].attrs["gap_filled"]
        # observed pixels are untouched
        obs = ds[v].notnull().values
        np.testing.assert_array_equal(out[v].values[obs], ds[v].values[obs])
    assert bool(out.fine.isel(time=3).isnull().all())  # focal cannot fill a fully clouded date
    assert "fill_gaps" in out.attrs["history"]


def test_temporal_matches_np_interp_without_extrapolation():
    ds = _cube()
    ds["fine"][0, 2, 2] = np.nan  # leading gap: must stay NaN
    with pytest.warns(UserWarning):
        out = fill_gaps(ds, method="temporal", variables=["fine"], fill_empty_dates=True)
    days = (pd.DatetimeIndex(ds.time.values) - pd.Timestamp("2021-01-01")).days.to_numpy(float)
    src = ds.fine.values
    ref = src.copy()
    for i in range(src.shape[1]):
        for j in range(src.shape[2]):
            ok = ~np.isnan(src[:, i, j])
            if ok.sum() >= 2:
                interp = np.interp(days, days[ok], src[ok, i, j])
                inside = (days >= days[ok].min()) & (days <= days[ok].max())
                ref[inside, i, j] = interp[inside]
    np.testing.assert_allclose(out.fine.values, ref, rtol=1e-6, equal_nan=True)
    assert np.isnan(out.fine.values[0, 2, 2])
    lazy = fill_gaps(
        ds.chunk({"time": 1, "y": 7}),
        method="temporal",
        variables=["fine"],
        fill_empty_dates=True,
        warn=False,
    )
    np.testing.assert_allclose(lazy.fine.values, out.fine.values, equal_nan=True)


def test_temporal_max_gap():
    ds = _cube()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fill_gaps(
            ds, method="temporal", variables=["fine"], max_gap="2D", fill_empty_dates=True
        )
    # 2021-01-10 sits in a 6-day gap (01-04 .. 01-11 once it is cloud-free) -> never bridged
    assert bool(out.fine.sel(time="2021-01-10").isnull().all())


def test_focal_plus_temporal_fills_the_clouded_date_and_is_lazy():
    ds = _cube().chunk({"time": 1, "y": 10, "x": 10})
    with dask.config.set(
        scheduler=lambda *a, **k: (_ for _ in ()).throw(AssertionError("computed"))
    ):
        with pytest.warns(UserWarning, match="lazy"):
            out = fill_gaps(ds, method="focal+temporal", max_window=3, fill_empty_dates=True)
    assert isinstance(out.fine.data, dsa.Array)
    filled = out.compute()
    assert float(filled.fine.isel(time=3).notnull().mean()) > 0.9
    np.testing.assert_array_equal(
        filled.fine_filled.values, ds.fine.isnull().values & filled.fine.notnull().values
    )


def test_default_never_invents_an_image_on_a_date_without_overpass():
    ds = xstf.datasets.synthetic(size=32, days=40, cloud_fraction=0.3)
    empty = ds.fine.isnull().all(("y", "x")).values
    assert empty.sum() > 30  # Landsat passes every 16 days: most dates have no fine image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fill_gaps(ds, method="focal+temporal", max_window=3)
        lazy = fill_gaps(ds.chunk({"time": 5, "y": 16}), method="temporal", variables=["fine"])
    assert bool(out.fine.isel(time=np.flatnonzero(empty)).isnull().all())
    assert not bool(out.fine_filled.isel(time=np.flatnonzero(empty)).any())
    overpasses = set(pd.DatetimeIndex(ds.time.values[~empty]))
    assert set(out.stf.pairs) <= overpasses  # a clouded overpass may become a pair, nothing else
    n = int(out.fine_filled.sum())
    assert n > 0 and out.fine_filled.attrs["n_filled"] == n  # the clouded pixels of overpasses
    assert bool(lazy.fine.isel(time=np.flatnonzero(empty)).isnull().all().compute())
    # asked for: whole images are interpolated between the overpasses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        every = fill_gaps(ds, method="temporal", variables=["fine"], fill_empty_dates=True)
    assert not set(every.stf.pairs) <= overpasses


def test_default_max_gap_is_32_days():
    t = pd.to_datetime(["2021-01-01", "2021-01-21", "2021-02-10", "2021-02-20"])
    a = np.full((4, 2, 2), 290.0, dtype="float32")
    a[1, 0, 0] = np.nan  # observations of this pixel 40 days apart: not bridged by default
    a[3, 1, 1] = np.nan
    a[2, 1, 1] = np.nan  # 01-21 .. (02-10, 02-20) .. nothing after: never extrapolated
    a[1, 0, 1] = np.nan
    a[2, 0, 1] = 300.0  # neighbours 01-01 and 02-10 are 40 days apart too
    a[0, 1, 0] = 280.0
    a[2, 1, 0] = np.nan  # 01-21 .. 02-20: 30 days, bridged
    da = xr.DataArray(a, dims=("time", "y", "x"), coords={"time": t}, attrs={"units": "K"})
    ds = xr.Dataset({"fine": da})
    with pytest.warns(UserWarning, match=r"fine: 1 pixel\(s\) filled"):
        out = fill_gaps(ds, method="temporal", variables=["fine"])
    assert "max_gap=32D" in out.fine.attrs["gap_filled"]
    assert np.isnan(out.fine.values[1, 0, 0]) and np.isnan(out.fine.values[1, 0, 1])
    assert out.fine.values[2, 1, 0] == pytest.approx(290.0)
    anyway = fill_gaps(ds, method="temporal", variables=["fine"], max_gap=None, warn=False)
    assert anyway.fine.values[1, 0, 0] == pytest.approx(290.0)
    assert anyway.fine.values[1, 0, 1] == pytest.approx(295.0)  # halfway from 290 to 300
    assert np.isnan(anyway.fine.values[3, 1, 1])
    with pytest.raises(ValueError, match="max_gap"):
        fill_gaps(ds, method="temporal", variables=["fine"], max_gap="soon")


def test_accessor_and_errors():
    ds = xstf.datasets.synthetic(size=32, days=10, cloud_fraction=0.3)
    with pytest.warns(UserWarning):
        out = ds.stf.fill_gaps(method="focal", variables=["fine"])
    assert "fine_filled" in out and "coarse_filled" not in out
    with pytest.raises(xstf.CubeError, match="no variable 'lst'"):
        fill_gaps(ds, variables=["lst"])
    with pytest.raises(ValueError, match="method"):
        fill_gaps(ds, method="kriging")
    with pytest.raises(ValueError, match="odd"):
        focal_fill(ds.fine, max_window=4)
