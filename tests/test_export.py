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


# -- data safety (issue 12): complete markers, interrupted writes, exact appends ------------

_KILLABLE = """
import sys, time
import dask
import xarray as xr
from dask.callbacks import Callback
import xstf

store, marker, mode = sys.argv[1:4]
ds = xstf.datasets.synthetic(size=32, days=12, seed=3, chunks={"time": 1, "y": 16, "x": 16})


class Hang(Callback):
    n = 0

    def _posttask(self, key, result, dsk, state, id):
        Hang.n += 1
        if Hang.n == 12:  # part of the chunks written: tell the parent, then wait to be killed
            open(marker, "w").close()
            time.sleep(600)


_to_zarr = xr.Dataset.to_zarr


def counted(self, *args, **kwargs):  # count only the tasks of the write itself
    with Hang():
        return _to_zarr(self, *args, **kwargs)


xr.Dataset.to_zarr = counted
with dask.config.set(scheduler="synchronous"):
    if mode == "write":
        xstf.to_zarr(ds, store)
    elif mode == "append":
        xstf.to_zarr(ds.isel(time=slice(6, 12)), store, append_dim="time")
    else:
        xstf.to_zarr(ds.isel(time=slice(0, 3)), store, overwrite=True)
"""


def _kill_mid_write(tmp_path, store, mode):
    """Run a writer in a subprocess, kill it (SIGKILL, by PID) once it has written some chunks."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "writer.py"
    script.write_text(_KILLABLE)
    marker = tmp_path / f"marker-{mode}"
    env = {**os.environ, "PYTHONPATH": str(Path(xstf.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(store), str(marker), mode], env=env)
    try:
        for _ in range(3000):  # wait for the marker (not a timing assert: a bound on waiting)
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), f"the writer ended (rc {proc.poll()}) before the marker"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_store_is_marked_complete_last(tmp_path, cube):
    store = to_zarr(cube, tmp_path / "c.zarr")
    assert store == tmp_path / "c.zarr"  # a path, which prints nicely in a notebook
    assert xr.open_zarr(store).attrs["xstf_write_status"] == "complete"


def test_killed_write_is_refused_on_open_and_validate(tmp_path):
    store = tmp_path / "killed.zarr"
    _kill_mid_write(tmp_path, store, "write")
    with pytest.raises(ValueError, match=r"incomplete: its write was interrupted.*overwrite=True"):
        open_zarr(store)
    with pytest.warns(UserWarning, match="incomplete"):
        partial = open_zarr(store, incomplete="warn")
    with pytest.raises(xstf.CubeError, match="incomplete"):
        xstf.validate(partial)
    with pytest.raises(xstf.CubeError, match="incomplete"):
        xstf.validate(xr.open_zarr(store))  # plain xarray too: the marker is in the attrs
    with pytest.raises(ValueError, match="incomplete"):  # no append onto a broken store
        to_zarr(
            xstf.datasets.synthetic(size=32, days=14, seed=3).isel(time=slice(12, 14)),
            store,
            append_dim="time",
        )
    with pytest.raises(ValueError, match="Write it again"):
        xstf.export.repair_zarr(store)


def test_killed_append_is_detected_and_repaired(tmp_path):
    full = xstf.datasets.synthetic(size=32, days=12, seed=3, chunks={"time": 1, "y": 16, "x": 16})
    store = tmp_path / "app.zarr"
    to_zarr(full.isel(time=slice(0, 6)), store)
    _kill_mid_write(tmp_path, store, "append")
    with pytest.raises(ValueError, match=r"append was interrupted.*first 6.*repair_zarr"):
        open_zarr(store)
    xstf.export.repair_zarr(store)
    back = open_zarr(store)
    _same(full.isel(time=slice(0, 6)), back)
    to_zarr(full.isel(time=slice(6, 12)), store, append_dim="time")  # append again
    _same(full, open_zarr(store))


def test_killed_overwrite_keeps_the_old_store(tmp_path):
    full = xstf.datasets.synthetic(size=32, days=12, seed=3, chunks={"time": 1, "y": 16, "x": 16})
    store = tmp_path / "keep.zarr"
    to_zarr(full.isel(time=slice(0, 6)), store)
    _kill_mid_write(tmp_path, store, "overwrite")
    _same(full.isel(time=slice(0, 6)), open_zarr(store))  # untouched, complete
    assert list(tmp_path.glob(".keep.zarr.xstf-tmp-*"))  # the unfinished new one, aside
    xstf.export.repair_zarr(store)
    assert not list(tmp_path.glob(".keep.zarr.xstf-*"))
    _same(full.isel(time=slice(0, 6)), open_zarr(store))


def test_overwrite_with_data_read_from_the_store_itself(tmp_path, cube):
    store = tmp_path / "self.zarr"
    to_zarr(cube, store)
    to_zarr(open_zarr(store).isel(time=slice(0, 3)), store, overwrite=True)
    back = open_zarr(store)
    assert back.sizes["time"] == 3
    _same(cube.isel(time=slice(0, 3)), back)
    assert not list(tmp_path.glob(".self.zarr.xstf-*"))


def test_overwrite_delayed_swaps_on_compute(tmp_path, cube):
    store = tmp_path / "d.zarr"
    to_zarr(cube, store)
    job = to_zarr(cube.isel(time=slice(0, 2)), store, overwrite=True, compute=False)
    assert open_zarr(store).sizes["time"] == 6  # nothing replaced yet
    job.compute()
    _same(cube.isel(time=slice(0, 2)), open_zarr(store))


@pytest.fixture
def half(tmp_path, cube):
    store = tmp_path / "half.zarr"
    to_zarr(cube.isel(time=slice(0, 4)), store)
    return store, cube.isel(time=slice(4, 6))


def test_append_refuses_a_one_pixel_shift(half):
    store, new = half
    with pytest.raises(ValueError, match=r"'y' differs from the store's .*up to 1 pixel"):
        to_zarr(new.assign_coords(y=new.y + 30.0), store, append_dim="time")
    to_zarr(new.assign_coords(y=new.y + 1e-5), store, append_dim="time")  # rounding: fine
    assert open_zarr(store).sizes["time"] == 6


def test_from_arrays_refuses_a_one_pixel_shift(cube):
    with pytest.raises(xstf.CubeError, match="different 'y' coordinates"):
        xstf.cube.from_arrays(cube.fine, cube.coarse.assign_coords(y=cube.y + 30.0))


def test_append_refuses_another_crs(half):
    store, new = half
    with pytest.raises(ValueError, match="CRS differs"):
        to_zarr(new.rio.write_crs("EPSG:32632"), store, append_dim="time")


def test_append_converts_celsius_with_a_warning(half, cube):
    store, new = half
    celsius = new.copy()
    for v in ("fine", "coarse", "truth"):
        celsius[v] = xstf.convert_units(new[v], "degC")
    with pytest.warns(UserWarning, match="converted to 'K'"):
        to_zarr(celsius, store, append_dim="time")
    back = open_zarr(store)
    assert back.fine.attrs["units"] == "K"
    np.testing.assert_allclose(back.fine.values, cube.fine.values, atol=1e-4)


def test_append_refuses_another_static_variable(half):
    store, new = half
    other = new.assign(landcover=(new.landcover + 1).astype(new.landcover.dtype))
    with pytest.raises(ValueError, match=r"static variable .landcover. \(no .time. dim\) differs"):
        to_zarr(other, store, append_dim="time")
    to_zarr(new, store, append_dim="time")  # the same landcover: fine
    assert open_zarr(store).sizes["time"] == 6


def test_append_refuses_another_method(tmp_path, cube):
    store = tmp_path / "m.zarr"
    fused = (cube.coarse * 1.0).rename("fused")
    fused.attrs = {"units": "K", "method": "estarfm", "parameters": '{"window": 31}'}
    to_zarr(fused.isel(time=slice(0, 4)), store)
    other = fused.isel(time=slice(4, 6)).copy()
    other.attrs = {**fused.attrs, "method": "starfm"}
    with pytest.raises(ValueError, match="method='starfm' but the store has method='estarfm'"):
        to_zarr(other, store, append_dim="time")
    other.attrs = {**fused.attrs, "parameters": '{"window": 51}'}
    with pytest.raises(ValueError, match="parameters="):
        to_zarr(other, store, append_dim="time")
    to_zarr(fused.isel(time=slice(4, 6)), store, append_dim="time")
    assert open_zarr(store).sizes["time"] == 6


def test_netcdf_overwrite_replaces_only_when_complete(tmp_path, cube):
    path = tmp_path / "c.nc"
    to_netcdf(cube, path)
    job = to_netcdf(cube.isel(time=slice(0, 2)), path, overwrite=True, compute=False)
    with xr.open_dataset(path) as old:  # the old file is whole until the new one is
        assert old.sizes["time"] == 6
    job.compute()
    with xr.open_dataset(path) as new:
        assert new.sizes["time"] == 2
    assert not list(tmp_path.glob(".c.nc.xstf-*"))


def test_uncomputed_append_is_an_interrupted_append(tmp_path, cube):
    store = tmp_path / "lazy.zarr"
    to_zarr(cube.isel(time=slice(0, 4)), store)
    to_zarr(cube.isel(time=slice(4, 6)), store, append_dim="time", compute=False)  # never run
    with pytest.raises(ValueError, match="append was interrupted"):
        open_zarr(store)
    xstf.export.repair_zarr(store)
    _same(cube.isel(time=slice(0, 4)), open_zarr(store))


def test_top_level_writers(tmp_path, cube):
    assert xstf.to_netcdf is to_netcdf and xstf.to_geotiff is to_geotiff
    assert xstf.open_zarr is open_zarr


def test_failed_append_and_failed_write_leave_the_store_as_it_was(tmp_path, cube, monkeypatch):
    store = tmp_path / "f.zarr"
    to_zarr(cube.isel(time=slice(0, 4)), store)
    real = xr.Dataset.to_zarr

    def broken(self, *args, **kwargs):
        real(self, *args, **{**kwargs, "compute": False})  # metadata written, no chunks
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        to_zarr(cube.isel(time=slice(4, 6)), store, append_dim="time")
    with pytest.raises(RuntimeError, match="disk full"):
        to_zarr(cube, store, overwrite=True)
    with pytest.raises(RuntimeError, match="disk full"):
        to_zarr(cube, tmp_path / "new.zarr")
    monkeypatch.undo()
    _same(cube.isel(time=slice(0, 4)), open_zarr(store))  # complete, the 4 dates
    assert not (tmp_path / "new.zarr").exists()
    assert not list(tmp_path.glob(".f.zarr.xstf-*"))
