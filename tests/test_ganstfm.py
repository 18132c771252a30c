"""GAN-STFM (Tan et al. 2022): switchable norm, architecture, training steps, fit/predict/save/load."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

from xstf.models import ganstfm  # noqa: E402

pytestmark = pytest.mark.torch


def _batch(b=2, h=32, w=32, seed=1):
    """Toy batch: F_tgt = F_ref + 1 where C_tgt = C_ref + 1; 20 % of target pixels missing."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(b, 1, h + 8, w + 8, generator=g), 9, 1)
    c_ref = smooth * 0.5 + torch.randn(b, 1, 1, 1, generator=g)
    f_ref = c_ref + 0.3 * torch.randn(b, 1, h, w, generator=g)
    tgt_valid = torch.rand(b, 1, h, w, generator=g) > 0.2
    f_tgt = torch.where(tgt_valid, f_ref + 1.0, torch.zeros(()))
    return {
        "c_refs": c_ref.unsqueeze(1),
        "f_refs": f_ref.unsqueeze(1),
        "c_tgt": c_ref + 1.0,
        "f_tgt": f_tgt,
        "tgt_valid": tgt_valid,
        "ref_valid": torch.ones(b, 1, 1, h, w, dtype=torch.bool),
    }


def _n(module):
    return sum(p.numel() for p in module.parameters())


def test_generator_parameter_count_matches_the_reference():
    assert _n(ganstfm.build(bands=1)) == 577_225


def test_generator_count_by_hand():
    # encoder blocks (cin -> cout, ch = min): SN(cin) + conv3(cin, ch) + SN(ch) + conv1(ch, cout)
    # + transform conv3(cin, ch) + conv1(ch, cout); SN has 2C + 6 parameters
    def sn(c):
        return 2 * c + 6

    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    total = 0
    for cin, cout in [(1, 16), (16, 32), (32, 64), (64, 128)]:
        ch = min(cin, cout)
        total += sn(cin) + conv(cin, ch, 3) + sn(ch) + conv(ch, cout, 1)
        total += conv(cin, ch, 3) + conv(ch, cout, 1)
    for cin, cout in [(256, 128), (128, 64), (64, 32), (32, 16)]:
        ch = min(cin, cout)
        total += conv(cin, ch, 3) + conv(ch, cout, 1) + conv(cin, cout, 1)
    total += conv(16, 1, 1)
    assert _n(ganstfm.build(bands=1)) == total


def _switch_norm_numpy(x, mw, vw, eps=1e-5):
    """Switchable normalisation (Luo et al. 2019) in training mode, from the definition."""
    mean_in, var_in = x.mean((2, 3), keepdims=True), x.var((2, 3), ddof=1, keepdims=True)
    mean_ln = mean_in.mean(1, keepdims=True)
    var_ln = (var_in + mean_in**2).mean(1, keepdims=True) - mean_ln**2
    mean_bn = mean_in.mean(0, keepdims=True)
    var_bn = (var_in + mean_in**2).mean(0, keepdims=True) - mean_bn**2
    sm = np.exp(mw) / np.exp(mw).sum()
    sv = np.exp(vw) / np.exp(vw).sum()
    mean = sm[0] * mean_in + sm[1] * mean_ln + sm[2] * mean_bn
    var = sv[0] * var_in + sv[1] * var_ln + sv[2] * var_bn
    return (x - mean) / np.sqrt(var + eps), mean_bn, var_bn


def test_switch_norm_matches_numpy_and_keeps_running_stats():
    rng = np.random.default_rng(0)
    x = rng.normal(2, 3, (4, 3, 6, 5)).astype(np.float64)
    mw, vw = np.array([0.3, -1.0, 0.5]), np.array([1.0, 0.2, -0.4])
    sn = ganstfm.SwitchNorm2d(3).double()
    with torch.no_grad():
        sn.mean_weight.copy_(torch.from_numpy(mw))
        sn.var_weight.copy_(torch.from_numpy(vw))
        out = sn(torch.from_numpy(x)).numpy()
    expected, mean_bn, var_bn = _switch_norm_numpy(x, mw, vw)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    # running statistics: 0.9 · 0 + 0.1 · batch statistics after one step
    np.testing.assert_allclose(sn.running_mean.numpy().ravel(), 0.1 * mean_bn.ravel(), rtol=1e-10)
    np.testing.assert_allclose(sn.running_var.numpy().ravel(), 0.1 * var_bn.ravel(), rtol=1e-10)
    # eval mode uses the running batch statistics
    sn.eval()
    with torch.no_grad():
        out_eval = sn(torch.from_numpy(x)).numpy()
    assert not np.allclose(out_eval, out)


@pytest.mark.parametrize("shape", [(32, 32), (17, 23), (95, 95)])
def test_output_shape(shape):
    net = ganstfm.build().eval()
    h, w = shape
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 1, h, w), torch.randn(1, 1, 1, h, w), torch.randn(1, 1, h, w))
    assert out.shape == (1, 1, h, w)


def test_reference_coarse_image_is_not_used():
    net = ganstfm.build().eval()
    b = _batch()
    with torch.no_grad():
        a = net(b["c_refs"], b["f_refs"], b["c_tgt"])
        c = net(torch.randn_like(b["c_refs"]) * 100, b["f_refs"], b["c_tgt"])
    assert torch.equal(a, c)
    assert ganstfm.SPEC.needs_coarse_ref is False and ganstfm.SPEC.n_refs == 1


def test_discriminator_is_multiscale_and_conditioned():
    d = ganstfm.build_discriminator(1)
    assert len(d.scales) == 3
    assert d.scales[0][0].residual[0].num_features == 2  # image + C_tgt
    assert d(torch.randn(3, 2, 40, 40)).shape == (3,)
    # spectral norm on every convolution of the discriminator
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)


def test_bad_shapes():
    net = ganstfm.build()
    with pytest.raises(ValueError, match="c_tgt"):
        net(None, torch.zeros(1, 1, 1, 8, 8), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="f_refs"):
        net(None, torch.zeros(1, 1, 1, 8, 9), torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize(
    ("ae_epochs", "factor"),
    [
        # known problem (fails on main before issues 11-16 too): with a 2-epoch auto-encoder
        # the feature terms rise over 12 steps on these noise-like batches and 1 − MS-SSIM
        # stays ~0.98; kept visible as xfail until the AE feature loss is investigated
        pytest.param(
            2,
            0.95,
            marks=pytest.mark.xfail(reason="AE feature loss rises on noise batches", strict=False),
        ),
        (0, 0.8),
    ],
)
def test_training_steps_decrease_the_loss(ae_epochs, factor):
    torch.manual_seed(0)
    rec = ganstfm.SPEC.recipe(ganstfm.build(), ae_epochs=ae_epochs)
    expected = {"net", "discriminator"} | ({"autoencoder"} if ae_epochs else set())
    assert set(rec.modules) == expected
    rec.prepare([_batch(seed=s) for s in range(4)])
    b = _batch()
    # the eval-mode loss needs the switchable norms' running statistics (which start at
    # 0, momentum 0.9, as the reference) to warm up: score the training loss
    losses = [rec.step(b) for _ in range(12)]
    assert set(losses[-1]) == {"loss", "d_loss"}
    assert all(np.isfinite(v) for out in losses for v in out.values())
    first = np.mean([out["loss"] for out in losses[:3]])
    last = np.mean([out["loss"] for out in losses[-3:]])
    assert last < factor * first


def test_missing_target_pixels_do_not_steer_training():
    b1 = _batch()
    b2 = dict(b1)
    b2["f_tgt"] = torch.where(b1["tgt_valid"], b1["f_tgt"], torch.full((), -1e3))
    states = []
    for b in (b1, b2):
        torch.manual_seed(5)
        rec = ganstfm.GANSTFMRecipe(ganstfm.build())
        rec.step(b)
        states.append({k: m.state_dict() for k, m in rec.modules.items()})
    for name in states[0]:
        for key, v in states[0][name].items():
            assert torch.allclose(v.float(), states[1][name][key].float(), atol=1e-6), (name, key)


# -- through the generic machinery (xstf.models.fit / predict / save / load) --------------------
@pytest.fixture(scope="module")
def cube():
    import xstf

    return xstf.datasets.synthetic(size=48, days=120, seed=1, cloud_fraction=0.0)


@pytest.fixture(scope="module")
def fitted(cube):
    import xstf

    return xstf.models.fit(
        cube, "ganstfm", epochs=1, batch_size=2, patch_size=32, stride=16, max_patches=4,
        progress=False, device="cpu",
    )  # fmt: skip


def _by_hand(cube, fm, out):
    """The prediction rebuilt independently: the reported reference pairs, the date level
    (scene mean of the target coarse), normalisation, one forward pass, back to K."""
    import pandas as pd

    assert fm.normalisation == "date_level"
    res = []
    for i, t in enumerate(pd.DatetimeIndex(out.time.values)):
        refs = [pd.Timestamp(out[f"reference_pair_{k + 1}"].values[i]) for k in range(fm.n_refs)]
        c0 = cube.coarse.sel(time=t).values.astype(np.float64)
        level = np.nanmean(c0)

        def z(a, level=level):
            return torch.from_numpy(
                np.nan_to_num((a - level - fm.mean) / fm.std).astype(np.float32)
            )

        c_refs = torch.stack([z(cube.coarse.sel(time=r).values.astype(np.float64)) for r in refs])
        f_refs = torch.stack([z(cube.fine.sel(time=r).values.astype(np.float64)) for r in refs])
        with torch.no_grad():
            p = fm.net.eval()(c_refs[None, :, None], f_refs[None, :, None], z(c0)[None, None])
        res.append(p[0, 0].double().numpy() * fm.std + fm.mean + level)
    return np.stack(res)


def test_fit_predict_save_load_round_trip(cube, fitted, tmp_path):
    import xstf

    assert fitted.name == "ganstfm" and fitted.n_refs == 1
    assert {"loss", "d_loss", "val_loss"} <= set(fitted.history[0])
    tg = cube.time.values[5:7]
    a = xstf.models.predict(cube, fitted, targets=tg, device="cpu", tile=48)
    assert a.shape == (2, 48, 48) and a.attrs["method"] == "ganstfm"
    truth = cube.truth.sel(time=tg).values
    assert np.isfinite(a.values).all()
    assert truth.min() - 20 < a.values.min() and a.values.max() < truth.max() + 20
    # tighter: equal to the prediction rebuilt by hand from the fitted network
    np.testing.assert_allclose(a.values, _by_hand(cube, fitted, a), rtol=0, atol=1e-4)
    path = fitted.save(tmp_path / "ganstfm.pt")
    b = xstf.models.predict(cube, xstf.models.load_model(path), targets=tg, device="cpu", tile=48)
    np.testing.assert_array_equal(a.values, b.values)
    # the checkpoint keeps the switchable norms' running statistics (used in eval mode)
    state = xstf.models.load_model(path).net.state_dict()
    assert any(k.endswith("running_var") and float(v.abs().sum()) > 0 for k, v in state.items())


@pytest.fixture(scope="module")
def lively(fitted):
    """The fitted model with perturbed weights: a 1-epoch fit predicts a nearly flat field,
    which would make any tiling look invariant."""
    import copy

    m = copy.deepcopy(fitted)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


def test_prediction_is_tile_and_chunk_invariant(cube, lively):
    # switchable normalisation takes instance/layer statistics of its whole input: xstf
    # computes them once on the whole date (8 stages) and every tile and dask chunk uses
    # them, so two tile sizes and two chunkings equal the one-piece prediction (the old
    # per-tile statistics moved pixels by up to 1.2 K)
    import xstf

    tg = cube.time.values[[5, 40]]
    whole = xstf.models.predict(cube, lively, targets=tg, device="cpu").values
    assert np.nanstd(whole, axis=(1, 2)).min() > 0.1  # not a flat field
    runs = {
        "tile 24": xstf.models.predict(cube, lively, targets=tg, device="cpu", tile=24),
        "tile 32": xstf.models.predict(cube, lively, targets=tg, device="cpu", tile=32),
        "chunks 20x28": xstf.models.predict(
            cube.chunk({"time": 1, "y": 20, "x": 28}), lively, targets=tg, device="cpu"
        ),
        "chunks 16x48, tile 24": xstf.models.predict(
            cube.chunk({"time": 1, "y": 16, "x": 48}), lively, targets=tg, device="cpu", tile=24
        ),
    }
    for label, out in runs.items():
        d = np.abs(out.values - whole)
        assert np.nanmax(d) <= 1e-4, (label, np.nanmax(d))
    # the statistics matter: per-tile statistics (what xstf did before) are visibly different
    from xstf.models.data import normalise

    net = lively.net.eval()
    p = xstf.cube.pair_dates(cube)[1]
    norm, _ = normalise(cube.fine.sel(time=p).values.astype(float), lively.mean, lively.std)
    x = torch.from_numpy(norm)[None, None]
    with torch.no_grad():
        full = net(None, x[:, None], x)[0, 0, :24, :24]
        part = net(None, x[:, None, :, :24, :24], x[:, :, :24, :24])[0, 0, 4:20, 4:20]
    assert float((full[4:20, 4:20] - part).abs().max()) * lively.std > 1e-3


def test_autoencoder_is_trained_by_prepare_then_frozen():
    torch.manual_seed(0)
    rec = ganstfm.GANSTFMRecipe(ganstfm.build(), ae_epochs=3)
    ae = rec.autoencoder
    assert rec.modules["autoencoder"] is ae
    assert not any(p.requires_grad for p in ae.parameters())
    batches = [_batch(seed=s) for s in range(4)]

    def err():
        with torch.no_grad():
            return np.mean(
                [
                    float(((ae(b["f_tgt"]) - b["f_tgt"])[b["tgt_valid"]] ** 2).mean())
                    for b in batches
                ]
            )

    before = err()
    rec.prepare(batches)
    assert err() < 0.5 * before
    assert not any(p.requires_grad for p in ae.parameters()) and not ae.training
    # without the auto-encoder the MSE and cosine terms are taken on the pixels
    plain = ganstfm.GANSTFMRecipe(ganstfm.build(), ae_epochs=0)
    assert plain.autoencoder is None and "autoencoder" not in plain.modules
    with pytest.raises(ValueError, match="ae_epochs"):
        ganstfm.GANSTFMRecipe(ganstfm.build(), ae_epochs=-1)


def test_feature_loss_follows_the_reference_definition():
    # MSE of the encoder features + (1 − channel cosine, averaged over positions) + 1 − MS-SSIM,
    # with the target's invalid pixels replaced by the prediction (written out with torch ops)
    from xstf.models.losses import masked_ms_ssim_loss

    torch.manual_seed(0)
    rec = ganstfm.GANSTFMRecipe(ganstfm.build())
    b = _batch(h=48, w=48)
    pred = b["f_refs"][:, 0] + 0.5
    target, valid = b["f_tgt"], b["tgt_valid"]
    filled = target.clone()
    filled[~valid] = pred[~valid]
    enc = rec.autoencoder.encode
    fp, ft = enc(pred), enc(filled)
    dot = (fp * ft).sum(1)
    cos = dot / (fp.norm(dim=1).clamp_min(1e-8) * ft.norm(dim=1).clamp_min(1e-8))
    expected = ((fp - ft) ** 2).mean() + (1 - cos.mean()) + masked_ms_ssim_loss(pred, target, valid)
    got = rec.content_loss(pred, target, valid)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_receptive_field_is_computed_and_matches_a_gradient_probe():
    from xstf.models.tiling import measure_receptive_field, receptive_field

    # one 3 x 3 convolution per encoder block (either path) and per decoder block: 4 + 4
    net = ganstfm.build()
    assert receptive_field(net) == 8
    assert measure_receptive_field(net, n_refs=1) == 8
