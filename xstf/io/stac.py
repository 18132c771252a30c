"""Landsat C2 L2 and MOD11A1/MYD11A1 LST from STAC items -> lazy ``(time, y, x)`` Kelvin.

:func:`load_stac` loads the items of one product with ``odc.stac.load`` (MODIS onto the
Landsat grid with ``like=``), decodes DN and QA/QC bits with :mod:`xstf.io.decode` and
returns what :func:`xstf.build_cube` takes. :func:`example_catalog` (from
:mod:`xstf.io.stac_catalog`) writes a tiny static catalog for docs and tests. Needs the
``xstf[stac]`` extra (``pystac``, ``pystac-client``, ``odc-stac``); nothing of it is
imported before a function is called.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .decode import (
    DEFAULT_MAX_LST_ERROR,
    DEFAULT_QA_BITS,
    LANDSAT_ST_FILL,
    LANDSAT_ST_OFFSET,
    LANDSAT_ST_SCALE,
    MODIS_LST_SCALE,
    MODIS_LST_VALID_RANGE,
    MODIS_SPHERE_RADIUS,
    landsat_qa_mask,
    landsat_st_to_kelvin,
    modis_lst_to_kelvin,
    modis_qc_mask,
    scale_dn,
)
from .stac_catalog import _INSTALL, _need_pystac, example_catalog, modis_geobox, stac_item

__all__ = [
    "LANDSAT_ASSETS",
    "MODIS_ASSETS",
    "example_catalog",
    "load_stac",
    "modis_geobox",
    "stac_item",
]

#: Landsat C2 L2 asset keys understood: surface temperature and pixel QA. ``lwir11`` /
#: ``qa_pixel`` are the keys of Planetary Computer ``landsat-c2-l2``, Element 84 Earth
#: Search ``landsat-c2-l2`` and USGS LandsatLook ``landsat-c2l2-st``; ``ST_B10`` /
#: ``QA_PIXEL`` (the USGS band names) are accepted for hand-made catalogs.
LANDSAT_ASSETS: dict[str, tuple[str, ...]] = {
    "lst": ("lwir11", "ST_B10", "st_b10"),
    "qa": ("qa_pixel", "QA_PIXEL"),
}
#: MOD11A1/MYD11A1 v061 asset keys (Planetary Computer ``modis-11A1-061``).
MODIS_ASSETS: dict[str, tuple[str, ...]] = {
    "day": ("LST_Day_1km", "QC_Day", "Day_view_time", "Day_view_angl"),
    "night": ("LST_Night_1km", "QC_Night", "Night_view_time", "Night_view_angl"),
}
#: MOD11A1 view time (hours, × 0.1, fill 255) and view zenith angle (degrees, DN - 65,
#: fill 255), from the HDF layers' attributes. The Planetary Computer's ``raster:bands`` omit
#: the angle's offset of -65, so these are always used.
_VIEW_DECODING = {"time": (0.1, 0.0, 255, (0, 240)), "angle": (1.0, -65.0, 255, (0, 130))}
_DEFAULT_CHUNKS = {"x": 1024, "y": 1024}


def _need_odc() -> Any:
    try:
        import odc.stac
    except ImportError as err:
        raise ImportError(f"xstf.io.load_stac needs odc-stac: {_INSTALL}") from err
    return odc.stac


# -- items ---------------------------------------------------------------------------------------
def _as_items(items: Any) -> list[Any]:
    pystac = _need_pystac()
    if isinstance(items, pystac.Item):
        return [items]
    if isinstance(items, pystac.Catalog):  # a static catalog (or a collection)
        return list(items.get_items(recursive=True))
    if hasattr(items, "item_collection"):  # pystac_client.ItemSearch
        return list(items.item_collection())
    out = []
    for it in items:
        out.append(pystac.Item.from_dict(it) if isinstance(it, Mapping) else it)
    return out


def _first_key(assets: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    return next((k for k in keys if k in assets), None)


def _sensor(item: Any) -> str | None:
    if _first_key(item.assets, LANDSAT_ASSETS["lst"]):
        return "landsat"
    if any(MODIS_ASSETS[w][0] in item.assets for w in MODIS_ASSETS):
        return "modis"
    return None


def _check_one_product(items: Sequence[Any]) -> str:
    if not items:
        raise ValueError(
            "no STAC items given (the search matched nothing?): widen bbox/datetime or check "
            "the collection name (landsat-c2-l2, modis-11A1-061)"
        )
    sensors = [_sensor(it) for it in items]
    unknown = [it for it, s in zip(items, sensors, strict=True) if s is None]
    if unknown:
        it = unknown[0]
        raise ValueError(
            f"{len(unknown)} item(s) carry neither a Landsat surface-temperature asset "
            f"({' / '.join(LANDSAT_ASSETS['lst'])}) nor a MODIS LST asset (LST_Day_1km / "
            f"LST_Night_1km), e.g. {it.id} with assets {sorted(it.assets)}: search the "
            "collections landsat-c2-l2 (Landsat 8/9) or modis-11A1-061"
        )
    kinds = set(sensors)
    if len(kinds) > 1:
        n = {k: sensors.count(k) for k in kinds}
        raise ValueError(
            f"the items mix Landsat ({n['landsat']}) and MODIS ({n['modis']}) products: load "
            "each with its own call, MODIS with like= the Landsat result, then build_cube"
        )
    collections = sorted({str(it.collection_id) for it in items})
    if len(collections) > 1:
        raise ValueError(
            f"the items come from several collections {collections}: their assets and scaling "
            "may differ, load one collection at a time"
        )
    return kinds.pop()  # type: ignore[return-value]


def _raster_band(item: Any, key: str) -> dict[str, Any]:
    bands = item.assets[key].extra_fields.get("raster:bands") or [{}]
    return dict(bands[0])


def _coding(items: Sequence[Any], key: str, defaults: tuple[float, float]) -> tuple[float, float]:
    """(scale, offset) of an asset from ``raster:bands``, the same on every item."""
    seen = {}
    for it in items:
        b = _raster_band(it, key)
        seen[it.id] = (float(b.get("scale", defaults[0])), float(b.get("offset", defaults[1])))
    values = set(seen.values())
    if len(values) > 1:
        raise ValueError(
            f"the {key!r} assets are scaled differently across items ({sorted(values)}): load "
            "items of one processing version at a time"
        )
    return values.pop()


def _missing_assets(items: Sequence[Any], keys: Sequence[str], what: str, hint: str) -> None:
    lacking = [it for it in items if not all(k in it.assets for k in keys)]
    if lacking:
        it = lacking[0]
        raise ValueError(
            f"{len(lacking)} of {len(items)} item(s) lack the {what} asset(s) {list(keys)}, e.g. "
            f"{it.id} with assets {sorted(it.assets)}: {hint}"
        )


def _item_crs(item: Any) -> Any:
    from pyproj import CRS

    p = item.properties
    for key in ("proj:wkt2", "proj:projjson", "proj:code"):
        if p.get(key):
            return CRS.from_user_input(p[key])
    if p.get("proj:epsg"):
        return CRS.from_epsg(int(p["proj:epsg"]))
    return None


def _check_modis_sphere(items: Sequence[Any]) -> None:
    for it in items:
        crs = _item_crs(it)
        if crs is None or crs.coordinate_operation is None:
            continue
        if "sinusoidal" not in crs.coordinate_operation.method_name.lower():
            continue
        if abs(crs.ellipsoid.semi_major_metre - MODIS_SPHERE_RADIUS) > 1.0:
            warnings.warn(
                f"item {it.id}: the sinusoidal CRS of its proj metadata is on an ellipsoid of "
                f"a={crs.ellipsoid.semi_major_metre} m, not the MODIS sphere "
                f"(R={MODIS_SPHERE_RADIUS} m): if its COGs carry the same tag the data land "
                "~10-20 km off. Public catalogs (modis-11A1-061) are right; for such exports "
                "use xstf.io.open_modis + xstf.build_cube, which fix the CRS",
                UserWarning,
                stacklevel=3,
            )
            return


def _footprints(items: Sequence[Any], target: Any, where: str) -> None:
    """Every item must overlap the requested area (else it would load as an empty date)."""
    from odc.geo.geom import Geometry

    if target is None:
        return
    outside = [
        it.id
        for it in items
        if it.geometry is not None and not Geometry(it.geometry, "EPSG:4326").intersects(target)
    ]
    if outside:
        b = target.boundingbox
        raise ValueError(
            f"{len(outside)} of {len(items)} item(s) do not overlap {where} (lon/lat "
            f"{b.left:.3f}, {b.bottom:.3f}, {b.right:.3f}, {b.top:.3f}), e.g. {outside[0]}: "
            "search with the same bbox, or drop those items"
        )


def _select(
    items: list[Any], platform: str | Sequence[str] | None, max_cloud_cover: float | None
) -> tuple[list[Any], list[str]]:
    notes = []
    if platform is not None:
        wanted = {platform} if isinstance(platform, str) else set(platform)
        wanted = {w.lower() for w in wanted}
        kept = [it for it in items if str(it.properties.get("platform", "")).lower() in wanted]
        if not kept:
            found = sorted({str(it.properties.get("platform")) for it in items})
            raise ValueError(f"no item has platform in {sorted(wanted)}; platforms: {found}")
        if len(kept) < len(items):
            notes.append(f"{len(items) - len(kept)} item(s) of other platforms left out")
        items = kept
    if max_cloud_cover is not None:
        kept = [
            it
            for it in items
            if it.properties.get("eo:cloud_cover") is None
            or float(it.properties["eo:cloud_cover"]) <= max_cloud_cover
        ]
        if not kept:
            raise ValueError(
                f"all {len(items)} item(s) have eo:cloud_cover > {max_cloud_cover} %: raise "
                "max_cloud_cover or widen the date range"
            )
        if len(kept) < len(items):
            kept_ids = {id(it) for it in kept}
            dropped = [it.id for it in items if id(it) not in kept_ids]
            notes.append(
                f"{len(dropped)} item(s) with eo:cloud_cover > {max_cloud_cover} % left out: "
                + ", ".join(dropped)
            )
        items = kept
    return items, notes


def _platforms(items: Sequence[Any]) -> set[str]:
    return {str(it.properties.get("platform", "")).lower() for it in items}


def _grid_kwargs(
    items: Sequence[Any],
    *,
    like: Any,
    geobox: Any,
    bbox: Any,
    crs: Any,
    resolution: Any,
    native_res: float,
) -> tuple[dict[str, Any], Any, str]:
    """odc.stac.load grid arguments, the target footprint (lon/lat) and its description."""
    from odc.geo import xy_
    from odc.geo.geom import box

    if like is not None:
        gbox = like.odc.geobox if hasattr(like, "odc") else like
        return {"geobox": gbox}, gbox.extent.to_crs("EPSG:4326"), "the like= grid"
    if geobox is not None:
        return {"geobox": geobox}, geobox.extent.to_crs("EPSG:4326"), "the geobox"
    kw: dict[str, Any] = {}
    if crs is not None:
        kw["crs"] = crs
    native_crs = _item_crs(items[0])
    same_crs = crs is None or (native_crs is not None and native_crs == _to_crs(crs))
    res = native_res if resolution is None else float(resolution)
    kw["resolution"] = res
    t = items[0].properties.get("proj:transform")
    if same_crs and t is not None and np.isclose(abs(float(t[0])), res):
        # keep the items' own pixel grid (Landsat edges sit at odd multiples of 15 m)
        kw["anchor"] = xy_((float(t[2]) / res) % 1.0, (float(t[5]) / res) % 1.0)
    if bbox is not None:
        kw["bbox"] = tuple(bbox)
        return kw, box(bbox[0], bbox[1], bbox[2], bbox[3], "EPSG:4326"), "bbox"
    return kw, None, ""


def _target_geobox(items: Sequence[Any], target: Any, crs: Any, res: float) -> Any:
    """The grid asked for with ``crs``/``resolution`` over ``bbox`` (or the items' union)."""
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import Geometry, unary_union

    region = target
    if region is None:
        region = unary_union([Geometry(it.geometry, "EPSG:4326") for it in items])
    out_crs = crs if crs is not None else _item_crs(items[0]).to_wkt()
    return GeoBox.from_geopolygon(region.to_crs(out_crs), resolution=float(res), crs=out_crs)


def _native_cover(item: Any, dst: Any, res: float) -> Any:
    """The items' own 1 km grid covering ``dst`` plus a 3-pixel margin (cubic's reach)."""
    from odc.geo import xy_
    from odc.geo.geobox import GeoBox

    src_crs = _item_crs(item)
    if src_crs is None:
        raise ValueError(f"item {item.id} has no proj:wkt2 / proj:epsg: its CRS is unknown")
    t = item.properties.get("proj:transform") or [res, 0, 0, 0, -res, 0]
    b = dst.extent.to_crs(src_crs.to_wkt()).boundingbox
    pad = 3 * res
    return GeoBox.from_bbox(
        (b.left - pad, b.bottom - pad, b.right + pad, b.top + pad),
        src_crs.to_wkt(),
        resolution=res,
        anchor=xy_((float(t[2]) / res) % 1.0, (float(t[5]) / res) % 1.0),
    )


def _onto(
    dst: Any, lst: xr.DataArray, reject: xr.DataArray, extra: dict[str, Any], resampling: str
) -> tuple[xr.DataArray, xr.DataArray, dict[str, Any]]:
    """QC'd 1 km LST onto ``dst`` (as :func:`xstf.build_cube` does), masks with nearest."""
    from odc.geo.xr import xr_reproject

    method = {"bicubic": "cubic"}.get(resampling, resampling)

    def go(da: xr.DataArray, how: str) -> xr.DataArray:
        return xr_reproject(da, dst, resampling=how, chunks=dst.shape.yx, dst_nodata=np.nan)

    out = go(lst, method).astype("float32")
    rej = go(reject.astype("float32"), "nearest") == 1
    return out, rej, {k: go(v, "nearest").astype("float32") for k, v in extra.items()}


def _to_crs(crs: Any) -> Any:
    from pyproj import CRS

    return CRS.from_user_input(crs)


def _dates(da: xr.DataArray) -> xr.DataArray:
    days = pd.DatetimeIndex(da["time"].values).normalize()
    if days.has_duplicates:
        dup = days[days.duplicated()][0]
        raise ValueError(
            f"two images on {dup.date()} after loading: keep groupby='solar_day' (the default) "
            "so that the scenes of one overpass are mosaicked"
        )
    return da.assign_coords(time=pd.Index(days, name="time"))


def _valid_filter(lst: xr.DataArray, min_valid: float | None, notes: list[str]) -> xr.DataArray:
    if min_valid is None:
        return lst
    if not 0 <= min_valid <= 1:
        raise ValueError(f"min_valid is a share of pixels in [0, 1], got {min_valid}")
    share = lst.notnull().mean(("y", "x")).compute()  # one pass over the QA'd data
    keep = share.values >= min_valid
    if not keep.any():
        raise ValueError(
            f"no date has a valid share >= {min_valid} (best {float(share.max()):.2f}): lower "
            "min_valid"
        )
    if not keep.all():
        dropped = [
            f"{pd.Timestamp(t).date()} ({s:.0%})"
            for t, s, k in zip(lst.time.values, share.values, keep, strict=True)
            if not k
        ]
        notes.append(f"{len(dropped)} date(s) below min_valid={min_valid}: " + ", ".join(dropped))
    return lst.isel(time=np.flatnonzero(keep))


def load_stac(
    items: Any,
    *,
    like: Any = None,
    geobox: Any = None,
    bbox: Sequence[float] | None = None,
    crs: Any = None,
    resolution: float | None = None,
    platform: str | Sequence[str] | None = None,
    max_cloud_cover: float | None = None,
    min_valid: float | None = None,
    qa: bool = True,
    qa_bits: Sequence[int] = DEFAULT_QA_BITS,
    max_lst_error: float | None = DEFAULT_MAX_LST_ERROR,
    night: bool = False,
    view: bool = False,
    resampling: str = "cubic",
    groupby: str | None = "solar_day",
    chunks: Mapping[str, int] | None = None,
    name: Hashable = "lst",
    return_qc: bool = False,
) -> xr.DataArray | xr.Dataset:
    """Load Landsat C2 L2 or MOD11A1/MYD11A1 LST from STAC items as lazy ``(time, y, x)`` K.

    One product per call; the product is recognised from the assets:

    - **Landsat 8/9 Collection 2 Level-2** (Planetary Computer / Earth Search
      ``landsat-c2-l2``): ``lwir11`` (``ST_B10``) decoded with its ``raster:bands``
      ``scale``/``offset`` (0.00341802, 149.0; DN 0 = fill) by
      :func:`xstf.io.decode.landsat_st_to_kelvin`, clouds masked from ``qa_pixel`` by
      :func:`xstf.io.decode.landsat_qa_mask` (``qa_bits``, default dilated cloud, cirrus,
      cloud, shadow). Loaded on the items' own 30 m grid (nearest, no resampling), or on
      ``crs``/``resolution``/``bbox``/``geobox``.
    - **MOD11A1/MYD11A1 v061** (Planetary Computer ``modis-11A1-061``): ``LST_Day_1km``
      (``night=True``: ``LST_Night_1km``) × 0.02 K, 0 = fill
      (:func:`xstf.io.decode.modis_lst_to_kelvin`), ``QC_Day``/``QC_Night`` filtered by
      :func:`xstf.io.decode.modis_qc_mask` (``max_lst_error``). With ``like=`` (the Landsat
      result) ``odc.stac.load`` puts MODIS on the Landsat grid in the same read: LST with
      ``resampling`` (cubic, fill pixels excluded from the kernel), QC with nearest, so a
      30 m pixel is rejected exactly when the 1 km pixel holding its centre is. The sinusoidal
      sphere CRS comes from the items' ``proj:wkt2`` (a non-sphere tag warns). The collection
      holds Terra (``MOD11A1``) and Aqua (``MYD11A1``) granules: pass ``platform="terra"``
      or ``"aqua"`` when both are present (they would otherwise be merged per day).

    Dates are days (time of day dropped, as the file readers do); scenes of one day are
    mosaicked (``groupby="solar_day"``). The result is lazy (dask, ``chunks``) unless
    ``min_valid`` asks for the valid share of each date, which reads the data once.

    Parameters
    ----------
    items : pystac items
        An ``ItemCollection``, a list of ``pystac.Item`` (or item dicts), a
        ``pystac_client`` search, or a static ``pystac.Catalog``.
    like : DataArray, Dataset or GeoBox, optional
        Load onto this grid (e.g. the Landsat result): MODIS reaches the Landsat grid here.
    geobox : odc.geo.geobox.GeoBox, optional
        Exact output grid.
    bbox : (lon_min, lat_min, lon_max, lat_max), optional
        Area to load (else the union of the items' footprints).
    crs, resolution : optional
        Output CRS and pixel size (default: the items' own, 30 m / 926.6 m). MODIS is
        then resampled after the QC, as with ``like=``.
    platform : str or list of str, optional
        Keep items whose ``platform`` matches (``"landsat-8"``, ``"landsat-9"``, ``"terra"``,
        ``"aqua"``).
    max_cloud_cover : float, optional
        Keep items with ``eo:cloud_cover`` at most this (percent, whole scene/tile; items
        without the property are kept).
    min_valid : float, optional
        Keep dates whose share of valid pixels (after QA) in the loaded area is at least
        this (0-1). Computes that share.
    qa : bool
        Apply ``qa_pixel`` / ``QC_*`` (the asset is then required).
    qa_bits : sequence of int
        Landsat ``QA_PIXEL`` bits that reject a pixel.
    max_lst_error : float or None
        MODIS: largest accepted LST error (K) of the QC filter.
    night : bool
        MODIS: the night layers instead of the day ones.
    view : bool
        MODIS: also return the view time (hours) and view zenith angle (degrees) as
        ``view_time``/``view_angle`` (implies a Dataset).
    resampling : str
        MODIS LST resampling onto a finer grid (QC and view layers: nearest).
    groupby : str or None
        ``odc.stac.load`` grouping (``"solar_day"``).
    chunks : dict, optional
        Dask chunks (default 1024 × 1024, one date per chunk).
    name : hashable
        Name of the LST variable.
    return_qc : bool
        Return a Dataset with ``qc_mask`` (True where QA rejected a pixel that had a value).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        ``(time, y, x)`` float32 LST in K, NaN where missing or rejected, CRS written
        (``spatial_ref``), attrs ``units``, ``sensor``, ``qc``, ``stac_collection``,
        ``n_items`` and ``stac_notes`` (what the filters left out).

    Raises
    ------
    ValueError
        No items, items of two products or collections, items without the expected assets,
        items that do not overlap the requested area, Terra and Aqua mixed, two images on
        one day.

    Examples
    --------
    >>> import tempfile, pystac, xstf
    >>> cat = pystac.Catalog.from_file(xstf.io.stac.example_catalog(tempfile.mkdtemp()))
    >>> landsat = [i for i in cat.get_items(recursive=True) if i.collection_id == "landsat-c2-l2"]
    >>> fine = load_stac(landsat)
    >>> fine.dims, fine.dtype.name, fine.attrs["units"], fine.rio.crs.to_epsg()
    (('time', 'y', 'x'), 'float32', 'K', 32631)
    """
    odc_stac = _need_odc()
    extra: dict[str, Any] = {}
    all_items = _as_items(items)
    product = _check_one_product(all_items)
    sel, notes = _select(all_items, platform, max_cloud_cover)
    chunks = dict(_DEFAULT_CHUNKS if chunks is None else chunks)

    if product == "landsat":
        lst_key = _first_key(sel[0].assets, LANDSAT_ASSETS["lst"])
        qa_key = _first_key(sel[0].assets, LANDSAT_ASSETS["qa"]) or "qa_pixel"
        assert lst_key is not None
        wanted = [lst_key, qa_key] if qa else [lst_key]
        _missing_assets(
            sel, wanted, "Landsat C2 L2",
            "Landsat 4-7 items have no lwir11 (filter platform in landsat-8/landsat-9), or "
            "pass qa=False to load without QA_PIXEL masking",
        )  # fmt: skip
        scale, offset = _coding(sel, lst_key, (LANDSAT_ST_SCALE, LANDSAT_ST_OFFSET))
        fill = _raster_band(sel[0], lst_key).get("nodata", LANDSAT_ST_FILL)
        grid, target, where = _grid_kwargs(
            sel, like=like, geobox=geobox, bbox=bbox, crs=crs, resolution=resolution,
            native_res=30.0,
        )  # fmt: skip
        _footprints(sel, target, where)
        ds = odc_stac.load(
            sel, bands=wanted, groupby=groupby, chunks=chunks, resampling="nearest", **grid
        )
        lst = landsat_st_to_kelvin(ds[lst_key], scale=scale, offset=offset, fill=fill)
        if qa:
            reject = landsat_qa_mask(ds[qa_key], qa_bits)
            qc_desc = f"QA_PIXEL bits {sorted(int(b) for b in qa_bits)} set -> NaN"
        else:
            reject, qc_desc = xr.zeros_like(lst, dtype=bool), "none applied"
        sensor, long_name = "Landsat 8/9 TIRS", "Landsat land surface temperature"
    else:
        plats = _platforms(sel)
        if platform is None and {"terra", "aqua"} <= plats:
            raise ValueError(
                "the items hold Terra (MOD11A1) and Aqua (MYD11A1) granules, which would be "
                "merged per day although they are ~3 h apart: pass platform='terra' or 'aqua'"
            )
        _check_modis_sphere(sel)
        lst_key, qc_key, vt_key, va_key = MODIS_ASSETS["night" if night else "day"]
        wanted = [lst_key] + ([qc_key] if qa else []) + ([vt_key, va_key] if view else [])
        _missing_assets(
            sel, wanted, "MOD11A1",
            "search the collection modis-11A1-061, or pass qa=False / view=False",
        )  # fmt: skip
        scale, offset = _coding(sel, lst_key, (MODIS_LST_SCALE, 0.0))
        t = sel[0].properties.get("proj:transform")
        native_res = float(abs(t[0])) if t else 2 * np.pi * MODIS_SPHERE_RADIUS / 36 / 1200
        grid, target, where = _grid_kwargs(
            sel, like=like, geobox=geobox, bbox=bbox, crs=crs, resolution=resolution,
            native_res=native_res,
        )  # fmt: skip
        _footprints(sel, target, where)
        dst = grid.get("geobox")
        if dst is None and (crs is not None or resolution is not None):
            dst = _target_geobox(sel, target, crs, native_res if resolution is None else resolution)
        if dst is not None:  # read the 1 km pixels around the target, resample after QC
            grid = {"geobox": _native_cover(sel[0], dst, native_res)}
        ds = odc_stac.load(
            sel, bands=wanted, groupby=groupby, chunks=chunks, resampling="nearest", **grid
        )
        lst = modis_lst_to_kelvin(
            ds[lst_key], scale=scale, offset=offset, valid_range=MODIS_LST_VALID_RANGE
        )
        if qa:
            reject = modis_qc_mask(ds[qc_key], max_lst_error)
            qc_desc = (
                f"{qc_key}: mandatory QA (bits 0-1) in {{00, 01}}, LST error (bits 6-7) "
                f"<= {max_lst_error} K"
            )
        else:
            reject, qc_desc = xr.zeros_like(lst, dtype=bool), "none applied"
        if view:
            for var, key, what in (("view_time", vt_key, "time"), ("view_angle", va_key, "angle")):
                s, o, f, vr = _VIEW_DECODING[what]
                extra[var] = scale_dn(ds[key], s, o, fill=f, valid_range=vr)
        if dst is not None:
            lst, reject, extra = _onto(dst, lst, reject, extra, resampling)
        sensor, long_name = "MODIS", f"MODIS {lst_key}"

    qc_mask = reject & lst.notnull()
    lst = lst.where(~reject)
    lst = _dates(lst)
    lst = _valid_filter(lst, min_valid, notes)
    attrs = {
        "units": "K",
        "standard_name": "surface_temperature",
        "long_name": long_name,
        "sensor": sensor,
        "qc": qc_desc,
        "stac_collection": str(sel[0].collection_id),
        "n_items": len(sel),
        "stac_notes": "; ".join(notes) if notes else "none",
    }
    lst = lst.rename(name)
    lst.attrs = attrs  # odc's "nodata" attr would read as a nodata value in rioxarray
    lst.encoding = {}
    if not (return_qc or view):
        return lst
    out = xr.Dataset({name: lst})
    if return_qc:
        qc = _dates(qc_mask).sel(time=lst.time)
        qc.attrs = {"long_name": "pixel had a value but was rejected by QA", "qc": qc_desc}
        out["qc_mask"] = qc
    units = {"view_time": "hours (local solar time)", "view_angle": "degrees"}
    for var, arr in extra.items():
        v = _dates(arr).sel(time=lst.time)
        v.attrs = {"units": units[var]}
        out[var] = v
    return out
