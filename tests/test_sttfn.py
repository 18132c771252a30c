"""STTFN (Yin et al. 2021, reconstructed): multiscale CNN, STC weighting, training, fit/predict."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

import deep_models as dm  # noqa: E402

from xstf.models import sttfn  # noqa: E402

pytestmark = pytest.mark.torch


def _batch(b=2, h=24, w=24, seed=1):
    """Two references; F_tgt = F_k + (C_tgt − C_k) + a non-linear term; some pixels missing."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(b, 1, h + 8, w + 8, generator=g), 9, 1)
    texture = 0.3 * torch.randn(b, 1, h, w, generator=g)
    c_refs = torch.stack([smooth - 1.0, smooth + 0.5], 1)
    c_tgt = smooth
    truth = smooth + texture + 0.8 * torch.tanh(3 * smooth)
    f_refs = torch.stack([smooth - 1.0 + texture, smooth + 0.5 + texture], 1)
    tgt_valid = torch.rand(b, 1, h, w, generator=g) > 0.2
    ref_valid = torch.rand(b, 2, 1, h, w, generator=g) > 0.1
    return {
        "c_refs": c_refs,
        "f_refs": torch.where(ref_valid, f_refs, torch.zeros(())),
        "c_tgt": c_tgt,
        "f_tgt": torch.where(tgt_valid, truth, torch.zeros(())),
        "tgt_valid": tgt_valid,
        "ref_valid": ref_valid,
    }


@pytest.mark.parametrize("width", [32, 8])
def test_parameter_count_by_hand(width):
    # two multiscale blocks (3x3, 5x5, 7x7 branches of `width`, 1x1 fusion to 2·width),
    # a 3x3 conv to width, a 3x3 conv to 1 band, and the scalar change gain
    def conv(cin, cout, k):
        return cin * cout * k * k + cout

    def block(cin):
        return sum(conv(cin, width, k) for k in (3, 5, 7)) + conv(3 * width, 2 * width, 1)

    expected = block(3) + block(2 * width) + conv(2 * width, width, 3) + conv(width, 1, 3) + 1
    assert dm.n_params(sttfn.build(width=width)) == expected
    if width == 32:
        assert expected == 209_314


def _stc_numpy(c_refs, c_tgt, window, eps):
    h, w = c_refs.shape[-2:]
    d = np.abs(c_tgt[:, None] - c_refs).mean(2)  # (B, R, H, W)
    half = window // 2
    out = np.empty_like(d)
    for i in range(h):
        for j in range(w):
            win = d[:, :, max(0, i - half) : i + half + 1, max(0, j - half) : j + half + 1]
            out[:, :, i, j] = win.mean(axis=(2, 3))
    inv = 1.0 / (out + eps)
    return inv / inv.sum(1, keepdims=True)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_stc_weights_match_numpy(window):
    rng = np.random.default_rng(window)
    c_refs = rng.normal(0, 1, (2, 2, 1, 9, 7))
    c_tgt = rng.normal(0, 1, (2, 1, 9, 7))
    w = sttfn.stc_weights(torch.from_numpy(c_refs), torch.from_numpy(c_tgt), window, 1e-3)
    assert w.shape == (2, 2, 1, 9, 7)
    np.testing.assert_allclose(
        w[:, :, 0].numpy(), _stc_numpy(c_refs, c_tgt, window, 1e-3), rtol=1e-10
    )


def test_stc_weights_favour_the_pair_that_changed_less():
    c_tgt = torch.zeros(1, 1, 4, 4)
    c_refs = torch.stack([torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 2.0)], 1)
    w = sttfn.stc_weights(c_refs, c_tgt, window=3, eps=0.0)
    # 1/0.5 : 1/2 = 4 : 1
    assert torch.allclose(w[:, 0], torch.full((1, 1, 4, 4), 0.8, dtype=w.dtype))
    with pytest.raises(ValueError, match="odd"):
        sttfn.stc_weights(c_refs, c_tgt, window=4)


def test_untrained_correction_zero_gives_the_temporal_change_model():
    net = sttfn.build(width=4).eval()
    with torch.no_grad():
        net.cnn.tail[-1][1].weight.zero_()
        net.cnn.tail[-1][1].bias.zero_()
    b = _batch()
    with torch.no_grad():
        each = net.forward_each(b["c_refs"], b["f_refs"], b["c_tgt"])
        out = net(b["c_refs"], b["f_refs"], b["c_tgt"])
    expected_each = b["f_refs"] + b["c_tgt"].unsqueeze(1) - b["c_refs"]
    assert torch.allclose(each, expected_each, atol=1e-6)
    w = torch.from_numpy(_stc_numpy(b["c_refs"].numpy(), b["c_tgt"].numpy(), 5, 1e-3))
    expected = (w.unsqueeze(2).float() * expected_each).sum(1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_one_reference_and_shapes():
    net = sttfn.build(width=4).eval()
    b = _batch()
    with torch.no_grad():
        one = net(b["c_refs"][:, :1], b["f_refs"][:, :1], b["c_tgt"])
        each = net.forward_each(b["c_refs"][:, :1], b["f_refs"][:, :1], b["c_tgt"])
    assert one.shape == (2, 1, 24, 24)
    assert torch.equal(one, each[:, 0])
    with pytest.raises(ValueError, match="c_refs"):
        net(b["c_refs"][:, :, :, :20], b["f_refs"], b["c_tgt"])
    with pytest.raises(ValueError, match="stc_window"):
        sttfn.build(stc_window=2)


def test_the_network_is_local_so_tiles_agree():
    # receptive field: 7x7, 7x7, 3x3, 3x3 convolutions (radius 3+3+1+1 = 8) + STC window
    # (radius 2): pixels farther than 10 px from a tile edge see no edge effect
    torch.manual_seed(0)
    net = sttfn.build(width=4).eval()
    b = _batch(b=1, h=48, w=48)
    args = (b["c_refs"], b["f_refs"], b["c_tgt"])
    with torch.no_grad():
        whole = net(*args)
        tile = net(*(a[..., 0:32, 0:32] for a in args))
    assert torch.allclose(whole[..., 10:22, 10:22], tile[..., 10:22, 10:22], atol=1e-5)


def test_training_steps_decrease_the_loss():
    torch.manual_seed(0)
    rec = sttfn.SPEC.recipe(sttfn.build(width=8))
    assert sttfn.SPEC.n_refs == 2 and set(rec.modules) == {"net"}
    b = _batch()
    before = rec.validation_loss(b)
    for _ in range(30):
        out = rec.step(b)
    assert set(out) == {"loss"} and np.isfinite(float(out["loss"]))
    assert rec.validation_loss(b) < 0.6 * before


def test_missing_pixels_do_not_steer_training():
    # garbage where the target is missing, or where a reference is missing for that
    # reference's loss, leaves the step unchanged
    b1 = _batch()
    b2 = dict(b1)
    b2["f_tgt"] = torch.where(b1["tgt_valid"], b1["f_tgt"], torch.full((), 50.0))
    states = []
    for b in (b1, b2):
        torch.manual_seed(1)
        rec = sttfn.STTFNRecipe(sttfn.build(width=8))
        rec.step(b)
        states.append(rec.modules["net"].state_dict())
    for key, v in states[0].items():
        assert torch.allclose(v, states[1][key], atol=1e-7), key


# fit / predict / save / load and tile/chunk invariance: tests/test_models_common.py
@pytest.fixture(scope="module")
def cube():
    return dm.cube(dm.CASES["sttfn"].cube_seed)


def test_fit_records_the_model_and_training_options():
    fm = dm.fitted("sttfn")
    assert fm.config["model_options"] == {"width": 4}
    assert fm.config["train_options"] == {"lr": 3e-3}
    assert fm.net.cnn.tail[-1][1].in_channels == 4  # the width reached the network


def test_less_context_than_the_receptive_field_is_not_exact(cube):
    # a local network (receptive field 8 px): tiles reading 8 px of context give the
    # one-piece prediction (tests/test_models_common.py); 2 px of context do not
    import xstf

    tg = cube.time.values[list(dm.CASES["sttfn"].targets)]
    short = xstf.models.predict(
        cube, dm.fitted("sttfn"), targets=tg, device="cpu", tile=20, overlap=2
    )
    assert np.nanmax(np.abs(short.values - dm.whole("sttfn"))) > 1e-3


def test_receptive_field_is_computed_and_matches_a_gradient_probe():
    from xstf.models.tiling import measure_receptive_field, receptive_field

    for width, window in ((4, 5), (2, 21)):
        net = sttfn.build(width=width, stc_window=window)
        # 7x7, 7x7, 3x3, 3x3 in series (3 + 3 + 1 + 1); the STC window in parallel
        want = max(8, window // 2)
        assert receptive_field(net) == want
        assert measure_receptive_field(net, n_refs=2) == want


def test_a_short_fit_beats_the_coarse_image(cube):
    # residual learning around F_k + (C_0 - C_k): even a short fit is better than
    # the coarse image on the held-out test date
    import xstf

    m = xstf.models.fit(
        cube, "sttfn", epochs=3, batch_size=8, patch_size=32, stride=16, width=4,
        progress=False, device="cpu",
    )  # fmt: skip
    test = [np.datetime64(t) for t in m.config["split"]["test"]]
    pred = xstf.models.predict(cube, m, targets=test, device="cpu", tile=48).values
    truth = cube.truth.sel(time=test).values
    coarse = cube.coarse.sel(time=test).values
    assert np.sqrt(np.mean((pred - truth) ** 2)) < np.sqrt(np.mean((coarse - truth) ** 2))
