"""Built-in data: a realistic, seeded synthetic LST cube with known fine truth on every date.

The generator (:func:`synthetic`) models what makes LST fusion hard:

- a 30 m land-cover map with coherent patches: a meandering river, a dense urban
  core with suburbs, forest, and a mosaic of crop parcels and bare fields;
- per-class annual cycles (mean, amplitude, phase), parcel crop calendars
  (vegetated, then harvested and bare), static fine-scale texture and an urban
  heat island, all stronger in summer;
- day-to-day weather: a regional AR(1) anomaly to which classes respond with
  different sensitivities, plus a spatially smooth anomaly at MODIS scale;
- "strong variability" dates (post-rain cooling of vegetated/bare classes only,
  cold fronts crossing the scene) where class responses diverge;
- MODIS as it sees the scene: emissivity-like class bias, area aggregation to
  ~1 km cells on a grid offset from Landsat's, a point-spread blur, a sensor bias
  that changes from date to date, noise, then bicubic resampling back onto the
  fine grid; Landsat = truth + noise on a 16-day cadence;
- spatially coherent clouds, shared by both sensors on a date (Terra and Landsat
  pass within the same hour), as NaN.

Every date is generated independently from ``(seed, day)``, so a dask-backed cube
(``chunks=...``) holds the same numbers as a numpy one, whatever the chunks.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import xarray as xr

# scipy and rioxarray are imported where used, so that `import xstf` stays light

__all__ = ["CLASSES", "SyntheticParams", "synthetic"]

#: Land-cover classes of the synthetic cube: code -> name.
CLASSES: dict[int, str] = {
    0: "water",
    1: "dense_urban",
    2: "suburban",
    3: "forest",
    4: "cropland",
    5: "bare_soil",
}

# Per-class daytime LST climatology (K): annual mean, half peak-to-peak amplitude,
# day of year of the peak, sensitivity to the regional weather anomaly, and an
# emissivity-like MODIS-minus-Landsat offset. Tuned against the Orléans pairs
# (see docs/calibration.md).
_CLIMATE = np.array(
    [
        # mean,  amp,   peak, sens,  modis_offset
        [287.0, 8.0, 215.0, 0.45, 0.3],  # water
        [294.25, 14.75, 195.0, 1.00, -0.8],  # dense urban
        [292.5, 13.5, 195.0, 0.95, -0.5],  # suburban
        [288.75, 11.25, 195.0, 0.80, 0.3],  # forest
        [291.0, 13.0, 190.0, 1.10, 0.0],  # cropland (vegetated state)
        [293.5, 15.5, 195.0, 1.30, -0.3],  # bare soil
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class SyntheticParams:
    """All knobs of :func:`synthetic` (stored as JSON in the cube's attrs).

    Examples
    --------
    >>> import json, xstf
    >>> ds = xstf.datasets.synthetic(size=16, days=2)
    >>> SyntheticParams(**json.loads(ds.attrs["synthetic_parameters"])).ny
    16
    """

    ny: int
    nx: int
    days: int
    start: str
    seed: int
    cloud_fraction: float
    ratio: float
    revisit: int
    landsat_offset: int
    fine_noise: float
    coarse_noise: float
    coarse_bias: float
    coarse_bias_sd: float
    class_offset_sd: float
    psf_sigma: float
    event_rate: float
    resampling: str


def _cubic_weights(pos: np.ndarray, n_in: int, kind: str) -> np.ndarray:
    """Row-stochastic matrix (len(pos), n_in) interpolating samples at fractional ``pos``."""
    w = np.zeros((pos.size, n_in), dtype=np.float64)
    base = np.floor(pos).astype(int)
    frac = pos - base
    if kind == "bilinear":
        taps = {0: 1.0 - frac, 1: frac}
    elif kind == "bicubic":  # Keys cubic convolution, a = -0.5
        a = -0.5

        def k(s: np.ndarray) -> np.ndarray:
            s = np.abs(s)
            return np.where(
                s <= 1,
                (a + 2) * s**3 - (a + 3) * s**2 + 1,
                np.where(s < 2, a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a, 0.0),
            )

        taps = {d: k(frac - d) for d in (-1, 0, 1, 2)}
    else:
        raise ValueError(f"resampling must be 'bilinear' or 'bicubic', got {kind!r}")
    rows = np.arange(pos.size)
    for d, wt in taps.items():
        np.add.at(w, (rows, np.clip(base + d, 0, n_in - 1)), wt)
    return w


def _smooth_field(rng: np.random.Generator, ny: int, nx: int, scale: float) -> np.ndarray:
    """Standardised Gaussian random field with correlation length ~``scale`` pixels."""
    gy, gx = int(np.ceil(ny / scale)) + 4, int(np.ceil(nx / scale)) + 4
    coarse = rng.standard_normal((gy, gx))
    wy = _cubic_weights(np.arange(ny) / scale + 1.5, gy, "bicubic")
    wx = _cubic_weights(np.arange(nx) / scale + 1.5, gx, "bicubic")
    f = wy @ coarse @ wx.T
    return (f - f.mean()) / (f.std() + 1e-12)


@functools.lru_cache(maxsize=4)
def _static(p: SyntheticParams) -> dict[str, Any]:
    """Everything that does not change with time (cached per process: workers build it once)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    ny, nx = p.ny, p.nx
    rng = np.random.default_rng([p.seed, 0xC0FFEE])
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    size = float(max(ny, nx))

    # Crop parcels: Voronoi cells of jittered seeds, ~15 px (450 m) across.
    n_seed = max(4, int(ny * nx / 15.0**2))
    seeds = rng.uniform([0, 0], [ny, nx], size=(n_seed, 2))
    _, parcel = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]), workers=1)
    parcel = parcel.reshape(ny, nx).astype(np.int32)

    # Urban core: a noisy radial density around a random centre.
    cy, cx = rng.uniform(0.35, 0.65, 2) * (ny, nx)
    r = np.hypot(yy - cy, xx - cx) / (0.22 * size)
    density = np.exp(-(r**2)) + 0.25 * _smooth_field(rng, ny, nx, 25.0)
    veg = _smooth_field(rng, ny, nx, 40.0)
    cover = np.full((ny, nx), 4, dtype=np.int8)  # cropland by default
    parcel_bare = rng.uniform(size=n_seed) < 0.25
    cover[parcel_bare[parcel]] = 5
    cover[veg > 0.7] = 3
    cover[density > 0.45] = 2
    cover[density > 0.78] = 1
    # A meandering river crossing the scene west-east, ~240 m wide, plus its banks' forest.
    phase, wavelength = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.2) * size
    centre = ny * rng.uniform(0.3, 0.7) + 0.08 * size * np.sin(2 * np.pi * xx / wavelength + phase)
    centre += 4.0 * _smooth_field(rng, 1, nx, 30.0)
    dist = np.abs(yy - centre)
    cover[(dist < 12) & (cover >= 3)] = 3
    cover[dist < 4] = 0

    urban = np.isin(cover, (1, 2)).astype(np.float64) * np.where(cover == 1, 1.0, 0.5)
    uhi = ndimage.gaussian_filter(urban, sigma=size / 40.0)
    uhi /= uhi.max() + 1e-12
    texture = 0.5 * _smooth_field(rng, ny, nx, 2.0) + 0.5 * rng.standard_normal((ny, nx))
    tex_scale = np.array([0.3, 2.0, 1.6, 0.8, 1.0, 1.4])[cover]  # K
    # Smooth MODIS-scale weather patterns and a cold-front ramp.
    basis = np.stack([_smooth_field(rng, ny, nx, size / 2.5) for _ in range(3)])
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((yy - ny / 2) * np.sin(angle) + (xx - nx / 2) * np.cos(angle)) / size
    # Parcel crop calendars: green-up and harvest days, plus a static offset.
    green = rng.uniform(70, 120, n_seed)
    harvest = rng.uniform(170, 230, n_seed)
    parcel_offset = rng.normal(0.0, 1.2, n_seed)

    # MODIS grid: cells of `ratio` fine pixels, offset from the Landsat grid.
    oy, ox = rng.uniform(0, p.ratio, 2)
    iy = np.floor((np.arange(ny) + oy) / p.ratio).astype(int)
    ix = np.floor((np.arange(nx) + ox) / p.ratio).astype(int)
    ncy, ncx = int(iy[-1]) + 1, int(ix[-1]) + 1
    cell = (iy[:, None] * ncx + ix[None, :]).ravel()
    counts = np.bincount(cell, minlength=ncy * ncx).astype(np.float64)
    pos_y = (np.arange(ny) + 0.5 + oy) / p.ratio - 0.5
    pos_x = (np.arange(nx) + 0.5 + ox) / p.ratio - 0.5
    return {
        "cover": cover,
        "parcel": parcel,
        "crop": cover == 4,
        "uhi": uhi.astype(np.float32),
        "texture": (texture * tex_scale).astype(np.float32),
        "basis": basis.astype(np.float32),
        "ramp": ramp.astype(np.float32),
        "green": green,
        "harvest": harvest,
        "parcel_offset": parcel_offset,
        "cell": cell,
        "counts": counts,
        "coarse_shape": (ncy, ncx),
        "wy": _cubic_weights(pos_y, ncy, p.resampling),
        "wx": _cubic_weights(pos_x, ncx, p.resampling),
        "iy": iy,
        "ix": ix,
    }


@functools.lru_cache(maxsize=4)
def _temporal(p: SyntheticParams) -> dict[str, np.ndarray]:
    """Per-day scalars: weather anomaly, MODIS bias, events, cloud cover, Landsat overpasses."""
    rng = np.random.default_rng([p.seed, 0xDA7E])
    n = p.days
    anomaly = np.zeros(n)
    shocks = rng.normal(0.0, 2.6, n)
    for t in range(n):  # AR(1) regional weather anomaly (K)
        anomaly[t] = (0.7 * anomaly[t - 1] if t else 0.0) + shocks[t]
    smooth = rng.normal(0.0, 1.0, (n, 3))
    doy = pd.date_range(p.start, periods=n, freq="D").day_of_year.to_numpy().astype(float)
    season = np.cos(2 * np.pi * (doy - 195.0) / 365.25)  # +1 midsummer, -1 midwinter
    bias = p.coarse_bias - 1.0 * season + rng.normal(0.0, p.coarse_bias_sd, n)
    # MODIS-minus-Landsat offsets per class change from date to date (emissivity, view angle)
    class_offset = _CLIMATE[:, 4] + rng.normal(0.0, p.class_offset_sd, (n, len(_CLIMATE)))
    event_draw = rng.uniform(size=n)
    events = np.full(n, "", dtype=object)
    events[event_draw < p.event_rate * 0.6] = "rain"
    events[(event_draw >= p.event_rate * 0.6) & (event_draw < p.event_rate)] = "cold_front"
    event_size = rng.uniform(4.0, 8.0, n)
    cf = p.cloud_fraction
    if cf <= 0.0:
        cloud = np.zeros(n)
    elif cf >= 1.0:
        cloud = np.ones(n)
    else:  # U-shaped: many clear days, many overcast ones, mean = cloud_fraction
        cloud = rng.beta(cf * 0.9, (1.0 - cf) * 0.9, n)
        cloud[cloud < 0.02] = 0.0
    landsat = (np.arange(n) - p.landsat_offset) % p.revisit == 0
    return {
        "doy": doy,
        "season": season,
        "anomaly": anomaly,
        "smooth": smooth,
        "bias": bias,
        "class_offset": class_offset,
        "events": events,
        "event_size": event_size,
        "cloud": cloud,
        "landsat": landsat,
    }


def _truth(p: SyntheticParams, s: dict[str, Any], tm: dict[str, np.ndarray], t: int) -> np.ndarray:
    doy, season, anomaly = tm["doy"][t], tm["season"][t], tm["anomaly"][t]
    mean, amp, peak, sens = (_CLIMATE[:, k] for k in range(4))
    lut = mean + amp * np.cos(2 * np.pi * (doy - peak) / 365.25) + sens * anomaly
    summer = 0.55 + 0.45 * season  # contrasts are stronger in summer
    rng = np.random.default_rng([p.seed, t, 1])
    event, size = tm["events"][t], tm["event_size"][t]
    if event == "rain":  # evaporative cooling of vegetated/bare surfaces only
        lut = lut - size * np.array([0.0, 0.15, 0.35, 0.7, 1.0, 1.1])
    # Parcels: vegetated between green-up and harvest (cooler), bare otherwise.
    vegetated = (doy >= s["green"]) & (doy <= s["harvest"])
    parcel_term = s["parcel_offset"] + np.where(vegetated, -3.0 * summer, 1.5 * summer)
    out = lut[s["cover"]] + np.where(s["crop"], parcel_term[s["parcel"]], 0.0)
    out += summer * (0.8 * s["texture"] + 3.0 * s["uhi"])
    out += 0.6 * np.tensordot(tm["smooth"][t], s["basis"], axes=1)
    if event == "rain":
        cell = _smooth_field(rng, p.ny, p.nx, max(p.ny, p.nx) / 2.0)
        out += 0.5 * size * np.clip(cell, 0, None) * np.array([0, 0, 0.5, 1, 1, 1])[s["cover"]] * -1
    elif event == "cold_front":
        out += size * 0.8 * np.tanh(4.0 * s["ramp"] + rng.uniform(-1, 1))
    return out.astype(np.float32)


def _render(p: SyntheticParams, t: int) -> np.ndarray:
    """One date: (3, ny, nx) float32 stack of truth, fine, coarse."""
    from scipy import ndimage

    s, tm = _static(p), _temporal(p)
    truth = _truth(p, s, tm, t)
    rng = np.random.default_rng([p.seed, t, 2])
    # Clouds: one coherent field per date, seen by both sensors.
    frac = tm["cloud"][t]
    cloudy = np.zeros((p.ny, p.nx), dtype=bool)
    if frac > 0:
        field = _smooth_field(rng, p.ny, p.nx, 40.0) + 0.15 * _smooth_field(rng, p.ny, p.nx, 6.0)
        cloudy = field >= np.quantile(field, 1.0 - frac)
    # MODIS: class offsets, area aggregation, PSF blur, bias, noise, resampling back.
    seen = truth.astype(np.float64) + tm["class_offset"][t][s["cover"]]
    ncy, ncx = s["coarse_shape"]
    agg = np.bincount(s["cell"], weights=seen.ravel(), minlength=ncy * ncx) / np.maximum(
        s["counts"], 1
    )
    agg = agg.reshape(ncy, ncx)
    agg = ndimage.gaussian_filter(agg, p.psf_sigma, mode="nearest")
    agg += tm["bias"][t] + rng.normal(0.0, p.coarse_noise, agg.shape)
    cloud_share = np.bincount(s["cell"], weights=cloudy.ravel(), minlength=ncy * ncx)
    cloud_share = (cloud_share / np.maximum(s["counts"], 1)).reshape(ncy, ncx)
    coarse_missing = cloud_share > 0.25  # MODIS cloud mask is conservative
    if coarse_missing.all():
        coarse = np.full((p.ny, p.nx), np.nan, dtype=np.float32)
    else:
        if coarse_missing.any():  # fill gaps from valid neighbours so the interpolation stays local
            idx = ndimage.distance_transform_edt(
                coarse_missing, return_distances=False, return_indices=True
            )
            agg = agg[tuple(idx)]
        coarse = (s["wy"] @ agg @ s["wx"].T).astype(np.float32)
        coarse[coarse_missing[s["iy"][:, None], s["ix"][None, :]]] = np.nan
    if tm["landsat"][t]:
        fine = truth + rng.normal(0.0, p.fine_noise, truth.shape).astype(np.float32)
        fine[cloudy] = np.nan
    else:
        fine = np.full_like(truth, np.nan)
    return np.stack([truth, fine, coarse])


def _render_block(p: SyntheticParams, days: np.ndarray) -> np.ndarray:
    return np.stack([_render(p, int(t)) for t in days], axis=1)


def synthetic(
    size: int | tuple[int, int] = 256,
    days: int = 365,
    *,
    start: str = "2021-01-01",
    seed: int = 0,
    cloud_fraction: float = 0.3,
    ratio: float = 1000.0 / 30.0,
    revisit: int = 16,
    landsat_offset: int = 0,
    fine_noise: float = 0.5,
    coarse_noise: float = 1.5,
    coarse_bias: float = 0.3,
    coarse_bias_sd: float = 0.8,
    class_offset_sd: float = 0.8,
    psf_sigma: float = 0.5,
    event_rate: float = 0.06,
    resampling: str = "bicubic",
    chunks: dict[str, int] | int | str | None = None,
) -> xr.Dataset:
    """A physically plausible LST cube with known fine truth on every date.

    Parameters
    ----------
    size : int or (int, int)
        Scene size in fine (30 m) pixels, ``n`` or ``(ny, nx)``.
    days : int
        Number of daily dates from ``start``.
    start : str
        First date.
    seed : int
        Seed; the same seed gives the same cube.
    cloud_fraction : float
        Mean share of cloudy pixels per date (0–1). Per-date cover is U-shaped
        (many clear and many overcast dates), as in reality.
    ratio : float
        Coarse-to-fine pixel-size ratio (MODIS 1 km / Landsat 30 m by default).
    revisit : int
        Landsat revisit in days.
    landsat_offset : int
        Day index of the first Landsat overpass.
    fine_noise : float
        Landsat noise standard deviation (K).
    coarse_noise : float
        MODIS noise per 1 km cell (K).
    coarse_bias, coarse_bias_sd : float
        MODIS-minus-Landsat bias: mean (K), plus a seasonal term (+1 K in winter,
        −1 K in summer) and a date-to-date random part of this standard deviation.
    class_offset_sd : float
        Date-to-date standard deviation of the per-class MODIS-minus-Landsat offsets
        (emissivity and view-angle effects), K.
    psf_sigma : float
        MODIS point-spread blur, in coarse pixels.
    event_rate : float
        Share of dates with a strong-variability event (rain cooling, cold front).
    resampling : {"bicubic", "bilinear"}
        How coarse cells are resampled back onto the fine grid.
    chunks : dict, int, str or None
        ``None`` returns numpy-backed variables; otherwise dask-backed ones with
        these chunks (e.g. ``{"time": 1}``), built lazily: each date is computed
        only when asked for.

    Returns
    -------
    xarray.Dataset
        ``truth``, ``fine``, ``coarse`` (``(time, y, x)``, float32, K), ``landcover``
        (``(y, x)``, int8, see :data:`CLASSES`), time coords ``landsat`` (overpass
        dates) and ``event`` (``""``, ``"rain"`` or ``"cold_front"``), a UTM 31N CRS
        and attrs recording every parameter.

    Examples
    --------
    >>> import xstf
    >>> ds = xstf.datasets.synthetic(size=64, days=40, seed=1)
    >>> ds.fine.dims
    ('time', 'y', 'x')
    >>> int(ds.landsat.sum())
    3
    """
    if np.isscalar(size):
        ny = nx = cast(int, size)
    else:
        ny, nx = tuple(cast(tuple[int, int], size))
    if ny < 8 or nx < 8 or days < 1:
        raise ValueError(
            f"size must be >= 8 pixels a side and days >= 1, got size={size}, days={days}"
        )
    if not 0.0 <= cloud_fraction <= 1.0:
        raise ValueError(f"cloud_fraction must be in [0, 1], got {cloud_fraction}")
    if ratio <= 1.0:
        raise ValueError(f"ratio (coarse / fine pixel size) must be > 1, got {ratio}")
    p = SyntheticParams(
        int(ny), int(nx), int(days), str(start), int(seed), float(cloud_fraction), float(ratio),
        int(revisit), int(landsat_offset), float(fine_noise), float(coarse_noise), float(coarse_bias),
        float(coarse_bias_sd), float(class_offset_sd), float(psf_sigma), float(event_rate), str(resampling),
    )  # fmt: skip
    s, tm = _static(p), _temporal(p)
    time = pd.date_range(start, periods=days, freq="D", name="time")
    if chunks is None:
        stack = _render_block(p, np.arange(days))
    else:
        import dask.array as dsa

        tchunk = chunks.get("time", 1) if isinstance(chunks, dict) else 1
        tchunk = days if tchunk in (-1, None) else int(tchunk)
        day_index = dsa.arange(days, chunks=tchunk)
        stack = dsa.map_blocks(
            lambda d: _render_block(p, d),
            day_index,
            dtype=np.float32,
            new_axis=[0, 2, 3],
            chunks=((3,), day_index.chunks[0], (ny,), (nx,)),
            meta=np.empty((0, 0, 0, 0), dtype=np.float32),
        )
    x0, y0, res = 430_000.0, 5_320_000.0, 30.0
    coords = {
        "time": time,
        "y": y0 - res * (np.arange(ny) + 0.5),
        "x": x0 + res * (np.arange(nx) + 0.5),
        "landsat": ("time", tm["landsat"]),
        "event": ("time", tm["events"].astype(str)),
    }
    lst = {"units": "K", "standard_name": "surface_temperature"}
    ds = xr.Dataset(
        {
            "truth": (("time", "y", "x"), stack[0], {**lst, "long_name": "true fine-scale LST"}),
            "fine": (("time", "y", "x"), stack[1], {**lst, "long_name": "Landsat LST (30 m)"}),
            "coarse": (
                ("time", "y", "x"),
                stack[2],
                {**lst, "long_name": f"MODIS LST (~{res * ratio:.0f} m) resampled ({resampling})"},
            ),
            "landcover": (
                ("y", "x"),
                s["cover"],
                {
                    "long_name": "land cover",
                    "flag_values": list(CLASSES),
                    "flag_meanings": " ".join(CLASSES.values()),
                },
            ),
        },
        coords=coords,
        attrs={
            "title": "xstf synthetic LST cube",
            "source": "xstf.datasets.synthetic",
            "Conventions": "CF-1.8",
            "fine_resolution": res,
            "coarse_resolution": round(res * ratio, 6),  # 1000.0, not 1000.0000000000001
            "synthetic_parameters": json.dumps(asdict(p)),
        },
    )
    if chunks is not None and not (isinstance(chunks, dict) and set(chunks) <= {"time"}):
        ds = ds.chunk(chunks)
    import rioxarray  # noqa: F401  (registers .rio)

    ds = ds.rio.write_crs("EPSG:32631")
    ds["x"].attrs.update(units="m", standard_name="projection_x_coordinate")
    ds["y"].attrs.update(units="m", standard_name="projection_y_coordinate")
    return ds
