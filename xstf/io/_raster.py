"""Shared pieces of the readers: open a GeoTIFF series lazily, decode values, stack dates."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rioxarray
import xarray as xr

from ..units import normalise_units
from ._paths import date_from_metadata, parse_date

__all__ = ["DEFAULT_CHUNKS", "Frame", "dates_for", "open_band", "stack", "to_float_kelvin"]

#: Spatial chunks of the readers' dask arrays (one date per chunk along time).
DEFAULT_CHUNKS: dict[str, int] = {"y": 1024, "x": 1024}
_DROP_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value", "valid_range")


class Frame:
    """One date of one file: the raw band (lazy), its grid, nodata and tags."""

    def __init__(self, path: Path, raw: xr.DataArray, date: pd.Timestamp, tags: Mapping[str, Any]):
        self.path = path
        self.raw = raw
        self.date = date
        self.tags = dict(tags)
        self.nodata = raw.rio.nodata
        self.dtype = raw.dtype


def resolve_chunks(chunks: Any) -> Any:
    """``None`` -> default spatial chunks; ``False`` -> eager numpy; else as given."""
    if chunks is None:
        return {"band": 1, **DEFAULT_CHUNKS}
    if chunks is False:
        return None
    if isinstance(chunks, Mapping):
        return {"band": 1, **{k: v for k, v in chunks.items() if k != "time"}}
    return chunks


def open_band(path: Path, band: int, chunks: Any) -> xr.DataArray:
    """Open band ``band`` (1-based) of a GeoTIFF, raw values, lazily when ``chunks`` is set."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ExtraSamples.*")
        da = rioxarray.open_rasterio(path, chunks=resolve_chunks(chunks), mask_and_scale=False)
    if not isinstance(da, xr.DataArray):
        raise ValueError(f"{path} holds several subdatasets; pass the path of one band file")
    nbands = da.sizes.get("band", 1)
    if not 1 <= band <= nbands:
        raise ValueError(
            f"{path.name} has {nbands} band(s); band={band} is out of range (bands are 1-based)"
        )
    return da.isel(band=band - 1, drop=True)


def dates_for(
    paths: Sequence[Path], tags: Sequence[Mapping[str, Any]], dates: Any
) -> list[pd.Timestamp]:
    """Dates for each file: explicit ``dates``, else the file name, else metadata."""
    if dates is not None:
        out = list(pd.DatetimeIndex(pd.to_datetime(list(dates))))
        if len(out) != len(paths):
            raise ValueError(f"dates= has {len(out)} entries for {len(paths)} file(s)")
        return out
    out = []
    for p, t in zip(paths, tags, strict=True):
        d = parse_date(p.name)
        if d is None:
            d = date_from_metadata(t)
        if d is None:
            raise ValueError(
                f"cannot find a date for {p.name}: neither the file name (e.g. "
                "'LC08_199027_20170119.tif', '2017_01_19.tif', 'MOD11A1.A2019305...hdf') nor the "
                "metadata (DATE_ACQUIRED, system:time_start...) holds one; pass dates=[...]"
            )
        out.append(d)
    return out


def check_duplicates(paths: Sequence[Path], times: Sequence[pd.Timestamp]) -> None:
    seen: dict[pd.Timestamp, Path] = {}
    for p, t in zip(paths, times, strict=True):
        if t in seen:
            raise ValueError(
                f"{seen[t].name} and {p.name} have the same date {t.date()}: pass one file per "
                "date (mosaic tiles first) or give distinct dates=[...]"
            )
        seen[t] = p


def stack(
    frames: Sequence[xr.DataArray], times: Sequence[pd.Timestamp], paths: Sequence[Path]
) -> xr.DataArray:
    """Stack ``(y, x)`` frames on one grid into ``(time, y, x)``, sorted by date."""
    ref = frames[0]
    for p, f in zip(paths[1:], frames[1:], strict=True):
        same_shape = f.shape == ref.shape
        same_grid = (
            same_shape
            and np.allclose(f["x"].values, ref["x"].values)
            and np.allclose(f["y"].values, ref["y"].values)
        )
        if not same_grid or f.rio.crs != ref.rio.crs:
            raise ValueError(
                f"{p.name} is not on the grid of {paths[0].name} (shape {f.shape} vs {ref.shape}, "
                f"CRS {f.rio.crs} vs {ref.rio.crs}, origin {float(f.x[0])}, {float(f.y[0])} vs "
                f"{float(ref.x[0])}, {float(ref.y[0])}): read files of one grid at a time, or "
                "reproject them onto one grid first"
            )
    order = np.argsort(pd.DatetimeIndex(times).asi8, kind="stable")
    frames = [frames[i].assign_coords(x=ref["x"], y=ref["y"]) for i in order]
    index = pd.DatetimeIndex([times[i] for i in order], name="time")
    out = xr.concat(
        frames,
        dim=pd.Index(index, name="time"),
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="drop_conflicts",
    )
    return out.transpose("time", "y", "x")


def to_float_kelvin(
    raw: xr.DataArray,
    *,
    name: str,
    kind: str,
    scale: float,
    offset: float,
    fill: float | None,
    nodata: Any,
    units: str | None,
    zero_is_missing: bool,
) -> tuple[xr.DataArray, str]:
    """Decode raw values to float32 Kelvin with NaN for missing; return it and the units read."""
    if kind == "dn":
        bad = raw == fill if fill is not None else xr.zeros_like(raw, dtype=bool)
        if (
            nodata is not None
            and not (isinstance(nodata, float) and np.isnan(nodata))
            and nodata != fill
        ):
            bad = bad | (raw == nodata)
        out = (raw.astype("float64") * scale + offset).where(~bad).astype("float32")
        return out, "K"
    src_units = normalise_units(units)  # type: ignore[arg-type]
    vals = raw.astype("float64")  # convert in double precision, round once to float32
    bad = ~np.isfinite(vals)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)) and nodata != 0:
        bad = bad | (raw == nodata)
    if zero_is_missing:
        bad = bad | (raw == 0)
    vals = vals.where(~bad)
    if src_units == "degC":
        vals = vals + 273.15
    return vals.astype("float32"), src_units


def read_units(tags: Mapping[str, Any], units: str | None, path: Path) -> str:
    """Units of an already-scaled file: ``units=`` wins, else a ``units`` tag, else an error."""
    if units is not None:
        normalise_units(units)
        return units
    for key in ("units", "UNITS", "unit", "Units"):
        if key in tags:
            try:
                normalise_units(str(tags[key]))
                return str(tags[key])
            except ValueError:
                break
    raise ValueError(
        f"{path.name} holds scaled temperatures but says nothing usable about their units: pass "
        "units='degC' or units='K' (Earth Engine exports such as the Orléans files are in degC)"
    )


def zero_rule(zero_is_missing: bool | None, nodata: Any, units: str, sensor: str) -> bool:
    """Decide whether 0 marks missing pixels, warning when real 0 °C pixels are lost with it."""
    flag = (
        bool(zero_is_missing)
        if zero_is_missing is not None
        else (nodata is not None and nodata == 0)
    )
    if flag and normalise_units(units) == "degC":
        warnings.warn(
            f"{sensor}: 0 is read as 'missing' in a degC product (nodata=0 / zero_is_missing=True), "
            "so pixels that really were 0 °C are masked too. Pass zero_is_missing=False to keep "
            "zeros (then gaps stored as 0 become 273.15 K)",
            UserWarning,
            stacklevel=4,
        )
    return flag


def finish(
    da: xr.DataArray,
    *,
    name: Hashable,
    crs: Any,
    attrs: Mapping[str, Any],
) -> xr.DataArray:
    """Final touches: name, CRS, clean CF attrs (no scale/offset/fill left in attrs)."""
    da = da.rename(name)
    da.attrs = {k: v for k, v in attrs.items() if k not in _DROP_ATTRS}
    da.attrs.setdefault("units", "K")
    da.attrs.setdefault("standard_name", "surface_temperature")
    da.encoding = {}
    if crs is not None:
        da = da.rio.write_crs(crs)
    return da


def bits_set(qa: xr.DataArray, bits: Sequence[int]) -> xr.DataArray:
    """True where any of ``bits`` is set in the integer array ``qa``."""
    mask = 0
    for b in bits:
        if not 0 <= int(b) < 16:
            raise ValueError(f"QA bit {b} is out of range 0..15")
        mask |= 1 << int(b)
    return (qa.astype("uint16") & np.uint16(mask)) != 0


Decoder = Callable[[xr.DataArray], xr.DataArray]
