"""What every deep model does through the generic machinery (xstf.models.fit / predict /
save / load): a round trip equal to the prediction rebuilt by hand, and predictions that do
not depend on the tile size or the dask chunking. The cases (fits, tiles, chunks) are in
``deep_models.CASES``; each model's own tests are in ``test_<model>.py``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

import deep_models as dm

import xstf

pytestmark = pytest.mark.torch

MODELS = list(dm.CASES)


@pytest.mark.parametrize("name", MODELS)
def test_fit_predict_save_load_round_trip(name, tmp_path):
    case, fm = dm.CASES[name], dm.fitted(name)
    ds = dm.cube(case.cube_seed)
    assert fm.name == name and fm.n_refs == case.n_refs
    assert case.history <= set(fm.history[0])
    tg = ds.time.values[5:7]
    a = xstf.models.predict(ds, fm, targets=tg, device="cpu", tile=48)
    assert a.dims == ("time", "y", "x") and a.shape == (2, 48, 48)
    assert a.attrs["method"] == name
    refs = [c for c in a.coords if str(c).startswith("reference_pair_")]
    assert sorted(refs) == [f"reference_pair_{k + 1}" for k in range(case.n_refs)]
    truth = ds.truth.sel(time=tg).values
    assert np.isfinite(a.values).all()
    assert truth.min() - 20 < a.values.min() and a.values.max() < truth.max() + 20
    # tighter: equal to the prediction rebuilt by hand from the fitted network
    np.testing.assert_allclose(a.values, dm.by_hand(ds, fm, a), rtol=0, atol=1e-4)
    path = fm.save(tmp_path / f"{name}.pt")
    b = xstf.models.predict(ds, xstf.models.load_model(path), targets=tg, device="cpu", tile=48)
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize(
    ("name", "tile", "chunks"),
    [
        pytest.param(name, tile, chunks, id=f"{name}-{dm.run_label(tile, chunks)}")
        for name, case in dm.CASES.items()
        for tile, chunks in case.runs
    ],
)
def test_prediction_is_tile_and_chunk_invariant(name, tile, chunks):
    # two tile sizes and two dask chunkings equal the one-piece prediction, to float32
    # rounding (context of the receptive field, and per-date normalisation statistics
    # shared by every tile and chunk)
    case = dm.CASES[name]
    whole = dm.whole(name)
    assert np.nanstd(whole, axis=(1, 2)).min() > 0.1  # not a flat field
    ds = dm.cube(case.cube_seed)
    src = ds if chunks is None else ds.chunk({"time": 1, "y": chunks[0], "x": chunks[1]})
    kw = {} if tile is None else {"tile": tile}
    tg = ds.time.values[list(case.targets)]
    out = xstf.models.predict(src, dm.lively(name), targets=tg, device="cpu", **kw)
    d = np.nanmax(np.abs(out.values - whole))
    assert d <= 1e-4, d
