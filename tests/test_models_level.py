"""The per-date level normalisation of xstf.models ("date_level", the default)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import deep_models as dm  # noqa: E402

import xstf  # noqa: E402
from xstf.models import data, load_model  # noqa: E402
from xstf.models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from xstf.models.inference import predict_image  # noqa: E402

pytestmark = pytest.mark.torch

TINY = dm.TINY


def _level(img: np.ndarray) -> float:
    """Hand reference: mean of the finite pixels of one coarse image, float64."""
    v = np.asarray(img, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.sum() / v.size) if v.size else float("nan")


@pytest.fixture(scope="module")
def cube():
    return dm.gappy_cube(no_coarse_date=12)  # date 12 without coarse


def _perturbed(m):
    # untrained-looking weights would make output tests trivially pass: perturb them
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def models(cube):
    lvl = _perturbed(xstf.models.fit(cube, "edcstfn", **TINY))
    glob = _perturbed(xstf.models.fit(cube, "edcstfn", **TINY, normalisation="global"))
    return {"date_level": lvl, "global": glob}


def test_level_is_the_scene_mean_of_the_coarse_image(cube):
    dates = cube.time.values[[0, 10, 12, 16]]
    want = [_level(cube.coarse.sel(time=d).values) for d in dates]
    lv = data.date_levels(cube, dates)
    assert lv.dims == ("time",) and lv.dtype == np.float64
    np.testing.assert_allclose(lv.values, want, rtol=1e-12, equal_nan=True)
    assert np.isnan(lv.values[2]) and np.isfinite(lv.values[[0, 1, 3]]).all()
    # the gap on date 10 matters: the mean of all pixels with NaN as 0 would differ
    assert abs(lv.values[1] - np.nan_to_num(cube.coarse[10].values).mean()) > 1.0
    lazy = data.date_levels(cube.chunk({"time": 1, "y": 24, "x": 40}), dates)
    assert lazy.chunks is not None  # lazy on a dask cube
    np.testing.assert_allclose(lazy.values, want, rtol=1e-12, equal_nan=True)


def test_patch_items_are_relative_to_the_target_level(cube):
    pairs = xstf.cube.pair_dates(cube)
    smp = data.samples(pairs[2:3], pairs, 2)
    tgt = smp[0].target
    level = _level(cube.coarse.sel(time=tgt).values)
    mean, std = 0.5, 3.0
    levels = {tgt: float(data.date_levels(cube, [tgt]).values[0])}
    item = data.PatchDataset(cube, smp, [(0, 8, 16)], 32, mean, std, levels=levels)[0]
    sl = dict(y=slice(8, 40), x=slice(16, 48))

    def want(var, date):
        return np.nan_to_num((cube[var].sel(time=date).isel(**sl).values - level - mean) / std)

    for k, r in enumerate(smp[0].refs):  # the references too: the TARGET date's level
        np.testing.assert_allclose(item["f_refs"][k, 0].numpy(), want("fine", r), atol=1e-5)
        np.testing.assert_allclose(item["c_refs"][k, 0].numpy(), want("coarse", r), atol=1e-5)
    np.testing.assert_allclose(item["c_tgt"][0].numpy(), want("coarse", tgt), atol=1e-5)
    np.testing.assert_allclose(item["f_tgt"][0].numpy(), want("fine", tgt), atol=1e-5)
    with pytest.raises(ValueError, match="no value for target"):
        data.PatchDataset(cube, smp, [(0, 8, 16)], 32, mean, std, levels={pairs[0]: 1.0})


def test_normalisation_of_the_anomalies_matches_numpy(cube):
    dates = xstf.cube.pair_dates(cube)[:3]
    vals = []
    for d in dates:
        lv = _level(cube.coarse.sel(time=d).values)
        for v in ("fine", "coarse"):
            vals.append(cube[v].sel(time=d).values.ravel().astype(np.float64) - lv)
    vals = np.concatenate(vals)
    vals = vals[np.isfinite(vals)]
    mean, std = data.normalisation(cube, dates, levels=data.date_levels(cube, dates))
    assert mean == pytest.approx(vals.mean(), abs=1e-9)
    assert std == pytest.approx(vals.std(), rel=1e-8)
    with pytest.raises(xstf.CubeError, match="no valid 'coarse' pixel"):
        d12 = cube.time.values[[12]]
        data.normalisation(cube, d12, levels=data.date_levels(cube, d12))


def test_fit_records_the_normalisation(models, cube):
    lvl, glob = models["date_level"], models["global"]
    assert lvl.config["normalisation"] == "date_level" == lvl.normalisation
    assert glob.config["normalisation"] == "global" == glob.normalisation
    train = pd.DatetimeIndex(lvl.config["split"]["train"])
    assert (lvl.mean, lvl.std) == pytest.approx(
        data.normalisation(cube, train, levels=data.date_levels(cube, train)), rel=1e-12
    )
    raw = np.concatenate([cube[v].sel(time=train).values.ravel() for v in ("fine", "coarse")])
    raw = raw[np.isfinite(raw)].astype(np.float64)
    assert (glob.mean, glob.std) == pytest.approx((raw.mean(), raw.std()), rel=1e-8)
    assert abs(lvl.mean) < 3 < glob.mean  # anomalies vs LST in K
    with pytest.raises(ValueError, match="normalisation must be one of"):
        xstf.models.fit(cube, "edcstfn", **TINY, normalisation="per_tile")


def _zero_net():
    return dm.pointwise_net(0.0)  # predicts 0 (the normalised mean) everywhere


def test_predict_image_adds_the_level_back(cube):
    stack = dm.reference_stack(cube)
    level = _level(stack[0])
    out = predict_image(_zero_net(), stack, 0.7, 2.5, 2, tile=24, overlap=12, level=level)
    ok = np.isfinite(stack[0])
    np.testing.assert_allclose(out[ok], np.float32(level + 0.7), rtol=0, atol=1e-4)
    assert np.isnan(out[~ok]).all()
    echo = predict_image(
        dm.pointwise_net(1.0), stack, 0.7, 2.5, 2, tile=24, overlap=12, level=level
    )
    np.testing.assert_allclose(echo, stack[0], rtol=0, atol=1e-4, equal_nan=True)
    assert np.isnan(predict_image(_zero_net(), stack, 0.7, 2.5, 2, level=np.nan)).all()


def test_one_level_per_date_for_every_chunk(models, cube, monkeypatch):
    """With a constant 'network' the output is level + mean: one value per date, whatever the chunks."""
    from xstf.models import inference

    m = models["date_level"]
    t = cube.time.values[[5, 10, 40]]
    lazy = cube.chunk({"time": 1, "y": 24, "x": 40})
    monkeypatch.setattr(inference, "_cached_net", lambda *a, **k: _zero_net())
    for c in (cube, lazy):
        out = xstf.models.predict(c, m, targets=t, tile=16, overlap=8, device="cpu").values
        for i, d in enumerate(t):
            want = _level(cube.coarse.sel(time=d).values) + m.mean
            img = cube.coarse.sel(time=d).values
            np.testing.assert_allclose(out[i][np.isfinite(img)], want, rtol=0, atol=1e-4)
            assert np.isnan(out[i][~np.isfinite(img)]).all()
    # date 12 has no coarse pixel: refused like every method does (xstf.prediction)
    with pytest.raises(xstf.CubeError, match="no valid 'coarse' pixel"):
        xstf.models.predict(cube, m, targets=cube.time.values[[12]], device="cpu")


def test_a_uniform_offset_shifts_the_prediction_by_the_same_offset(models, cube):
    t = cube.time.values[[5, 10, 40]]
    warm = cube.copy()
    warm["fine"], warm["coarse"] = cube.fine + 10.0, cube.coarse + 10.0
    for kind in ("date_level", "global"):
        m = models[kind]
        base = xstf.models.predict(cube, m, targets=t, tile=32, overlap=16, device="cpu")
        shifted = xstf.models.predict(warm, m, targets=t, tile=32, overlap=16, device="cpu")
        d = shifted.values - base.values - 10.0
        np.testing.assert_array_equal(np.isnan(base.values), np.isnan(shifted.values))
        if kind == "date_level":
            assert np.nanmax(np.abs(d)) < 1e-3  # exactly +10 K up to float32
        else:  # a global model sees a different input: nothing forces +10 K
            assert np.nanmax(np.abs(d)) > 1e-2
    # the same on a dask cube (same chunks: same tiles)
    kw = dict(targets=t, tile=32, overlap=16, device="cpu")
    chunks = {"time": 1, "y": 40, "x": 24}
    out = xstf.models.predict(warm.chunk(chunks), models["date_level"], **kw)
    base = xstf.models.predict(cube.chunk(chunks), models["date_level"], **kw)
    assert out.chunks is not None
    np.testing.assert_allclose(out.values, base.values + 10.0, rtol=0, atol=1e-3)


def test_levels_stay_lazy_on_a_dask_cube(models, cube):
    """Building the graph computes nothing more for date_level than for global."""
    from dask.callbacks import Callback

    lazy = cube.chunk({"time": 1, "y": 40, "x": 24})
    t = cube.time.values[[5, 10]]
    counts = {}
    for kind, m in models.items():
        n = [0]
        with Callback(pretask=lambda key, dsk, state, n=n: n.__setitem__(0, n[0] + 1)):
            out = xstf.models.predict(lazy, m, targets=t, tile=32, overlap=20, device="cpu")
        counts[kind] = n[0]
        assert out.chunks is not None
    assert counts["date_level"] == counts["global"]
    eager = xstf.models.predict(cube, models["date_level"], targets=t, tile=32, overlap=20,
                                device="cpu")  # fmt: skip
    got = xstf.models.predict(lazy, models["date_level"], targets=t, tile=32, overlap=20,
                              device="cpu")  # fmt: skip
    np.testing.assert_allclose(got.values, eager.values, rtol=0, atol=1e-3)
    assert json.loads(got.attrs["parameters"])["normalisation"] == "date_level"


def test_a_checkpoint_without_the_key_is_global(models, cube, tmp_path):
    m = models["global"]
    path = m.save(tmp_path / "g.pt")
    raw = load_checkpoint(path)
    cfg = json.loads(raw["config"])
    del cfg["normalisation"]
    raw["config"] = json.dumps(cfg)
    old = tmp_path / "old.pt"
    save_checkpoint(old, {k: v for k, v in raw.items() if k not in ("format", "version")})
    back = load_model(old)
    assert "normalisation" not in back.config and back.normalisation == "global"
    t = cube.time.values[[5]]
    a = xstf.models.predict(cube, m, targets=t, device="cpu")
    b = xstf.models.predict(cube, back, targets=t, device="cpu")
    np.testing.assert_array_equal(a.values, b.values)
    lvl = load_model(models["date_level"].save(tmp_path / "l.pt"))
    assert lvl.normalisation == "date_level"
