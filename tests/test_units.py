"""Unit handling: spellings, conversions, laziness."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xstf
from xstf.units import convert_units, normalise_units


@pytest.mark.parametrize(
    "spelling", ["degC", "°C", "C", "Celsius", "celsius", "deg_C", "degree_Celsius"]
)
def test_celsius_spellings(spelling):
    da = xr.DataArray(np.array([0.0, -10.5, 30.0], dtype="float32"), attrs={"units": spelling})
    out = xstf.to_kelvin(da)
    np.testing.assert_allclose(out.values, [273.15, 262.65, 303.15], rtol=0, atol=1e-4)
    assert out.attrs["units"] == "K"
    assert out.dtype == np.float32


@pytest.mark.parametrize("spelling", ["K", "kelvin", "Kelvin"])
def test_kelvin_unchanged(spelling):
    da = xr.DataArray(np.array([280.0], dtype="float32"), attrs={"units": spelling})
    np.testing.assert_array_equal(xstf.to_kelvin(da).values, da.values)


def test_missing_units_asks_for_them():
    with pytest.raises(ValueError, match="no 'units' attribute: pass units="):
        xstf.to_kelvin(xr.DataArray([1.0], name="lst"))
    out = xstf.to_kelvin(xr.DataArray([1.0]), units="degC")
    assert float(out[0]) == pytest.approx(274.15)


def test_unknown_units():
    with pytest.raises(ValueError, match="unknown temperature units 'F'"):
        normalise_units("F")


def test_round_trip_and_float64_kept():
    da = xr.DataArray(np.array([250.0, 300.0]), attrs={"units": "K"})
    c = convert_units(da, "degC")
    assert c.dtype == np.float64 and c.attrs["units"] == "degC"
    np.testing.assert_allclose(convert_units(c, "K").values, da.values)


def test_lazy_on_dask():
    da = xr.DataArray(np.zeros((4, 4), dtype="float32"), attrs={"units": "degC"}).chunk(2)
    out = xstf.to_kelvin(da)
    assert out.chunks is not None
    np.testing.assert_allclose(out.compute().values, 273.15)


def test_input_not_modified():
    da = xr.DataArray([1.0], attrs={"units": "degC"})
    xstf.to_kelvin(da)
    assert da.attrs["units"] == "degC" and float(da[0]) == 1.0
