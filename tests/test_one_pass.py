"""One pass over an in-memory (numpy) cube per question: date resolution and the repr.

Only dask passes are cached (keyed on graph tokens); a numpy array has no key that changes
when it is modified in place, so the scan is handed from the validation to its callers
instead. These tests count the scans and the per-variable passes (``notnull``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xstf
from xstf import cube
from xstf._repr import cube_info
from xstf.prediction import resolve_dates


@pytest.fixture
def counted(monkeypatch):
    """Counts of cube._scan calls and of DataArray.notnull calls (one per variable pass)."""
    calls = {"scan": 0, "notnull": 0}
    real_scan, real_notnull = cube._scan, xr.DataArray.notnull

    def scan(*args, **kwargs):
        calls["scan"] += 1
        return real_scan(*args, **kwargs)

    def notnull(self, *args, **kwargs):
        calls["notnull"] += 1
        return real_notnull(self, *args, **kwargs)

    monkeypatch.setattr(cube, "_scan", scan)
    monkeypatch.setattr(xr.DataArray, "notnull", notnull)
    return calls


@pytest.fixture
def ds():
    out = xstf.datasets.synthetic(size=16, days=20, seed=3, cloud_fraction=0.0)
    assert out.fine.chunks is None and out.coarse.chunks is None  # numpy-backed
    return out


@pytest.mark.parametrize("explicit", [False, True])
def test_resolve_dates_scans_a_numpy_cube_once(ds, counted, explicit):
    pairs = cube.pair_dates(ds) if explicit else None
    targets = ds.time.values[[3, 4]] if explicit else None
    counted.update(scan=0, notnull=0)
    t, p = resolve_dates(ds, "fine", "coarse", targets, pairs, 0.5, 2, "ESTARFM")
    assert counted == {"scan": 1, "notnull": 2}  # validate's pass, fine and coarse
    # the same dates as the public functions give (each with its own pass)
    assert p.equals(cube.pair_dates(ds))
    want = pd.DatetimeIndex(targets, name="time") if explicit else cube.target_dates(ds)
    assert t.equals(want)


def test_cube_info_scans_a_numpy_cube_once(ds, counted):
    info = cube_info(ds)
    assert counted == {"scan": 1, "notnull": 2}
    assert info.pairs.equals(cube.pair_dates(ds))
    assert info.targets.equals(cube.target_dates(ds))
    want = {v: float(ds[v].notnull().mean()) for v in ("fine", "coarse")}
    assert info.coverage == pytest.approx(want, rel=1e-12)


def test_a_numpy_cube_modified_in_place_is_scanned_again(ds):
    # nothing is cached for numpy data: changing the array changes the answer
    before = cube.pair_dates(ds)
    ds["fine"].values[ds.indexes["time"].get_indexer(before[:1])] = np.nan
    after = cube.pair_dates(ds)
    assert len(after) == len(before) - 1 and before[0] not in after
    assert len(cube_info(ds).pairs) == len(after)


@pytest.mark.parametrize("min_coverage", [0.2, 0.5, 0.9])
def test_public_scan_answers_like_the_functions_from_one_pass(counted, min_coverage):
    cloudy = xstf.datasets.synthetic(size=24, days=40, seed=5, cloud_fraction=0.4)
    counted.update(scan=0, notnull=0)
    s = cube.scan(cloudy, check=False)
    assert counted["scan"] == 1
    # independent reference: the valid share computed here by numpy
    want = {v: np.isfinite(cloudy[v].values).mean(axis=(1, 2)) for v in ("fine", "coarse")}
    for v in want:
        np.testing.assert_allclose(s.coverage[v], want[v], rtol=0, atol=1e-12)
    both = (want["fine"] >= min_coverage) & (want["coarse"] >= min_coverage)
    coarse_ok = want["coarse"] >= min_coverage
    times = pd.DatetimeIndex(cloudy.time.values)
    assert s.pair_dates(min_coverage).equals(pd.DatetimeIndex(times[both], name="time"))
    only = coarse_ok & ~(want["fine"] >= min_coverage)
    assert s.target_dates(min_coverage).equals(pd.DatetimeIndex(times[only], name="time"))
    assert s.target_dates(min_coverage, include_pairs=True).equals(
        pd.DatetimeIndex(times[coarse_ok], name="time")
    )
    assert counted["scan"] == 1  # the answers read nothing more
    assert s.pair_dates(min_coverage).equals(cube.pair_dates(cloudy, min_coverage=min_coverage))


def test_public_scan_checks_like_validate(ds):
    bad = ds.copy()
    bad["fine"] = bad["fine"].where(bad["fine"] < 0)  # all NaN
    with pytest.raises(xstf.CubeError, match="all NaN"):
        cube.scan(bad)
    with pytest.raises(xstf.CubeError, match="usable pair"):
        cube.scan(ds, require_pairs=50)
    assert len(cube.scan(bad, check=False).pair_dates()) == 0


def test_a_coarse_only_scan_has_targets_but_no_pairs(ds):
    from xstf.prediction import resolve_targets

    t = resolve_targets(ds, fine=None)
    assert len(t) == ds.sizes["time"]  # every date has coarse data
    s = cube.scan(ds, None, check=False)
    np.testing.assert_allclose(s.coverage["coarse"], np.isfinite(ds.coarse.values).mean((1, 2)))
    assert s.fine is None and s.target_dates().equals(t)
    with pytest.raises(ValueError, match="coarse-only"):
        s.pair_dates()
    with pytest.raises(ValueError, match="check=False"):
        cube.scan(ds, None)
