"""Tiled forward pass of a deep fusion network over one date, equal to the whole-image forward.

(Imports torch.) :mod:`xstf.models.inference` builds the per-date input stacks and
calls :func:`predict_image` (numpy) or :func:`predict_stack` (numpy or dask).

What is guaranteed
------------------
A network's output at a pixel depends on the inputs within its *receptive field*
(:func:`receptive_field`, px, computed per model from its layers) and — for MLFF-GAN
(AdaIN) and GAN-STFM (switchable normalisation) — on per-channel statistics of
intermediate features over the *whole image*. xstf predicts a date so that the
result equals one forward pass of the network on the whole date (up to float32
rounding, ≤ 1e-4 K in the tests), whatever the tile size and the dask chunks:

* each output pixel is taken from exactly one tile (no blending), and every tile
  reads ``overlap`` px of context beyond the pixels it owns, ``overlap`` defaulting
  to the receptive field: pixels near a tile edge see the same inputs as in the
  whole-image forward. A smaller ``overlap`` trades exactness for speed and leaves
  seams;
* models that downsample (MLFF-GAN halves the size 4 times) get tiles whose origins
  are multiples of ``size_multiple`` (16) in scene coordinates, and the scene is
  padded (edge replication) at its bottom/right edge exactly as the whole-image
  forward pads it, so the strided grids coincide;
* statistics the published models compute per image (the *scene statistics*) are
  computed once per date, on the whole date, before the tiles are predicted: a
  first pass runs the network's layers up to each statistic tile by tile and
  accumulates per-channel counts, means and squared deviations (float64, Chan's
  parallel formula) over the pixels each tile owns; the prediction pass then uses
  them in every tile. GAN-STFM's eight switchable normalisations depend on one
  another, so they are computed in eight short passes over its (cheap) encoder.
  When the whole date fits in one tile, the network computes them itself. On a
  dask cube the same passes run per chunk (each chunk read with a halo of
  ``overlap + 2·size_multiple`` px) and are combined lazily across the chunks of a
  date, so the result does not depend on the chunking either.

A network that takes part declares, besides ``forward(c_refs, f_refs, c_tgt)``:
``receptive_field`` (int, px), optionally ``size_multiple`` and ``min_side`` (int,
px), and for scene statistics ``stat_stages`` (int), ``stat_features(stage, stats,
c_refs, f_refs, c_tgt)`` (the feature maps whose per-channel moments stage
``stage`` needs, each with its downsampling factor, given the statistics of the
earlier stages) and ``forward(..., scene_stats=stats)``.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import numpy as np
import torch

from .data import normalise

__all__ = [
    "channels_last_weights",
    "measure_receptive_field",
    "predict_image",
    "predict_stack",
    "receptive_field",
    "scene_statistics",
]

#: per stage, per feature map: (mean, var) of each channel, float64 arrays of shape (C,)
SceneStats = list[list[tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class _Tiling:
    """How a date is cut into tiles and run: :func:`predict_image`'s keywords of these names
    (documented there) with its defaults, which :func:`scene_statistics` and
    :func:`predict_stack` take as ``**tiling``."""

    tile: int = 1024
    overlap: int | None = None
    batch_size: int = 4
    device: torch.device | str = "cpu"
    amp: bool = False
    multiple: int = 1


def receptive_field(net: torch.nn.Module) -> int:
    """Radius (px) of the receptive field of a fusion network: how far an output pixel sees.

    Read from the network's ``receptive_field`` attribute (computed from its layers
    by each xstf model); for another network it is measured
    (:func:`measure_receptive_field`).

    Parameters
    ----------
    net : torch.nn.Module
        A network with the ``forward(c_refs, f_refs, c_tgt)`` of :mod:`xstf.models.base`.

    Returns
    -------
    int

    Examples
    --------
    >>> from xstf.models import create
    >>> receptive_field(create("edcstfn")), receptive_field(create("ganstfm"))
    (5, 8)
    """
    rf = getattr(net, "receptive_field", None)
    if rf is None:
        return measure_receptive_field(net)
    return int(rf)


def _stat_stages(net: torch.nn.Module) -> int:
    return int(getattr(net, "stat_stages", 0))


def _forward(
    net: torch.nn.Module,
    x: torch.Tensor,
    n_refs: int,
    stats: Any = None,
    stage: int | None = None,
) -> Any:
    """Run ``net`` on a (B, 1 + 2R, H, W) stack: the prediction, or stage ``stage``'s features."""
    c_tgt = x[:, 0:1]
    rest = x[:, 1:].reshape(x.shape[0], n_refs, 2, 1, *x.shape[-2:])
    if stage is not None:
        st = _stats_tensors(stats or [], x)
        return net.stat_features(stage, st, rest[:, :, 0], rest[:, :, 1], c_tgt)  # type: ignore[operator]
    if stats is None:
        return net(rest[:, :, 0], rest[:, :, 1], c_tgt)
    return net(rest[:, :, 0], rest[:, :, 1], c_tgt, scene_stats=_stats_tensors(stats, x))


def _stats_tensors(stats: SceneStats, like: torch.Tensor) -> list[list[tuple[torch.Tensor, ...]]]:
    return [
        [
            tuple(torch.as_tensor(v, dtype=torch.float32, device=like.device) for v in mv)
            for mv in st
        ]
        for st in stats
    ]


def measure_receptive_field(
    net: torch.nn.Module, n_refs: int | None = None, bands: int = 1, start: int = 64
) -> int:
    """Measure the receptive-field radius (px) of ``net`` by back-propagation.

    The gradient of a band of output rows (one ``size_multiple`` period, in the middle
    of a tall probe image) with respect to every input is computed; the radius is the
    farthest input row with a non-zero gradient. The probe grows until that row is
    clear of the probe's edges. Scene statistics, if the network has any, are held
    fixed (those of the probe), as in tiled prediction. Independent of the layer
    arithmetic behind :func:`receptive_field`, which the tests check against it.

    Parameters
    ----------
    net : torch.nn.Module
        The network (a copy is probed; its weights do not matter, only its layers).
    n_refs : int, optional
        Reference pairs (default: 1 if the network has no ``n_refs`` hint, tried 2 on failure).
    bands : int
        Bands per image.
    start : int
        First probe height (px).

    Returns
    -------
    int

    Examples
    --------
    >>> import xstf.models
    >>> measure_receptive_field(xstf.models.create("edcstfn", width=2), n_refs=2)
    5
    """
    import copy

    m = int(getattr(net, "size_multiple", 1))
    side = max(int(getattr(net, "min_side", 1)), 2 * m, 8)
    g = torch.Generator().manual_seed(0)
    # probe a copy with non-negative, averaging weights (each kernel sums to about 1 per
    # output channel) and positive biases, on positive inputs: no (Leaky)ReLU is dead and
    # nothing cancels, so every input within the receptive field gets a non-zero gradient
    net = copy.deepcopy(net).cpu().eval().float()  # the probe inputs are on the CPU
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim >= 2:
                p.copy_(p.abs() + 1e-3)
                p.div_(p.sum() / max(1, p.shape[0] if p.shape[0] > 1 else p.shape[1]))
            else:
                p.copy_(p.abs() + 0.1)
    was_training = net.training
    refs = [n_refs] if n_refs is not None else [1, 2]
    try:
        h = max(start, 4 * m)
        while True:
            h = -(-h // m) * m
            c0 = (h // 2) // m * m
            for r in refs:
                x = torch.rand(1, bands * (1 + 2 * r), h, side, generator=g).requires_grad_(True)
                try:
                    stats = None
                    if _stat_stages(net):
                        with torch.no_grad():
                            stats = scene_statistics(
                                net, x.detach()[0].numpy(), 0.0, 1.0, r, normalised=True
                            )
                    out = _forward(net, x, r, stats)
                except (ValueError, RuntimeError):
                    if r == refs[-1]:
                        raise
                    continue
                out[..., c0 : c0 + m, :].sum().backward()
                assert x.grad is not None
                rows = np.nonzero(x.grad.abs().sum(dim=(0, 1, 3)).numpy() > 0)[0]
                radius = int(max(c0 - rows.min(), rows.max() - (c0 + m - 1)))
                if rows.min() > 0 and rows.max() < h - 1:
                    return radius
                break
            h *= 2
            if h > 8192:
                raise ValueError("the receptive field is wider than 4096 px: not a local network")
    finally:
        net.train(was_training)


def _starts(lo: int, hi: int, own: int) -> list[tuple[int, int]]:
    """Partition ``[lo, hi)`` into spans of at most ``own`` (the last may be shorter)."""
    return [(a, min(a + own, hi)) for a in range(lo, hi, own)]


def _plan(
    out_lo: int,
    out_hi: int,
    *,
    full: int,
    padded: int,
    have: tuple[int, int],
    tile: int,
    halo: int,
    m: int,
) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis: ``(in_start, in_stop, own_start, own_stop)``, scene coordinates.

    Tile inputs start on multiples of ``m`` and have a length that is a multiple of
    ``m``; they extend ``halo`` px beyond what they own (less at the scene edges) and
    up to ``padded`` (replicate padding beyond ``full``). ``have`` is the extent of
    the data at hand, which must cover every input (or reach ``full``).
    """
    if have[0] <= 0 and have[1] >= full and padded <= max(tile, m):
        return [(0, padded, out_lo, out_hi)]  # the whole axis in one tile: no halo needed
    halo_m = -(-halo // m) * m
    # each tile predicts at least half its side (a small tile with a wide context grows)
    own = max(m, (tile - 2 * halo_m) // m * m, (tile // 2) // m * m)
    out = []
    for a, b in _starts(out_lo, out_hi, own):
        s = max(0, (a - halo) // m * m)
        e = min(padded, -(-(b + halo) // m) * m)
        if s < have[0] or (e > have[1] and have[1] < full):
            raise ValueError(
                f"internal: tile input [{s}, {e}) outside the data at hand [{have[0]}, {have[1]})"
            )
        out.append((s, e, a, b))
    return out


def _grid(
    h: int, w: int, full_shape: tuple[int, int], offset: tuple[int, int], m: int, min_side: int
) -> tuple[tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]:
    """Padded scene size and the data extent of the block, per axis."""
    padded = cast(tuple[int, int], tuple(max(min_side, -(-n // m) * m) for n in full_shape))
    have = ((offset[0], offset[0] + h), (offset[1], offset[1] + w))
    return padded, have


def _tiles(
    norm: np.ndarray,
    plans: tuple[list, list],
    offset: tuple[int, int],
    full_shape: tuple[int, int],
) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int], np.ndarray]]:
    """(y plan, x plan, input array padded by edge replication beyond the scene) per tile."""
    oy, ox = offset
    out = []
    for py in plans[0]:
        for px in plans[1]:
            sy, ey = py[0], py[1]
            sx, ex = px[0], px[1]
            cy, cx = min(ey, full_shape[0]), min(ex, full_shape[1])
            arr = norm[:, sy - oy : cy - oy, sx - ox : cx - ox]
            if ey > cy or ex > cx:
                arr = np.pad(arr, ((0, 0), (0, ey - cy), (0, ex - cx)), mode="edge")
            out.append((py, px, arr))
    return out


def _batches(tiles: list, batch_size: int) -> list[list]:
    """Group tiles of equal shape, ``batch_size`` at a time."""
    groups: dict[tuple[int, ...], list] = {}
    for t in tiles:
        groups.setdefault(t[2].shape, []).append(t)
    return [g[k : k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]


def _moments(x: torch.Tensor) -> np.ndarray:
    """(C, 3): count, mean, sum of squared deviations per channel of a (B, C, h, w) tensor."""
    c = x.shape[1]
    n = x.numel() // c
    out = np.empty((c, 3))
    out[:, 0] = n
    for k in range(0, c, 8):  # a few channels at a time: bounded float64 memory
        v = x[:, k : k + 8].detach().to(torch.float64).transpose(0, 1).reshape(-1, n)
        mean = v.mean(1)
        out[k : k + 8, 1] = mean.cpu().numpy()
        out[k : k + 8, 2] = ((v - mean[:, None]) ** 2).sum(1).cpu().numpy()
    return out


def _combine(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    """Chan et al.'s parallel combination of two (C, 3) moment arrays."""
    if a is None:
        return b
    na, nb = a[:, 0], b[:, 0]
    n = na + nb
    d = b[:, 1] - a[:, 1]
    mean = a[:, 1] + d * nb / n
    m2 = a[:, 2] + b[:, 2] + d * d * na * nb / n
    return np.stack([n, mean, m2], 1)


def combine_moments(parts: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Combine per-block moment lists (one (C, 3) array per feature map) into one list."""
    out: list[Any] = [None] * len(parts[0])
    for p in parts:
        out = [_combine(a, b) for a, b in zip(out, p, strict=True)]
    return out


def finalise_moments(moments: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mean, unbiased variance) per channel, as ``torch.var`` over the whole image."""
    return [(m[:, 1], m[:, 2] / np.maximum(m[:, 0] - 1, 1)) for m in moments]


def _dtype(net: torch.nn.Module) -> torch.dtype:
    p = next(iter(net.parameters()), None)
    return torch.float32 if p is None else p.dtype


def channels_last_weights(
    net: torch.nn.Module, device: torch.device | str = "cpu", channels_last: bool | None = None
) -> torch.nn.Module:
    """Put a network's weights in the channels-last memory layout, once, where it pays.

    The values are unchanged (only the strides), so the output is the same up to
    float32 rounding; oneDNN convolutions run faster with it on CPU. The network is
    converted in place and marked, so a second call does nothing: call it before
    threads share the network (:func:`xstf.models.predict` does, under its cache lock).

    Parameters
    ----------
    net : torch.nn.Module
        The network (converted in place).
    device : torch.device or str
        Where the network runs: the default layout choice depends on it.
    channels_last : bool, optional
        Convert (True) or leave as is (False); default: convert on CPU only.

    Returns
    -------
    torch.nn.Module
        ``net`` itself.

    Examples
    --------
    >>> import xstf.models
    >>> net = channels_last_weights(xstf.models.create("edcstfn", width=2), "cpu")
    >>> w = next(p for p in net.parameters() if p.ndim == 4)
    >>> w.is_contiguous(memory_format=torch.channels_last)
    True
    """
    if channels_last is None:
        channels_last = torch.device(device).type == "cpu"
    if channels_last and not getattr(net, "_xstf_channels_last", False):
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        net._xstf_channels_last = True  # type: ignore[assignment]
    return net


#: compiled forward per network (weak: dropped with the network); None marks a failure
_COMPILED: weakref.WeakKeyDictionary[torch.nn.Module, Any] = weakref.WeakKeyDictionary()
#: dynamo compiles are not thread-safe: one compiled forward at a time (each uses every core)
_COMPILE_LOCK = threading.Lock()


def _compile_failed(net: torch.nn.Module, err: BaseException) -> None:
    _COMPILED[net] = None
    warnings.warn(
        f"torch.compile failed for {type(net).__name__} ({type(err).__name__}: "
        f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else 'no message'}); "
        "predicting with the eager network instead (same result, slower). Pass compile=False "
        "to skip the attempt",
        RuntimeWarning,
        stacklevel=3,
    )


def _run(
    net: torch.nn.Module, x: torch.Tensor, n_refs: int, stats: Any, compile: bool
) -> torch.Tensor:
    """The network's prediction on ``x``: through ``torch.compile`` if asked and it works."""
    if compile:
        with _COMPILE_LOCK:
            if net not in _COMPILED:
                try:
                    _COMPILED[net] = torch.compile(net, dynamic=None)
                except Exception as err:
                    _compile_failed(net, err)
            cnet = _COMPILED.get(net)
            if cnet is not None:
                try:
                    return cast(torch.Tensor, _forward(cnet, x, n_refs, stats))
                except Exception as err:  # a compile error shows at the first call
                    _compile_failed(net, err)
    return cast(torch.Tensor, _forward(net, x, n_refs, stats))


def _ctx(dev: torch.device, amp: bool) -> Any:
    cast = torch.bfloat16 if dev.type == "cpu" else torch.float16
    return torch.autocast(device_type=dev.type, dtype=cast, enabled=amp)


def _prepare(
    net: torch.nn.Module,
    stack: np.ndarray,
    mean: float,
    std: float,
    level: float,
    normalised: bool,
) -> tuple[np.ndarray, np.ndarray]:
    if normalised:
        a = np.asarray(stack, dtype=np.float32)
        return a, np.ones(a.shape, dtype=bool)
    return normalise(np.asarray(stack, dtype=np.float64), mean, std, level)


def _geometry(
    net: torch.nn.Module,
    shape: tuple[int, int],
    offset: tuple[int, int] | None,
    full_shape: tuple[int, int] | None,
    multiple: int,
) -> tuple[tuple[int, int], tuple[int, int], int, int]:
    offset = (0, 0) if offset is None else (int(offset[0]), int(offset[1]))
    full_shape = tuple(shape) if full_shape is None else (int(full_shape[0]), int(full_shape[1]))  # type: ignore[assignment]
    m = max(int(multiple), int(getattr(net, "size_multiple", 1)))
    min_side = int(getattr(net, "min_side", 1))
    return offset, full_shape, m, min_side  # type: ignore[return-value]


def _stage_moments(
    net: torch.nn.Module,
    norm: np.ndarray,
    stage: int,
    stats: SceneStats,
    *,
    n_refs: int,
    tile: int,
    halo: int,
    batch_size: int,
    dev: torch.device,
    amp: bool,
    offset: tuple[int, int],
    full_shape: tuple[int, int],
    m: int,
    min_side: int,
    own: tuple[tuple[int, int], tuple[int, int]],
) -> list[np.ndarray]:
    """Moments of stage ``stage``'s feature maps over the pixels this block owns."""
    _, h, w = norm.shape
    padded, have = _grid(h, w, full_shape, offset, m, min_side)
    plans = tuple(
        _plan(
            *own[k], full=full_shape[k], padded=padded[k], have=have[k], tile=tile, halo=halo, m=m
        )
        for k in (0, 1)
    )
    acc: list[Any] | None = None
    for group in _batches(_tiles(norm, plans, offset, full_shape), batch_size):  # type: ignore[arg-type]
        x = torch.from_numpy(np.stack([t[2] for t in group])).to(dev, _dtype(net))
        with torch.inference_mode(), _ctx(dev, amp):
            feats = _forward(net, x, n_refs, stats, stage=stage)
        for i, (py, px, _) in enumerate(group):
            parts = []
            for f, s in feats:
                ys, xs = (py[2] - py[0]) // s, (px[2] - px[0]) // s
                ye, xe = (py[3] - py[0]) // s, (px[3] - px[0]) // s
                parts.append(_moments(f[i : i + 1, :, ys:ye, xs:xe]))
            acc = (
                parts if acc is None else [_combine(a, b) for a, b in zip(acc, parts, strict=True)]
            )
    assert acc is not None
    return acc


def _owned_aligned(
    region: tuple[int, int, int, int], full_shape: tuple[int, int], m: int, min_side: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The pixels a block owns for scene statistics: its region with edges moved to multiples of m."""
    out = []
    for lo, hi, n in ((region[0], region[1], full_shape[0]), (region[2], region[3], full_shape[1])):
        padded = max(min_side, -(-n // m) * m)
        a = -(-lo // m) * m
        b = padded if hi >= n else -(-hi // m) * m
        out.append((a, b))
    return out[0], out[1]


def block_moments(
    net: torch.nn.Module,
    stack: np.ndarray,
    stage: int,
    stats: SceneStats,
    mean: float,
    std: float,
    n_refs: int,
    *,
    region: tuple[int, int, int, int],
    offset: tuple[int, int],
    full_shape: tuple[int, int],
    tiling: _Tiling,
    level: float = 0.0,
    normalised: bool = False,
) -> list[np.ndarray]:
    """Partial moments of scene-statistics stage ``stage`` over one block (dask chunk) of a date.

    ``stack`` holds the block with its halo, its top-left pixel at scene ``offset``;
    ``region`` (y0, y1, x0, x1) is the chunk. Combine the blocks of a date with
    :func:`combine_moments` and :func:`finalise_moments`.
    """
    dev = torch.device(tiling.device)
    norm, _ = _prepare(net, stack, mean, std, level, normalised)
    offset, full_shape, m, min_side = _geometry(
        net, norm.shape[1:], offset, full_shape, tiling.multiple
    )
    halo = receptive_field(net) if tiling.overlap is None else int(tiling.overlap)
    own = _owned_aligned(region, full_shape, m, min_side)
    if own[0][0] >= own[0][1] or own[1][0] >= own[1][1]:
        return _empty_moments(net, norm, stage, stats, n_refs, dev)
    return _stage_moments(
        net, norm, stage, stats, n_refs=n_refs, tile=tiling.tile, halo=halo,
        batch_size=tiling.batch_size, dev=dev, amp=tiling.amp, offset=offset,
        full_shape=full_shape, m=m, min_side=min_side, own=own,
    )  # fmt: skip


def _empty_moments(
    net: torch.nn.Module,
    norm: np.ndarray,
    stage: int,
    stats: SceneStats,
    n_refs: int,
    dev: torch.device,
) -> list[np.ndarray]:
    """Zero-count moments with the right channel counts (a block that owns no aligned pixel)."""
    side = max(int(getattr(net, "min_side", 1)), int(getattr(net, "size_multiple", 1)), 8)
    x = torch.zeros(1, norm.shape[0], side, side, device=dev)
    with torch.inference_mode():
        feats = _forward(net, x, n_refs, stats, stage=stage)
    return [np.zeros((f.shape[1], 3)) for f, _ in feats]


def scene_statistics(
    net: torch.nn.Module,
    stack: np.ndarray,
    mean: float,
    std: float,
    n_refs: int,
    *,
    level: float = 0.0,
    normalised: bool = False,
    **tiling: Any,
) -> SceneStats:
    """The per-image statistics of a network (AdaIN, switchable normalisation) over a whole date.

    Computed stage by stage, tile by tile, equal to what the network computes in one
    forward pass on the whole date (see the module docstring).

    Parameters
    ----------
    net : torch.nn.Module
        The network (eval mode, on ``device``), with ``stat_stages`` > 0 (else ``[]``).
    stack : numpy.ndarray
        ``(1 + 2·n_refs, H, W)`` in K (or already normalised, ``normalised=True``).
    mean, std, n_refs, level
        As :func:`predict_image`.
    normalised : bool
        ``stack`` is already normalised (no NaN).
    **tiling
        ``tile``, ``overlap``, ``batch_size``, ``device``, ``amp``, ``multiple``: as
        :func:`predict_image` (the same defaults).

    Returns
    -------
    list
        Per stage, per feature map, ``(mean, var)`` per channel (float64 arrays).

    Examples
    --------
    >>> import numpy as np, xstf
    >>> net = xstf.models.create("ganstfm").eval()
    >>> stack = np.random.default_rng(0).normal(290, 3, (3, 40, 40))
    >>> st = scene_statistics(net, stack, 290.0, 5.0, 1, tile=24)
    >>> len(st), st[0][0][0].shape
    (8, (1,))
    """
    options = _Tiling(**tiling)
    norm, _ = _prepare(net, stack, mean, std, level, normalised)
    h, w = norm.shape[1:]
    stats: SceneStats = []
    for stage in range(_stat_stages(net)):
        mom = block_moments(
            net, norm, stage, stats, 0.0, 1.0, n_refs, region=(0, h, 0, w), offset=(0, 0),
            full_shape=(h, w), tiling=options, normalised=True,
        )  # fmt: skip
        stats.append(finalise_moments(mom))
    return stats


def predict_image(
    net: torch.nn.Module,
    stack: np.ndarray,
    mean: float,
    std: float,
    n_refs: int,
    *,
    tile: int = 1024,
    overlap: int | None = None,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    amp: bool = False,
    multiple: int = 1,
    level: float = 0.0,
    scene_stats: SceneStats | None = None,
    offset: tuple[int, int] | None = None,
    full_shape: tuple[int, int] | None = None,
    region: tuple[int, int, int, int] | None = None,
    channels_last: bool | None = None,
    compile: bool = False,
) -> np.ndarray:
    """Predict one date (or one block of it) from its input stack, in tiles.

    Equal to one forward pass of ``net`` on the whole date, up to float32 rounding,
    when ``overlap`` is at least the receptive field (the default); see the module
    docstring.

    Parameters
    ----------
    net : torch.nn.Module
        The prediction network (eval mode, on ``device``).
    stack : numpy.ndarray
        ``(1 + 2·n_refs, H, W)`` in K: target coarse, then coarse and fine of each
        reference pair.
    mean, std : float
        The model's normalisation.
    n_refs : int
        Reference pairs.
    tile : int
        Largest tile side (px), context included. A date that fits is predicted in one
        piece.
    overlap : int, optional
        Context (px) each tile reads beyond the pixels it predicts; default
        :func:`receptive_field` (exact). Smaller: faster, not exact near tile edges.
    batch_size : int
        Tiles per forward pass.
    device : torch.device or str
        Where ``net`` lives.
    amp : bool
        Autocast (bfloat16 on CPU, float16 on CUDA): faster on hardware with native
        support, not equal to the float32 result (about 1e-2 of the std).
    multiple : int
        Tile origins and sizes are multiples of this (models that downsample; the
        network's ``size_multiple`` if larger).
    level : float
        The date's level (K), subtracted from every input before ``mean``/``std`` and
        added back to the output: the scene mean of the target coarse image for a
        ``"date_level"`` model (the whole scene's, also when ``stack`` is a part of
        it), 0 for a ``"global"`` one.
    scene_stats : list, optional
        The date's scene statistics (:func:`scene_statistics`); computed from ``stack``
        when needed and not given (``stack`` must then be the whole date).
    offset, full_shape, region : optional
        For a block of a date: the scene position of ``stack[:, 0, 0]``, the scene
        shape, and the part ``(y0, y1, x0, x1)`` (scene px) to predict; ``stack`` must
        hold ``region`` plus ``overlap + 2·multiple`` px of context where the scene
        has them. Default: ``stack`` is the whole date.
    channels_last : bool, optional
        Convert the network's weights to the channels-last memory layout (in place,
        values unchanged), which oneDNN convolutions run faster with; default: on CPU.
    compile : bool
        Run the prediction pass through ``torch.compile`` (inductor: fused
        convolution + activation kernels; equal to the eager result up to float32
        rounding). The first call per network and tile shape compiles (about a minute
        or two on a small CPU; inductor caches the kernels on disk for the next
        process), so it pays for large or many dates. If compiling fails, a
        RuntimeWarning says why and the eager network predicts.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` (or the region's shape) float32 prediction in K, NaN where the
        target coarse is NaN.

    Examples
    --------
    >>> import numpy as np, xstf
    >>> net = xstf.models.create("edcstfn")
    >>> stack = np.full((5, 40, 40), 290.0, dtype="float32")  # c_tgt, (c_ref, f_ref) x 2
    >>> predict_image(net.eval(), stack, 290.0, 5.0, 2, tile=32).shape
    (40, 40)
    """
    dev = torch.device(device)
    level = float(level)
    h, w = np.shape(stack)[1:]
    offset, full_shape, m, min_side = _geometry(net, (h, w), offset, full_shape, multiple)
    region = (offset[0], offset[0] + h, offset[1], offset[1] + w) if region is None else region
    out_shape = (region[1] - region[0], region[3] - region[2])
    if not np.isfinite(level):  # no valid target coarse pixel: nothing to predict
        return np.full(out_shape, np.nan, dtype=np.float32)
    if tile < 8:
        raise ValueError(f"tile must be >= 8 px, got {tile}")
    halo = receptive_field(net) if overlap is None else int(overlap)
    if halo < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    norm, valid = normalise(np.asarray(stack, dtype=np.float64), mean, std, level)
    channels_last_weights(net, dev, channels_last)
    padded, have = _grid(h, w, full_shape, offset, m, min_side)
    plans = (
        _plan(region[0], region[1], full=full_shape[0], padded=padded[0], have=have[0], tile=tile, halo=halo, m=m),
        _plan(region[2], region[3], full=full_shape[1], padded=padded[1], have=have[1], tile=tile, halo=halo, m=m),
    )  # fmt: skip
    if _stat_stages(net) and scene_stats is None and (len(plans[0]) > 1 or len(plans[1]) > 1):
        if offset != (0, 0) or full_shape != (h, w):
            raise ValueError(
                "scene_stats are needed to predict a block of a date with this network"
            )
        scene_stats = scene_statistics(
            net, norm, 0.0, 1.0, n_refs, tile=tile, overlap=halo, batch_size=batch_size,
            device=dev, amp=amp, multiple=m, normalised=True,
        )  # fmt: skip
    out = np.empty(out_shape, dtype=np.float32)
    for group in _batches(_tiles(norm, plans, offset, full_shape), batch_size):
        x = torch.from_numpy(np.stack([t[2] for t in group])).to(dev, _dtype(net))
        with torch.inference_mode(), _ctx(dev, amp):
            pred = _run(net, x, n_refs, scene_stats, compile)[:, 0].float().cpu().numpy()
        for (py, px, _), p in zip(group, pred, strict=True):
            out[py[2] - region[0] : py[3] - region[0], px[2] - region[2] : px[3] - region[2]] = p[
                py[2] - py[0] : py[3] - py[0], px[2] - px[0] : px[3] - px[0]
            ]
    res = (out.astype(np.float64) * std + mean + level).astype(np.float32)
    vy, vx = region[0] - offset[0], region[2] - offset[1]
    res[~valid[0, vy : vy + out_shape[0], vx : vx + out_shape[1]]] = np.nan
    return res


def _append_stats(stats: SceneStats | None, parts: Sequence[Sequence[np.ndarray]]) -> SceneStats:
    return [*(stats or []), finalise_moments(combine_moments(parts))]


def _moments_task(load_net: Callable[[], torch.nn.Module], block: np.ndarray, stage: int,
                  stats: SceneStats | None, level: Any, tiling: _Tiling,
                  kw: dict) -> list[np.ndarray]:  # fmt: skip
    return block_moments(
        load_net(), block, stage, stats or [], level=float(level), tiling=tiling, **kw
    )


def _predict_task(load_net: Callable[[], torch.nn.Module], block: np.ndarray,
                  stats: SceneStats | None, level: Any, kw: dict) -> np.ndarray:  # fmt: skip
    return predict_image(load_net(), block, scene_stats=stats, level=float(level), **kw)


def predict_stack(
    stack: Any,
    levels: Any,
    *,
    load_net: Callable[[], torch.nn.Module],
    template: torch.nn.Module,
    mean: float,
    std: float,
    n_refs: int,
    compile: bool = False,
    **tiling: Any,
) -> Any:
    """Predict every date of a ``(time, 1 + 2·n_refs, H, W)`` stack in K: numpy in, numpy out; dask in, dask out.

    On a dask stack nothing runs until computed: per date, each spatial chunk is
    predicted from the chunk plus ``overlap + 2·multiple`` px of context, after the
    scene statistics (if the network has any) have been combined over all the
    chunks of that date; the result has the stack's spatial chunks, one date per
    chunk, and equals the numpy result (see the module docstring).

    Parameters
    ----------
    stack : numpy.ndarray or dask.array.Array
        Input stacks per date (K).
    levels : array-like of float, optional
        Each date's level (numpy or dask), or None (0).
    load_net : callable
        Returns the network in eval mode on ``device`` (called inside the tasks).
    template : torch.nn.Module
        The same network (read for its receptive field and options; not run).
    mean, std, n_refs, compile
        As :func:`predict_image`.
    **tiling
        ``tile``, ``overlap``, ``batch_size``, ``device``, ``amp``, ``multiple``: as
        :func:`predict_image` (the same defaults; ``device`` a string, sent to the tasks).

    Returns
    -------
    numpy.ndarray or dask.array.Array
        ``(time, H, W)`` float32.

    Examples
    --------
    >>> import numpy as np, xstf
    >>> net = xstf.models.create("edcstfn", width=2).eval()
    >>> stack = np.full((2, 5, 20, 20), 290.0, dtype="float32")
    >>> predict_stack(stack, None, load_net=lambda: net, template=net, mean=290.0, std=5.0,
    ...               n_refs=2).shape
    (2, 20, 20)
    """
    given = _Tiling(**tiling)
    halo = receptive_field(template) if given.overlap is None else int(given.overlap)
    m = max(int(given.multiple), int(getattr(template, "size_multiple", 1)))
    options = replace(given, tile=int(given.tile), overlap=halo,
                      batch_size=int(given.batch_size), amp=bool(given.amp), multiple=m)  # fmt: skip
    common: dict[str, Any] = dict(mean=mean, std=std, n_refs=n_refs)
    # predict_image's keywords; the statistics passes (block_moments) run eager
    kw = {**common, **asdict(options), "compile": bool(compile)}
    t, _, h, w = stack.shape
    if isinstance(stack, np.ndarray):
        lv = np.zeros(t) if levels is None else np.asarray(levels, dtype=np.float64).reshape(-1)
        net = load_net()
        return np.stack([predict_image(net, stack[i], level=float(lv[i]), **kw) for i in range(t)])
    import dask
    import dask.array as da

    d = halo + 2 * m
    ys = np.cumsum((0, *stack.chunks[2]))
    xs = np.cumsum((0, *stack.chunks[3]))
    stages = _stat_stages(template)
    task_m, task_p = dask.delayed(_moments_task, pure=True), dask.delayed(_predict_task, pure=True)
    dates = []
    for i in range(t):
        level = 0.0 if levels is None else levels[i]
        blocks = {}
        for a in range(len(ys) - 1):
            for b in range(len(xs) - 1):
                y0, y1, x0, x1 = int(ys[a]), int(ys[a + 1]), int(xs[b]), int(xs[b + 1])
                sy, sx = max(0, y0 - d), max(0, x0 - d)
                blk = stack[i, :, sy : min(h, y1 + d), sx : min(w, x1 + d)]
                geo = dict(offset=(sy, sx), full_shape=(h, w), region=(y0, y1, x0, x1))
                blocks[a, b] = (blk, geo)
        stats: Any = None
        for stage in range(stages):
            parts = [
                task_m(load_net, blk, stage, stats, level, options, {**common, **geo})
                for blk, geo in blocks.values()
            ]
            stats = dask.delayed(_append_stats, pure=True)(stats, parts)
        rows = []
        for a in range(len(ys) - 1):
            row = []
            for b in range(len(xs) - 1):
                blk, geo = blocks[a, b]
                shape = (int(ys[a + 1] - ys[a]), int(xs[b + 1] - xs[b]))
                task = task_p(load_net, blk, stats, level, {**kw, **geo})
                row.append(
                    da.from_delayed(
                        task, shape=shape, dtype=np.float32, meta=np.empty((0, 0), np.float32)
                    )
                )
            rows.append(row)
        dates.append(da.block(rows))
    return da.stack(dates)
