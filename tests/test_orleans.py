"""End to end on the real Orléans Landsat 8 / MODIS files: read, build, fuse (ESTARFM), score.

Skips cleanly when the data are absent (``$XSTF_DATA``, default ``../shared/data`` next to
the repository: see ``tests/conftest.py``).
"""

from __future__ import annotations

import warnings

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest

import xstf
from xstf.io import open_landsat, open_modis

pytestmark = pytest.mark.realdata
DATES = ["2017-01-19", "2017-04-09", "2018-02-23", "2018-10-21", "2019-09-06"]


@pytest.fixture(scope="module")
def cube(orleans_data):
    with pytest.warns(UserWarning, match="0 °C"):
        fine = open_landsat(orleans_data / "landsat8", band=1, units="degC")
    with pytest.warns(UserWarning, match="0 °C"):
        coarse = open_modis(orleans_data / "modis", units="degC")
    with pytest.warns(UserWarning, match=r"sphere of R=6371007\.181"):
        ds = xstf.build_cube(fine, coarse)
    return ds


def test_readers_on_the_real_files(orleans_data):
    with pytest.warns(UserWarning):
        fine = open_landsat(orleans_data / "landsat8", units="degC", return_qc=True)
    lst = fine["lst"]
    assert lst.shape == (5, 400, 400) and lst.rio.crs.to_epsg() == 32631
    assert [str(d.date()) for d in pd.DatetimeIndex(lst.time.values)] == DATES
    v = lst.values
    assert 255 < np.nanmin(v) and np.nanmax(v) < 335
    assert 0.5 < np.isfinite(v).mean() <= 1.0
    # 0 is missing: NaN exactly where the file holds 0 in band 1, the rest is °C + 273.15
    import rasterio

    with rasterio.open(orleans_data / "landsat8" / "LC08_199027_20170119.tif") as src:
        raw = src.read(1)
    np.testing.assert_array_equal(np.isnan(v[0]), raw == 0)
    np.testing.assert_allclose(
        v[0][raw != 0], (raw[raw != 0] + 273.15).astype(np.float32), rtol=1e-7
    )


def test_cube_dates_overlap_and_values(cube):
    assert isinstance(cube.coarse.data, dsa.Array)
    assert [str(d.date()) for d in pd.DatetimeIndex(cube.time.values)] == DATES
    assert cube.attrs["coarse_crs_fixed"] == 1
    assert cube.attrs["overlap"] > 0.99
    assert cube.attrs["fine_resolution"] == 30.0
    assert cube.attrs["coarse_resolution"] == pytest.approx(1000.0)
    cov = xstf.coverage(cube).compute()
    assert (cov["coarse"] > 0.95).all() and (cov["fine"] > 0.9).all()
    diff = (cube.fine - cube.coarse).mean(("y", "x")).compute()
    # MODIS 1 km vs Landsat 30 m of the same scene and hour: scene means agree within a few K
    assert (np.abs(diff) < 4.0).all(), diff.values
    xstf.validate(cube, require_pairs=5)


def test_estarfm_leave_one_out_on_the_middle_dates(cube):
    middle = pd.to_datetime(DATES[1:4])
    pred = xstf.estarfm(cube.chunk({"time": -1}), targets=middle, half_window=10)
    assert pred.dims == ("time", "y", "x") and pred.sizes["time"] == 3
    scores = xstf.metrics(pred, cube.fine.sel(time=middle), units="degC").compute()
    print("\nOrléans ESTARFM leave-one-out (half_window=10):")
    print(scores.to_dataframe().to_string(float_format="%.3f"))
    baseline = xstf.metrics(cube.coarse.sel(time=middle), cube.fine.sel(time=middle), units="degC")
    print("MODIS resampled to 30 m, as a prediction (baseline):")
    print(baseline.compute().to_dataframe().to_string(float_format="%.3f"))
    rmse = scores["rmse"].values
    # references are 6-12 months away from the targets: only sanity bounds are asserted
    assert np.isfinite(rmse).all() and (rmse < 8.0).all(), rmse
    p = pred.values
    assert np.isfinite(p).mean() > 0.9 and 250 < np.nanmin(p) and np.nanmax(p) < 340


def test_no_rasterio_geotransform_noise_from_the_reprojection(orleans_data):
    # odc-geo's in-memory tiles made rasterio warn "Dataset has no geotransform" once per
    # tile, from dask threads, on every Orléans read (issue 13). Nothing else is hidden:
    # the reader's and build_cube's own warnings still come through.
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fine = open_landsat(orleans_data / "landsat8", band=1, units="degC")
        coarse = open_modis(orleans_data / "modis", units="degC")
        ds = xstf.build_cube(fine, coarse)
        pred = xstf.estarfm(
            ds.chunk({"time": -1}), targets=pd.to_datetime(DATES[2:3]), half_window=5
        )
        pred.compute()  # the reprojection runs here, in dask's threads
    messages = [str(w.message) for w in seen]
    assert not [m for m in messages if "geotransform" in m], messages
    assert any("sphere of R=6371007.181" in m for m in messages), messages
