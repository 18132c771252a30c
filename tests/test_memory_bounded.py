"""Lazy fusion and scoring hold a bounded number of chunks, not the scene.

The dask graphs of ESTARFM and ``metrics`` on a Zarr cube are run with the synchronous scheduler (its
task order is deterministic) while a dask callback adds up the bytes of the results
dask holds; the peak must stay a small fraction of the scene. Before the halo was cut
from neighbours' rims (a second read) and the whole-scene statistics got their own
read, dask held nearly every input chunk of a date (tests fail on that code). Also:
``overlap_rims`` against ``dask.array.overlap.overlap``, and ``fresh_copy``.
"""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.callbacks import Callback

import xstf
from xstf._dask import fresh_copy, overlap_rims
from xstf.fusion._common import scene_std


def _real_bytes(cache: dict) -> int:
    """Bytes of the numpy buffers dask holds (a view counted once, with its base)."""
    roots = {}
    for v in cache.values():
        if isinstance(v, np.ndarray):
            while isinstance(v.base, np.ndarray):
                v = v.base
            roots[id(v)] = v.nbytes
    return sum(roots.values())


class _Held(Callback):
    """Peak bytes of the results dask holds while computing."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def _posttask(self, key, result, dsk, state, id):
        self.peak = max(self.peak, _real_bytes(state["cache"]))


def _peak(obj) -> int:
    held = _Held()
    with held, dask.config.set(scheduler="sync"):
        dask.compute(obj)
    return held.peak


S, C = 512, 64  # 8 x 8 chunks: a band of chunks is 1/8 of the scene


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """Four dates in a Zarr store (pairs on the first and last), as a user's cube."""
    pytest.importorskip("rioxarray")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:S, :S]
    smooth = 5 * np.sin(yy / 20) * np.cos(xx / 30)
    block = 5 * np.sin((yy // 8 * 8 + 4) / 20) * np.cos((xx // 8 * 8 + 4) / 30)
    truth = np.stack([290 + t + smooth + rng.normal(0, 0.3, (S, S)) for t in range(4)])
    coarse = np.stack([290.8 + t + block for t in range(4)])
    fine = truth.copy()
    fine[1:3] = np.nan
    dims = ("time", "y", "x")
    ds = xr.Dataset(
        {
            k: (dims, v.astype(np.float32), {"units": "K"})
            for k, v in (("fine", fine), ("coarse", coarse), ("truth", truth))
        },
        coords={
            "time": pd.date_range("2021-06-01", periods=4, freq="8D"),
            "y": 5.3e6 - 30.0 * np.arange(S),
            "x": 4.3e5 + 30.0 * np.arange(S),
        },
    ).rio.write_crs("EPSG:32631")
    store = tmp_path_factory.mktemp("mem") / "cube.zarr"
    xstf.to_zarr(ds.chunk({"time": 1, "y": C, "x": C}), store)
    return xstf.open_zarr(store)


def test_estarfm_holds_a_few_chunks_not_the_scene(cube):
    # before: 9.2 date-layers held (of the 6 the two targets read); now about 3
    pred = xstf.estarfm(cube, targets=cube.time[1:3], half_window=2)
    layer = S * S * 4  # one float32 image
    peak = _peak(pred.data)
    assert peak < 5 * layer, f"dask held {peak / layer:.1f} date-layers"
    eager = xstf.estarfm(cube.compute(), targets=cube.time[1:3], half_window=2)
    np.testing.assert_array_equal(pred.values, eager.values)


def test_metrics_hold_a_few_chunks_not_the_scene(cube):
    # before: 4.2 float64 images held (all of the 2 dates' prediction and reference); now 2
    pred, ref = cube.coarse.isel(time=slice(1, 3)), cube.truth.isel(time=slice(1, 3))
    m = xstf.metrics(pred, ref)
    image = S * S * 8
    peak = _peak(m.rmse.data)
    assert peak < 3 * image, f"dask held {peak / image:.1f} images"
    eager = xstf.metrics(pred.compute(), ref.compute())
    for v in ("rmse", "ssim", "cc", "data_range"):
        np.testing.assert_allclose(m[v].values, eager[v].values, rtol=1e-12)


def test_scene_std_reads_the_date_on_its_own(cube):
    f = cube.fine.data[0]
    std = scene_std(f)
    assert set(dict(std.__dask_graph__())).isdisjoint(dict(f.__dask_graph__()))
    expected = np.nanstd(cube.fine.values[0].astype(np.float64), ddof=1)
    assert float(std.compute()) == expected


def test_fresh_copy_same_values_no_shared_key():
    x = dsa.random.RandomState(0).normal(size=(40, 30), chunks=(7, 11))
    y = x[3:] * 2.0
    a, b = fresh_copy(x, y)
    a2, b2 = fresh_copy(x, y, salt="again")
    keys = [set(dict(z.__dask_graph__())) for z in (x, a, a2)]
    assert keys[0].isdisjoint(keys[1]) and keys[1].isdisjoint(keys[2])
    np.testing.assert_array_equal(a.compute(), x.compute())
    np.testing.assert_array_equal(b.compute(), y.compute())
    np.testing.assert_array_equal(b2.compute(), y.compute())


@pytest.mark.parametrize("boundary", ["none", np.nan])
@pytest.mark.parametrize(
    ("shape", "chunks", "depth"),
    [
        ((17, 23), (17, 23), 4),  # one chunk
        ((20, 20), (5, 5), 5),  # halo = chunk
        ((2, 3, 17, 23), (1, 2, (6, 6, 5), (8, 8, 7)), 3),  # lead dims, uneven chunks
    ],
)
def test_overlap_rims_equals_dask_overlap(shape, chunks, depth, boundary):
    rs = np.random.default_rng(1)
    data = rs.normal(size=shape)
    data[data > 1.2] = np.nan
    x = dsa.from_array(data, chunks=chunks)
    a = overlap_rims(x, depth, boundary=boundary)
    ax = {x.ndim - 2: depth, x.ndim - 1: depth}
    b = dsa.overlap.overlap(x, depth=ax, boundary={k: boundary for k in ax})
    assert a.chunks == b.chunks
    np.testing.assert_array_equal(a.compute(), b.compute())


def test_overlap_rims_refuses_small_chunks_and_bad_boundary():
    x = dsa.zeros((20, 20), chunks=4)
    with pytest.raises(ValueError, match="smaller than the halo"):
        overlap_rims(x, 5)
    with pytest.raises(ValueError, match="boundary"):
        overlap_rims(x, 2, boundary="reflect")


def test_one_chunk_per_date_reads_a_lazy_prediction_once(monkeypatch):
    # separate reads only pay when a date spans several chunks; with one chunk per date
    # scoring a lazy ESTARFM must run its kernel once per target, not two or three times
    import xstf.fusion._common as common

    calls = []
    real = common._block_call

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(common, "_block_call", counting)
    ds = xstf.datasets.synthetic(size=48, days=60, chunks={"time": 8}).persist()
    fused = xstf.estarfm(ds, half_window=5)
    xstf.metrics(fused, ds["truth"].sel(time=fused["time"])).compute()
    assert len(calls) == fused.sizes["time"]
