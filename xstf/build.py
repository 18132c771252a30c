"""Build an LST cube: put MODIS onto the Landsat grid lazily, align dates, convert units."""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from pyproj import CRS

from . import cube as _cube
from .errors import CubeError
from .io.decode import MODIS_SPHERE_RADIUS
from .units import to_kelvin

__all__ = ["build_cube", "fix_modis_crs"]

_RESAMPLING = {
    "nearest": "nearest",
    "bilinear": "bilinear",
    "bicubic": "cubic",
    "cubic": "cubic",
    "cubic_spline": "cubic_spline",
    "lanczos": "lanczos",
    "average": "average",
}
_DEFAULT_CHUNKS = {"time": 1, "y": 1024, "x": 1024}


def fix_modis_crs(crs: Any) -> tuple[CRS, bool]:
    """Return the MODIS sphere CRS for a sinusoidal CRS tagged on an ellipsoid, else ``crs``.

    Exports of MODIS products (Earth Engine, some GIS tools) often tag the sinusoidal grid
    on the WGS 84 ellipsoid; the grid is defined on a sphere of radius 6371007.181 m, and
    read with the ellipsoid the footprint lands ~10-20 km off.

    Parameters
    ----------
    crs : anything :class:`pyproj.CRS` accepts
        The CRS as tagged.

    Returns
    -------
    (pyproj.CRS, bool)
        The CRS to use and whether it was changed.

    Examples
    --------
    >>> crs, changed = fix_modis_crs("+proj=sinu +lon_0=0 +datum=WGS84 +units=m")
    >>> changed, crs.ellipsoid.semi_major_metre
    (True, 6371007.181)
    >>> fix_modis_crs("EPSG:32631")[1]
    False
    """
    c = CRS.from_user_input(crs)
    method = c.coordinate_operation.method_name.lower() if c.coordinate_operation else ""
    if "sinusoidal" not in method or c.ellipsoid is None:
        return c, False
    ell = c.ellipsoid
    is_modis_sphere = abs(ell.semi_major_metre - MODIS_SPHERE_RADIUS) < 1.0 and (
        ell.inverse_flattening == 0 or abs(ell.semi_minor_metre - ell.semi_major_metre) < 1.0
    )
    if is_modis_sphere:
        return c, False
    assert c.coordinate_operation is not None  # its method is sinusoidal (checked above)
    params = {p.name.lower(): p.value for p in c.coordinate_operation.params}
    lon0 = params.get("longitude of natural origin", params.get("longitude of center", 0.0))
    fe = params.get("false easting", 0.0)
    fn = params.get("false northing", 0.0)
    fixed = CRS.from_proj4(
        f"+proj=sinu +lon_0={lon0} +x_0={fe} +y_0={fn} +R={MODIS_SPHERE_RADIUS} +units=m +no_defs"
    )
    return fixed, True


def _as_cube_array(
    obj: Any,
    role: str,
    units: str | None,
    options: Mapping[str, Any] | None,
    zero_is_missing: bool | None = None,
) -> xr.DataArray:
    if isinstance(obj, (str, os.PathLike, list, tuple)):
        from .io import open_landsat, open_modis

        reader = open_landsat if role == "fine" else open_modis
        obj = reader(obj, **dict(options or {}))
    if isinstance(obj, xr.Dataset):
        lst = [v for v in obj.data_vars if v != "qc_mask"]
        if len(lst) != 1:
            raise TypeError(f"{role}= got a Dataset with variables {lst}: pass one DataArray")
        obj = obj[lst[0]]
    if not isinstance(obj, xr.DataArray):
        raise TypeError(f"{role}= must be a DataArray or file paths, got {type(obj).__name__}")
    if set(obj.dims) != {"time", "y", "x"}:
        raise CubeError(
            f"{role} has dims {obj.dims}; build_cube needs (time, y, x): add a time dim "
            "(da.expand_dims(time=[date])) or rename (da.rename({'band': 'time'}))"
        )
    obj = obj.transpose("time", "y", "x")
    if obj.rio.crs is None:
        raise CubeError(f"{role} has no CRS: write one with da.rio.write_crs('EPSG:...')")
    if not np.issubdtype(obj.dtype, np.floating):
        raise CubeError(
            f"{role} has integer dtype {obj.dtype}: decode it first (xstf.io.open_landsat / open_modis)"
        )
    if zero_is_missing is not None and "zero_is_missing" not in obj.attrs:
        attrs = {**obj.attrs, "zero_is_missing": int(zero_is_missing)}
        if zero_is_missing:
            obj = obj.where(obj != 0)
        obj.attrs = attrs
    if units is not None or obj.attrs.get("units") is not None:
        obj = to_kelvin(obj, units=units)
    else:
        raise CubeError(
            f"{role} has no 'units' attribute: pass {role}_units='K' or {role}_units='degC'"
        )
    if not np.issubdtype(obj["time"].dtype, np.datetime64):
        raise CubeError(f"{role} 'time' is not datetime64 (dtype {obj['time'].dtype})")
    return obj


def _check_degrees(da: xr.DataArray, role: str, crs: CRS) -> None:
    """A geographic CRS on coordinates that cannot be degrees (a mis-tag): a clear error."""
    if not crs.is_geographic:
        return
    xs = np.abs(np.asarray(da["x"].values, dtype="float64"))
    ys = np.abs(np.asarray(da["y"].values, dtype="float64"))
    if xs.size and ys.size and (xs.max() > 360.0 or ys.max() > 90.0):
        fix = (
            "For MODIS pass coarse_crs=xstf.io.MODIS_SINUSOIDAL; otherwise pass coarse_crs=... "
            "or write the right CRS with da.rio.write_crs('EPSG:...')"
            if role == "coarse"
            else "Write the right CRS first: da.rio.write_crs('EPSG:...')"
        )
        raise CubeError(
            f"{role} is tagged {_crs_label(crs)} (degrees) but its coordinates reach x "
            f"{xs.max():.0f}, y {ys.max():.0f}: those are metres, not degrees, so the CRS tag "
            f"is wrong. {fix}"
        )


def _crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _rounded(box: Any) -> str:
    """Bounding box for a message (non-finite values, e.g. after a failed transform, as text)."""
    return "(" + ", ".join(f"{v:.0f}" if np.isfinite(v) else str(v) for v in box) + ")"


def _resolution_m(gbox: Any) -> float:
    res = abs(float(gbox.resolution.x))
    if gbox.crs.geographic:  # degrees -> metres at the grid's centre
        lat = float(gbox.extent.centroid.to_crs("EPSG:4326").coords[0][1])
        res *= 111_320.0 * np.cos(np.deg2rad(lat))
    return res


def _bounds_ll(geom: Any) -> str:
    try:
        x0, y0, x1, y1 = geom.to_crs("EPSG:4326").boundingbox
    except Exception:  # a footprint that does not transform  # pragma: no cover
        return "not representable in lon/lat"
    return f"lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f}"


def _dates(da: xr.DataArray, date_only: bool, role: str) -> xr.DataArray:
    t = pd.DatetimeIndex(da["time"].values)
    if date_only:
        t = t.normalize()
    dup = _cube.duplicated_dates(t)
    if dup:
        raise CubeError(
            f"{role} has {dup}{' after dropping the time of day' if date_only else ''}: "
            "merge them first (da.groupby('time').mean()) or pass date_only=False"
        )
    return da.assign_coords(time=t).sortby("time")


def _quiet_in_memory_reprojection() -> None:
    """Silence rasterio's "no geotransform" warning for odc-geo's in-memory tiles.

    odc-geo reprojects numpy tiles inside dask tasks and passes their transforms
    explicitly, yet rasterio warns that the (in-memory) dataset has no geotransform, once
    per tile. Warning filters are process-wide, and these warnings are issued in dask's
    worker threads at compute time, so a filter scoped to this call cannot reach them; the
    filter is therefore installed for the process, as narrow as it can be: this message,
    this category, issued by ``rasterio.warp``.
    """
    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings(
        "ignore",
        message="Dataset has no geotransform",
        category=NotGeoreferencedWarning,
        module=r"rasterio\.warp",
    )


def build_cube(
    fine: Any,
    coarse: Any,
    *,
    resampling: str = "bicubic",
    crs: Any = None,
    coarse_crs: Any = None,
    fine_units: str | None = None,
    coarse_units: str | None = None,
    names: Sequence[Hashable] = ("fine", "coarse"),
    min_overlap: float = 0.5,
    date_only: bool = True,
    chunks: Mapping[str, int] | None = None,
    reproject_chunks: tuple[int, int] | None = None,
    fine_resampling: str = "nearest",
    fine_options: Mapping[str, Any] | None = None,
    coarse_options: Mapping[str, Any] | None = None,
    validate: bool = True,
    min_coverage: float = _cube.DEFAULT_MIN_COVERAGE,
    require_pairs: int = 1,
    zero_is_missing: bool | None = None,
) -> xr.Dataset:
    """Assemble a cube: MODIS resampled lazily onto the Landsat grid, dates aligned, Kelvin.

    ``coarse`` is reprojected onto the fine grid with odc-geo
    (:func:`odc.geo.xr.xr_reproject`) on dask arrays, so nothing is read or computed until
    asked. Dates are the union of both sensors' dates (NaN where a sensor has nothing; no
    date is dropped). Units are converted with :func:`xstf.to_kelvin`.

    A coarse CRS that is sinusoidal on an ellipsoid (the WGS 84 mis-tag of many MODIS
    exports) is replaced by the MODIS sphere (R = 6371007.181 m) with a ``UserWarning``;
    pass ``coarse_crs=`` to impose a CRS instead (no detection then).

    NaN and borders: with ``"bicubic"`` (GDAL's cubic convolution) a fine pixel is NaN
    exactly when the coarse pixel containing its centre is NaN or outside the coarse image;
    near such pixels the kernel uses only the valid neighbours (GDAL renormalises the
    weights), so gaps neither grow nor shrink and no value is invented inside a gap.

    Parameters
    ----------
    fine, coarse : xarray.DataArray or paths
        ``(time, y, x)`` LST with a CRS (rioxarray) and a ``units`` attribute (or
        ``fine_units``/``coarse_units``); paths are read with :func:`xstf.io.open_landsat`
        / :func:`xstf.io.open_modis` and ``fine_options``/``coarse_options``.
    resampling : str
        ``"bicubic"`` (default), ``"bilinear"``, ``"nearest"``, ``"cubic_spline"``,
        ``"lanczos"`` or ``"average"``.
    crs : optional
        CRS of the cube; default: the fine data's. Otherwise the fine data are reprojected
        too (``fine_resampling``) at their own resolution.
    coarse_crs : optional
        CRS to impose on ``coarse`` (overrides its tag and the sphere fix).
    fine_units, coarse_units : str, optional
        Units when the ``units`` attributes are missing or wrong.
    names : (str, str)
        Variable names of the cube.
    min_overlap : float
        Share of the fine scene the coarse footprint must cover (0-1); below it a
        :class:`~xstf.CubeError` gives both footprints in lon/lat.
    date_only : bool
        Drop the time of day so that a Landsat and a MODIS overpass of the same day align.
    chunks : dict, optional
        Dask chunks of the cube (default ``{"time": 1, "y": 1024, "x": 1024}``).
    reproject_chunks : (int, int), optional
        Tile size of the reprojection. Default: the whole fine grid per date, which makes
        the result independent of ``chunks``; smaller tiles save memory on huge grids but
        GDAL's approximate transformer then moves values by ~0.01-0.03 K at tile seams.
    fine_resampling : str
        Resampling of ``fine`` when ``crs`` differs from its CRS.
    fine_options, coarse_options : dict, optional
        Keyword arguments of the readers when paths are given.
    validate : bool
        Run :func:`xstf.validate` on the result (reads a strided sample of each date);
        ``False`` leaves the cube completely unevaluated.
    min_coverage, require_pairs : float, int
        Passed to :func:`xstf.validate`.
    zero_is_missing : bool, optional
        ``True``: exact zeros of the inputs are missing pixels (Earth Engine exports in
        °C), masked to NaN before the unit conversion (lazily). ``False``: zeros are real.
        ``None`` (default): left as they are, and :func:`xstf.validate` warns when more
        than 5 % of a variable's sampled pixels sit at exactly 273.15 K (0 °C). Inputs
        read with :mod:`xstf.io` carry the readers' own decision.

    Returns
    -------
    xarray.Dataset
        The cube: ``names[0]``, ``names[1]`` ``(time, y, x)`` float32 K on the fine grid,
        CRS written (``spatial_ref``), attrs ``fine_resolution``, ``coarse_resolution`` (m),
        ``resampling``, ``overlap``, ``coarse_crs_fixed``.

    Raises
    ------
    CubeError
        No CRS, no units, footprints that do not overlap enough, duplicated dates, or an
        invalid result.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr, xstf
    >>> t = pd.to_datetime(["2020-07-01", "2020-07-17"])
    >>> fine = xr.DataArray(np.full((2, 60, 60), 300.0, "float32"), dims=("time", "y", "x"),
    ...     coords={"time": t, "y": 1800 - 30 * np.arange(60) - 15, "x": 30 * np.arange(60) + 15},
    ...     attrs={"units": "K"}).rio.write_crs("EPSG:32631")
    >>> coarse = xr.DataArray(np.full((3, 4, 4), 26.0, "float32"), dims=("time", "y", "x"),
    ...     coords={"time": pd.to_datetime(["2020-07-01", "2020-07-09", "2020-07-17"]),
    ...             "y": 2000 - 500 * np.arange(4) - 250, "x": 500 * np.arange(4) + 250},
    ...     attrs={"units": "degC"}).rio.write_crs("EPSG:32631")
    >>> cube = xstf.build_cube(fine, coarse, validate=False)
    >>> cube.sizes["time"], cube.attrs["coarse_resolution"], cube.attrs["fine_resolution"]
    (3, 500.0, 30.0)
    >>> round(float(cube.coarse.isel(time=1).mean()), 2), bool(cube.fine.isel(time=1).isnull().all())
    (299.15, True)
    """
    from odc.geo.xr import xr_reproject

    _quiet_in_memory_reprojection()
    if resampling not in _RESAMPLING:
        raise ValueError(f"resampling must be one of {sorted(_RESAMPLING)}, got {resampling!r}")
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must be within 0..1, got {min_overlap}")
    fname, cname = names
    f = _as_cube_array(fine, "fine", fine_units, fine_options, zero_is_missing)
    c = _as_cube_array(coarse, "coarse", coarse_units, coarse_options, zero_is_missing)

    # -- CRS -------------------------------------------------------------------------------
    fixed = False
    if coarse_crs is not None:
        c = c.rio.write_crs(CRS.from_user_input(coarse_crs))
    else:
        tagged = CRS.from_user_input(c.rio.crs)
        new, fixed = fix_modis_crs(tagged)
        if fixed:
            before = c.odc.geobox.extent.centroid.to_crs("EPSG:4326").coords[0]
            c = c.rio.write_crs(new)
            after = c.odc.geobox.extent.centroid.to_crs("EPSG:4326").coords[0]
            ell = tagged.ellipsoid
            assert ell is not None  # fix_modis_crs fixes only a CRS with an ellipsoid
            warnings.warn(
                f"the coarse CRS is sinusoidal on the {ell.name} ellipsoid (a={ell.semi_major_metre} "
                f"m): MODIS grids use a sphere of R={MODIS_SPHERE_RADIUS} m, so it is read as "
                f"{new.srs} (footprint centre moves from lon {before[0]:.3f}, lat "
                f"{before[1]:.3f} to lon {after[0]:.3f}, lat {after[1]:.3f}). Pass coarse_crs=... "
                "to impose a CRS instead",
                UserWarning,
                stacklevel=2,
            )
    _check_degrees(f, "fine", CRS.from_user_input(f.rio.crs))
    _check_degrees(c, "coarse", CRS.from_user_input(c.rio.crs))
    target_crs = CRS.from_user_input(crs) if crs is not None else CRS.from_user_input(f.rio.crs)
    fgeo = f.odc.geobox
    if CRS.from_user_input(f.rio.crs) != target_crs:
        fgeo = f.odc.output_geobox(target_crs)
        f = _lazy(f)
        f = xr_reproject(f, fgeo, resampling=_RESAMPLING[fine_resampling], chunks=fgeo.shape.yx,
                         dst_nodata=np.nan)  # fmt: skip
    cgeo = c.odc.geobox

    # -- footprints ------------------------------------------------------------------------
    fext = fgeo.extent
    cext = cgeo.extent.to_crs(fgeo.crs)
    overlap = float(fext.intersection(cext).area / fext.area) if fext.area else 0.0
    if overlap < min_overlap:
        raise CubeError(
            f"the coarse footprint covers {overlap:.1%} of the fine scene (min_overlap="
            f"{min_overlap:.0%}): fine {_bounds_ll(fext)}; coarse {_bounds_ll(cgeo.extent)} "
            f"(in {(fgeo.crs.epsg and f'EPSG:{fgeo.crs.epsg}') or 'the fine CRS'}: fine "
            f"{_rounded(fext.boundingbox)}, coarse {_rounded(cext.boundingbox)}). Check the CRS of both (MODIS: "
            "sinusoidal sphere, coarse_crs=xstf.io.MODIS_SINUSOIDAL), the tiles/regions "
            "read, or lower min_overlap"
        )

    # -- lazy reprojection of coarse onto the fine grid ------------------------------------
    c = _lazy(c).chunk({"y": -1, "x": -1})
    tile = tuple(reproject_chunks) if reproject_chunks is not None else fgeo.shape.yx
    cr = xr_reproject(c, fgeo, resampling=_RESAMPLING[resampling], chunks=tile, dst_nodata=np.nan)
    cr = cr.astype("float32")

    # -- one grid, one time axis -------------------------------------------------------------
    f = _dates(f, date_only, "fine")
    cr = _dates(cr, date_only, "coarse")
    ycoord, xcoord = _grid_coords(fgeo, f)
    times = f.indexes["time"].union(cr.indexes["time"]).rename("time")
    out = {}
    for nm, da, role in ((fname, f, "fine"), (cname, cr, "coarse")):
        da = da.drop_vars([v for v in da.coords if v not in ("time", "y", "x")])
        da = da.assign_coords(y=ycoord, x=xcoord).reindex(time=times)
        da.attrs = _var_attrs(role, (f if role == "fine" else c).attrs)
        da.encoding = {}
        out[nm] = da.astype("float32")
    ds = xr.Dataset(out)
    ds = ds.chunk({**_DEFAULT_CHUNKS, **dict(chunks or {})})
    ds = ds.rio.write_crs(target_crs)
    ds.attrs = {
        "Conventions": "CF-1.8",
        "fine_resolution": round(_resolution_m(fgeo), 3),
        "coarse_resolution": round(_resolution_m(cgeo), 3),
        "resampling": resampling,
        "overlap": round(overlap, 4),
        "coarse_crs_fixed": int(fixed),
        "coarse_crs": cgeo.crs.to_wkt(),
        "n_dates_fine": int(f.sizes["time"]),
        "n_dates_coarse": int(cr.sizes["time"]),
    }
    if validate:
        _cube.validate(ds, fname, cname, min_coverage=min_coverage, require_pairs=require_pairs)
    return ds


def _lazy(da: xr.DataArray) -> xr.DataArray:
    return da if da.chunks is not None else da.chunk({"time": 1})


def _grid_coords(gbox: Any, f: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of the fine grid (the fine data's own when they match)."""
    ys = np.asarray(gbox.coords["y"].values, dtype="float64")
    xs = np.asarray(gbox.coords["x"].values, dtype="float64")
    if f.sizes["y"] == ys.size and np.allclose(f["y"].values, ys):
        ys = np.asarray(f["y"].values, dtype="float64")
    if f.sizes["x"] == xs.size and np.allclose(f["x"].values, xs):
        xs = np.asarray(f["x"].values, dtype="float64")
    return ys, xs


def _var_attrs(role: str, src: Mapping[str, Any]) -> dict[str, Any]:
    keep = {
        k: v for k, v in src.items() if k in ("sensor", "qc", "source_units", "zero_is_missing")
    }
    long = (
        "Landsat LST (fine)"
        if role == "fine"
        else "MODIS LST resampled onto the fine grid (coarse)"
    )
    return {"units": "K", "standard_name": "surface_temperature", "long_name": long, **keep}
