"""Landsat reader: DN scaling, QA_PIXEL masking, scaled exports, 0-as-missing, dates, paths."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from xstf.io import decode as D
from xstf.io import expand_paths, open_landsat, parse_date

RNG = np.random.default_rng(42)


def _write(path: Path, arr: np.ndarray, *, nodata=None, tags=None, crs="EPSG:32631", x0=400000.0):
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[None]
    ny, nx = arr.shape[1:]
    da = xr.DataArray(
        arr,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, arr.shape[0] + 1),
            "y": 5_300_000.0 - 30.0 * np.arange(ny) - 15.0,
            "x": x0 + 30.0 * np.arange(nx) + 15.0,
        },
    ).rio.write_crs(crs)
    if nodata is not None:
        da = da.rio.write_nodata(nodata)
    if tags:
        da.attrs.update(tags)
    da.rio.to_raster(path)
    return path


def _dn_scene(tmp_path: Path, date: str, qa: bool = True):
    dn = RNG.integers(40000, 50000, size=(6, 7)).astype("uint16")
    dn[0, 0] = 0  # fill
    qa_arr = np.full((6, 7), 1 << 6, dtype="uint16")  # clear
    qa_arr[0, 0] = 1  # fill bit
    qa_arr[1, 1] |= 1 << 1  # dilated cloud
    qa_arr[1, 2] |= 1 << 2  # cirrus
    qa_arr[2, 3] |= 1 << 3  # cloud
    qa_arr[3, 4] |= 1 << 4  # cloud shadow
    qa_arr[4, 5] |= 1 << 5  # snow: kept by default
    stem = f"LC08_L2SP_199027_{date}_20200905_02_T1"
    _write(tmp_path / f"{stem}_ST_B10.TIF", dn)
    if qa:
        _write(tmp_path / f"{stem}_QA_PIXEL.TIF", qa_arr)
    return dn, qa_arr


def test_dn_scaling_and_default_qa_bits(tmp_path):
    dn1, qa1 = _dn_scene(tmp_path, "20170119")
    dn2, qa2 = _dn_scene(tmp_path, "20170104")
    out = open_landsat(tmp_path / "*ST_B10.TIF", return_qc=True)
    lst, qc = out["lst"], out["qc_mask"]
    assert isinstance(lst.data, dsa.Array)  # lazy
    assert lst.dims == ("time", "y", "x") and lst.dtype == np.float32
    assert list(pd.DatetimeIndex(lst.time.values).date.astype(str)) == ["2017-01-04", "2017-01-19"]
    assert lst.attrs["units"] == "K" and lst.rio.crs.to_epsg() == 32631
    assert not {"scale_factor", "add_offset", "_FillValue"} & set(lst.attrs)
    for i, (dn, qa) in enumerate([(dn2, qa2), (dn1, qa1)]):
        # reference written from the USGS product guide: K = DN * 0.00341802 + 149.0
        expected = dn.astype(np.float64) * 0.00341802 + 149.0
        rejected = np.zeros(dn.shape, bool)
        for bit in (1, 2, 3, 4):
            rejected |= (qa >> bit) & 1 == 1
        expected[(dn == 0) | rejected] = np.nan
        np.testing.assert_allclose(lst.values[i], expected.astype(np.float32), rtol=0, atol=1e-4)
        assert np.array_equal(qc.values[i], rejected & (dn != 0))
    assert np.isfinite(lst.values[:, 4, 5]).all()  # the snow bit is not masked by default


def test_custom_qa_bits_and_explicit_qa_paths(tmp_path):
    _dn, _qa = _dn_scene(tmp_path, "20170119")
    (tmp_path / "qa").mkdir()
    src = next(tmp_path.glob("*QA_PIXEL.TIF"))
    src.rename(tmp_path / "qa" / src.name)
    lst = open_landsat(tmp_path / "*ST_B10.TIF", qa=tmp_path / "qa", qa_bits=(3,))
    v = lst.values[0]
    assert np.isnan(v[2, 3]) and np.isfinite(v[1, 1]) and np.isfinite(v[3, 4])


def test_dn_without_qa_warns(tmp_path):
    _dn_scene(tmp_path, "20170119", qa=False)
    with pytest.warns(UserWarning, match="QA_PIXEL"):
        lst = open_landsat(tmp_path)
    assert int(lst.isnull().sum()) == 1  # only the fill pixel
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        open_landsat(tmp_path, qa=None)


def test_scaled_celsius_zero_is_missing_warns(tmp_path):
    a = np.array([[0.0, 12.5, -3.0], [0.0, 25.0, 7.25]])
    _write(tmp_path / "LC08_199027_20170119.tif", a, nodata=0.0)
    with pytest.warns(UserWarning, match="0 °C"):
        lst = open_landsat(tmp_path, units="degC")
    expected = np.where(a == 0, np.nan, a + 273.15).astype(np.float32)
    np.testing.assert_allclose(lst.values[0], expected, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kept = open_landsat(tmp_path, units="degC", zero_is_missing=False)
    np.testing.assert_allclose(kept.values[0], (a + 273.15).astype(np.float32), atol=1e-4)


def test_zero_is_missing_explicit_without_nodata_tag(tmp_path):
    a = np.array([[0.0, 300.0], [301.0, 0.0]])
    _write(tmp_path / "2020_07_01.tif", a)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Kelvin: a 0 cannot be a real value
        lst = open_landsat(tmp_path, units="K", zero_is_missing=True)
    assert int(lst.isnull().sum()) == 2
    with pytest.warns(UserWarning, match="exactly 0"):  # 50 % zeros, no nodata tag
        kept = open_landsat(tmp_path, units="K")
    assert int(kept.isnull().sum()) == 0


def test_units_from_tag_and_band_choice(tmp_path):
    stack = np.stack([np.full((3, 3), 20.0), np.full((3, 3), 0.5), np.full((3, 3), 300.0)])
    _write(tmp_path / "LC09_199027_20220301.tif", stack, tags={"units": "K"})
    lst = open_landsat(tmp_path, band=3)
    assert np.allclose(lst.values, 300.0)
    with pytest.raises(ValueError, match="out of range"):
        open_landsat(tmp_path, band=4)


def test_scaled_without_units_is_a_clear_error(tmp_path):
    _write(tmp_path / "LC08_199027_20170119.tif", np.full((2, 2), 20.0))
    with pytest.raises(ValueError, match="units='degC'"):
        open_landsat(tmp_path)


def test_dates_errors_and_overrides(tmp_path):
    _write(tmp_path / "scene_a.tif", np.full((2, 2), 300.0))
    with pytest.raises(ValueError, match="dates="):
        open_landsat(tmp_path, units="K")
    lst = open_landsat(tmp_path, units="K", dates=["2021-05-06"])
    assert str(lst.time.dt.date.values[0]) == "2021-05-06"
    tagged = tmp_path / "t"
    tagged.mkdir()
    _write(tagged / "scene.tif", np.full((2, 2), 300.0), tags={"DATE_ACQUIRED": "2019-09-06"})
    assert str(open_landsat(tagged, units="K").time.dt.date.values[0]) == "2019-09-06"


def test_duplicate_dates_and_grid_mismatch(tmp_path):
    _write(tmp_path / "LC08_199027_20170119.tif", np.full((2, 2), 300.0))
    _write(tmp_path / "LC09_199027_20170119.tif", np.full((2, 2), 300.0))
    with pytest.raises(ValueError, match="same date 2017-01-19"):
        open_landsat(tmp_path, units="K")
    other = tmp_path / "g"
    other.mkdir()
    _write(other / "LC08_199027_20170119.tif", np.full((2, 2), 300.0))
    _write(other / "LC08_199027_20170204.tif", np.full((2, 2), 300.0), x0=400030.0)
    with pytest.raises(ValueError, match="not on the grid"):
        open_landsat(other, units="K")


def test_eager_read(tmp_path):
    _write(tmp_path / "LC08_199027_20170119.tif", np.full((2, 2), 300.0))
    lst = open_landsat(tmp_path, units="K", chunks=False)
    assert isinstance(lst.data, np.ndarray)


@pytest.mark.parametrize(
    ("name", "date"),
    [
        ("LC08_199027_20170119.tif", "2017-01-19"),
        ("2017_01_19.tif", "2017-01-19"),
        ("2018-10-21_lst.tif", "2018-10-21"),
        ("MOD11A1.A2019305.h14v09.006.2019306084028.hdf", "2019-11-01"),
        ("MYD11A1.A2020060.h18v04.061.hdf", "2020-02-29"),
        ("LC09_L2SP_199027_20220301_20220302_02_T1_ST_B10.TIF", "2022-03-01"),
    ],
)
def test_parse_date(name, date):
    assert str(parse_date(name).date()) == date


def test_parse_date_none_and_expand_errors(tmp_path):
    assert parse_date("scene_final.tif") is None
    assert parse_date("x_20171345.tif") is None  # month 13: not a date
    with pytest.raises(FileNotFoundError, match="no such file"):
        expand_paths(tmp_path / "missing.tif")
    with pytest.raises(FileNotFoundError, match="matches no file"):
        expand_paths(str(tmp_path / "*.tif"))
    with pytest.raises(FileNotFoundError, match="holds no files"):
        expand_paths(tmp_path)


def test_float_file_without_nodata_zero_spike_warns(tmp_path):
    """0-as-missing without a nodata tag: 30 % exact zeros would silently become 273.15 K."""
    a = RNG.normal(15.0, 5.0, size=(20, 20))
    a[RNG.random(a.shape) < 0.3] = 0.0
    _write(tmp_path / "LC08_199027_20170119.tif", a)  # no nodata tag
    with pytest.warns(UserWarning, match=r"LC08_199027_20170119\.tif.*zero_is_missing=True") as w:
        lst = open_landsat(tmp_path, units="degC")
    msg = next(str(x.message) for x in w if "exactly 0" in str(x.message))
    share = int(re.search(r"(\d+)% of the sampled pixels", msg).group(1))
    assert abs(share - 100 * (a == 0).mean()) <= 1 and "273.15 K" in msg
    assert int(lst.isnull().sum()) == 0  # the zeros are kept unless asked
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kept = open_landsat(tmp_path, units="degC", zero_is_missing=False)  # explicit: silent
    assert int((kept.values == np.float32(273.15)).sum()) == int((a == 0).sum())


def test_few_exact_zeros_do_not_warn(tmp_path):
    a = RNG.normal(15.0, 5.0, size=(30, 30))
    a[0, :3] = 0.0  # 0.3 %: real 0 °C pixels happen
    _write(tmp_path / "LC08_199027_20170119.tif", a)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        open_landsat(tmp_path, units="degC")


DATA = Path(
    os.environ.get("XSTF_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
ORLEANS = DATA / "orleans"


@pytest.mark.realdata
@pytest.mark.skipif(not ORLEANS.exists(), reason="../shared/data/orleans is absent")
def test_orleans_read_prints_no_gdal_extrasamples(tmp_path, capfd):
    import shutil

    src = ORLEANS / "landsat8" / "LC08_199027_20170119.tif"
    shutil.copy(src, tmp_path / src.name)  # a path no open file handle is cached for
    with pytest.warns(UserWarning, match="0 °C"):
        lst = open_landsat(tmp_path, units="degC")
    lst.values
    err = capfd.readouterr().err
    assert "ExtraSamples" not in err and "Warning 1" not in err


# -- xstf.io.decode (Landsat) ------------------------------------------------------------


def test_landsat_st_hand_worked():
    # USGS Landsat 8-9 C2 L2 guide: K = DN * 0.00341802 + 149.0, DN 0 = fill
    dn = np.array([0, 1, 43000, 65535], "uint16")
    out = D.landsat_st_to_kelvin(dn)
    assert out.dtype == np.float32
    expected = [np.nan, 149.00341802, 43000 * 0.00341802 + 149.0, 65535 * 0.00341802 + 149.0]
    np.testing.assert_allclose(out, np.float32(expected), rtol=0, atol=1e-4)
    # a second marker (a file's nodata tag) is missing too
    assert np.isnan(D.landsat_st_to_kelvin(dn, nodata=65535)[3])


def test_landsat_qa_bits_each_one():
    for bit in range(16):
        qa = np.array([1 << bit], "uint16")
        assert bool(D.landsat_qa_mask(qa)[0]) == (bit in (1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"out of range 0\.\.15"):
        D.landsat_qa_mask(np.zeros(1, "uint16"), bits=(16,))
