"""Shared pieces of the readers: open a GeoTIFF series lazily, decode scaled values, stack dates."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import rioxarray
import xarray as xr

from ..units import normalise_units
from ._paths import PathsLike, date_from_metadata, expand_paths, parse_date

__all__ = [
    "DEFAULT_CHUNKS",
    "ZERO_SPIKE_SHARE",
    "Series",
    "dates_for",
    "decode_scaled",
    "open_band",
    "open_series",
    "quiet_gdal",
    "stack",
]

#: Spatial chunks of the readers' dask arrays (one date per chunk along time).
DEFAULT_CHUNKS: dict[str, int] = {"y": 1024, "x": 1024}
_DROP_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value", "valid_range")


def resolve_chunks(chunks: Any) -> Any:
    """``None`` -> default spatial chunks; ``False`` -> eager numpy; else as given."""
    if chunks is None:
        return {"band": 1, **DEFAULT_CHUNKS}
    if chunks is False:
        return None
    if isinstance(chunks, Mapping):
        return {"band": 1, **{k: v for k, v in chunks.items() if k != "time"}}
    return chunks


#: Share of exact zeros (in a sample of a float file without a nodata tag) above which the
#: readers warn that 0 probably marks missing pixels.
ZERO_SPIKE_SHARE = 0.01
_ZERO_SAMPLE = 256  # the zero check reads at most this many rows and columns per file


class _DropExtraSamples(logging.Filter):
    """Drop libtiff's harmless "ExtraSamples" complaint (Earth Engine multi-band exports)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ExtraSamples" not in record.getMessage()


@contextlib.contextmanager
def quiet_gdal() -> Iterator[None]:
    """Open rasters with GDAL messages routed to Python logging, minus "ExtraSamples" only.

    Outside a ``rasterio.Env`` GDAL prints its warnings straight to stderr (five
    ``Warning 1: TIFFReadDirectory ... ExtraSamples`` lines per Orléans read); inside one
    they go to the ``rasterio._env`` logger, where this filter drops that one message.
    """
    log = logging.getLogger("rasterio._env")
    filt = _DropExtraSamples()
    log.addFilter(filt)
    try:
        with rasterio.Env(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ExtraSamples.*")
            yield
    finally:
        log.removeFilter(filt)


def open_band(path: Path, band: int, chunks: Any) -> xr.DataArray:
    """Open band ``band`` (1-based) of a GeoTIFF, raw values, lazily when ``chunks`` is set."""
    with quiet_gdal():
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


def zero_share(path: Path, band: int) -> float:
    """Share of exact zeros among the finite pixels of a decimated read of ``band``."""
    with quiet_gdal(), rasterio.open(path) as src:
        shape = (min(src.height, _ZERO_SAMPLE), min(src.width, _ZERO_SAMPLE))
        sample = src.read(band, out_shape=shape).astype("float64")
    finite = np.isfinite(sample)
    return float((sample[finite] == 0).sum() / max(int(finite.sum()), 1))


def warn_zero_spike(files: Sequence[Path], band: int, units: str, sensor: str) -> None:
    """Warn when a float file without a nodata tag holds a spike of exact zeros (kept as 0)."""
    as_read = "0 °C (273.15 K)" if normalise_units(units) == "degC" else f"0 {units}"
    for p in files:
        share = zero_share(p, band)
        if share > ZERO_SPIKE_SHARE:
            warnings.warn(
                f"{sensor}: {share:.0%} of the sampled pixels of {p.name} are exactly 0 and the "
                f"file has no nodata tag, so they are read as {as_read}. If 0 "
                "marks missing pixels (cloud, fill), pass zero_is_missing=True; pass "
                "zero_is_missing=False to keep the zeros and silence this warning",
                UserWarning,
                stacklevel=4,
            )


def decode_scaled(raw: xr.DataArray, units: str, *, zero_is_missing: bool) -> xr.DataArray:
    """Already-scaled values (°C or K) -> float32 K, NaN at non-finite values, nodata, 0."""
    vals = raw.astype("float64")  # convert in double precision, round once to float32
    bad = ~np.isfinite(vals)
    nodata = raw.rio.nodata
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)) and nodata != 0:
        bad = bad | (raw == nodata)
    if zero_is_missing:
        bad = bad | (raw == 0)
    vals = vals.where(~bad)
    if normalise_units(units) == "degC":
        vals = vals + 273.15
    return vals.astype("float32")


@dataclass
class Series:
    """A GeoTIFF series opened lazily: one raw band per file, its date, how values are stored."""

    files: list[Path]
    raws: list[xr.DataArray]
    times: list[pd.Timestamp]
    kind: str  # "dn" or "scaled"
    units: str  # "K" for DN files
    zero_is_missing: bool


def open_series(
    paths: PathsLike | Sequence[Path],
    *,
    band: int,
    kind: str,
    units: str | None,
    zero_is_missing: bool | None,
    dates: Any,
    chunks: Any,
    sensor: str,
) -> Series:
    """Open a GeoTIFF series: files, raw bands, dates, DN-or-scaled kind, units, 0 rule.

    Shared by :func:`xstf.io.open_landsat` and :func:`xstf.io.open_modis`.
    """
    if kind not in ("auto", "dn", "scaled"):
        raise ValueError(f"kind must be 'auto', 'dn' or 'scaled', got {kind!r}")
    files = (
        list(paths)
        if isinstance(paths, list) and all(isinstance(p, Path) for p in paths)
        else expand_paths(paths)
    )
    raws = [open_band(p, band, chunks) for p in files]
    tags = [dict(r.attrs) for r in raws]
    times = dates_for(files, tags, dates)
    check_duplicates(files, times)
    kinds = {("dn" if r.dtype.kind in "iu" else "scaled") if kind == "auto" else kind for r in raws}
    if len(kinds) > 1:
        raise ValueError(
            "the files mix integer (DN) and float (scaled) values: read them separately"
        )
    k = kinds.pop()
    if k == "dn":
        return Series(files, raws, times, k, "K", True)
    unit = read_units(tags[0], units, files[0])
    nodata = raws[0].rio.nodata
    zero = zero_rule(zero_is_missing, nodata, unit, sensor)
    if zero_is_missing is None and not zero:
        warn_zero_spike(files, band, unit, sensor)
    return Series(files, raws, times, k, unit, zero)


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
