"""Every window-based fusion method: lazy until asked, and bit-identical for any chunking.

Chunks of 4 × 5 pixels are smaller than every window and halo here, so each block's
result depends on its neighbours' pixels: a wrong halo changes the numbers.
"""

from __future__ import annotations

import importlib

import dask
import dask.array as dsa
import numpy as np
import pytest

import xstf
from xstf.fusion.fitfc import fitfc

# method, kernel module, kernel function, options (windows larger than the chunks)
CASES = {
    "estarfm": (xstf.estarfm, "_estarfm_kernel", "estarfm_block", {"half_window": 6}),
    "ubestarfm": (
        xstf.estarfm,
        "_estarfm_kernel",
        "ubestarfm_block",
        {"half_window": 6, "bias_correction": True},
    ),
    "fitfc": (
        fitfc,
        "_fitfc_kernel",
        "fitfc_block",
        {"half_window": 4, "regression_window": 5, "n_similar": 12},
    ),
    "starfm": (xstf.starfm, "_starfm_kernel", "starfm_block", {"half_window": 5, "n_pairs": 2}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_chunk_invariance_and_laziness(monkeypatch, name):
    method, module, kernel, kw = CASES[name]
    full = xstf.datasets.synthetic(size=(40, 36), days=40, seed=5)
    targets = xstf.cube.target_dates(full)[[0, 5, -1]]
    ds = full.sel(time=sorted({*xstf.cube.pair_dates(full), *targets}))
    eager = method(ds, targets=targets, **kw)
    assert isinstance(eager.data, np.ndarray)
    mod = importlib.import_module(f"xstf.fusion.{module}")
    calls = []
    real = getattr(mod, kernel)

    def counting(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(mod, kernel, counting)
    lazy = method(ds.chunk({"time": 1, "y": 4, "x": 5}), targets=targets, **kw)
    assert isinstance(lazy.data, dsa.Array)
    assert calls == []  # nothing computed yet
    with dask.config.set(scheduler="threads"):
        values = lazy.values
    assert len(calls) > 3  # several blocks, through the kernel counted here
    np.testing.assert_array_equal(values, eager.values)  # bit-identical
    one_chunk = method(ds.chunk({"time": 1}), targets=targets, **kw)
    np.testing.assert_array_equal(one_chunk.values, eager.values)
