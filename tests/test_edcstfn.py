"""EDCSTFN: architecture as published, two-reference blending, compound loss, training steps."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pytorch_msssim import ms_ssim  # noqa: E402
from torch import nn  # noqa: E402

import xstf.models  # noqa: E402
from xstf.models import edcstfn  # noqa: E402

pytestmark = pytest.mark.torch


def _conv_params(cin, cout, k=3):
    return cin * cout * k * k + cout


def test_parameter_count_is_the_published_one():
    # hand count from the paper's layer list (one band)
    fine_enc = _conv_params(1, 32) + _conv_params(32, 64) + _conv_params(64, 128)
    res_enc = _conv_params(3, 32) + _conv_params(32, 64) + _conv_params(64, 128)
    dec = _conv_params(128, 64) + _conv_params(64, 32) + _conv_params(32, 1, k=1)
    assert fine_enc + res_enc + dec == 278_209
    net = xstf.models.create("edcstfn")
    assert sum(p.numel() for p in net.parameters()) == 278_209
    assert sum(p.numel() for p in xstf.models.create("edcstfn", bands=4).parameters()) == (
        _conv_params(4, 32) + _conv_params(32, 64) + _conv_params(64, 128)
        + _conv_params(12, 32) + _conv_params(32, 64) + _conv_params(64, 128)
        + _conv_params(128, 64) + _conv_params(64, 32) + _conv_params(32, 4, k=1)
    )  # fmt: skip


def test_layers_replication_pad_and_relu_placement():
    net = edcstfn.build()
    pads = [m for m in net.modules() if isinstance(m, nn.ReplicationPad2d)]
    assert len(pads) == 8 and all(p.padding == (1, 1, 1, 1) for p in pads)
    # fine encoder ends with ReLU, residual encoder does not
    assert isinstance(net.encoder[-1], nn.ReLU) and not isinstance(net.residual[-1], nn.ReLU)
    assert isinstance(net.decoder[-1], nn.Conv2d) and net.decoder[-1].kernel_size == (1, 1)
    x = torch.randn(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(net.residual(x).min()) < 0 <= float(net.encoder(x[:, :1]).min())


def _inputs(seed, b, h, w):
    """Random (c_refs, f_refs, c_tgt) of two references, drawn in that order."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 2, 1, h, w, generator=g),
        torch.randn(b, 2, 1, h, w, generator=g),
        torch.randn(b, 1, h, w, generator=g),
    )


def test_shapes_and_single_reference():
    net = edcstfn.build(width=8).eval()
    c, f, t = _inputs(1, 3, 24, 20)
    assert net(c, f, t).shape == (3, 1, 24, 20)
    one = net(c[:, :1], f[:, :1], t)
    with torch.no_grad():
        manual = net.decoder(
            net.encoder(f[:, 0]) + net.residual(torch.cat([c[:, 0], f[:, 0], t], 1))
        )
    torch.testing.assert_close(one, manual)
    with pytest.raises(ValueError, match="expects"):
        net(c[:, 0], f, t)


def test_two_reference_blending_matches_a_numpy_reimplementation():
    net = edcstfn.build(width=4).eval()
    c, f, t = _inputs(2, 2, 16, 16)
    with torch.no_grad():
        fe = [net.encoder(f[:, r]).numpy() for r in range(2)]
        res = [net.residual(torch.cat([c[:, r], f[:, r], t], 1)).numpy() for r in range(2)]
        d1, d2 = np.abs(res[0]) + 1e-8, np.abs(res[1]) + 1e-8
        m1 = np.clip((1 / d1) / (1 / d1 + 1 / d2), 0, 1)
        blended = m1 * (fe[0] + res[0]) + (1 - m1) * (fe[1] + res[1])
        want = net.decoder(torch.from_numpy(blended.astype(np.float32)))
        got = net(c, f, t)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # identical references: blending gives the single-reference prediction
    same = net(c[:, :1].expand(-1, 2, -1, -1, -1), f[:, :1].expand(-1, 2, -1, -1, -1), t)
    torch.testing.assert_close(same, net(c[:, :1], f[:, :1], t), rtol=1e-5, atol=1e-6)


def _batch(seed=3, n=4, size=40):
    g = torch.Generator().manual_seed(seed)
    f_tgt = torch.randn(n, 1, size, size, generator=g)
    c_tgt = f_tgt + 0.3 * torch.randn(n, 1, size, size, generator=g)
    f_refs = f_tgt[:, None] + 0.5 * torch.randn(n, 2, 1, size, size, generator=g)
    c_refs = f_refs + 0.3 * torch.randn(n, 2, 1, size, size, generator=g)
    valid = torch.rand(n, 1, size, size, generator=g) > 0.2
    return {
        "c_refs": c_refs, "f_refs": f_refs, "c_tgt": c_tgt, "f_tgt": f_tgt,
        "tgt_valid": valid, "ref_valid": torch.ones(n, 2, 1, size, size, dtype=torch.bool),
    }  # fmt: skip


def test_compound_loss_is_mse_plus_feature_plus_08_msssim():
    torch.manual_seed(0)
    net = edcstfn.build(width=4)
    rec = edcstfn.recipe(net, ae_epochs=1)
    b = _batch()
    rec.prepare([b])
    pred = net.forward_each(b["c_refs"], b["f_refs"], b["c_tgt"])[0].detach()
    out = rec._loss(pred, b["f_tgt"], b["tgt_valid"])
    v = b["tgt_valid"]
    mse = ((pred - b["f_tgt"])[v] ** 2).mean()
    filled = torch.where(v, b["f_tgt"], pred)
    enc = rec.autoencoder.encoder
    feat = ((enc(pred) - enc(filled)) ** 2).mean()
    lo = b["f_tgt"][v].min()
    span = float(b["f_tgt"][v].max() - lo)
    ssim = 1 - ms_ssim(pred - lo, filled - lo, data_range=span, win_size=3)
    torch.testing.assert_close(out["loss"], mse + feat + 0.8 * ssim, rtol=1e-5, atol=1e-6)


def test_autoencoder_pretraining_lowers_reconstruction_error_and_freezes():
    torch.manual_seed(0)
    net = edcstfn.build(width=4)
    rec = edcstfn.recipe(net, ae_epochs=30)
    b = _batch(n=2, size=32)
    smooth = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    b["f_tgt"] = torch.nn.functional.interpolate(smooth, size=32, mode="bilinear")
    x, v = b["f_tgt"], b["tgt_valid"]
    with torch.no_grad():
        before = float(((rec.autoencoder(x) - x)[v] ** 2).mean())
    rec.prepare([b])
    with torch.no_grad():
        after = float(((rec.autoencoder(x) - x)[v] ** 2).mean())
    assert after < 0.7 * before
    assert not any(p.requires_grad for p in rec.autoencoder.parameters())


def test_training_steps_lower_the_loss_and_keep_the_autoencoder_fixed():
    torch.manual_seed(0)
    net = edcstfn.build(width=8)
    rec = edcstfn.recipe(net, ae_epochs=1, lr=3e-3)
    b = _batch()
    rec.prepare([b])
    ae_before = {k: v.clone() for k, v in rec.autoencoder.state_dict().items()}
    first = rec.step(b)["loss"]
    for _ in range(15):
        last = rec.step(b)["loss"]
    assert last < 0.8 * first
    for k, v in rec.autoencoder.state_dict().items():
        assert torch.equal(v, ae_before[k])
    val = rec.validation_loss(b)
    assert np.isfinite(float(val)) and val > 0
    lr0 = rec.optimizers["net"].param_groups[0]["lr"]
    for _ in range(7):  # ReduceLROnPlateau(0.1, patience 5)
        rec.end_epoch(1.0)
    assert rec.optimizers["net"].param_groups[0]["lr"] == pytest.approx(0.1 * lr0)
    assert rec.optimizers["net"].defaults["weight_decay"] == 1e-6


def test_spec_registered():
    spec = xstf.models.get_spec("EDCSTFN")
    assert spec.n_refs == 2 and spec.needs_coarse_ref and "Tan" in spec.reference
    with pytest.raises(ValueError, match="unknown deep model"):
        xstf.models.get_spec("nope")


def test_receptive_field_is_computed_and_matches_a_gradient_probe():
    from xstf.models.tiling import measure_receptive_field, receptive_field

    # three 3 x 3 convolutions in each encoder, two in the decoder (then a 1 x 1)
    assert receptive_field(edcstfn.build(width=2)) == 5
    assert measure_receptive_field(edcstfn.build(width=2), n_refs=2) == 5


# fit / predict / save / load and tile/chunk invariance: tests/test_models_common.py
