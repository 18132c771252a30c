"""The cube convention: every CubeError case, pairs/targets/coverage and the pair rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xstf
from xstf.cube import pair_dates, reference_pairs, target_dates


def make_cube(
    nt: int = 4, ny: int = 6, nx: int = 5, fine_dates=(0, 2), value: float = 290.0
) -> xr.Dataset:
    """A tiny hand-made cube: coarse everywhere, fine on `fine_dates`."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2020-01-01", periods=nt, freq="8D")
    coarse = (value + rng.normal(0, 1, (nt, ny, nx))).astype("float32")
    fine = np.full_like(coarse, np.nan)
    for i in fine_dates:
        fine[i] = coarse[i] + rng.normal(0, 0.5, (ny, nx))
    coords = {"time": time, "y": 1000.0 - 30 * np.arange(ny), "x": 500.0 + 30 * np.arange(nx)}
    k = {"units": "K"}
    return xr.Dataset(
        {"fine": (("time", "y", "x"), fine, k), "coarse": (("time", "y", "x"), coarse, k)},
        coords=coords,
    )


def test_valid_cube_returns_itself():
    ds = make_cube()
    assert xstf.validate(ds) is ds
    assert ds.stf.validate() is ds


def test_not_a_dataset():
    with pytest.raises(xstf.CubeError, match=r"expected an xarray\.Dataset"):
        xstf.validate(make_cube().fine)


@pytest.mark.parametrize("missing", ["fine", "coarse"])
def test_missing_variable_names_it(missing):
    ds = make_cube().drop_vars(missing)
    with pytest.raises(xstf.CubeError, match=f"no {missing} variable '{missing}'"):
        ds.stf.validate()


def test_variable_names_are_parameters():
    ds = make_cube().rename(fine="landsat", coarse="modis")
    assert ds.stf.validate(fine="landsat", coarse="modis") is ds
    with pytest.raises(xstf.CubeError, match="'fine'"):
        ds.stf.validate()


def test_wrong_dims():
    ds = make_cube().rename(y="lat")
    with pytest.raises(xstf.CubeError, match=r"dims .*'lat'.*needs dims \('time', 'y', 'x'\)"):
        ds.stf.validate()


def test_missing_dim():
    ds = make_cube().isel(time=0)
    with pytest.raises(xstf.CubeError, match="needs dims"):
        ds.stf.validate()


def test_dims_in_wrong_order():
    ds = make_cube().transpose("y", "x", "time")
    with pytest.raises(xstf.CubeError, match=r"transpose\('time', 'y', 'x'\)"):
        ds.stf.validate()


def test_time_not_datetime():
    ds = make_cube().assign_coords(time=[1, 2, 3, 4])
    with pytest.raises(xstf.CubeError, match="not datetime64"):
        ds.stf.validate()


def test_time_not_increasing():
    ds = make_cube().isel(time=[1, 0, 2, 3])
    with pytest.raises(xstf.CubeError, match=r"not increasing.*sortby"):
        ds.stf.validate()


def test_time_duplicated_names_the_date():
    ds = make_cube()
    t = ds.time.values.copy()
    t[2] = t[1]
    with pytest.raises(xstf.CubeError, match=r"1 duplicated date\(s\): \['2020-01-09'\]"):
        ds.assign_coords(time=t).stf.validate()


def test_non_finite_coordinates():
    ds = make_cube()
    x = ds.x.values.copy()
    x[2] = np.nan
    with pytest.raises(xstf.CubeError, match="'x' coordinate has 1 non-finite"):
        ds.assign_coords(x=x).stf.validate()


def test_fine_and_coarse_on_different_grids_refused():
    ds = make_cube()
    shifted = ds.coarse.assign_coords(x=ds.x + 15.0)
    with pytest.raises(xstf.CubeError, match="different 'x' coordinates"):
        xstf.cube.from_arrays(ds.fine, shifted)
    smaller = ds.coarse.isel(y=slice(0, 4))
    with pytest.raises(xstf.CubeError, match="has 4 pixels along 'y'"):
        xstf.cube.from_arrays(ds.fine, smaller)
    assert xstf.cube.from_arrays(ds.fine, ds.coarse).stf.validate() is not None


def test_celsius_detected_from_values():
    ds = make_cube()
    ds["fine"] = ds.fine - 273.15
    with pytest.raises(xstf.CubeError, match=r"'fine' looks like degrees Celsius.*xstf.to_kelvin"):
        ds.stf.validate()


def test_celsius_detected_from_units():
    ds = make_cube()
    ds["coarse"] = (ds.coarse - 273.15).assign_attrs(units="degC")
    with pytest.raises(xstf.CubeError, match=r"'coarse' is in 'degC'.*to_kelvin"):
        ds.stf.validate()
    ds["coarse"] = xstf.to_kelvin(ds["coarse"])
    assert ds.stf.validate() is ds


def test_scaled_integers_detected():
    ds = make_cube()
    ds["coarse"] = (ds.coarse / 0.02).assign_attrs(units="K")
    with pytest.raises(xstf.CubeError, match=r"scaled integers.*0.02"):
        ds.stf.validate()


def test_integer_dtype_refused():
    ds = make_cube()
    ds["coarse"] = (ds.coarse / 0.02).fillna(0).astype("uint16")
    with pytest.raises(xstf.CubeError, match=r"dtype uint16.*float with NaN"):
        ds.stf.validate()


def test_implausible_values():
    ds = make_cube()
    ds["fine"] = ds.fine + 200.0
    with pytest.raises(xstf.CubeError, match="outside the plausible LST range"):
        ds.stf.validate()


def test_unknown_units():
    ds = make_cube()
    ds["fine"].attrs["units"] = "W m-2"
    with pytest.raises(xstf.CubeError, match=r"'W m-2'.*not a temperature unit"):
        ds.stf.validate()


@pytest.mark.parametrize("var", ["fine", "coarse"])
def test_all_nan_variable(var):
    ds = make_cube()
    ds[var] = ds[var] * np.nan
    with pytest.raises(xstf.CubeError, match=f"'{var}' is all NaN on all 4 dates"):
        ds.stf.validate()


def test_no_usable_pair_lists_best_dates():
    ds = make_cube()
    fine = ds.fine.values.copy()
    fine[:, :4] = np.nan  # each fine date only 1/3 covered
    ds["fine"] = ds.fine.copy(data=fine)
    with pytest.raises(xstf.CubeError, match=r"0 usable pair\(s\).*2020-01-01 \(fine 33%"):
        ds.stf.validate()
    assert ds.stf.validate(min_coverage=0.3) is ds


def test_coverage_pairs_targets():
    ds = make_cube(nt=5, fine_dates=(0, 2, 4))
    coarse = ds.coarse.values.copy()
    coarse[3, :] = np.nan  # no MODIS on date 3
    coarse[1, :3] = np.nan  # half a MODIS image on date 1
    ds["coarse"] = ds.coarse.copy(data=coarse)
    cov = ds.stf.coverage()
    np.testing.assert_allclose(cov.fine.values, [1, 0, 1, 0, 1])
    np.testing.assert_allclose(cov.coarse.values, [1, 0.5, 1, 0, 1])
    assert list(ds.stf.pairs) == list(ds.time.values[[0, 2, 4]])
    assert list(ds.stf.targets) == [ds.time.values[1]]
    assert list(target_dates(ds, min_coverage=0.6)) == []
    assert len(target_dates(ds, include_pairs=True)) == 4
    assert len(pair_dates(ds, min_coverage=1.0)) == 3


def test_coverage_is_lazy_for_dask():
    ds = make_cube().chunk({"time": 1})
    cov = ds.stf.coverage()
    assert cov.fine.chunks is not None
    np.testing.assert_allclose(cov.compute().fine.values, make_cube().stf.coverage().fine.values)


PAIRS = pd.to_datetime(["2020-01-01", "2020-01-17", "2020-02-02", "2020-03-05"])


@pytest.mark.parametrize(
    ("target", "n", "rule", "expected"),
    [
        ("2020-01-10", 2, "bracket", ["2020-01-01", "2020-01-17"]),  # before and after
        ("2020-01-30", 2, "bracket", ["2020-01-17", "2020-02-02"]),
        ("2020-01-30", 2, "nearest", ["2020-01-17", "2020-02-02"]),
        ("2020-02-03", 2, "nearest", ["2020-01-17", "2020-02-02"]),  # both nearest are before
        ("2020-02-03", 2, "bracket", ["2020-02-02", "2020-03-05"]),
        ("2019-12-01", 2, "bracket", ["2020-01-01", "2020-01-17"]),  # nothing before: two after
        ("2020-04-01", 2, "bracket", ["2020-02-02", "2020-03-05"]),  # nothing after: two before
        ("2020-01-17", 2, "bracket", ["2020-01-01", "2020-02-02"]),  # leave-one-out
        ("2020-01-20", 1, "bracket", ["2020-01-17"]),
        ("2020-01-09", 1, "nearest", ["2020-01-01"]),  # tie (8 days each side) -> earlier
    ],
)
def test_reference_pair_rule(target, n, rule, expected):
    got = reference_pairs(PAIRS, target, n=n, rule=rule)
    assert [str(d.date()) for d in got] == expected


def test_reference_pairs_target_kept_when_asked():
    got = reference_pairs(PAIRS, "2020-01-17", n=1, exclude_target=False)
    assert [str(d.date()) for d in got] == ["2020-01-17"]


def test_reference_pairs_too_few():
    with pytest.raises(
        xstf.CubeError, match=r"needs 2 reference pair\(s\) but only 1 is available.*2020-01-01"
    ):
        reference_pairs(PAIRS[:2], "2020-01-17")


def test_accessor_reference_pairs_uses_cube_pairs():
    ds = make_cube(nt=4, fine_dates=(0, 2, 3))
    got = ds.stf.reference_pairs(ds.time.values[1])
    assert got == [pd.Timestamp(ds.time.values[0]), pd.Timestamp(ds.time.values[2])]


def test_resolution_ratio_from_attrs():
    assert xstf.cube.resolution_ratio(xr.Dataset(attrs={"resolution_ratio": 16})) == 16
    assert xstf.cube.resolution_ratio(xr.Dataset()) == pytest.approx(1000 / 30)


def test_accessor_is_stateless():
    ds = make_cube()
    assert set(vars(ds.stf)) == {"_ds"}  # nothing but the dataset it fronts
    assert ds.copy().stf._ds is not ds


def test_summary_mentions_pairs_and_targets():
    text = make_cube(nt=4, fine_dates=(0, 2)).stf.summary()
    assert "4 dates (2020-01-01 .. 2020-01-25)" in text
    assert "pairs (fine and coarse >= 50% valid): 2: 2020-01-01, 2020-01-17" in text
    assert "targets (coarse only): 2" in text


def test_import_xstf_does_not_import_torch_or_numba():
    import subprocess
    import sys

    code = (
        "import sys, xstf; ds = xstf.datasets.synthetic(size=16, days=3, cloud_fraction=0.0); "
        "ds.stf.validate(); "
        "xstf.models.names(); print('torch' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- issue 12: non-finite values, time axes that are not datetime64 -------------------------


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_value_is_rejected_with_variable_date_count(value):
    ds = make_cube()
    ds["fine"][0, 1, 1] = value
    ds["fine"][0, 2, 2] = value
    with pytest.raises(
        xstf.CubeError, match=r"'fine' has 2 infinite value\(s\) on 1 date\(s\) \(2020-01-01: 2\)"
    ):
        ds.stf.validate()
    with pytest.raises(xstf.CubeError, match="infinite"):  # lazy cubes too
        ds.chunk({"time": 1}).stf.validate()


def _fix_from_message(message: str) -> str:
    import re

    found = re.search(r"`(ds = [^`]+)`", message)
    assert found, message
    return found.group(1)


@pytest.mark.parametrize(
    "kind", ["tz", "cftime-noleap", "cftime-360", "days", "yyyymmdd", "strings"]
)
def test_time_conversion_suggested_in_the_error_works(kind):
    import xstf as _xstf

    ds = make_cube(nt=4, fine_dates=(0, 2))
    good = ds.time.values
    times = {
        "tz": pd.DatetimeIndex(good).tz_localize("Europe/Paris"),
        "cftime-noleap": xr.date_range(
            "2020-01-01", periods=4, freq="8D", calendar="noleap", use_cftime=True
        ),
        "cftime-360": xr.date_range(
            "2020-01-01", periods=4, freq="8D", calendar="360_day", use_cftime=True
        ),
        "days": np.array([0, 8, 16, 24]),
        "yyyymmdd": np.array([20200101, 20200109, 20200117, 20200125]),
        "strings": np.array(["2020-01-01", "2020-01-09", "2020-01-17", "2020-01-25"]),
    }[kind]
    bad = ds.assign_coords(time=times)
    with pytest.raises(xstf.CubeError, match="'time'") as err:
        bad.stf.validate()
    code = _fix_from_message(str(err.value)).replace("'YYYY-MM-DD'", "'2020-01-01'")
    scope = {"ds": bad, "pandas": pd, "numpy": np, "xstf": _xstf}
    exec(code, scope)
    fixed = scope["ds"]
    assert fixed.stf.validate() is fixed
    want = pd.DatetimeIndex(good)
    if kind == "tz":  # local midnight in Paris is 23:00 UTC the day before
        want = want.tz_localize("Europe/Paris").tz_convert("UTC").tz_localize(None)
    if kind != "cftime-360":  # 360-day dates map to other days of the standard calendar
        np.testing.assert_array_equal(pd.DatetimeIndex(fixed.time.values), want)


# -- issue 13: one coverage pass, cached per cube -------------------------------------------


def test_lazy_synthetic_cube_is_generated_once_for_validate_pairs_targets_summary(monkeypatch):
    from xstf import datasets

    ds = xstf.datasets.synthetic(size=32, days=20, seed=5, chunks={"time": 4})
    calls = []
    real = datasets._render
    monkeypatch.setattr(datasets, "_render", lambda p, t: (calls.append(t), real(p, t))[1])
    ds.stf.validate()
    ds.stf.pairs, ds.stf.targets, ds.stf.summary(), ds.stf.validate()
    assert sorted(calls) == list(range(20))  # each date rendered once, by one pass
    # a new cube (other graph) is scanned again; the cached one is not touched
    ds.isel(time=slice(0, 8)).stf.pairs  # two chunks of 4 dates
    assert len(calls) == 28


def test_cached_coverage_equals_a_fresh_pass():
    ds = xstf.datasets.synthetic(size=32, days=20, seed=5, chunks={"time": 4})
    first = ds.stf.pairs, ds.stf.targets
    xstf.cube.clear_cache()
    assert ds.stf.pairs.equals(first[0]) and ds.stf.targets.equals(first[1])
    eager = ds.load()
    assert eager.stf.pairs.equals(first[0]) and eager.stf.targets.equals(first[1])


def test_progress_bar_on_request_only(monkeypatch, capsys):
    monkeypatch.setattr(xstf.cube, "PROGRESS_AFTER", 0.0)
    ds = xstf.datasets.synthetic(size=16, days=4, chunks={"time": 1})
    xstf.cube.pair_dates(ds)  # default: not a terminal, not a notebook -> quiet
    xstf.cube.clear_cache()
    xstf.cube.pair_dates(ds, progress=False)
    assert capsys.readouterr().err == ""
    xstf.cube.clear_cache()
    xstf.cube.pair_dates(ds, progress=True)
    assert "100%" in capsys.readouterr().err


def test_building_a_lazy_fusion_graph_computes_one_coverage_pass():
    from dask.callbacks import Callback

    computes = []

    class Count(Callback):
        def _start(self, dsk):
            computes.append(len(dsk))

    ds = xstf.datasets.synthetic(size=64, days=40, seed=2, cloud_fraction=0.0, chunks={"time": 8})
    with Count():
        fused = ds.stf.estarfm(half_window=5)  # validate + pairs + targets: one shared pass
    assert len(computes) == 1
    assert fused.chunks is not None
