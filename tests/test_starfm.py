"""STARFM: agreement with a plain-numpy reference, chunk invariance, laziness, errors."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
from reference_fusion import make_scene, scene_cube, starfm_reference

import xstf

TARGET = pd.Timestamp("2021-01-09")


@pytest.mark.parametrize(
    ("n_pairs", "w", "kw"),
    [
        (1, 3, {}),
        (2, 4, {}),
        (2, 5, {"num_class": 10, "fine_uncertainty": 0.2, "coarse_uncertainty": 1.0}),
        (1, 4, {"distance_scale": 1.5, "epsilon": 0.1}),
    ],
)
def test_starfm_matches_reference(n_pairs, w, kw):
    layers = make_scene(seed=20 + w)
    f1, c1, f2, c2, c0 = layers
    ds = scene_cube(layers)
    got = xstf.starfm(ds, targets=[TARGET], n_pairs=n_pairs, half_window=w, **kw)
    # the nearest pair is the first one (8 days before; the other is 8 days after: tie -> earlier)
    pairs = [(f1, c1), (f2, c2)][:n_pairs]
    ref, info = starfm_reference(
        c0,
        pairs,
        w,
        num_class=kw.get("num_class", 4),
        fine_uncertainty=kw.get("fine_uncertainty", 0.5),
        coarse_uncertainty=kw.get("coarse_uncertainty", 0.5),
        scale=kw.get("distance_scale"),
        eps=kw.get("epsilon", 0.01),
    )
    g = got.isel(time=0).values
    np.testing.assert_array_equal(np.isnan(g), np.isnan(ref))
    assert np.isfinite(ref).sum() > 0.8 * ref.size
    np.testing.assert_allclose(g[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=0, atol=1e-3)
    assert pd.Timestamp(got.reference_pair_1.values[0]) == pd.Timestamp("2021-01-01")
    assert info["filtered"] > 0  # the "better than the centre" filters are exercised


def test_chunk_invariance_and_laziness():
    ds = xstf.datasets.synthetic(size=(36, 40), days=40, seed=9, cloud_fraction=0.0)
    ds = ds.isel(time=[0, 7, 16, 25, 32]).load()
    ds["fine"][0, 5:15, 20:31] = np.nan  # a cloud in a pair and one in a target
    ds["coarse"][3, 20:, :6] = np.nan
    kw = {"targets": ds.time[[1, 3]], "pairs": ds.time[[0, 2, 4]], "n_pairs": 2, "half_window": 5}
    eager = xstf.starfm(ds, **kw)
    lazy = xstf.starfm(ds.chunk({"time": 1, "y": 3, "x": 7}), **kw)
    assert isinstance(lazy.data, dsa.Array)
    np.testing.assert_array_equal(lazy.values, eager.values)


def test_starfm_beats_coarse_only_on_synthetic():
    ds = xstf.datasets.synthetic(size=96, days=80, seed=1)
    pred = xstf.starfm(ds, n_pairs=2)
    truth = ds.truth.sel(time=pred.time)
    coarse = ds.coarse.sel(time=pred.time)
    ok = pred.notnull() & coarse.notnull()
    rmse_fused = np.sqrt(((pred - truth) ** 2).where(ok).mean(("y", "x")))
    rmse_coarse = np.sqrt(((coarse - truth) ** 2).where(ok).mean(("y", "x")))
    assert float(rmse_fused.mean()) < float(rmse_coarse.mean())


def test_errors():
    ds = scene_cube(make_scene(seed=1))
    with pytest.raises(xstf.CubeError, match=r"2 usable pair\(s\).*3 needed"):
        xstf.starfm(ds, targets=[TARGET], n_pairs=3, half_window=3)
    with pytest.raises(ValueError, match="n_pairs"):
        xstf.starfm(ds, n_pairs=0, half_window=3)
    with pytest.raises(ValueError, match="uncertainty"):
        xstf.starfm(ds, coarse_uncertainty=0.0, half_window=3)
    with pytest.raises(ValueError, match="distance_scale"):
        xstf.starfm(ds, targets=[TARGET], distance_scale=-1.0, half_window=3)
    with pytest.raises(xstf.CubeError, match="is larger than the scene"):
        xstf.starfm(ds, targets=[TARGET], half_window=20)
