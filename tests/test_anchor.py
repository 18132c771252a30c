"""Level anchoring (xstf.anchor) against a plain-numpy normalised convolution."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

import xstf
from xstf.anchor import anchor, lowpass


def _gauss_ref(d: np.ndarray, sigma: float, truncate: float) -> np.ndarray:
    """Normalised convolution written out: explicit 2-D kernel, zero padding, NaN = weight 0."""
    r = int(truncate * sigma + 0.5)
    k1 = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k2 = np.outer(k1, k1)
    ny, nx = d.shape
    m = np.isfinite(d)
    v = np.pad(np.where(m, d, 0.0), r)
    w = np.pad(m.astype(float), r)
    num = np.zeros((ny, nx))
    den = np.zeros((ny, nx))
    for i in range(2 * r + 1):
        for j in range(2 * r + 1):
            num += k2[i, j] * v[i : i + ny, j : j + nx]
            den += k2[i, j] * w[i : i + ny, j : j + nx]
    out = num / np.where(den > 0, den, np.nan)
    return out


def _anchor_ref(p: np.ndarray, c: np.ndarray, gain: float, sigma: float, truncate: float):
    d = p.astype(float) - c.astype(float)
    return c + gain * (d - _gauss_ref(d, sigma, truncate))


def _da(a: np.ndarray, t0: str = "2021-01-01") -> xr.DataArray:
    t = np.array([np.datetime64(t0, "ns") + np.timedelta64(i, "D") for i in range(a.shape[0])])
    return xr.DataArray(a, dims=("time", "y", "x"), coords={"time": t, "y": np.arange(a.shape[1]), "x": np.arange(a.shape[2])},
                        attrs={"units": "K"})  # fmt: skip


@pytest.fixture
def fields():
    rng = np.random.default_rng(0)
    c = 290 + rng.normal(0, 1, (2, 40, 36)).cumsum(1).cumsum(2) / 20
    p = c + rng.normal(0, 2, c.shape) + 3.0
    p[0, 5:12, 20:30] = np.nan  # a cloud
    p[1, :, :3] = np.nan  # an edge strip
    c[1, 30:, 30:] = np.nan
    return p.astype(np.float32), c.astype(np.float32)


def test_lowpass_matches_explicit_normalised_convolution(fields):
    p, _ = fields
    for t in range(2):
        np.testing.assert_allclose(lowpass(p[t], 2.5, 3.0), _gauss_ref(p[t].astype(float), 2.5, 3.0),
                                   rtol=0, atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("gain", [0.0, 0.4, 1.0])
def test_anchor_matches_plain_numpy(fields, gain):
    p, c = fields
    out = anchor(_da(p), _da(c), gain=gain, sigma=2.5, truncate=3.0)
    ref = np.stack([_anchor_ref(p[t], c[t], gain, 2.5, 3.0) for t in range(2)])
    np.testing.assert_allclose(out.values, ref, rtol=0, atol=2e-4)  # float32 output
    assert np.array_equal(np.isnan(out.values), np.isnan(ref))


def test_gain_zero_is_coarse_only_exactly():
    ds = xstf.datasets.synthetic(size=64, days=40, seed=3)
    pred = xstf.estarfm(ds, targets=ds.time[[20, 25]], half_window=5)
    out = anchor(pred, ds, gain=0.0)
    c = ds.coarse.sel(time=pred.time).values
    ok = np.isfinite(pred.values)
    assert ok.sum() > 1000
    assert np.array_equal(out.values[ok], c[ok])  # bit for bit
    assert np.isnan(out.values[~ok]).all()  # gaps stay gaps (no silent filling)
    filled = anchor(pred, ds, gain=0.0, fill=True)
    cv = np.isfinite(c)
    assert np.array_equal(filled.values[cv], c[cv])


def test_gain_one_keeps_a_prediction_that_matches_the_coarse_level():
    rng = np.random.default_rng(1)
    c = 290 + rng.normal(0, 1, (1, 48, 48)).cumsum(1).cumsum(2) / 20
    # sub-km detail with nothing at the 1 km scale: a checkerboard at the pixel scale
    yy, xx = np.mgrid[0:48, 0:48]
    detail = 1.5 * (-1.0) ** (yy + xx)
    p = c + detail[None]
    inner = (slice(None), slice(16, -16), slice(16, -16))  # 1 sigma... 4 sigma in: a full window
    out = anchor(_da(p), _da(c), gain=1.0, sigma=4.0)
    np.testing.assert_allclose(out.values[inner], p[inner], atol=1e-5)
    # at the border the window is one-sided: the checkerboard no longer averages out exactly
    assert np.abs(out.values - p).max() < 0.02 * 1.5
    # and the same prediction with a level error of +4 K: the level goes, the detail stays
    out4 = anchor(_da(p + 4.0), _da(c), gain=1.0, sigma=4.0)
    np.testing.assert_allclose(out4.values, out.values, atol=1e-4)
    # a prediction equal to the coarse image is unchanged at every gain
    for g in (0.0, 0.5, 1.0):
        np.testing.assert_array_equal(anchor(_da(c), _da(c), gain=g).values, c)


def test_anchor_removes_a_level_error_on_the_synthetic_cube():
    ds = xstf.datasets.synthetic(size=96, days=40, seed=3)
    t = ds.stf.pairs[1:2]
    biased = ds.truth.sel(time=t) + 6.0
    out = anchor(biased, ds, gain=1.0)
    err = (out - ds.truth.sel(time=t)).values
    coarse_err = (ds.coarse.sel(time=t) - ds.truth.sel(time=t)).values
    assert abs(np.nanmean(err)) < abs(np.nanmean(coarse_err)) + 0.3  # the coarse level, not +6 K
    assert np.nanstd(err) < np.nanstd(coarse_err)  # and the detail survives


@pytest.mark.parametrize(
    "chunks", [{"y": 20, "x": 18}, {"time": 1, "y": 13, "x": 36}, {"y": 7, "x": 5}]
)
def test_chunk_invariant_and_lazy(fields, chunks):
    p, c = fields
    eager = anchor(_da(p), _da(c), gain=0.7, sigma=2.5)
    lazy = anchor(_da(p).chunk(chunks), _da(c).chunk({"y": 9}), gain=0.7, sigma=2.5)
    assert isinstance(lazy.data, dsa.Array)  # dask in -> dask out, nothing computed yet
    np.testing.assert_array_equal(lazy.values, eager.values)


def test_only_coarse_lazy_gives_lazy(fields):
    p, c = fields
    out = anchor(_da(p), _da(c).chunk({"y": 20}), gain=0.5, sigma=2.0)
    assert isinstance(out.data, dsa.Array)
    np.testing.assert_array_equal(out.values, anchor(_da(p), _da(c), gain=0.5, sigma=2.0).values)


def test_default_sigma_from_the_cube_attrs():
    ds = xstf.datasets.synthetic(size=32, days=10, seed=1)
    out = anchor(ds.fine.isel(time=[0]), ds)
    import json

    info = json.loads(out.attrs["anchor"])
    assert info["ratio"] == pytest.approx(
        ds.attrs["coarse_resolution"] / ds.attrs["fine_resolution"]
    )
    assert info["sigma_px"] == pytest.approx(xstf.anchor.SIGMA_PER_RATIO * info["ratio"])


def test_bad_input_errors(fields):
    p, c = fields
    with pytest.raises(ValueError, match="gain must be in"):
        anchor(_da(p), _da(c), gain=1.5)
    with pytest.raises(ValueError, match="no date"):
        anchor(_da(p), _da(c, "2022-01-01"))
    with pytest.raises(ValueError, match="one grid"):
        anchor(_da(p), _da(c[:, :30]))
    with pytest.raises(ValueError, match="anchor must be"):
        xstf.anchor.anchor_result(xr.Dataset({"coarse": _da(c)}), _da(p), "fine")
    with pytest.raises(ValueError, match="no effect"):
        xstf.anchor.anchor_result(xr.Dataset({"coarse": _da(c)}), _da(p), None, gain=0.5)


@pytest.mark.parametrize("method", ["estarfm", "starfm", "fitfc"])
def test_fusion_anchor_option_is_the_shared_step(method):
    ds = xstf.datasets.synthetic(size=64, days=40, seed=3).chunk({"y": 32, "x": 32})
    func = getattr(xstf, method)
    plain = func(ds, targets=ds.time[[20]], half_window=4)
    anchored = func(ds, targets=ds.time[[20]], half_window=4, anchor="coarse", gain=0.5)
    assert isinstance(anchored.data, dsa.Array)
    np.testing.assert_array_equal(anchored.values, anchor(plain, ds, gain=0.5).values)
    assert "anchor" in anchored.attrs and anchored.attrs["method"] == plain.attrs["method"]


def test_accessor_anchor_delegates():
    ds = xstf.datasets.synthetic(size=48, days=20, seed=1)
    pred = ds.fine.isel(time=[0, 1]) + 2.0
    np.testing.assert_array_equal(
        ds.stf.anchor(pred, gain=0.3).values, anchor(pred, ds, gain=0.3).values
    )


@pytest.mark.torch
def test_deep_predict_anchor_option_is_the_shared_step():
    pytest.importorskip("torch")
    ds = xstf.datasets.synthetic(size=48, days=100, seed=0, cloud_fraction=0.0)
    m = xstf.models.fit(ds, "edcstfn", epochs=1, batch_size=8, patch_size=32, stride=16, width=4,
                        ae_epochs=0, max_patches=8, progress=False, device="cpu")  # fmt: skip
    tg = ds.stf.targets[:2]
    plain = xstf.models.predict(ds, m, targets=tg, device="cpu")
    anchored = xstf.models.predict(ds, m, targets=tg, device="cpu", anchor="coarse", gain=0.25)
    np.testing.assert_array_equal(anchored.values, anchor(plain, ds, gain=0.25).values)
    assert "anchor" in anchored.attrs
