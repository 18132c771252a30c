"""Write static STAC catalogs shaped like the public ones: items, assets and a tiny example.

:func:`stac_item` builds an item with the ``proj:*`` fields, ``raster:bands`` and roles
the Planetary Computer publishes; :func:`example_catalog` writes synthetic Landsat C2 L2
and MOD11A1 COGs with such items (docs, tests, trying :func:`xstf.io.load_stac` offline).
Needs ``pystac`` (the ``xstf[stac]`` extra), imported when a function is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .decode import (
    LANDSAT_ST_OFFSET,
    LANDSAT_ST_SCALE,
    MODIS_LST_SCALE,
    MODIS_SINUSOIDAL,
    MODIS_SPHERE_RADIUS,
)

__all__ = ["example_catalog", "modis_geobox", "stac_item"]

_INSTALL = "pip install 'xstf[stac]'  (pystac, pystac-client, odc-stac)"


def _need_pystac() -> Any:
    try:
        import pystac
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"this needs pystac: {_INSTALL}") from err
    return pystac


def _write_cog(path: Path, data: np.ndarray, gbox: Any, nodata: Any = None) -> None:
    import rasterio

    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": gbox.crs.to_wkt(),
        "transform": gbox.transform,
        "blocksize": 256,
        "overviews": "NONE",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def stac_item(
    item_id: str,
    collection: str,
    date: Any,
    assets: Mapping[str, tuple[str | os.PathLike, Mapping[str, Any], Sequence[str]]],
    gbox: Any,
    properties: Mapping[str, Any] | None = None,
    *,
    day_range: bool = False,
) -> Any:
    """A ``pystac.Item`` with the projection fields and assets the public catalogs carry.

    Parameters
    ----------
    item_id, collection : str
        Item id and collection id.
    date : datetime-like
        Acquisition time.
    assets : mapping
        ``key -> (href, raster_band, roles)``: one COG per asset, its ``raster:bands[0]``.
    gbox : odc.geo.geobox.GeoBox
        The assets' grid (``proj:shape``, ``proj:transform``, CRS).
    properties : mapping, optional
        Extra properties (``platform``, ``eo:cloud_cover``...).
    day_range : bool
        Give ``start_datetime``/``end_datetime`` over the day and ``datetime: null``, as the
        MODIS daily items do, instead of ``datetime``.

    Returns
    -------
    pystac.Item

    Examples
    --------
    >>> from odc.geo.geobox import GeoBox
    >>> g = GeoBox.from_bbox((400000, 5300000, 400060, 5300060), "EPSG:32631", resolution=30, tight=True)
    >>> it = stac_item("a", "landsat-c2-l2", "2020-01-01", {"lwir11": ("a.tif", {}, ["temperature"])}, g)
    >>> it.properties["proj:epsg"], it.properties["proj:shape"]
    (32631, [2, 2])
    """
    pystac = _need_pystac()
    ts = pd.Timestamp(date)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    footprint = gbox.extent.to_crs("EPSG:4326")
    epsg = gbox.crs.epsg
    props: dict[str, Any] = {
        "proj:epsg": epsg,
        "proj:shape": [int(gbox.shape[0]), int(gbox.shape[1])],
        "proj:transform": [float(v) for v in list(gbox.transform)[:6]],
    }
    if epsg is None:
        props["proj:wkt2"] = gbox.crs.to_wkt()
    props.update(properties or {})
    if day_range:
        day = ts.normalize()
        props["start_datetime"] = day.strftime("%Y-%m-%dT%H:%M:%SZ")
        props["end_datetime"] = (day + pd.Timedelta(seconds=86399)).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = pystac.Item(
        id=item_id,
        geometry=footprint.json,
        bbox=list(footprint.boundingbox),
        datetime=None if day_range else ts.to_pydatetime(),
        properties=props,
        collection=collection,
        stac_extensions=[
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
    )
    for key, (href, band, roles) in assets.items():
        item.add_asset(
            key,
            pystac.Asset(
                href=os.fspath(href),
                media_type="image/tiff; application=geotiff; profile=cloud-optimized",
                roles=list(roles),
                extra_fields={"raster:bands": [dict(band)]},
            ),
        )
    return item


#: ``raster:bands`` and roles of the assets as the Planetary Computer publishes them.
LANDSAT_LWIR11 = (
    {"nodata": 0, "data_type": "uint16", "unit": "kelvin", "scale": LANDSAT_ST_SCALE,
     "offset": LANDSAT_ST_OFFSET, "spatial_resolution": 30},
    ["temperature"],
)  # fmt: skip
LANDSAT_QA_PIXEL = (
    {"nodata": 1, "data_type": "uint16", "unit": "bit index", "spatial_resolution": 30},
    ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
)
MODIS_LST = (
    {"data_type": "uint16", "spatial_resolution": 1000, "unit": "Kelvin", "scale": MODIS_LST_SCALE},
    ["data", "temperature"],
)
MODIS_QC = ({"data_type": "uint8", "spatial_resolution": 1000}, ["data"])
MODIS_VIEW_TIME = (
    {"data_type": "uint8", "spatial_resolution": 1000, "unit": "Hours", "scale": 0.1},
    ["data"],
)
MODIS_VIEW_ANGLE = ({"data_type": "uint8", "spatial_resolution": 1000, "unit": "Degree"}, ["data"])
#: ``QA_PIXEL`` of a clear land pixel (bit 6 + low confidences) and of a cloudy one.
QA_CLEAR = 21824
QA_CLOUD = QA_CLEAR | (1 << 3) | (1 << 1)


def modis_geobox(target: Any, margin: int = 2) -> Any:
    """The MODIS 1 km sinusoidal grid (MODLAND pixel edges) covering ``target`` + ``margin`` px.

    Parameters
    ----------
    target : odc.geo.geobox.GeoBox
        The area to cover (any CRS).
    margin : int
        Extra MODIS pixels on each side.

    Returns
    -------
    odc.geo.geobox.GeoBox

    Examples
    --------
    >>> from odc.geo.geobox import GeoBox
    >>> g = GeoBox.from_bbox((430000, 5316000, 431920, 5317920), "EPSG:32631", resolution=30)
    >>> round(modis_geobox(g).resolution.x, 3)
    926.625
    """
    from odc.geo import xy_
    from odc.geo.geobox import GeoBox

    res = 2 * np.pi * MODIS_SPHERE_RADIUS / 36 / 1200  # tile width / 1200 pixels
    b = target.extent.to_crs(MODIS_SINUSOIDAL).boundingbox
    pad = margin * res
    gbox = GeoBox.from_bbox(
        (b.left - pad, b.bottom - pad, b.right + pad, b.top + pad),
        MODIS_SINUSOIDAL,
        resolution=res,
        anchor=xy_(0, 0),
    )
    return gbox


def example_catalog(
    directory: str | os.PathLike, *, size: int = 64, days: int = 4, seed: int = 0
) -> Path:
    """Write a tiny static STAC catalog of synthetic Landsat C2 L2 and MOD11A1 COGs.

    Two collections shaped like the Planetary Computer's: ``landsat-c2-l2`` (items with
    ``lwir11`` DN and ``qa_pixel``, ``proj:epsg`` 32631, two dates with clouds flagged in
    ``qa_pixel``) and ``modis-11A1-061`` (``LST_Day_1km`` DN and ``QC_Day`` on the MODIS
    sinusoidal sphere, ``proj:wkt2``, one Terra granule per day, some pixels rejected by QC).
    Values come from :func:`xstf.datasets.synthetic`. Nothing is overwritten: the folder
    must be empty or new.

    Parameters
    ----------
    directory : path
        Where to write (``catalog.json`` and the COGs).
    size : int
        Landsat scene size in 30 m pixels.
    days : int
        Number of daily MODIS granules (Landsat on the first and last day).
    seed : int
        Seed of the synthetic scene.

    Returns
    -------
    pathlib.Path
        The ``catalog.json`` to open with ``pystac.Catalog.from_file`` or
        ``pystac_client.Client.open``.

    Examples
    --------
    >>> import tempfile
    >>> example_catalog(tempfile.mkdtemp()).name
    'catalog.json'
    """
    pystac = _need_pystac()
    from odc.geo.xr import xr_reproject

    from ..datasets import synthetic

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: pass a new or empty folder")
    syn = synthetic(size=size, days=days, seed=seed, cloud_fraction=0.3)
    truth = syn["truth"].rio.write_crs(32631)
    lgbox = truth.odc.geobox
    mgbox = modis_geobox(lgbox)
    rng = np.random.default_rng(seed)
    cat = pystac.Catalog("xstf-example", "Synthetic Landsat C2 L2 and MOD11A1 for xstf")
    colls = {}
    for cid, title in (("landsat-c2-l2", "Landsat C2 L2"), ("modis-11A1-061", "MOD11A1 v061")):
        c = pystac.Collection(
            cid, title, pystac.Extent(
                pystac.SpatialExtent([list(lgbox.extent.to_crs("EPSG:4326").boundingbox)]),
                pystac.TemporalExtent([[None, None]]),
            ),
        )  # fmt: skip
        cat.add_child(c)
        colls[cid] = c
    times = pd.DatetimeIndex(syn.time.values)
    for i, t in enumerate(times):
        day = t.strftime("%Y%m%d")
        if i in (0, days - 1):  # Landsat overpasses
            k = truth.isel(time=i).values.astype("float64")
            dn = np.round((k - LANDSAT_ST_OFFSET) / LANDSAT_ST_SCALE).astype("uint16")
            dn[:2, :] = 0  # a fill strip at the scene edge
            qa = np.full(dn.shape, QA_CLEAR, "uint16")
            qa[np.isnan(syn["fine"].isel(time=0).values)] = QA_CLOUD if i else QA_CLEAR
            qa[dn == 0] = 1
            iid = f"LC08_L2SP_199027_{day}_02_T1"
            d = root / "landsat" / iid
            d.mkdir(parents=True)
            _write_cog(d / f"{iid}_ST_B10.TIF", dn, lgbox, nodata=0)
            _write_cog(d / f"{iid}_QA_PIXEL.TIF", qa, lgbox, nodata=1)
            cloud = float(np.mean(qa == QA_CLOUD) * 100)
            colls["landsat-c2-l2"].add_item(stac_item(
                iid, "landsat-c2-l2", t + pd.Timedelta(hours=10, minutes=30),
                {"lwir11": (d / f"{iid}_ST_B10.TIF", *LANDSAT_LWIR11),
                 "qa_pixel": (d / f"{iid}_QA_PIXEL.TIF", *LANDSAT_QA_PIXEL)},
                lgbox, {"platform": "landsat-8", "eo:cloud_cover": round(cloud, 2)},
            ))  # fmt: skip
        coarse = xr_reproject(truth.isel(time=i), mgbox, resampling="average").values
        coarse = np.where(np.isnan(coarse), np.nanmean(coarse), coarse)  # beyond the scene
        mdn = np.round(coarse.astype("float64") / MODIS_LST_SCALE).astype("uint16")
        qc = np.zeros(mdn.shape, "uint8")
        bad = rng.random(mdn.shape) < 0.1
        qc[bad] = 0b10000001  # produced, LST error <= 3 K: rejected by the default filter
        cloudy = rng.random(mdn.shape) < (0.5 if i == 1 else 0.0)
        mdn[cloudy], qc[cloudy] = 0, 0b10  # not produced (cloud)
        iid = f"MOD11A1.A{t.year}{t.day_of_year:03d}.h18v04.061"
        d = root / "modis" / iid
        d.mkdir(parents=True)
        vtime = np.full(mdn.shape, 105, "uint8")  # 10.5 h local solar time
        vangle = (65 + np.arange(mdn.size).reshape(mdn.shape) % 40).astype("uint8")  # 0..39°
        vtime[mdn == 0], vangle[mdn == 0] = 255, 255
        layers = {"LST_Day_1km": (mdn, MODIS_LST), "QC_Day": (qc, MODIS_QC),
                  "Day_view_time": (vtime, MODIS_VIEW_TIME),
                  "Day_view_angl": (vangle, MODIS_VIEW_ANGLE)}  # fmt: skip
        for key, (arr, _) in layers.items():
            _write_cog(d / f"{iid}_{key}.tif", arr, mgbox)
        colls["modis-11A1-061"].add_item(stac_item(
            iid, "modis-11A1-061", t,
            {key: (d / f"{iid}_{key}.tif", *meta) for key, (_, meta) in layers.items()},
            mgbox, {"platform": "terra", "eo:cloud_cover": int(cloudy.mean() * 100)},
            day_range=True,
        ))  # fmt: skip
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"
