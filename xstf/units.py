"""Temperature units: recognise them from ``units`` attributes and convert to Kelvin."""

from __future__ import annotations

import xarray as xr

__all__ = ["CELSIUS_NAMES", "KELVIN_NAMES", "convert_units", "normalise_units", "to_kelvin"]

#: Spellings of Kelvin accepted in a ``units`` attribute (case-insensitive).
KELVIN_NAMES = frozenset({"k", "kelvin", "kelvins", "degk", "deg_k"})
#: Spellings of degrees Celsius accepted in a ``units`` attribute (case-insensitive).
CELSIUS_NAMES = frozenset(
    {"degc", "°c", "c", "celsius", "deg_c", "degree_celsius", "degrees_celsius", "deg c", "ºc"}
)
_OFFSET = 273.15


def normalise_units(units: str) -> str:
    """Return ``"K"`` or ``"degC"`` for a spelling of Kelvin or degrees Celsius.

    Parameters
    ----------
    units : str
        A units string such as ``"K"``, ``"kelvin"``, ``"°C"``, ``"degC"`` or ``"Celsius"``.

    Returns
    -------
    str
        ``"K"`` or ``"degC"``.

    Raises
    ------
    ValueError
        If the spelling is not a temperature unit xstf knows.

    Examples
    --------
    >>> normalise_units("Celsius")
    'degC'
    >>> normalise_units("kelvin")
    'K'
    """
    key = str(units).strip().lower()
    if key in KELVIN_NAMES:
        return "K"
    if key in CELSIUS_NAMES:
        return "degC"
    raise ValueError(
        f"unknown temperature units {units!r}: use one of 'K' (Kelvin) or 'degC' (degrees Celsius)"
    )


def convert_units(da: xr.DataArray, to: str, units: str | None = None) -> xr.DataArray:
    """Convert a temperature DataArray between Kelvin and degrees Celsius.

    Lazy for dask-backed input. The result is float32 unless the input is float64,
    and its ``units`` attribute says what it now holds.

    Parameters
    ----------
    da : xarray.DataArray
        Temperatures.
    to : str
        Target units, any spelling :func:`normalise_units` accepts.
    units : str, optional
        Units of ``da``; read from ``da.attrs["units"]`` when not given.

    Returns
    -------
    xarray.DataArray
        The converted temperatures, with ``units`` set to ``"K"`` or ``"degC"``.

    Raises
    ------
    ValueError
        If the input units are unknown and not given.

    Examples
    --------
    >>> import xarray as xr
    >>> t = xr.DataArray([0.0, 25.0], attrs={"units": "degC"})
    >>> convert_units(t, "K").values.round(2).tolist()
    [273.15, 298.15]
    """
    src = units if units is not None else da.attrs.get("units")
    name = da.name if da.name is not None else "the array"
    if src is None:
        raise ValueError(
            f"{name} has no 'units' attribute: pass units='K' or units='degC' "
            "(Earth Engine exports of Landsat/MODIS LST are often in degC)"
        )
    src_n, dst_n = normalise_units(src), normalise_units(to)
    out = da if da.dtype == "float64" else da.astype("float32")
    if src_n != dst_n:
        out = out + _OFFSET if dst_n == "K" else out - _OFFSET
        out = out.astype(da.dtype if da.dtype == "float64" else "float32")
    out = out.copy() if out is da else out
    out.attrs = {**da.attrs, "units": dst_n}
    if "standard_name" not in out.attrs:
        out.attrs["standard_name"] = "surface_temperature"
    return out


def to_kelvin(da: xr.DataArray, units: str | None = None) -> xr.DataArray:
    """Return ``da`` in Kelvin, reading its units from ``da.attrs["units"]``.

    Accepts K, kelvin, °C, degC, C and Celsius (any case). Lazy for dask input.

    Parameters
    ----------
    da : xarray.DataArray
        Temperatures.
    units : str, optional
        Units of ``da`` when the attribute is missing or wrong.

    Returns
    -------
    xarray.DataArray
        Float32 (or float64) temperatures with ``units="K"``.

    Examples
    --------
    >>> import xarray as xr
    >>> lst = xr.DataArray([21.5], attrs={"units": "°C"})
    >>> round(float(to_kelvin(lst)[0]), 2)
    294.65
    """
    return convert_units(da, "K", units=units)
