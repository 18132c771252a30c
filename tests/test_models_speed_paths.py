"""The fast paths of deep inference give the plain float32 forward's output.

The reference everywhere is one eager float32 forward of the same network on the whole
image under ``torch.no_grad`` (contiguous weights), written here independently of
:mod:`xstf.models.tiling`: channels-last weights, ``torch.compile`` and its fallback must
all agree with it to 1e-4 K.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import xstf  # noqa: E402
import xstf.models  # noqa: E402
from xstf.models import tiling  # noqa: E402
from xstf.models.tiling import channels_last_weights, predict_image  # noqa: E402

N_REFS = {"edcstfn": 2, "sttfn": 2, "mlffgan": 1, "ganstfm": 1}
SMALL = {"edcstfn": {"width": 4}, "sttfn": {"width": 4}, "mlffgan": {}, "ganstfm": {}}
MEAN, STD = 290.0, 5.0


def _stack(n_refs: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = MEAN + 3.0 * rng.standard_normal((size, size))
    return np.stack([base + rng.standard_normal((size, size)) for _ in range(1 + 2 * n_refs)])


def _plain(net: torch.nn.Module, stack: np.ndarray, n_refs: int) -> np.ndarray:
    """The authors' way: normalise, one float32 forward of the whole image, back to K."""
    x = torch.from_numpy(((stack - MEAN) / STD).astype(np.float32))[None]
    rest = x[:, 1:].reshape(1, n_refs, 2, 1, *x.shape[-2:])
    with torch.no_grad():
        p = net(rest[:, :, 0], rest[:, :, 1], x[:, 0:1])[0, 0].numpy()
    return (p.astype(np.float64) * STD + MEAN).astype(np.float32)


def _conv_weight(net: torch.nn.Module) -> torch.Tensor:
    """A conv weight whose layouts differ (more than one input channel, kernel > 1)."""
    return next(p for p in net.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1)


def _nets(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    plain = xstf.models.create(name, **SMALL[name]).eval()
    return plain, copy.deepcopy(plain)


@pytest.mark.parametrize("name", sorted(N_REFS))
def test_channels_last_tiled_equals_plain_forward(name):
    """Default path (channels-last weights, inference_mode, tiles with receptive-field
    context and per-date statistics) == the contiguous whole-image forward."""
    plain, fast = _nets(name)
    r = N_REFS[name]
    stack = _stack(r, 64)
    ref = _plain(plain, stack, r)
    one = predict_image(fast, stack, MEAN, STD, r)  # one tile
    tiled = predict_image(fast, stack, MEAN, STD, r, tile=48)  # several tiles
    w = _conv_weight(fast)
    assert w.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(one - ref).max() <= 1e-4
    assert np.abs(tiled - ref).max() <= 1e-4


def test_channels_last_weights_once_values_unchanged():
    net = xstf.models.create("edcstfn", width=2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert channels_last_weights(net, "cpu") is net
    assert getattr(net, "_xstf_channels_last", False)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    other = xstf.models.create("edcstfn", width=2)
    channels_last_weights(other, "cpu", channels_last=False)
    w = _conv_weight(other)
    assert w.is_contiguous() and not getattr(other, "_xstf_channels_last", False)


def _failing_compile(*args, **kwargs):
    raise RuntimeError("no C++ compiler (simulated)")


class _BrokenCompiled:
    """What torch.compile returns when inductor fails: the error shows at the first call."""

    def __init__(self, net, **kwargs):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise RuntimeError("BackendCompilerFailed (simulated)")


@pytest.mark.parametrize("how", ["at compile", "at first call"])
def test_compile_failure_warns_and_falls_back(monkeypatch, how):
    plain, fast = _nets("mlffgan")
    stack = _stack(1, 64, seed=3)
    ref = _plain(plain, stack, 1)
    monkeypatch.setattr(
        torch, "compile", _failing_compile if how == "at compile" else _BrokenCompiled
    )
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*eager"):
        out = predict_image(fast, stack, MEAN, STD, 1, tile=48, compile=True)
    assert np.abs(out - ref).max() <= 1e-4
    # the failure is remembered: no second attempt, no second warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = predict_image(fast, stack, MEAN, STD, 1, tile=48, compile=True)
    np.testing.assert_array_equal(again, out)
    assert tiling._COMPILED[fast] is None


def test_compile_not_attempted_by_default(monkeypatch):
    monkeypatch.setattr(torch, "compile", _failing_compile)
    plain, fast = _nets("edcstfn")
    stack = _stack(2, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = predict_image(fast, stack, MEAN, STD, 2)
    assert fast not in tiling._COMPILED
    assert np.abs(out - _plain(plain, stack, 2)).max() <= 1e-4


@pytest.mark.filterwarnings("ignore:the .* prediction is nearly flat")
@pytest.mark.parametrize("name", ["edcstfn", "mlffgan"])
def test_predict_compile_fallback_on_a_dask_cube(monkeypatch, name):
    """xstf.models.predict(..., compile=True) through dask threads, spatial chunks (MLFF-GAN:
    with its scene-statistics tasks): a failed compile warns, and the result equals the
    eager prediction."""
    ds = xstf.datasets.synthetic(size=48, days=120, seed=1, cloud_fraction=0.0)
    kw = dict(width=4, ae_epochs=0) if name == "edcstfn" else {}
    m = xstf.models.fit(ds, name, epochs=1, batch_size=4, patch_size=32, stride=16,
                        progress=False, device="cpu", seed=0, **kw)  # fmt: skip
    dates = ds.time.values[5:7]
    eager = xstf.models.predict(ds, m, targets=dates, device="cpu")
    monkeypatch.setattr(torch, "compile", _BrokenCompiled)
    chunks = {"x": 24, "y": 32}
    lazy = xstf.models.predict(ds.chunk(chunks), m, targets=dates, device="cpu", compile=True)
    assert lazy.attrs["parameters"].count('"compile": true') == 1
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        got = lazy.compute()
    np.testing.assert_allclose(got.values, eager.values, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["edcstfn", "mlffgan"])
def test_compiled_equals_plain_forward(name):
    """A real inductor compile (C++ codegen): whole image and tiles with scene statistics."""
    pytest.importorskip("torch._inductor")
    plain, fast = _nets(name)
    r = N_REFS[name]
    stack = _stack(r, 64, seed=5)
    ref = _plain(plain, stack, r)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would hide a broken compile
        out = predict_image(fast, stack, MEAN, STD, r, tile=48, compile=True)
    assert tiling._COMPILED[fast] is not None
    assert np.abs(out - ref).max() <= 1e-4


def _fit(name: str, seed: int = 0):
    ds = xstf.datasets.synthetic(size=48, days=120, seed=2, cloud_fraction=0.1)
    kw = dict(epochs=2, batch_size=4, patch_size=32, stride=16, progress=False, device="cpu",
              seed=seed, patches_per_epoch=8)  # fmt: skip
    if name == "edcstfn":
        kw.update(width=4, ae_epochs=1)
    return xstf.models.fit(ds, name, **kw)


def _curve(m) -> np.ndarray:
    return np.array([[r["loss"], r["val_loss"]] for r in m.history])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_channels_last_training_same_loss_curve(monkeypatch):
    """CPU fits train in channels-last layout on AVX-512 CPUs (forced here): same seed ->
    the same EDCSTFN loss curve as the contiguous layout (float32 rounding only), and the
    weights really are channels-last."""
    from xstf.models import train

    monkeypatch.setattr(train, "_cpu_trains_faster_channels_last", lambda: True)
    fast = _fit("edcstfn")
    monkeypatch.setattr(train, "_channels_last", lambda recipe, dev: None)
    plain = _fit("edcstfn")
    assert _conv_weight(fast.net).is_contiguous(memory_format=torch.channels_last)
    assert not _conv_weight(plain.net).is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(_curve(fast), _curve(plain), rtol=1e-3, atol=1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_channels_last_gan_training_within_seed_noise(monkeypatch):
    """An adversarial fit amplifies float32 rounding (Adam's first steps are sign-like), so
    MLFF-GAN's curve in channels-last layout is compared with the noise of another seed:
    the layout must move the losses far less than changing the seed does."""
    from xstf.models import train

    monkeypatch.setattr(train, "_cpu_trains_faster_channels_last", lambda: True)
    fast = _fit("mlffgan")
    monkeypatch.setattr(train, "_channels_last", lambda recipe, dev: None)
    plain, other_seed = _fit("mlffgan"), _fit("mlffgan", seed=1)
    layout = np.abs(_curve(fast) - _curve(plain)).max()
    seed = np.abs(_curve(other_seed) - _curve(plain)).max()
    assert np.allclose(_curve(fast), _curve(plain), rtol=2e-2)
    assert layout < seed, (layout, seed)


def _grads(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Parameter gradients of a fixed random projection of the module's output."""
    module.zero_grad(set_to_none=True)
    out = module(*inputs)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * weight).sum().backward()
    return [p.grad.clone() for p in module.parameters() if p.grad is not None]


def _modules_and_inputs() -> dict[str, tuple[torch.nn.Module, tuple[torch.Tensor, ...]]]:
    from xstf.models import ganstfm, mlffgan

    g = torch.Generator().manual_seed(0)
    size = 64  # MLFF-GAN needs a multiple of 16

    def img(*lead: int) -> torch.Tensor:
        return torch.randn(*lead, 1, size, size, generator=g)

    torch.manual_seed(0)
    cases = {
        name: (xstf.models.create(name, **SMALL[name]), (img(2, n), img(2, n), img(2)))
        for name, n in N_REFS.items()
    }
    pair = torch.randn(2, 2, size, size, generator=g)  # image and C_tgt, as D sees them
    cases["ganstfm discriminator"] = (ganstfm.build_discriminator(), (pair,))
    cases["mlffgan discriminator"] = (mlffgan.build_discriminator(), (pair,))
    return cases


@pytest.mark.timeout(300, method="thread")  # the oneDNN bug hangs: fail instead of waiting
def test_channels_last_training_gradients_equal_contiguous():
    """Every module fit trains (generators and discriminators) gives the contiguous
    layout's parameter gradients in channels-last layout, converted as fit converts it on
    an AVX-512 CPU (xstf.models.train._to_channels_last). GAN-STFM's
    discriminator has a 1x1 strided convolution with 2 input channels, whose
    channels-last backward in oneDNN hangs, crashes or is wrong on AVX2 CPUs: fit keeps
    that one contiguous (eval mode: fixed batch-norm and spectral-norm statistics)."""
    from xstf.models import train

    for label, (plain, inputs) in _modules_and_inputs().items():
        plain.eval()
        fast = copy.deepcopy(plain)
        train._to_channels_last([fast])
        assert _conv_weight(fast).is_contiguous(memory_format=torch.channels_last), label
        expected, got = _grads(plain, inputs), _grads(fast, inputs)
        assert len(got) == len(expected) > 0, label
        # one scale per module: some gradients are zero in theory (a bias before a
        # normalisation), float32 noise there is no error. Against a float64 reference the
        # contiguous gradients are within 2e-6 of the largest one; channels-last
        # weight/bias gradients sum in another order, 1.6e-4 for GAN-STFM's generator on
        # an AVX2 CPU. The oneDNN bug gives gradients wrong by factors, or hangs.
        scale = max(float(e.abs().max()) for e in expected)
        for e, o in zip(expected, got, strict=True):
            np.testing.assert_allclose(o.numpy(), e.numpy(), rtol=1e-3, atol=1e-3 * scale,
                                       err_msg=label)  # fmt: skip


def test_channels_last_training_only_where_it_pays(monkeypatch):
    """On a CPU without AVX-512 channels-last training was slower (0.85x): fit keeps the
    modules contiguous there, and converts them where the CPU has AVX-512."""
    import types

    from xstf.models import train

    cpu = torch.device("cpu")
    for avx512, expect_cl in ((False, False), (True, True)):
        monkeypatch.setattr(train, "_cpu_trains_faster_channels_last", lambda v=avx512: v)
        net = xstf.models.create("edcstfn", width=4)
        train._channels_last(types.SimpleNamespace(modules={"net": net}), cpu)
        assert _conv_weight(net).is_contiguous(memory_format=torch.channels_last) is expect_cl
