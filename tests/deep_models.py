"""Shared cases of the deep-model tests: tiny fits made once per session, and references.

The fitted models (and their whole-scene predictions) are cached for the session, so that
``test_models_common.py`` (what every model must do) and a model's own test file
(``test_ganstfm.py``...) use one fit. torch is imported only inside the functions: this
module is collected for doctests on installs without it.
"""

from __future__ import annotations

import copy
import functools
import types
from dataclasses import dataclass

import numpy as np
import pandas as pd

import xstf

_TINY = dict(
    epochs=1, batch_size=8, patch_size=32, stride=16, width=4, ae_epochs=0, max_patches=8,
    progress=False, device="cpu",
)  # fmt: skip
#: The smallest edcstfn fit of the level / predict / train tests (64² cube, 1 epoch);
#: read-only: extend it with ``{**TINY, "epochs": 2}``.
TINY = types.MappingProxyType(_TINY)


def gappy_cube(no_coarse_date: int | None = None):
    """64² x 100 dates, no clouds, a coarse gap on target date 10 and a fine gap on pair
    date 16 (a reference); optionally a date without any coarse pixel."""
    ds = xstf.datasets.synthetic(size=64, days=100, seed=0, cloud_fraction=0.0)
    ds["coarse"][10, :20, :15] = np.nan  # a coarse gap on a target date
    if no_coarse_date is not None:
        ds["coarse"][no_coarse_date] = np.nan  # a date with no coarse at all
    ds["fine"][16, 40:, 30:] = np.nan  # a fine gap on a pair date (a reference)
    return ds


def reference_stack(ds) -> np.ndarray:
    """The image stack of one target (date 10, with a coarse gap) and two references
    (dates 16, with a fine gap, and 32) of :func:`gappy_cube`, as predict_image takes it."""
    return np.stack([ds.coarse[10].values, ds.coarse[16].values, ds.fine[16].values,
                     ds.coarse[32].values, ds.fine[32].values])  # fmt: skip


def pointwise_net(scale: float):
    """A 'network' returning ``scale`` x the target coarse input: 0 predicts the normalised
    mean everywhere, 1 echoes the coarse image."""
    import torch

    class Pointwise(torch.nn.Module):
        def forward(self, c_refs, f_refs, c_tgt):
            return c_tgt * scale

    return Pointwise()


def n_params(module) -> int:
    """Number of parameters of a torch module."""
    return sum(p.numel() for p in module.parameters())


def toy_batch(b=2, h=32, w=32, seed=1):
    """A learnable toy batch of one reference: F_tgt = F_ref + 1 where C_tgt = C_ref + 1,
    F_ref = C_ref plus texture; 20 % of target pixels missing (filled with 0, as data.py does)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(b, 1, h + 8, w + 8, generator=g), 9, 1)
    c_ref = smooth * 0.5 + torch.randn(b, 1, 1, 1, generator=g)
    f_ref = c_ref + 0.3 * torch.randn(b, 1, h, w, generator=g)
    tgt_valid = torch.rand(b, 1, h, w, generator=g) > 0.2
    return {
        "c_refs": c_ref.unsqueeze(1),
        "f_refs": f_ref.unsqueeze(1),
        "c_tgt": c_ref + 1.0,
        "f_tgt": torch.where(tgt_valid, f_ref + 1.0, torch.zeros(())),
        "tgt_valid": tgt_valid,
        "ref_valid": torch.ones(b, 1, 1, h, w, dtype=torch.bool),
    }


@dataclass(frozen=True)
class Case:
    """One model's tiny fit and its tiling/chunking checks."""

    cube_seed: int
    fit: dict
    n_refs: int
    history: frozenset[str]
    perturb: float  # std of the weight noise that gives a 1-epoch fit some texture (0: none)
    targets: tuple[int, int]  # time indices of the tile/chunk check
    runs: tuple[tuple[int | None, tuple[int, int] | None], ...]  # (tile, (y, x) chunks)


_FIT = dict(patch_size=32, stride=16, progress=False, device="cpu")


def _gan_case(max_patches: int, runs: tuple) -> Case:
    """A GAN's case: one reference, a generator and a discriminator loss, perturbed weights."""
    return Case(
        cube_seed=1,
        fit=dict(epochs=1, batch_size=2, max_patches=max_patches, **_FIT),
        n_refs=1,
        history=frozenset({"loss", "d_loss", "val_loss"}),
        perturb=0.05,
        targets=(5, 40),
        runs=runs,
    )


CASES = {
    "edcstfn": Case(
        cube_seed=2,
        fit=dict(epochs=1, batch_size=4, width=4, ae_epochs=0, max_patches=4, **_FIT),
        n_refs=2,
        history=frozenset({"loss", "val_loss"}),
        perturb=0.2,
        targets=(5, 30),
        runs=((16, None), (28, None), (None, (20, 28)), (16, (48, 10))),
    ),
    "sttfn": Case(
        cube_seed=1,
        fit=dict(epochs=2, batch_size=4, width=4, lr=3e-3, **_FIT),
        n_refs=2,
        history=frozenset({"loss", "val_loss"}),
        perturb=0.0,  # a local network trained 2 epochs has texture
        targets=(5, 40),
        runs=((20, None), (32, None), (None, (20, 28)), (24, (16, 48))),
    ),
    # AdaIN takes the statistics of whole feature maps: xstf computes them once on the
    # whole date and every tile and dask chunk uses them (per-tile statistics moved pixels
    # by up to 0.5 K). With a receptive field of 144 px every tile here reads the whole
    # 48 px scene, so this checks the statistics (owned regions on the 16 px grid,
    # combined across tiles and chunks); test_mlffgan.py checks the context.
    "mlffgan": _gan_case(
        max_patches=2, runs=((32, None), (40, None), (None, (20, 28)), (32, (40, 12)))
    ),
    # switchable normalisation takes instance/layer statistics of its whole input: xstf
    # computes them once on the whole date (8 stages) for every tile and chunk (the old
    # per-tile statistics moved pixels by up to 1.2 K)
    "ganstfm": _gan_case(
        max_patches=4, runs=((24, None), (32, None), (None, (20, 28)), (24, (16, 48)))
    ),
}


def run_label(tile: int | None, chunks: tuple[int, int] | None) -> str:
    parts = ([f"tile {tile}"] if tile else []) + (
        [f"chunks {chunks[0]}x{chunks[1]}"] if chunks else []
    )
    return ", ".join(parts)


@functools.cache
def cube(seed: int):
    """48² x 120 dates, no clouds."""
    return xstf.datasets.synthetic(size=48, days=120, seed=seed, cloud_fraction=0.0)


@functools.cache
def fitted(name: str):
    """The case's tiny fit (do not modify it: it is shared by the session)."""
    case = CASES[name]
    return xstf.models.fit(cube(case.cube_seed), name, **case.fit)


@functools.cache
def lively(name: str):
    """The fitted model with perturbed weights: a 1-epoch fit predicts a nearly flat field,
    which would make any tiling look invariant."""
    import torch

    case = CASES[name]
    if not case.perturb:
        return fitted(name)
    m = copy.deepcopy(fitted(name))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(case.perturb * torch.randn(p.shape, generator=g))
    return m


@functools.cache
def whole(name: str) -> np.ndarray:
    """The one-piece prediction of :func:`lively` on the case's target dates."""
    case = CASES[name]
    ds = cube(case.cube_seed)
    tg = ds.time.values[list(case.targets)]
    out = xstf.models.predict(ds, lively(name), targets=tg, device="cpu").values
    out.flags.writeable = False
    return out


def by_hand(ds, fm, out) -> np.ndarray:
    """The prediction rebuilt independently: the reported reference pairs, the date level
    (scene mean of the target coarse), normalisation, one forward pass, back to K."""
    import torch

    assert fm.normalisation == "date_level"
    res = []
    for i, t in enumerate(pd.DatetimeIndex(out.time.values)):
        refs = [pd.Timestamp(out[f"reference_pair_{k + 1}"].values[i]) for k in range(fm.n_refs)]
        c0 = ds.coarse.sel(time=t).values.astype(np.float64)
        level = np.nanmean(c0)

        def z(a, level=level):
            return torch.from_numpy(
                np.nan_to_num((a - level - fm.mean) / fm.std).astype(np.float32)
            )

        c_refs = torch.stack([z(ds.coarse.sel(time=r).values.astype(np.float64)) for r in refs])
        f_refs = torch.stack([z(ds.fine.sel(time=r).values.astype(np.float64)) for r in refs])
        with torch.no_grad():
            p = fm.net.eval()(c_refs[None, :, None], f_refs[None, :, None], z(c0)[None, None])
        res.append(p[0, 0].double().numpy() * fm.std + fm.mean + level)
    return np.stack(res)
