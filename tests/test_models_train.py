"""Masked losses and the generic training loop of xstf.models."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

import deep_models as dm  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402

import xstf  # noqa: E402
from xstf.models import losses  # noqa: E402
from xstf.models.checkpoint import load_model  # noqa: E402

pytestmark = pytest.mark.torch


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- losses -------------------------------------------------------------------------------------
def test_masked_mse_l1_match_numpy():
    p, t = _rand(2, 1, 7, 5, seed=1), _rand(2, 1, 7, 5, seed=2)
    valid = _rand(2, 1, 7, 5, seed=3) > 0
    t_nan = t.clone()
    t_nan[~valid] = float("nan")
    pn, tn, vn = p.numpy(), t.numpy(), valid.numpy()
    assert float(losses.masked_mse(p, t_nan, valid)) == pytest.approx(
        np.mean((pn[vn] - tn[vn]) ** 2), rel=1e-5
    )
    assert float(losses.masked_l1(p, t_nan, valid)) == pytest.approx(
        np.mean(np.abs(pn[vn] - tn[vn])), rel=1e-5
    )


def test_masked_losses_ignore_invalid_pixels_and_their_gradient():
    p = _rand(2, 1, 48, 48, seed=4).requires_grad_(True)
    t = _rand(2, 1, 48, 48, seed=5)
    valid = torch.ones(2, 1, 48, 48, dtype=torch.bool)
    valid[:, :, 10:20, 5:30] = False
    t2 = t.clone()
    t2[~valid.expand_as(t2)] = 1e6  # garbage where invalid
    for fn in (losses.masked_mse, losses.masked_l1, losses.masked_cosine_loss):
        a, b = fn(p, t, valid), fn(p, t2, valid)
        assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-6)
        (g,) = torch.autograd.grad(a, p)
        assert torch.all(g[~valid.expand_as(g)] == 0)
    a = losses.masked_ms_ssim_loss(p, t, valid)
    b = losses.masked_ms_ssim_loss(p, t2, valid)
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-6)


def test_no_valid_pixel_gives_zero_loss():
    p = _rand(1, 1, 40, 40).requires_grad_(True)
    none = torch.zeros(1, 1, 40, 40, dtype=torch.bool)
    for fn in (
        losses.masked_mse,
        losses.masked_l1,
        losses.masked_cosine_loss,
        losses.masked_ms_ssim_loss,
    ):
        p.grad = None
        out = fn(p, p.detach() + 1, none)
        assert float(out.detach()) == 0.0
        out.backward()
        assert p.grad is not None and torch.all(p.grad == 0), fn.__name__


@pytest.mark.parametrize("side", [32, 95])  # single-scale SSIM, MS-SSIM
def test_ms_ssim_loss_needs_no_host_sync(side):
    # a bool()/float()/boolean index of a device tensor makes each CUDA step wait for the
    # GPU; dynamo breaks its graph at each of them, so zero breaks means no host sync
    p, t = _rand(2, 1, side, side, seed=9), _rand(2, 1, side, side, seed=10)
    valid = _rand(2, 1, side, side, seed=11) > -1.0
    explained = torch._dynamo.explain(losses.masked_ms_ssim_loss)(p, t, valid)
    assert explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.parametrize("name", ["edcstfn", "sttfn", "mlffgan", "ganstfm"])
def test_validation_loss_is_a_device_tensor_equal_to_the_numpy_mse(name):
    # a float would be a host sync per validation batch on CUDA; the loop reads back once
    spec = xstf.models.get_spec(name)
    torch.manual_seed(0)
    net = spec.build()
    rec = spec.recipe(net)
    b = dm.toy_batch(b=2, h=32, w=32, seed=3)
    b["c_refs"] = b["c_refs"].repeat(1, spec.n_refs, 1, 1, 1)
    b["f_refs"] = b["f_refs"].repeat(1, spec.n_refs, 1, 1, 1)
    b["ref_valid"] = b["ref_valid"].repeat(1, spec.n_refs, 1, 1, 1)
    got = rec.validation_loss(b)
    assert isinstance(got, torch.Tensor) and got.ndim == 0 and got.dtype == torch.float32
    net.eval()
    with torch.no_grad():
        pred = net(b["c_refs"], b["f_refs"], b["c_tgt"]).double().numpy()
    v = b["tgt_valid"].numpy()
    ref = np.mean((pred - b["f_tgt"].double().numpy())[v] ** 2)
    assert float(got) == pytest.approx(ref, rel=1e-5)


def test_single_scale_ssim_matches_scikit_image():
    # patches of 32 px use single-scale SSIM with the 11-px, sigma 1.5 window
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1, (32, 32)).astype(np.float32)
    p = (t + rng.normal(0, 0.2, t.shape)).astype(np.float32)
    tt, pt = torch.from_numpy(t)[None, None], torch.from_numpy(p)[None, None]
    valid = torch.ones_like(tt, dtype=torch.bool)
    lo = float(t.min())
    ref = structural_similarity(
        p - lo,
        t - lo,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    got = 1.0 - float(losses.masked_ms_ssim_loss(pt, tt, valid, data_range=1.0))
    assert got == pytest.approx(ref, abs=2e-4)


def test_ms_ssim_masked_equals_ms_ssim_with_target_filled_by_prediction():
    from pytorch_msssim import ms_ssim

    p, t = _rand(2, 1, 95, 95, seed=6), _rand(2, 1, 95, 95, seed=7)
    valid = _rand(2, 1, 95, 95, seed=8) > -1.0
    filled = torch.where(valid, t, p)
    lo = t[valid].min()
    span = float(t[valid].max() - lo)
    ref = 1 - ms_ssim(p - lo, filled - lo, data_range=span, win_size=5)
    got = losses.masked_ms_ssim_loss(p, t, valid)
    assert float(got) == pytest.approx(float(ref), rel=1e-6)
    assert losses.ms_ssim_window(95) == (5, 5)
    assert 0.0 < float(got) <= 1.0


@pytest.mark.parametrize("side", [32, 95, 200])  # single-scale SSIM, 5-px and 11-px MS-SSIM
def test_ms_ssim_loss_is_float32_under_bf16_autocast(side):
    # fit(amp=True) (the default on CUDA) runs the losses under bfloat16 autocast; SSIM's
    # local variances cancel in bf16 (the term came out about 2x too large before)
    rng = np.random.default_rng(side)
    t = rng.normal(0, 1, (4, 1, side, side)).astype(np.float32)
    p = (t + rng.normal(0, 0.3, t.shape)).astype(np.float32)
    pt, tt = torch.from_numpy(p), torch.from_numpy(t)
    valid = torch.from_numpy(rng.uniform(size=t.shape) > 0.1)
    want = float(losses.masked_ms_ssim_loss(pt, tt, valid))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = losses.masked_ms_ssim_loss(pt, tt, valid)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_cosine_loss_matches_numpy():
    p, t = _rand(3, 1, 6, 6, seed=9), _rand(3, 1, 6, 6, seed=10)
    valid = _rand(3, 1, 6, 6, seed=11) > 0
    got = float(losses.masked_cosine_loss(p, t, valid))
    ref = []
    for i in range(3):
        v = valid[i].numpy()
        a, b = p[i].numpy()[v], t[i].numpy()[v]
        ref.append(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert got == pytest.approx(np.mean(ref), rel=1e-5)


def test_loss_input_errors():
    p = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="shapes differ"):
        losses.masked_mse(p, torch.zeros(1, 1, 4, 5), torch.ones(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        losses.masked_l1(p, p, torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="broadcastable"):
        losses.masked_mse(p, p, torch.ones(1, 1, 3, 4, dtype=torch.bool))


# -- the training loop --------------------------------------------------------------------------
TINY = {**dm.TINY, "epochs": 2, "ae_epochs": 1, "max_patches": 16}


@pytest.fixture(scope="module")
def cube():
    return xstf.datasets.synthetic(size=64, days=100, seed=0, cloud_fraction=0.0)


@pytest.fixture(scope="module")
def tiny(cube):
    return xstf.models.fit(cube, "edcstfn", **TINY)


def _weights(m):
    return {k: v.clone() for k, v in m.net.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_returns_model_with_config_and_history(tiny, cube):
    assert isinstance(tiny, xstf.models.FittedModel)
    assert [h["epoch"] for h in tiny.history] == [0, 1]
    for h in tiny.history:
        assert {"mse", "ssim", "feature", "loss", "val_loss", "lr"} <= set(h)
    cfg = tiny.config
    assert cfg["model"] == "edcstfn" and cfg["fine"] == "fine" and cfg["coarse"] == "coarse"
    assert cfg["resolution_ratio"] == pytest.approx(1000 / 30)
    assert cfg["model_options"] == {"width": 4} and cfg["train_options"] == {"ae_epochs": 1}
    split = cfg["split"]
    assert split["test"] and split["val"]
    assert not set(split["test"]) & set(split["train"]) and not set(split["val"]) & set(
        split["train"]
    )
    pairs = [d.isoformat() for d in xstf.cube.pair_dates(cube)]
    assert sorted(split["train"] + split["val"] + split["test"]) == pairs
    assert cfg["train_patches"] == 16
    assert not tiny.net.training
    assert "edcstfn" in repr(tiny)


def test_fit_is_deterministic_on_cpu(tiny, cube):
    again = xstf.models.fit(cube, "edcstfn", **TINY)
    assert _same(_weights(again), _weights(tiny))
    other = xstf.models.fit(cube, "edcstfn", **{**TINY, "seed": 1})
    assert not _same(_weights(other), _weights(tiny))


def test_test_dates_never_reach_training(tiny, cube):
    """Scrambling the test date's images changes nothing in the fitted weights."""
    test = pd.DatetimeIndex(tiny.config["split"]["test"])
    rng = np.random.default_rng(0)
    scrambled = cube.copy(deep=True)
    for v in ("fine", "coarse"):
        vals = scrambled[v].sel(time=test).values
        scrambled[v].loc[{"time": test}] = vals[..., rng.permutation(vals.shape[-1])] + 15.0
    m = xstf.models.fit(scrambled, "edcstfn", **TINY)
    assert m.config["split"] == tiny.config["split"]
    assert (m.mean, m.std) == (tiny.mean, tiny.std)
    assert _same(_weights(m), _weights(tiny))
    # ...while scrambling a training date does change them (the test can fail)
    train0 = pd.DatetimeIndex(tiny.config["split"]["train"][1:2])
    scrambled = cube.copy(deep=True)
    scrambled["fine"].loc[{"time": train0}] = scrambled.fine.sel(time=train0).values + 15.0
    m2 = xstf.models.fit(scrambled, "edcstfn", **TINY)
    assert not _same(_weights(m2), _weights(tiny))


def test_early_stopping_and_best_weights(cube):
    m = xstf.models.fit(cube, "edcstfn", **{**TINY, "epochs": 10, "patience": 2, "lr": 0.0})
    # lr 0: the validation loss never improves after the first epoch -> stop after 3 epochs
    assert len(m.history) == 3 and m.config["best_epoch"] == 0


def test_resume_continues_like_an_uninterrupted_run(cube, tmp_path):
    full = xstf.models.fit(cube, "edcstfn", **{**TINY, "epochs": 3}, checkpoint_dir=tmp_path / "a")
    xstf.models.fit(cube, "edcstfn", **TINY, checkpoint_dir=tmp_path / "b")
    resumed = xstf.models.fit(
        cube, "edcstfn", **{**TINY, "epochs": 3}, resume=tmp_path / "b" / "last.pt",
        checkpoint_dir=tmp_path / "b",
    )  # fmt: skip
    assert len(resumed.history) == 3
    for h1, h2 in zip(full.history, resumed.history, strict=True):
        assert h1["val_loss"] == pytest.approx(h2["val_loss"], rel=1e-6)
        assert h1["loss"] == pytest.approx(h2["loss"], rel=1e-6)
    assert _same(_weights(full), _weights(resumed))
    best = load_model(tmp_path / "a" / "best.pt")
    assert _same(_weights(best), _weights(full))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        xstf.models.fit(cube, "edcstfn", **TINY, checkpoint_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        xstf.models.fit(cube, "edcstfn", **TINY, resume=tmp_path / "a" / "best.pt")


def test_fit_errors(cube):
    few = xstf.datasets.synthetic(size=48, days=40, seed=0, cloud_fraction=0.0)
    with pytest.raises(xstf.CubeError, match=r"the cube has 3 pair\(s\)"):
        xstf.models.fit(few, "edcstfn", **TINY)
    with pytest.raises(ValueError, match="unknown deep model"):
        xstf.models.fit(cube, "unet", **TINY)
    with pytest.raises(ValueError, match="larger than the scene"):
        xstf.models.fit(cube, "edcstfn", **{**TINY, "patch_size": 95})
    with pytest.raises(xstf.CubeError, match="no training patch"):
        holes = cube.copy(deep=True)
        holes["fine"][:] = holes.fine.where(holes.x < holes.x[8])
        xstf.models.fit(holes, "edcstfn", **{**TINY, "min_coverage": 0.1, "min_valid": 0.9})


def test_fit_without_validation_dates_validates_on_training_patches():
    few = xstf.datasets.synthetic(size=48, days=40, seed=0, cloud_fraction=0.0)  # 3 pairs
    with pytest.warns(UserWarning, match="no validation date"):
        m = xstf.models.fit(few, "edcstfn", **{**TINY, "epochs": 1}, split=(0, 0))
    assert m.config["split"]["val"] == [] and len(m.config["split"]["train"]) == 3
    assert m.config["val_patches"] == m.config["train_patches"]


def test_accessor_fit(cube):
    m = cube.stf.fit("edcstfn", **{**TINY, "epochs": 1})
    assert len(m.history) == 1


def test_validation_inputs_never_come_from_test_dates(cube, monkeypatch):
    """Validation samples (targets AND reference images) use no test date, even when a test
    date is the nearest pair of a validation date; scrambling the test date leaves every
    validation loss bit-identical."""
    import xstf.models.train as train

    made = []
    real = train.samples

    def spy(targets, pool, n_refs, *args, **kwargs):
        out = real(targets, pool, n_refs, *args, **kwargs)
        made.append(out)
        return out

    monkeypatch.setattr(train, "samples", spy)
    p = [str(d.date()) for d in xstf.cube.pair_dates(cube)]
    # the validation date p[2] sits between a training date and the test date p[3]
    split = {"train": [p[0], p[1], p[4], p[5], p[6]], "val": [p[2]], "test": [p[3]]}
    opts = {**TINY, "split": split}
    base = xstf.models.fit(cube, "edcstfn", **opts)
    test, val = pd.DatetimeIndex(split["test"]), pd.DatetimeIndex(split["val"])
    used = {d for group in made for s in group for d in (s.target, *s.refs)}
    assert used and not used & set(test)
    assert {s.target for group in made for s in group} >= set(val)
    rng = np.random.default_rng(1)
    scrambled = cube.copy(deep=True)
    for v in ("fine", "coarse"):
        vals = scrambled[v].sel(time=test).values
        scrambled[v].loc[{"time": test}] = vals[..., rng.permutation(vals.shape[-1])] - 9.0
    m = xstf.models.fit(scrambled, "edcstfn", **opts)
    assert [h["val_loss"] for h in m.history] == [h["val_loss"] for h in base.history]
    assert _same(_weights(m), _weights(base))
    # ...while scrambling the validation date's images does change the validation loss
    scrambled = cube.copy(deep=True)
    scrambled["fine"].loc[{"time": val}] = scrambled.fine.sel(time=val).values + 9.0
    m2 = xstf.models.fit(scrambled, "edcstfn", **opts)
    assert m2.history[0]["val_loss"] != base.history[0]["val_loss"]


def test_fit_returns_the_best_weights_not_the_last(cube, tmp_path, monkeypatch):
    """A fit whose last epochs are worse than its best (weights wrecked after epoch 1)."""
    from xstf.models import base, edcstfn, registry

    class Wrecking(edcstfn.EDCSTFNRecipe):
        epochs_done = 0

        def step(self, batch):
            out = super().step(batch)
            if self.epochs_done >= 2:  # epochs 2+: real steps, then the weights wrecked
                with torch.no_grad():
                    for p in self.net.parameters():
                        p.add_(0.5 * torch.randn_like(p))
            return out

        def end_epoch(self, val_loss):
            self.epochs_done += 1
            super().end_epoch(val_loss)

    spec = base.ModelSpec("wrecking", edcstfn.build, Wrecking, n_refs=2)
    monkeypatch.setitem(registry.MODULES, "wrecking", "xstf.models.edcstfn")
    monkeypatch.setitem(base.REGISTRY, "wrecking", spec)
    m = xstf.models.fit(cube, "wrecking", **{**TINY, "epochs": 4, "patience": 10},
                        checkpoint_dir=tmp_path)  # fmt: skip
    losses = [h["val_loss"] for h in m.history]
    assert len(losses) == 4 and min(losses) < losses[-1]
    assert m.config["best_epoch"] == int(np.argmin(losses)) < 2
    best = load_model(tmp_path / "best.pt")
    last = xstf.models.checkpoint.load_checkpoint(tmp_path / "last.pt")["modules"]["net"]
    assert _same(_weights(m), _weights(best))
    assert not _same(_weights(m), last)


def test_fit_leaves_the_global_torch_rng_alone(cube):
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    xstf.models.fit(cube, "edcstfn", **TINY)
    assert torch.equal(torch.rand(3), want)


def test_patches_per_epoch_draws_a_fresh_subset_each_epoch(cube, monkeypatch):
    import xstf.models.train as train

    seen = []
    real = train._train_epoch

    def spy(recipe, loader, dev, amp):
        ids = []
        for batch in loader.loader:
            ids.append(batch["f_tgt"].sum(dim=(1, 2, 3)))
        seen.append(torch.cat(ids))
        return real(recipe, loader, dev, amp)

    monkeypatch.setattr(train, "_train_epoch", spy)
    opts = {**TINY, "epochs": 2, "max_patches": None, "patches_per_epoch": 6}
    m = xstf.models.fit(cube, "edcstfn", **opts)
    assert m.config["patches_per_epoch"] == 6 and m.config["train_patches"] > 6
    assert [len(s) for s in seen] == [6, 6]
    assert not torch.equal(torch.sort(seen[0]).values, torch.sort(seen[1]).values)


def test_an_incomplete_last_batch_is_dropped_like_the_reference():
    # 5 patches in batches of 4: the reference code drops the last batch of one patch;
    # kept, it crashed GAN-STFM's BatchNorm discriminator deep in torch ("Expected more
    # than 1 value per channel when training")
    ds = xstf.datasets.synthetic(size=48, days=120, seed=2, cloud_fraction=0.1)
    seen = []
    from xstf.models import ganstfm

    real_step = ganstfm.GANSTFMRecipe.step

    def counting(self, batch):
        seen.append(int(batch["f_tgt"].shape[0]))
        return real_step(self, batch)

    mp = pytest.MonkeyPatch()
    mp.setattr(ganstfm.GANSTFMRecipe, "step", counting)
    try:
        xstf.models.fit(ds, "ganstfm", epochs=1, batch_size=4, patch_size=32, stride=16,
                        patches_per_epoch=5, progress=False, device="cpu", ae_epochs=0)  # fmt: skip
    finally:
        mp.undo()
    assert seen == [4]


def test_amp_on_a_cpu_without_native_bf16_warns(monkeypatch):
    from xstf.models import train

    cpu = torch.device("cpu")
    monkeypatch.setattr(train, "_cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without native bfloat16.*amp=False"):
        assert train._resolve_amp(True, cpu) is True  # still what was asked
    monkeypatch.setattr(train, "_cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train._resolve_amp(True, cpu) is True
        assert train._resolve_amp(None, cpu) is False  # never on by default on CPU
