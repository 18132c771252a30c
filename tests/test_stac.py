"""STAC loading: a local static catalog (synthetic DN COGs, and the real Orléans files as COGs)
read through the same ``load_stac`` a user runs against a public API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

pystac = pytest.importorskip("pystac")
pytest.importorskip("odc.stac")

import xstf  # noqa: E402
from xstf.io import open_landsat, open_modis  # noqa: E402
from xstf.io.stac import load_stac  # noqa: E402
from xstf.io.stac_catalog import (  # noqa: E402
    LANDSAT_LWIR11,
    LANDSAT_QA_PIXEL,
    MODIS_LST,
    MODIS_QC,
    QA_CLEAR,
    _write_cog,
    example_catalog,
    stac_item,
)

DATA = Path(
    os.environ.get("XSTF_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
ORLEANS = DATA / "orleans"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("stac")
    cat = pystac.Catalog.from_file(example_catalog(root / "cat"))
    items = list(cat.get_items(recursive=True))
    landsat = [i for i in items if i.collection_id == "landsat-c2-l2"]
    modis = [i for i in items if i.collection_id == "modis-11A1-061"]
    return root / "cat", landsat, modis


def _href(item, key):
    return item.assets[key].get_absolute_href()


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def _qc_reference(qc, max_err_code=1):
    """MOD11A1 QC byte read per pixel (user guide table): reject bits 0-1 >= 2 or error > code."""
    out = np.zeros(qc.shape, bool)
    for idx, q in np.ndenumerate(qc):
        out[idx] = int(q) % 4 >= 2 or int(q) // 64 > max_err_code
    return out


def test_landsat_items_decoded_like_the_product_guide(catalog):
    _, landsat, _ = catalog
    out = load_stac(landsat, return_qc=True)
    lst, qcm = out["lst"], out["qc_mask"]
    assert isinstance(lst.data, dsa.Array) and lst.dtype == np.float32
    assert lst.dims == ("time", "y", "x") and lst.rio.crs.to_epsg() == 32631
    assert [str(d.date()) for d in pd.DatetimeIndex(lst.time.values)] == [
        "2021-01-01",
        "2021-01-04",
    ]
    for i, item in enumerate(sorted(landsat, key=lambda it: it.datetime)):
        dn = _read(_href(item, "lwir11")).astype(np.float64)
        qa = _read(_href(item, "qa_pixel")).astype(np.int64)
        rejected = np.zeros(dn.shape, bool)
        for bit in (1, 2, 3, 4):  # dilated cloud, cirrus, cloud, cloud shadow
            rejected |= (qa >> bit) & 1 == 1
        expected = dn * 0.00341802 + 149.0
        expected[(dn == 0) | rejected] = np.nan
        np.testing.assert_allclose(lst.values[i], expected.astype(np.float32), atol=1e-4)
        assert np.array_equal(qcm.values[i], rejected & (dn != 0))
    assert int(qcm.values[1].sum()) > 0  # the second date has clouds flagged in qa_pixel
    # and the same files through the file reader give the same array
    files = [_href(it, "lwir11") for it in landsat]
    ref = open_landsat(files)
    np.testing.assert_array_equal(lst.values, ref.values)


def test_modis_native_grid_decoded_and_qc_filtered(catalog):
    _, _, modis = catalog
    out = load_stac(modis, return_qc=True, view=True)
    lst = out["lst"]
    crs = lst.rio.crs.to_dict()
    assert crs["proj"] == "sinu" and crs["R"] == pytest.approx(6371007.181)  # the MODIS sphere
    for i, item in enumerate(sorted(modis, key=lambda it: it.properties["start_datetime"])):
        dn = _read(_href(item, "LST_Day_1km")).astype(np.float64)
        qc = _read(_href(item, "QC_Day"))
        rej = _qc_reference(qc)
        expected = np.where((dn == 0) | rej, np.nan, dn * 0.02)
        np.testing.assert_allclose(lst.values[i], expected.astype(np.float32), rtol=1e-6)
        assert np.array_equal(out["qc_mask"].values[i], rej & (dn != 0))
        angle = _read(_href(item, "Day_view_angl")).astype(float)
        np.testing.assert_array_equal(
            out["view_angle"].values[i], np.where(angle == 255, np.nan, angle - 65.0)
        )
    assert np.nanmax(out["view_time"].values) == pytest.approx(10.5)
    assert 0 < int(out["qc_mask"].sum())  # some pixels were rejected by QC


def test_modis_on_the_landsat_grid_equals_readers_and_build_cube(catalog):
    _, landsat, modis = catalog
    fine = load_stac(landsat)
    coarse = load_stac(modis, like=fine)
    assert coarse.odc.geobox == fine.odc.geobox and isinstance(coarse.data, dsa.Array)
    ref = xstf.build_cube(
        open_landsat([_href(it, "lwir11") for it in landsat]),
        open_modis([_href(it, "LST_Day_1km") for it in modis]),
    )
    ds = xstf.build_cube(fine, coarse)
    assert list(ds.time.values) == list(ref.time.values)
    np.testing.assert_array_equal(np.isnan(ds.coarse.values), np.isnan(ref.coarse.values))
    np.testing.assert_allclose(ds.coarse.values, ref.coarse.values, atol=1e-4)
    np.testing.assert_array_equal(ds.fine.values, ref.fine.values)


def test_modis_on_a_crs_and_resolution_is_resampled_after_qc(catalog):
    _, landsat, modis = catalog
    fine = load_stac(landsat)
    b = fine.odc.geobox.extent.to_crs("EPSG:4326").boundingbox
    bbox = (b.left, b.bottom, b.right, b.top)
    coarse = load_stac(modis, bbox=bbox, crs="EPSG:32631", resolution=30)
    assert coarse.rio.crs.to_epsg() == 32631 and coarse.odc.geobox.resolution.x == 30
    # NaN on a 30 m pixel exactly where the 1 km pixel holding its centre is rejected
    from pyproj import Transformer

    nat = load_stac(modis)
    to_sinu = Transformer.from_crs("EPSG:32631", nat.rio.crs.to_wkt(), always_xy=True)
    xs, ys = to_sinu.transform(coarse.x.values[32], coarse.y.values[32])
    centre = nat.sel(x=xs, y=ys, method="nearest")
    assert np.array_equal(np.isnan(coarse.values[:, 32, 32]), np.isnan(centre.values))
    assert "nodata" not in coarse.attrs and coarse.rio.nodata is None


def test_load_stac_computes_nothing(catalog):
    _, landsat, modis = catalog
    calls = []

    class Count(dask.callbacks.Callback):
        def _start(self, dsk):
            calls.append(len(dsk))

    with Count():
        fine = load_stac(landsat)
        load_stac(modis, like=fine, return_qc=True)
    assert calls == []


def test_filters_record_what_they_leave_out(catalog):
    _, landsat, modis = catalog
    cloudy = max(landsat, key=lambda it: it.properties["eo:cloud_cover"])
    lst = load_stac(landsat, max_cloud_cover=cloudy.properties["eo:cloud_cover"] - 0.01)
    assert lst.sizes["time"] == 1 and cloudy.id in lst.attrs["stac_notes"]
    share = load_stac(modis).notnull().mean(("y", "x")).values
    kept = load_stac(modis, min_valid=0.6)
    assert kept.sizes["time"] == int((share >= 0.6).sum()) < len(modis)
    assert "below min_valid=0.6" in kept.attrs["stac_notes"]
    with pytest.raises(ValueError, match="no item has platform"):
        load_stac(landsat, platform="landsat-9")


def test_scale_and_offset_follow_raster_bands(tmp_path):
    """A catalog whose raster:bands say another scaling is decoded with it."""
    from odc.geo.geobox import GeoBox

    g = GeoBox.from_bbox(
        (400000, 5300000, 400090, 5300090), "EPSG:32631", resolution=30, tight=True
    )
    dn = np.array([[0, 1000, 2000], [3000, 4000, 5000], [6000, 7000, 8000]], "uint16")
    qa = np.full(dn.shape, QA_CLEAR, "uint16")
    qa[2, 2] |= 1 << 4  # cloud shadow
    _write_cog(tmp_path / "st.tif", dn, g, nodata=0)
    _write_cog(tmp_path / "qa.tif", qa, g)
    band = {**LANDSAT_LWIR11[0], "scale": 0.01, "offset": 250.0}
    item = stac_item(
        "LC09_L2SP_199027_20220301_02_T1", "landsat-c2-l2", "2022-03-01T10:30",
        {"lwir11": (tmp_path / "st.tif", band, ["temperature"]),
         "qa_pixel": (tmp_path / "qa.tif", *LANDSAT_QA_PIXEL)},
        g, {"platform": "landsat-9"},
    )  # fmt: skip
    lst = load_stac([item]).values[0]
    expected = dn * 0.01 + 250.0
    expected[0, 0] = expected[2, 2] = np.nan
    np.testing.assert_allclose(lst, expected.astype(np.float32), atol=1e-4)
    # item dicts (as a STAC API returns them) work the same
    np.testing.assert_array_equal(load_stac([item.to_dict()]).values[0], lst)


def test_clear_errors(catalog):
    _, landsat, modis = catalog
    with pytest.raises(ValueError, match=r"mix Landsat \(2\) and MODIS \(4\)"):
        load_stac(landsat + modis)
    with pytest.raises(ValueError, match="no STAC items"):
        load_stac([])
    no_qa = [it.clone() for it in landsat]
    del no_qa[0].assets["qa_pixel"]
    with pytest.raises(ValueError, match=r"1 of 2 item\(s\) lack .*qa_pixel"):
        load_stac(no_qa)
    assert load_stac(no_qa, qa=False).sizes["time"] == 2
    bare = landsat[0].clone()
    del bare.assets["lwir11"]
    with pytest.raises(ValueError, match="neither a Landsat surface-temperature asset"):
        load_stac([bare])
    other = landsat[1].clone()
    other.collection_id = "landsat-c2l2-st"
    with pytest.raises(ValueError, match="several collections"):
        load_stac([landsat[0], other])
    with pytest.raises(ValueError, match="do not overlap bbox"):
        load_stac(landsat, bbox=(10.0, 50.0, 10.1, 50.1))
    aqua = modis[0].clone()
    aqua.id = aqua.id.replace("MOD11A1", "MYD11A1")
    aqua.properties["platform"] = "aqua"
    with pytest.raises(ValueError, match=r"Terra .* and Aqua"):
        load_stac([*modis, aqua])
    assert load_stac([*modis, aqua], platform="terra").sizes["time"] == len(modis)
    with pytest.raises(
        ValueError, match=r"lack the MOD11A1 asset\(s\) \['LST_Night_1km', 'QC_Night'\]"
    ):
        load_stac(modis, night=True)


def test_modis_items_tagged_off_the_sphere_warn(catalog):
    _, _, modis = catalog
    wgs84 = [it.clone() for it in modis]
    for it in wgs84:
        it.properties["proj:wkt2"] = "+proj=sinu +lon_0=0 +datum=WGS84 +units=m +no_defs"
    with pytest.warns(UserWarning, match="not the MODIS sphere"):
        load_stac(wgs84)


def test_modis_like_a_grid_elsewhere_is_refused(catalog):
    from odc.geo.geobox import GeoBox

    _, _, modis = catalog
    far = GeoBox.from_bbox((600000, 5000000, 601920, 5001920), "EPSG:32631", resolution=30)
    with pytest.raises(ValueError, match="do not overlap the geobox"):
        load_stac(modis, geobox=far)


def test_stac_packages_are_not_imported_by_xstf_io():
    code = "import sys, xstf.io; print(any(m.split('.')[0] in ('pystac', 'pystac_client') or m.startswith('odc.stac') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_extra_names_the_install(monkeypatch, catalog):
    _, landsat, _ = catalog
    monkeypatch.setitem(sys.modules, "odc.stac", None)
    with pytest.raises(ImportError, match=r"xstf\[stac\]"):
        load_stac(landsat)


# -- the real Orléans files, written as COGs with public-catalog-shaped items ----------------
def _orleans_catalog(root: Path) -> tuple[list, list]:
    """Landsat °C (band 1) -> lwir11 DN + qa_pixel; MODIS °C -> LST_Day_1km DN + QC_Day,
    on the MODIS sphere (as the public COGs are; the exports are tagged on WGS 84)."""
    from odc.geo.geobox import GeoBox

    from xstf.io.decode import MODIS_SINUSOIDAL

    landsat, modis = [], []
    for f in sorted((ORLEANS / "landsat8").glob("*.tif")):
        with rasterio.open(f) as src:
            c = src.read(1).astype(np.float64)
            g = GeoBox(src.shape, src.transform, src.crs)
        dn = np.where(c == 0, 0, np.round((c + 273.15 - 149.0) / 0.00341802)).astype("uint16")
        qa = np.where(dn == 0, 1, QA_CLEAR).astype("uint16")
        _write_cog(root / f"{f.stem}_ST_B10.tif", dn, g, nodata=0)
        _write_cog(root / f"{f.stem}_QA_PIXEL.tif", qa, g, nodata=1)
        landsat.append(stac_item(
            f.stem, "landsat-c2-l2", xstf.io.parse_date(f.name) + pd.Timedelta(hours=10.5),
            {"lwir11": (root / f"{f.stem}_ST_B10.tif", *LANDSAT_LWIR11),
             "qa_pixel": (root / f"{f.stem}_QA_PIXEL.tif", *LANDSAT_QA_PIXEL)},
            g, {"platform": "landsat-8"},
        ))  # fmt: skip
    for f in sorted((ORLEANS / "modis").glob("*.tif")):
        with rasterio.open(f) as src:
            c = src.read(1).astype(np.float64)
            g = GeoBox(src.shape, src.transform, MODIS_SINUSOIDAL)
        dn = np.where(c == 0, 0, np.round((c + 273.15) / 0.02)).astype("uint16")
        qc = np.where(dn == 0, 2, 0).astype("uint8")
        d = xstf.io.parse_date(f.name)
        iid = f"MOD11A1.A{d.year}{d.day_of_year:03d}.h18v04.061"
        _write_cog(root / f"{iid}_LST_Day_1km.tif", dn, g)
        _write_cog(root / f"{iid}_QC_Day.tif", qc, g)
        modis.append(stac_item(
            iid, "modis-11A1-061", d,
            {"LST_Day_1km": (root / f"{iid}_LST_Day_1km.tif", *MODIS_LST),
             "QC_Day": (root / f"{iid}_QC_Day.tif", *MODIS_QC)},
            g, {"platform": "terra"}, day_range=True,
        ))  # fmt: skip
    cat = pystac.Catalog("orleans", "Orléans Landsat 8 / MOD11A1 as COGs")
    for cid, items in (("landsat-c2-l2", landsat), ("modis-11A1-061", modis)):
        coll = pystac.Collection(
            cid, cid, pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                                    pystac.TemporalExtent([[None, None]])),
        )  # fmt: skip
        coll.add_items(items)
        cat.add_child(coll)
    cat.normalize_and_save(str(root / "catalog"), pystac.CatalogType.SELF_CONTAINED)
    back = list(
        pystac.Catalog.from_file(root / "catalog" / "catalog.json").get_items(recursive=True)
    )
    return (
        [i for i in back if i.collection_id == "landsat-c2-l2"],
        [i for i in back if i.collection_id == "modis-11A1-061"],
    )


@pytest.mark.realdata
@pytest.mark.skipif(not ORLEANS.exists(), reason="../shared/data/orleans is absent")
def test_orleans_through_a_static_catalog_equals_the_readers(tmp_path):
    landsat, modis = _orleans_catalog(tmp_path)
    fine = load_stac(landsat)
    coarse = load_stac(modis, like=fine)
    with pytest.warns(UserWarning, match="0 °C"):
        ref_fine = open_landsat(ORLEANS / "landsat8", units="degC")
    with pytest.warns(UserWarning, match="0 °C"):
        ref_coarse = open_modis(ORLEANS / "modis", units="degC")
    with pytest.warns(UserWarning, match=r"sphere of R=6371007\.181"):
        ref = xstf.build_cube(ref_fine, ref_coarse)
    ds = xstf.build_cube(fine, coarse)
    assert list(ds.time.values) == list(ref.time.values) and ds.sizes == ref.sizes
    for v in ("fine", "coarse"):
        np.testing.assert_array_equal(np.isnan(ds[v].values), np.isnan(ref[v].values))
        np.testing.assert_allclose(ds[v].values, ref[v].values, atol=1e-4)  # measured: 0.0


def test_build_cube_takes_the_result_as_is(catalog):
    _, landsat, modis = catalog
    fine = load_stac(landsat)
    ds = xstf.build_cube(fine, load_stac(modis, like=fine), validate=False)
    assert isinstance(ds, xr.Dataset) and ds.fine.attrs["units"] == "K"
    assert ds.attrs["fine_resolution"] == pytest.approx(30.0)
