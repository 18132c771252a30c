"""MLFF-GAN (Song et al. 2022): architecture, AdaIN, training steps, fit/predict/save/load."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

import deep_models as dm  # noqa: E402

from xstf.models import mlffgan  # noqa: E402

pytestmark = pytest.mark.torch


def test_parameter_counts_match_the_reference():
    # published counts of the reference implementation for one band
    assert dm.n_params(mlffgan.build(bands=1)) == 5_917_360
    assert dm.n_params(mlffgan.build_discriminator(1)) == 2_765_505


def test_discriminator_count_by_hand():
    # pix2pixHD NLayerDiscriminator, input 2 bands, 4x4 kernels: 64, 128 (+BN), 256 (+BN), 512 (+BN), 1
    convs = [(2, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    expected = sum(cin * cout * 16 + cout for cin, cout in convs) + 2 * (128 + 256 + 512)
    assert dm.n_params(mlffgan.build_discriminator(1)) == expected


@pytest.mark.parametrize("shape", [(32, 32), (37, 45), (16, 20), (95, 95)])
def test_output_shape_any_size(shape):
    net = mlffgan.build().eval()
    h, w = shape
    x = torch.randn(1, 1, 1, h, w)
    with torch.no_grad():
        out = net(x, x, torch.randn(1, 1, h, w))
    assert out.shape == (1, 1, h, w)
    assert torch.isfinite(out).all()


def test_two_bands_and_bad_shapes():
    net = mlffgan.build(bands=2).eval()
    x = torch.zeros(1, 1, 2, 32, 32)
    assert net(x, x, torch.zeros(1, 2, 32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match="c_tgt"):
        net(x, x, torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="f_refs"):
        net(x, torch.zeros(1, 1, 2, 30, 32), torch.zeros(1, 2, 32, 32))
    with pytest.raises(TypeError):
        mlffgan.build(width=8)


def test_adain_matches_numpy():
    rng = np.random.default_rng(0)
    c = rng.normal(3, 2, (2, 4, 5, 6)).astype(np.float32)
    s = rng.normal(-1, 5, (2, 4, 7, 3)).astype(np.float32)
    eps = 1e-5
    cm, cs = c.mean((2, 3), keepdims=True), np.sqrt(c.var((2, 3), ddof=1, keepdims=True) + eps)
    sm, ss = s.mean((2, 3), keepdims=True), np.sqrt(s.var((2, 3), ddof=1, keepdims=True) + eps)
    expected = (c - cm) / cs * ss + sm
    out = mlffgan.adain(torch.from_numpy(c), torch.from_numpy(s)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    # channels-last tensors (the CPU prediction layout) give the same statistics
    cl = torch.channels_last
    out_cl = mlffgan.adain(
        torch.from_numpy(c).to(memory_format=cl), torch.from_numpy(s).to(memory_format=cl)
    )
    np.testing.assert_allclose(out_cl.contiguous().numpy(), expected, rtol=1e-4, atol=1e-4)


def test_change_attention_mask_selects_coarse_or_fine_features():
    att = mlffgan._ChangeAttention(4).eval()
    ct, cr, styled = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        att.mask[0].weight.zero_()
        att.mask[0].bias.fill_(50.0)  # sigmoid -> 1: the target coarse features
        assert torch.allclose(att(ct, cr, styled), ct, atol=1e-5)
        att.mask[0].bias.fill_(-50.0)  # sigmoid -> 0: the AdaIN-styled fine features
        assert torch.allclose(att(ct, cr, styled), styled, atol=1e-5)


def test_swap_augmentation_exchanges_reference_and_target():
    b = dm.toy_batch()
    s = mlffgan.swap_reference_and_target(b)
    assert torch.equal(s["f_tgt"], b["f_refs"][:, 0])
    assert torch.equal(s["c_tgt"], b["c_refs"][:, 0])
    assert torch.equal(s["f_refs"][:, 0], b["f_tgt"])
    assert torch.equal(s["c_refs"][:, 0], b["c_tgt"])
    assert torch.equal(s["tgt_valid"], b["ref_valid"][:, 0])
    assert torch.equal(s["ref_valid"][:, 0], b["tgt_valid"])


def test_training_steps_decrease_the_loss():
    torch.manual_seed(0)
    rec = mlffgan.SPEC.recipe(mlffgan.build())
    assert set(rec.modules) == {"net", "discriminator"}
    assert set(rec.optimizers) == {"net", "discriminator"}
    assert rec.optimizers["net"].param_groups[0]["lr"] == pytest.approx(2e-4)
    b = dm.toy_batch()
    before = rec.validation_loss(b)
    for _ in range(12):
        out = rec.step(b)
    assert set(out) == {"loss", "d_loss"} and all(np.isfinite(float(v)) for v in out.values())
    after = rec.validation_loss(b)
    assert after < 0.6 * before


def test_missing_target_pixels_do_not_steer_training():
    # the same step from the same weights on batches that differ only where the target is
    # missing must give the same weights (generator and discriminator)
    b1 = dm.toy_batch()
    b2 = dict(b1)
    b2["f_tgt"] = torch.where(b1["tgt_valid"], b1["f_tgt"], torch.full((), 1e3))
    states = []
    for b in (b1, b2):
        torch.manual_seed(3)
        rec = mlffgan.MLFFGANRecipe(mlffgan.build(), swap_prob=0.0)
        rec.step(b)
        states.append({k: m.state_dict() for k, m in rec.modules.items()})
    for name in states[0]:
        for key, v in states[0][name].items():
            assert torch.allclose(v.float(), states[1][name][key].float(), atol=1e-6), (name, key)


def test_recipe_rejects_bad_options():
    with pytest.raises(TypeError, match="MLFFGANGenerator"):
        mlffgan.MLFFGANRecipe(torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="swap_prob"):
        mlffgan.MLFFGANRecipe(mlffgan.build(), swap_prob=2.0)


# fit / predict / save / load and tile/chunk invariance: tests/test_models_common.py


@pytest.mark.slow
def test_receptive_field_matches_a_gradient_probe():
    from xstf.models.tiling import measure_receptive_field

    net = mlffgan.build()
    assert net.receptive_field == mlffgan.receptive_field_radius() == 144
    assert measure_receptive_field(net, n_refs=1, start=320) == 144


@pytest.mark.slow
def test_tiles_with_context_equal_the_whole_image():
    # a tall scene cut into 3 tiles along y (each reading 144 px of context, origins on
    # the 16 px grid, the bottom edge padded as the whole image is) equals one forward
    # pass on the whole image, AdaIN statistics included; a context below the receptive
    # field does not
    from xstf.models.tiling import predict_image

    torch.manual_seed(0)
    net = mlffgan.build().eval()
    g = np.random.default_rng(0)
    base = np.cumsum(np.cumsum(g.normal(0, 0.3, (3, 350, 32)), 1), 2) / 10
    stack = 290.0 + base + g.normal(0, 0.5, base.shape)
    whole = predict_image(net, stack, 290.0, 5.0, 1, tile=4096)
    tiled = predict_image(net, stack, 290.0, 5.0, 1, tile=320)
    assert np.abs(tiled - whole).max() <= 1e-4
    short = predict_image(net, stack, 290.0, 5.0, 1, tile=320, overlap=16)
    assert np.abs(short - whole).max() > 1e-4
