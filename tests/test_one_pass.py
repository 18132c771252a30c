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
