"""MLFF-GAN (Song et al. 2022): architecture, AdaIN, training steps, fit/predict/save/load."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_msssim")

from xstf.models import mlffgan  # noqa: E402

pytestmark = pytest.mark.torch


def _batch(b=2, h=32, w=32, seed=1):
    """A learnable toy batch: F_tgt = F_ref + (C_tgt − C_ref) plus texture; 20 % of targets missing."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(b, 1, h + 8, w + 8, generator=g), 9, 1)
    c_ref = smooth * 0.5 + torch.randn(b, 1, 1, 1, generator=g)
    f_ref = c_ref + 0.3 * torch.randn(b, 1, h, w, generator=g)
    c_tgt = c_ref + 1.0
    f_tgt = f_ref + 1.0
    tgt_valid = torch.rand(b, 1, h, w, generator=g) > 0.2
    f_tgt = torch.where(tgt_valid, f_tgt, torch.zeros(()))  # missing filled with 0, as data.py does
    return {
        "c_refs": c_ref.unsqueeze(1),
        "f_refs": f_ref.unsqueeze(1),
        "c_tgt": c_tgt,
        "f_tgt": f_tgt,
        "tgt_valid": tgt_valid,
        "ref_valid": torch.ones(b, 1, 1, h, w, dtype=torch.bool),
    }


def _n(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_reference():
    # published counts of the reference implementation for one band
    assert _n(mlffgan.build(bands=1)) == 5_917_360
    assert _n(mlffgan.build_discriminator(1)) == 2_765_505


def test_discriminator_count_by_hand():
    # pix2pixHD NLayerDiscriminator, input 2 bands, 4x4 kernels: 64, 128 (+BN), 256 (+BN), 512 (+BN), 1
    convs = [(2, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    expected = sum(cin * cout * 16 + cout for cin, cout in convs) + 2 * (128 + 256 + 512)
    assert _n(mlffgan.build_discriminator(1)) == expected


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
    b = _batch()
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
    b = _batch()
    before = rec.validation_loss(b)
    for _ in range(12):
        out = rec.step(b)
    assert set(out) == {"loss", "d_loss"} and all(np.isfinite(v) for v in out.values())
    after = rec.validation_loss(b)
    assert after < 0.6 * before


def test_missing_target_pixels_do_not_steer_training():
    # the same step from the same weights on batches that differ only where the target is
    # missing must give the same weights (generator and discriminator)
    b1 = _batch()
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


# -- through the generic machinery (xstf.models.fit / predict / save / load) --------------------
@pytest.fixture(scope="module")
def cube():
    import xstf

    return xstf.datasets.synthetic(size=48, days=120, seed=1, cloud_fraction=0.0)


@pytest.fixture(scope="module")
def fitted(cube):
    import xstf

    return xstf.models.fit(
        cube, "mlffgan", epochs=1, batch_size=2, patch_size=32, stride=16, max_patches=2,
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

    assert fitted.name == "mlffgan" and fitted.n_refs == 1
    assert {"loss", "d_loss", "val_loss"} <= set(fitted.history[0])
    tg = cube.time.values[5:7]
    a = xstf.models.predict(cube, fitted, targets=tg, device="cpu", tile=48)
    assert a.dims == ("time", "y", "x") and a.shape == (2, 48, 48)
    assert a.attrs["method"] == "mlffgan" and "reference_pair_1" in a.coords
    truth = cube.truth.sel(time=tg).values
    assert np.isfinite(a.values).all()
    assert truth.min() - 20 < a.values.min() and a.values.max() < truth.max() + 20
    # tighter: equal to the prediction rebuilt by hand from the fitted network
    np.testing.assert_allclose(a.values, _by_hand(cube, fitted, a), rtol=0, atol=1e-4)
    path = fitted.save(tmp_path / "mlffgan.pt")
    loaded = xstf.models.load_model(path)
    b = xstf.models.predict(cube, loaded, targets=tg, device="cpu", tile=48)
    np.testing.assert_array_equal(a.values, b.values)


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
    # AdaIN takes the statistics of whole feature maps: xstf computes them once on the
    # whole date and every tile and dask chunk uses them, so two tile sizes and two
    # chunkings equal the one-piece prediction (per-tile statistics moved pixels by up
    # to 0.5 K). With a receptive field of 144 px every tile here reads the whole 48 px
    # scene, so this checks the statistics (owned regions on the 16 px grid, combined
    # across tiles and chunks); test_tiles_with_context_equal_the_whole_image checks
    # the context.
    import xstf

    tg = cube.time.values[[5, 40]]
    whole = xstf.models.predict(cube, lively, targets=tg, device="cpu").values
    assert np.nanstd(whole, axis=(1, 2)).min() > 0.1  # not a flat field
    runs = {
        "tile 32": xstf.models.predict(cube, lively, targets=tg, device="cpu", tile=32),
        "tile 40": xstf.models.predict(cube, lively, targets=tg, device="cpu", tile=40),
        "chunks 20x28": xstf.models.predict(
            cube.chunk({"time": 1, "y": 20, "x": 28}), lively, targets=tg, device="cpu"
        ),
        "chunks 40x12, tile 32": xstf.models.predict(
            cube.chunk({"time": 1, "y": 40, "x": 12}), lively, targets=tg, device="cpu", tile=32
        ),
    }
    for label, out in runs.items():
        d = np.abs(out.values - whole)
        assert np.nanmax(d) <= 1e-4, (label, np.nanmax(d))


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
