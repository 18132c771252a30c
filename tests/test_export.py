"""Zarr / NetCDF / GeoTIFF writers: exact round trips, appends, refusal to overwrite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

import xstf
from xstf.export import open_zarr, to_geotiff, to_netcdf, to_zarr
from xstf.io import open_landsat


@pytest.fixture(scope="module")
def cube():
    return xstf.datasets.synthetic(size=32, days=6, seed=3, chunks={"time": 1, "y": 16, "x": 16})


def _same(a: xr.Dataset, b: xr.Dataset, variables=("fine", "coarse", "truth")):
    for v in variables:
        np.testing.assert_array_equal(a[v].values, b[v].values)  # bit-exact, NaN included
        assert a[v].dtype == b[v].dtype
        assert a[v].attrs == b[v].attrs
    for c in ("time", "y", "x"):
        np.testing.assert_array_equal(a[c].values, b[c].values)
    assert a.rio.crs == b.rio.crs


def test_zarr_round_trip_bit_exact(tmp_path, cube):
    store = tmp_path / "cube.zarr"
    to_zarr(cube, store)
    back = open_zarr(store)
    _same(cube, back)
    assert "spatial_ref" in back.coords
    assert back.attrs["fine_resolution"] == cube.attrs["fine_resolution"]
    for v in ("fine", "coarse"):
        enc = back[v].encoding
        assert enc["dtype"] == np.float32
        assert enc["chunks"] == (1, 16, 16)  # the store's chunks are the dask chunks
        assert not {"scale_factor", "add_offset"} & set(enc)
        assert not {"scale_factor", "add_offset", "_FillValue"} & set(back[v].attrs)
    assert np.array_equal(back.landsat.values, cube.landsat.values)


def test_zarr_format_2(tmp_path, cube):
    store = tmp_path / "v2.zarr"
    to_zarr(cube, store, zarr_format=2)
    _same(cube, open_zarr(store))


def test_stale_scale_factor_is_not_applied_twice(tmp_path):
    t = pd.to_datetime(["2020-01-01"])
    da = xr.DataArray(
        np.full((1, 4, 4), 300.0, "float32"), dims=("time", "y", "x"), name="fused",
        coords={"time": t, "y": np.arange(4.0), "x": np.arange(4.0)},
        attrs={"units": "K", "scale_factor": 0.02, "add_offset": 0.0, "_FillValue": 0},
    ).rio.write_crs("EPSG:32631")  # fmt: skip
    to_zarr(da, tmp_path / "f.zarr")
    back = open_zarr(tmp_path / "f.zarr")
    np.testing.assert_array_equal(back.fused.values, 300.0)
    assert back.fused.attrs["standard_name"] == "surface_temperature"


def test_zarr_append_new_dates_only(tmp_path, cube):
    store = tmp_path / "a.zarr"
    to_zarr(cube.isel(time=slice(0, 4)), store)
    to_zarr(cube.isel(time=slice(4, 6)), store, append_dim="time")
    back = open_zarr(store)
    _same(cube, back)
    with pytest.raises(ValueError, match="not after the store's last date"):
        to_zarr(cube.isel(time=[2]), store, append_dim="time")
    shifted = cube.isel(time=slice(4, 6)).assign_coords(x=cube.x + 30.0)
    shifted = shifted.assign_coords(
        time=pd.DatetimeIndex(shifted.time.values) + pd.Timedelta(days=30)
    )
    with pytest.raises(ValueError, match="'x' differs"):
        to_zarr(shifted, store, append_dim="time")
    assert open_zarr(store).sizes["time"] == 6  # refused appends wrote nothing


def test_zarr_append_with_uneven_chunks(tmp_path, cube):
    store = tmp_path / "u.zarr"
    to_zarr(cube.isel(time=slice(0, 5)), store, chunks={"time": 2})
    to_zarr(cube.isel(time=slice(5, 6)), store, append_dim="time")
    _same(cube, open_zarr(store))


def test_zarr_refuses_to_overwrite(tmp_path, cube):
    store = tmp_path / "o.zarr"
    to_zarr(cube.isel(time=slice(0, 2)), store)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_zarr(cube, store)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_zarr(cube, store, mode="w")
    assert open_zarr(store).sizes["time"] == 2
    to_zarr(cube, store, overwrite=True)
    assert open_zarr(store).sizes["time"] == 6


def test_fused_dataarray_from_dask_to_zarr(tmp_path, cube):
    fused = (cube.coarse * 1.0).rename("fused")
    fused.attrs = {"units": "K", "method": "test"}
    to_zarr(fused, tmp_path / "fused.zarr")
    back = open_zarr(tmp_path / "fused.zarr")
    np.testing.assert_array_equal(back.fused.values, fused.values)
    assert back.fused.attrs["method"] == "test" and back.rio.crs == cube.rio.crs


def test_netcdf_round_trip_and_refusal(tmp_path, cube):
    path = tmp_path / "cube.nc"
    with pytest.warns(UserWarning):
        filled = xstf.fill_gaps(cube, method="focal", variables=["fine"])
    to_netcdf(filled, path)
    back = xr.open_dataset(path, decode_coords="all")
    _same(filled, back, variables=("fine", "coarse"))
    assert back.fine_filled.dtype == bool
    np.testing.assert_array_equal(back.fine_filled.values, filled.fine_filled.values)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_netcdf(cube, path)
    back.close()


def test_geotiff_round_trip_one_cog_per_date(tmp_path, cube):
    files = to_geotiff(cube.fine, tmp_path / "tifs", prefix="fine_")
    assert [f.name for f in files] == [
        f"fine_{d:%Y_%m_%d}.tif" for d in pd.DatetimeIndex(cube.time.values)
    ]
    with rasterio.open(files[0]) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.dtypes[0] == "float32" and src.crs.to_epsg() == 32631
    back = open_landsat(tmp_path / "tifs")  # units tag K, dates from the file names
    np.testing.assert_array_equal(back.values, cube.fine.values)
    np.testing.assert_array_equal(back.time.values, cube.time.values.astype(back.time.dtype))
    np.testing.assert_allclose(back.x.values, cube.x.values)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_geotiff(cube.fine, tmp_path / "tifs", prefix="fine_")
    to_geotiff(cube.fine * 0 + 1.0, tmp_path / "tifs", prefix="fine_", overwrite=True)
    with rasterio.open(files[0]) as src:
        assert np.nanmax(src.read(1)) == 1.0


def test_geotiff_needs_crs(tmp_path, cube):
    with pytest.raises(ValueError, match="no CRS"):
        to_geotiff(cube.fine.drop_vars("spatial_ref"), tmp_path)


def test_irregular_and_mixed_chunks_are_made_regular(tmp_path, cube):
    odd = cube.copy()
    odd["fine"] = cube.fine.chunk({"time": (2, 3, 1)})  # irregular, and unlike "coarse"
    to_zarr(odd, tmp_path / "odd.zarr")
    back = open_zarr(tmp_path / "odd.zarr")
    assert back.fine.encoding["chunks"][0] == 3
    _same(cube, back)
