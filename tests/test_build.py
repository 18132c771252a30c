"""build_cube: lazy regridding of coarse onto the fine grid, date union, units, CRS checks."""

from __future__ import annotations

import warnings

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import Transformer

import xstf
from xstf.build import fix_modis_crs

UTM = "EPSG:32631"
SPHERE = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
WGS84_SINU = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
FX0, FY0, N = 402_000.0, 5_300_000.0, 90  # fine grid: 90 x 90 pixels of 30 m
CX0, CY0, M = 399_000.0, 5_303_000.0, 8  # coarse grid: 8 x 8 pixels of 1 km around it


def _fine(dates, value=300.0):
    data = np.full((len(dates), N, N), value, "float32")
    return xr.DataArray(
        data, dims=("time", "y", "x"),
        coords={"time": pd.to_datetime(dates), "y": FY0 - 30.0 * np.arange(N) - 15, "x": FX0 + 30.0 * np.arange(N) + 15},
        attrs={"units": "K"},
    ).rio.write_crs(UTM)  # fmt: skip


def _coarse_coords():
    return CY0 - 1000.0 * np.arange(M) - 500, CX0 + 1000.0 * np.arange(M) + 500


def _coarse(dates, field, units="K", crs=UTM):
    y, x = _coarse_coords()
    data = np.stack([field(*np.meshgrid(x, y)) for _ in dates]).astype("float32")
    return xr.DataArray(
        data, dims=("time", "y", "x"), coords={"time": pd.to_datetime(dates), "y": y, "x": x}, attrs={"units": units}
    ).rio.write_crs(crs)  # fmt: skip


def _ramp(x, y):
    return 290.0 + 0.002 * (x - CX0) + 0.003 * (y - 5_295_000.0)


def _no_compute(dsk, keys, **kwargs):
    raise AssertionError("something was computed")


def test_bicubic_reproduces_a_linear_field_on_pixel_centres():
    fine = _fine(["2020-07-01"])
    coarse = _coarse(["2020-07-01"], _ramp)
    cube = xstf.build_cube(fine, coarse, validate=False)
    xs, ys = np.meshgrid(cube.x.values, cube.y.values)
    # cubic convolution reproduces linear functions exactly: a pixel-centre shift would show
    np.testing.assert_allclose(cube.coarse.values[0], _ramp(xs, ys), atol=2e-3)
    assert cube.attrs["fine_resolution"] == 30.0 and cube.attrs["coarse_resolution"] == 1000.0
    assert cube.attrs["overlap"] == pytest.approx(1.0)
    assert cube.rio.crs.to_epsg() == 32631
    np.testing.assert_array_equal(cube.x.values, fine.x.values)


def test_nan_gaps_follow_the_coarse_pixel_containing_each_fine_centre():
    coarse = _coarse(["2020-07-01"], _ramp)
    coarse.values[0, 3, 4] = np.nan
    coarse.values[0, 2, 5] = np.nan
    cube = xstf.build_cube(_fine(["2020-07-01"]), coarse, validate=False)
    xs, ys = np.meshgrid(cube.x.values, cube.y.values)
    col = np.floor((xs - CX0) / 1000).astype(int)
    row = np.floor((CY0 - ys) / 1000).astype(int)
    expected_nan = ((row == 3) & (col == 4)) | ((row == 2) & (col == 5))
    assert expected_nan.any()
    np.testing.assert_array_equal(np.isnan(cube.coarse.values[0]), expected_nan)


def test_dates_are_the_union_and_units_converted():
    fine = _fine(["2020-07-01", "2020-07-17", "2020-08-02"])
    coarse = _coarse(
        ["2020-07-01", "2020-07-09", "2020-07-17"], lambda x, y: 0 * x + 26.85, units="degC"
    )
    cube = xstf.build_cube(fine, coarse, validate=False)
    assert [str(d.date()) for d in pd.DatetimeIndex(cube.time.values)] == [
        "2020-07-01", "2020-07-09", "2020-07-17", "2020-08-02",
    ]  # fmt: skip
    assert bool(cube.fine.sel(time="2020-07-09").isnull().all())
    assert bool(cube.coarse.sel(time="2020-08-02").isnull().all())
    np.testing.assert_allclose(cube.coarse.sel(time="2020-07-09").values, 300.0, atol=1e-3)
    assert cube.coarse.attrs["units"] == "K" and cube.coarse.dtype == np.float32


def test_time_of_day_is_dropped_by_default():
    fine = _fine(["2020-07-01T10:30"])
    coarse = _coarse(["2020-07-01T10:55"], _ramp)
    assert xstf.build_cube(fine, coarse, validate=False).sizes["time"] == 1
    assert xstf.build_cube(fine, coarse, validate=False, date_only=False).sizes["time"] == 2


def test_lazy_nothing_computed_and_chunk_independent():
    fine = _fine(["2020-07-01", "2020-07-17"]).chunk({"time": 1})
    coarse = _coarse(["2020-07-01", "2020-07-17"], _ramp)
    with dask.config.set(scheduler=_no_compute):
        cube = xstf.build_cube(fine, coarse, validate=False, chunks={"y": 32, "x": 32})
    assert isinstance(cube.fine.data, dsa.Array) and isinstance(cube.coarse.data, dsa.Array)
    assert cube.coarse.chunks[1][0] == 32
    whole = xstf.build_cube(fine, coarse, validate=False, chunks={"y": -1, "x": -1})
    np.testing.assert_array_equal(cube.coarse.values, whole.coarse.values)
    validated = xstf.build_cube(fine, coarse)  # validate reads a sample, the cube stays lazy
    assert isinstance(validated.coarse.data, dsa.Array)


def test_no_overlap_is_a_clear_error():
    coarse = _coarse(["2020-07-01"], _ramp)
    far = coarse.assign_coords(x=coarse.x + 50_000)
    with pytest.raises(
        xstf.CubeError, match=r"covers 0\.0% of the fine scene.*fine lon .*coarse lon"
    ):
        xstf.build_cube(_fine(["2020-07-01"]), far, validate=False)


def _sinusoidal_coarse(tag):
    """A 1-km grid laid out in the true MODIS sinusoidal (sphere) around the fine scene."""
    to_sinu = Transformer.from_crs(UTM, SPHERE, always_xy=True)
    cx, cy = to_sinu.transform(FX0 + 1350, FY0 - 1350)
    x0, y0 = np.floor(cx / 1000) * 1000 - 4000, np.ceil(cy / 1000) * 1000 + 4000
    y, x = y0 - 1000.0 * np.arange(M) - 500, x0 + 1000.0 * np.arange(M) + 500
    data = np.full((1, M, M), 295.0, "float32")
    return xr.DataArray(
        data, dims=("time", "y", "x"), coords={"time": pd.to_datetime(["2020-07-01"]), "y": y, "x": x}, attrs={"units": "K"}
    ).rio.write_crs(tag)  # fmt: skip


def test_mis_tagged_modis_crs_is_fixed_with_a_warning_and_can_be_overridden():
    coarse = _sinusoidal_coarse(WGS84_SINU)
    with pytest.warns(UserWarning, match="sphere"):
        cube = xstf.build_cube(_fine(["2020-07-01"]), coarse, validate=False)
    assert cube.attrs["coarse_crs_fixed"] == 1 and cube.attrs["overlap"] > 0.99
    assert np.isfinite(cube.coarse.values).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(xstf.CubeError, match="lon"):  # read as tagged: ~19 km off
            xstf.build_cube(_fine(["2020-07-01"]), coarse, coarse_crs=WGS84_SINU, validate=False)
        ok = xstf.build_cube(_fine(["2020-07-01"]), _sinusoidal_coarse(SPHERE), validate=False)
    assert ok.attrs["coarse_crs_fixed"] == 0


def test_fix_modis_crs_leaves_other_crs_alone():
    assert fix_modis_crs(UTM)[1] is False
    assert fix_modis_crs(SPHERE)[1] is False
    fixed, changed = fix_modis_crs(WGS84_SINU)
    assert changed and fixed.ellipsoid.semi_major_metre == pytest.approx(6371007.181)


def test_input_errors():
    fine, coarse = _fine(["2020-07-01"]), _coarse(["2020-07-01"], _ramp)
    unitless = fine.copy()
    unitless.attrs = {}
    with pytest.raises(xstf.CubeError, match="no 'units'"):
        xstf.build_cube(unitless, coarse, validate=False)
    assert xstf.build_cube(unitless, coarse, fine_units="K", validate=False).sizes["time"] == 1
    with pytest.raises(xstf.CubeError, match="no CRS"):
        xstf.build_cube(fine.drop_vars("spatial_ref"), coarse, validate=False)
    with pytest.raises(xstf.CubeError, match="dims"):
        xstf.build_cube(fine.isel(time=0), coarse, validate=False)
    with pytest.raises(ValueError, match="resampling"):
        xstf.build_cube(fine, coarse, resampling="magic")


def test_other_target_crs_reprojects_fine_too():
    fine = _fine(["2020-07-01"])
    cube = xstf.build_cube(fine, _coarse(["2020-07-01"], _ramp), crs="EPSG:32630", validate=False)
    assert cube.rio.crs.to_epsg() == 32630 and cube.attrs["fine_resolution"] == 30.0
    f = cube.fine.values
    # nearest resampling keeps the values; the rotated scene leaves NaN corners
    assert np.nanmin(f) == 300.0 and np.nanmax(f) == 300.0
    assert 0.05 < np.isnan(f).mean() < 0.4
    assert np.isfinite(cube.coarse.values).all()


# -- issue 14 item 8: bicubic is really bicubic ----------------------------------------------


def _quadratic(x, y):
    return 290.0 + 0.5 * ((x - CX0) / 1000.0) ** 2 + 0.3 * ((y - 5_295_000.0) / 1000.0) ** 2


def _bilinear_reference(cube_x, cube_y):
    """Plain numpy bilinear interpolation of the coarse samples at the fine pixel centres."""
    y, x = _coarse_coords()
    px = (cube_x - x[0]) / 1000.0
    py = (y[0] - cube_y) / 1000.0
    values = _quadratic(*np.meshgrid(x, y))
    ix, iy = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - ix, py - iy
    v = values
    top = v[iy][:, ix] * (1 - fx) + v[iy][:, ix + 1] * fx
    bottom = v[iy + 1][:, ix] * (1 - fx) + v[iy + 1][:, ix + 1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def test_bicubic_is_not_bilinear_on_a_curved_field():
    fine = _fine(["2020-07-01"])
    coarse = _coarse(["2020-07-01"], _quadratic)
    cubic = xstf.build_cube(fine, coarse, validate=False).coarse.isel(time=0).values
    linear = xstf.build_cube(fine, coarse, resampling="bilinear", validate=False)
    linear = linear.coarse.isel(time=0).values
    xs, ys = np.meshgrid(fine.x.values, fine.y.values)
    exact = _quadratic(xs, ys)
    # Keys cubic convolution (a = -0.5, GDAL's "cubic") reproduces quadratics exactly ...
    np.testing.assert_allclose(cubic, exact, atol=2e-3)
    # ... bilinear does not (up to 1/8 of the second difference), and matches plain numpy
    ref = _bilinear_reference(fine.x.values, fine.y.values)
    np.testing.assert_allclose(linear, ref, atol=2e-3)
    assert np.abs(ref - exact).max() > 0.1
    assert np.abs(cubic - linear).max() > 0.1


# -- issue 12: mis-tagged MODIS, 0 °C as missing ---------------------------------------------


def test_modis_tagged_epsg4326_is_a_clear_error():
    coarse = _coarse(["2020-07-01"], _ramp).rio.write_crs("EPSG:4326")
    with pytest.raises(xstf.CubeError, match=r"tagged EPSG:4326 \(degrees\).*MODIS_SINUSOIDAL"):
        xstf.build_cube(_fine(["2020-07-01"]), coarse, validate=False)
    # the suggested fix (imposing the CRS) gets past the check
    cube = xstf.build_cube(_fine(["2020-07-01"]), coarse, coarse_crs=UTM, validate=False)
    assert cube.sizes["time"] == 1


def _celsius_with_zero_holes(dates):
    fine = _fine(dates, value=300.0) - 273.15
    fine.attrs = {"units": "degC"}
    fine[:, :30, :] = 0.0  # a third of the pixels: 0 marks "missing"
    return fine


def test_celsius_zero_spike_warns(monkeypatch):
    import xstf.cube

    dates = ["2020-07-01", "2020-07-17"]
    fine = _celsius_with_zero_holes(dates)
    coarse = _coarse(dates, _ramp)
    # build_cube's validation sees the spike (spied: warnings raised while dask threads run
    # are caught unreliably by pytest.warns, catch_warnings is not thread-safe)...
    seen = []
    real = xstf.cube._warn_zero_spike
    monkeypatch.setattr(
        xstf.cube,
        "_warn_zero_spike",
        lambda name, *a: (seen.append((name, *a[1:])), real(name, *a)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = xstf.build_cube(fine, coarse)
    assert ("fine", 16200, 5400) in seen
    # ...and the warning it gives, on the same cube in memory (no threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = built.load()
    with pytest.warns(
        UserWarning, match=r"33% of the sampled pixels are exactly 273.15 K.*zero_is_missing=True"
    ):
        xstf.validate(loaded)
    cube = xstf.build_cube(fine, coarse, zero_is_missing=True)  # the fix: masked, no warning
    assert int(cube.fine.isnull().sum()) == 2 * 30 * N
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*273.15 K")
        kept = xstf.build_cube(fine, coarse, zero_is_missing=False)  # real zeros: kept, quiet
    assert int((kept.fine == np.float32(273.15)).sum()) == 2 * 30 * N
