"""Samples, split by date, patches, normalisation and the patch Dataset of xstf.models.data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import xstf
from xstf.models import data

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def cube():
    ds = xstf.datasets.synthetic(size=64, days=100, seed=2, cloud_fraction=0.3)
    pairs = xstf.cube.pair_dates(ds)
    # holes: a fine gap on one pair date, a coarse gap on another
    ds["fine"].loc[{"time": pairs[1]}] = ds.fine.sel(time=pairs[1]).where(
        (ds.y < ds.y[30]) | (ds.x < ds.x[10])
    )
    ds["coarse"].loc[{"time": pairs[3]}] = ds.coarse.sel(time=pairs[3]).where(ds.x < ds.x[40])
    return ds


def test_split_fractions_disjoint_and_bracketed():
    pairs = pd.date_range("2021-01-01", periods=10, freq="16D")
    s = data.split_dates(pairs, (0.2, 0.1))
    assert (len(s.train), len(s.val), len(s.test)) == (7, 2, 1)
    assert not (set(s.train) & set(s.val)) and not (set(s.train) & set(s.test))
    assert not (set(s.val) & set(s.test))
    assert sorted(s.train + s.val + s.test) == list(pairs)
    assert pairs[0] in s.train and pairs[-1] in s.train
    assert data.split_dates(pairs, (0.2, 0.1)) == s  # deterministic


def test_split_explicit_dates_and_errors():
    pairs = pd.date_range("2021-01-01", periods=6, freq="16D")
    s = data.split_dates(pairs, {"val": [pairs[2]], "test": [str(pairs[4].date())]})
    assert s.val == (pairs[2],) and s.test == (pairs[4],)
    assert s.train == (pairs[0], pairs[1], pairs[3], pairs[5])
    with pytest.raises(xstf.CubeError, match="not pairs"):
        data.split_dates(pairs, {"val": ["2021-01-02"]})
    with pytest.raises(xstf.CubeError, match="in both"):
        data.split_dates(pairs, {"val": [pairs[2]], "test": [pairs[2]]})
    s = data.split_dates(pairs, {"test": [pairs[2]]})  # no validation date: allowed
    assert s.val == () and len(s.train) == 5
    with pytest.raises(ValueError, match="split keys"):
        data.split_dates(pairs, {"tests": [pairs[2]]})


def test_split_too_few_pairs_names_the_counts():
    pairs = pd.date_range("2021-01-01", periods=4, freq="16D")
    with pytest.raises(
        xstf.CubeError, match=r"leaves 2 training pair\(s\) \(of 4 pairs: 1 validation, 1 test\)"
    ):
        data.split_dates(pairs)
    with pytest.raises(xstf.CubeError, match="the cube has 2 pair"):
        data.split_dates(pairs[:2])


def test_samples_use_only_the_reference_pool():
    pairs = pd.date_range("2021-01-01", periods=8, freq="16D")
    s = data.split_dates(pairs)
    for smp in data.samples(s.train, s.train, 2):
        assert smp.target not in smp.refs
        assert set(smp.refs) <= set(s.train)
        assert smp.refs == tuple(xstf.cube.reference_pairs(s.train, smp.target, 2))
    for smp in data.samples(s.val, s.train, 2):
        assert set(smp.refs) <= set(s.train)


def test_normalisation_matches_numpy(cube):
    dates = xstf.cube.pair_dates(cube)[:3]
    vals = np.concatenate(
        [cube[v].sel(time=dates).values.ravel() for v in ("fine", "coarse")]
    ).astype(np.float64)
    vals = vals[np.isfinite(vals)]
    mean, std = data.normalisation(cube, dates)
    assert mean == pytest.approx(vals.mean(), rel=1e-10)
    assert std == pytest.approx(vals.std(), rel=1e-8)
    m2, s2 = data.normalisation(cube.chunk({"time": 1}), dates)
    assert (m2, s2) == pytest.approx((mean, std), rel=1e-10)


def test_patch_origins_cover_the_scene():
    assert data.patch_origins(95, 95, 20) == [0]
    assert data.patch_origins(200, 95, 20) == [0, 20, 40, 60, 80, 100, 105]
    with pytest.raises(ValueError, match="larger than the scene"):
        data.patch_origins(64, 95, 20)


def test_select_patches_matches_brute_force(cube):
    pairs = xstf.cube.pair_dates(cube)
    smp = data.samples(pairs, pairs, 2)
    got = data.select_patches(cube, smp, 32, 8, 0.6)
    want = []
    for i, s in enumerate(smp):
        ok = (
            cube.fine.sel(time=s.target).notnull().values
            & cube.coarse.sel(time=s.target).notnull().values
        )
        for y in range(0, 33, 8):
            for x in range(0, 33, 8):
                if ok[y : y + 32, x : x + 32].mean() >= 0.6:
                    want.append((i, y, x))
    assert sorted(got) == sorted(want)
    assert 0 < len(got) < len(smp) * 25  # the cloudy cube drops some


def test_patch_dataset_item_values(cube):
    pairs = xstf.cube.pair_dates(cube)
    smp = data.samples(pairs[2:3], pairs, 2)
    mean, std = 290.0, 7.0
    dset = data.PatchDataset(cube, smp, [(0, 8, 16)], 32, mean, std)
    item = dset[0]
    assert item["c_refs"].shape == (2, 1, 32, 32) and item["f_refs"].shape == (2, 1, 32, 32)
    assert item["c_tgt"].shape == (1, 32, 32) and item["f_tgt"].shape == (1, 32, 32)
    assert item["tgt_valid"].dtype == torch.bool and item["ref_valid"].shape == (2, 1, 32, 32)
    sl = dict(y=slice(8, 40), x=slice(16, 48))
    for k, r in enumerate(smp[0].refs):
        f = cube.fine.sel(time=r).isel(**sl).values
        c = cube.coarse.sel(time=r).isel(**sl).values
        np.testing.assert_allclose(
            item["f_refs"][k, 0].numpy(), np.nan_to_num((f - mean) / std), atol=1e-5
        )
        np.testing.assert_allclose(
            item["c_refs"][k, 0].numpy(), np.nan_to_num((c - mean) / std), atol=1e-5
        )
        np.testing.assert_array_equal(
            item["ref_valid"][k, 0].numpy(), np.isfinite(f) & np.isfinite(c)
        )
    f = cube.fine.sel(time=smp[0].target).isel(**sl).values
    c = cube.coarse.sel(time=smp[0].target).isel(**sl).values
    np.testing.assert_array_equal(item["tgt_valid"][0].numpy(), np.isfinite(f) & np.isfinite(c))
    assert np.all(item["f_tgt"][0].numpy()[~np.isfinite(f)] == 0)


def test_patch_dataset_on_dask_matches_numpy_and_caches_few_dates(cube):
    lazy = cube.chunk({"time": 1, "y": 32, "x": 32})
    pairs = xstf.cube.pair_dates(cube)
    smp = data.samples(pairs, pairs, 2)
    patches = data.select_patches(cube, smp, 32, 16, 0.0)
    eager = data.PatchDataset(cube, smp, patches, 32, 290.0, 7.0)
    dl = data.PatchDataset(lazy, smp, patches, 32, 290.0, 7.0, cache_dates=2)
    for i in range(0, len(patches), 5):
        a, b = eager[i], dl[i]
        for k in a:
            assert torch.equal(a[k], b[k]), k
        assert len(dl._cache) <= 4  # 2 dates per variable at most, never the cube
    assert lazy.fine.chunks is not None  # the cube itself was not loaded
    assert not isinstance(lazy.fine.variable._data, np.ndarray)


def test_batched_fetch_equals_per_item_collate():
    # PatchDataset.batch gathers a batch with one fancy index per variable and date slot;
    # it must equal default-collating the per-item path, gaps and per-date levels included,
    # and a DataLoader must use it (through __getitems__)
    from torch.utils.data import DataLoader, default_collate

    ds = xstf.datasets.synthetic(size=48, days=60, seed=4, cloud_fraction=0.3)
    pairs = xstf.cube.pair_dates(ds, min_coverage=0.3)
    smp = data.samples(pairs[1:-1], pairs, 2)
    patches = data.select_patches(ds, smp, 16, 8, 0.3)
    levels = {s.target: 280.0 + i for i, s in enumerate(smp)}
    pds = data.PatchDataset(ds, smp, patches, 16, 290.0, 5.0, levels=levels)
    items = [len(patches) - 1, 0, 3, 3, len(patches) // 2]
    want = default_collate([pds[i] for i in items])
    got = pds.batch(items)
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        assert torch.equal(got[k], want[k]), k
    assert not bool(got["tgt_valid"].all())  # the gaps are exercised
    calls = []
    orig = pds.batch
    pds.batch = lambda ii: calls.append(len(ii)) or orig(ii)
    batches = list(DataLoader(pds, batch_size=4, shuffle=False))
    assert calls and calls[0] == 4
    assert torch.equal(batches[0]["f_tgt"], default_collate([pds[i] for i in range(4)])["f_tgt"])
    # dask-backed cubes take the per-item path and give the same batch
    lazy = data.PatchDataset(ds.chunk({"time": 1}), smp, patches, 16, 290.0, 5.0, levels=levels)
    assert torch.equal(lazy.batch(items)["c_refs"], want["c_refs"])
