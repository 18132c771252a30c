"""MODIS reader: the shipped HDF4 granule, QC filtering, GeoTIFF DN and scaled exports."""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as dsa
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from xstf.io import decode as D
from xstf.io import modis_qc_mask as modis_qc_reject
from xstf.io import open_modis

DATA = Path(
    os.environ.get("XSTF_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
GRANULE = DATA / "mod11a1" / "MOD11A1.A2019305.h14v09.006.hdf"
ORLEANS = DATA / "orleans" / "modis"
needs_granule = pytest.mark.skipif(not GRANULE.exists(), reason="../shared/data is absent")

# MODIS tile grid (MODLAND): 36 x 18 tiles of 1111950.5197665 m on the sphere R=6371007.181
TILE = 1111950.5197665
X_MIN, Y_MAX = -20015109.354, 10007554.677


def _qc_reject_reference(qc: np.ndarray, max_err_code: int) -> np.ndarray:
    """Plain per-pixel reading of the MOD11A1 QC byte (user guide, table 10)."""
    out = np.zeros(qc.shape, bool)
    for idx, q in np.ndenumerate(qc):
        mandatory = int(q) % 4  # bits 0-1
        lst_error = int(q) // 64  # bits 6-7
        out[idx] = mandatory >= 2 or lst_error > max_err_code
    return out


def test_qc_reject_hand_worked():
    qc = np.array(
        [0b00000000, 0b00000001, 0b01000001, 0b10000000, 0b11000000, 0b00000010, 0b00000011]
    )
    assert modis_qc_reject(qc.astype("uint8")).tolist() == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert modis_qc_reject(qc.astype("uint8"), max_lst_error=None).tolist() == [
        False, False, False, False, False, True, True,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="max_lst_error"):
        modis_qc_reject(qc, max_lst_error=0.5)


def test_former_name_modis_qc_reject_is_deprecated():
    import xstf.io.modis as M

    with pytest.warns(DeprecationWarning, match="modis_qc_mask"):
        old = M.modis_qc_reject
    assert old is D.modis_qc_mask and "modis_qc_reject" not in M.__all__
    with pytest.raises(AttributeError, match="no_such_name"):
        M.no_such_name


@pytest.mark.realdata
@needs_granule
def test_hdf_granule_values_grid_and_qc():
    from pyhdf.SD import SD, SDC

    out = open_modis(GRANULE, return_qc=True)
    lst, qcm = out["lst"], out["qc_mask"]
    assert isinstance(lst.data, dsa.Array)
    assert lst.shape == (1, 1200, 1200) and lst.dtype == np.float32
    assert str(lst.time.dt.date.values[0]) == "2019-11-01"
    # grid from the MODLAND tiling formula for h14v09, pixel centres
    res = TILE / 1200
    assert lst.x.values[0] == pytest.approx(X_MIN + 14 * TILE + res / 2, abs=0.01)
    assert lst.y.values[0] == pytest.approx(Y_MAX - 9 * TILE - res / 2, abs=0.01)
    assert lst.x.values[-1] == pytest.approx(X_MIN + 15 * TILE - res / 2, abs=0.01)
    crs = lst.rio.crs.to_dict()
    assert crs["proj"] == "sinu" and crs["R"] == pytest.approx(6371007.181)
    # values: an independent decoding of the raw layers
    sd = SD(str(GRANULE), SDC.READ)
    raw = sd.select("LST_Day_1km")[:].astype(np.float64)
    qc = sd.select("QC_Day")[:]
    sd.end()
    rows = slice(300, 420)  # a band of rows keeps the pure-Python reference fast
    rej = _qc_reject_reference(qc[rows], max_err_code=1)
    expected = np.where((raw[rows] == 0) | rej, np.nan, raw[rows] * 0.02)
    np.testing.assert_allclose(lst.values[0, rows], expected.astype(np.float32), rtol=1e-6)
    assert np.array_equal(qcm.values[0, rows], rej & (raw[rows] != 0))
    v = lst.values
    assert 0.05 < np.isfinite(v).mean() < 1.0
    assert 250 < np.nanmin(v) and np.nanmax(v) < 345
    unfiltered = open_modis(GRANULE, qc=None)
    assert int(unfiltered.notnull().sum()) >= int(lst.notnull().sum())
    night = open_modis(GRANULE, layer="LST_Night_1km")
    assert float(night.mean()) < float(lst.mean())  # nights are colder


@needs_granule
def test_hdf_unknown_layer():
    with pytest.raises(ValueError, match="no layer 'LST_Day_5km'"):
        open_modis(GRANULE, layer="LST_Day_5km")


def _tif(path: Path, arr: np.ndarray, nodata=None, crs="+proj=sinu +R=6371007.181 +units=m"):
    ny, nx = arr.shape
    da = xr.DataArray(
        arr[None], dims=("band", "y", "x"),
        coords={"band": [1], "y": 5_330_000.0 - 1000.0 * np.arange(ny) - 500, "x": 136_000.0 + 1000.0 * np.arange(nx) + 500},
    ).rio.write_crs(crs)  # fmt: skip
    if nodata is not None:
        da = da.rio.write_nodata(nodata)
    da.rio.to_raster(path)


def test_geotiff_dn_with_qc_sibling(tmp_path):
    dn = np.array([[0, 14000, 14500], [15000, 15500, 16000]], dtype="uint16")
    qc = np.array([[2, 0, 0b01000001], [0b10000001, 0, 3]], dtype="uint8")
    _tif(tmp_path / "MOD11A1.A2020183.LST_Day_1km.tif", dn)
    _tif(tmp_path / "MOD11A1.A2020183.QC_Day.tif", qc)
    lst = open_modis(tmp_path / "*LST_Day_1km.tif")
    rej = _qc_reject_reference(qc, 1)
    expected = np.where((dn == 0) | rej, np.nan, dn * 0.02)
    np.testing.assert_allclose(lst.values[0], expected.astype(np.float32), rtol=1e-6)
    assert str(lst.time.dt.date.values[0]) == "2020-07-01"


def test_geotiff_dn_without_qc_warns(tmp_path):
    _tif(tmp_path / "MOD11A1.A2020183.LST_Day_1km.tif", np.full((2, 2), 15000, "uint16"))
    with pytest.warns(UserWarning, match="not quality-filtered"):
        open_modis(tmp_path)


def test_geotiff_scaled_celsius(tmp_path):
    a = np.array([[0.0, 10.0], [-2.5, 0.83]])
    _tif(tmp_path / "2017_01_19.tif", a, nodata=0.0)
    with pytest.warns(UserWarning, match="0 °C"):
        lst = open_modis(tmp_path, units="degC")
    np.testing.assert_allclose(
        lst.values[0], np.where(a == 0, np.nan, a + 273.15).astype("float32"), atol=1e-4
    )


def test_mixed_formats_refused(tmp_path):
    _tif(tmp_path / "2017_01_19.tif", np.full((2, 2), 300.0))
    (tmp_path / "MOD11A1.A2019305.h14v09.006.hdf").write_bytes(b"")
    with pytest.raises(ValueError, match="mix HDF"):
        open_modis(tmp_path)


@pytest.mark.realdata
@pytest.mark.skipif(not ORLEANS.exists(), reason="../shared/data is absent")
def test_orleans_modis_exports():
    with pytest.warns(UserWarning, match="0 °C"):
        lst = open_modis(ORLEANS, units="degC")
    assert lst.shape == (5, 13, 13)
    assert lst.rio.crs.to_dict()["proj"] == "sinu"
    v = lst.values
    assert 255 < np.nanmin(v) and np.nanmax(v) < 330


def test_unknown_kind_is_refused_like_open_landsat(tmp_path):
    _tif(tmp_path / "MOD11A1.A2020183.LST_Day_1km.tif", np.full((2, 2), 15000, "uint16"))
    with pytest.raises(ValueError, match="kind must be 'auto', 'dn' or 'scaled', got 'typo'"):
        open_modis(tmp_path, kind="typo", qc=None)


def test_geotiff_dn_outside_the_valid_range_is_missing(tmp_path):
    """As in the HDF layer (valid_range 7500-65535): DN 100 is not a 2 K surface."""
    dn = np.array([[100, 7499, 7500, 15000]], dtype="uint16")
    _tif(tmp_path / "MOD11A1.A2020183.LST_Day_1km.tif", dn)
    lst = open_modis(tmp_path, qc=None)
    np.testing.assert_allclose(lst.values[0], [[np.nan, np.nan, 150.0, 300.0]])


# -- xstf.io.decode (MODIS; numpy/dask/xarray) --------------------------------------------
def test_modis_lst_and_qc_hand_worked():
    dn = np.array([0, 7499, 7500, 14500, 65535], "uint16")
    np.testing.assert_allclose(
        D.modis_lst_to_kelvin(dn), np.float32([np.nan, np.nan, 150.0, 290.0, 1310.7]), atol=1e-3
    )
    # QC byte: bits 0-1 mandatory QA, bits 6-7 LST error class
    qc = np.array([0b00, 0b01, 0b10, 0b11, 0b01000001, 0b10000001, 0b11000000], "uint8")
    assert D.modis_qc_mask(qc).tolist() == [False, False, True, True, False, True, True]
    assert D.modis_qc_mask(qc, 3).tolist() == [False, False, True, True, False, False, True]
    assert D.modis_qc_mask(qc, None).tolist() == [False, False, True, True, False, False, False]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda a: a,
        lambda a: dsa.from_array(a, chunks=2),
        lambda a: xr.DataArray(a, dims=("x",)),
    ],
    ids=["numpy", "dask", "xarray"],
)
def test_same_kind_out_and_same_values(wrap):
    dn = np.array([0, 43000, 44000, 45000], "uint16")
    qa = np.array([1, 1 << 6, 1 << 3, 1 << 6], "uint16")
    ref_k = D.landsat_st_to_kelvin(dn)
    k, m = D.landsat_st_to_kelvin(wrap(dn)), D.landsat_qa_mask(wrap(qa))
    assert type(k) is type(wrap(dn)) and type(m) is type(wrap(qa))
    np.testing.assert_array_equal(np.asarray(k), ref_k)
    assert np.asarray(m).tolist() == [False, False, True, False]


def test_modis_sphere_is_one_constant():
    from pyproj import CRS

    crs = CRS.from_proj4(D.MODIS_SINUSOIDAL)
    assert crs.ellipsoid.semi_major_metre == D.MODIS_SPHERE_RADIUS == 6371007.181
