"""Scores against independent computations (plain numpy from the formulas, skimage for SSIM)."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.metrics import structural_similarity

import xstf
from xstf.scoring import metrics, ssim

C0 = 273.15
NY = NX = 24


def _images(seed: int = 0, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Smooth reference fields in K and a noisy, biased prediction."""
    rng = np.random.default_rng(seed)
    ref = 290.0 + 4.0 * ndimage.gaussian_filter(rng.standard_normal((n, NY, NX)), (0, 3, 3)) * 5
    ref += np.linspace(-3, 3, NX)[None, None, :]
    pred = ref + 0.7 + rng.normal(0.0, 1.2, ref.shape)
    return pred, ref


def _da(values: np.ndarray, units: str = "K", name: str = "lst") -> xr.DataArray:
    t = pd.date_range("2021-06-01", periods=values.shape[0], freq="D", name="time")
    return xr.DataArray(
        values,
        dims=("time", "y", "x"),
        coords={"time": t, "y": np.arange(NY) * -30.0, "x": np.arange(NX) * 30.0},
        attrs={"units": units},
        name=name,
    )


def _ref_scores(p: np.ndarray, r: np.ndarray, ratio: float = 0.03, L: float | None = None) -> dict:
    """The survey's formulas written directly in numpy on the valid pixels of one date."""
    v = np.isfinite(p) & np.isfinite(r)
    pv, rv = p[v], r[v]
    d = pv - rv
    rmse = np.sqrt(np.mean(d**2))
    L = np.ptp(rv) if L is None else L
    cos = np.dot(pv, rv) / (np.linalg.norm(pv) * np.linalg.norm(rv))
    return {
        "rmse": rmse,
        "mae": np.mean(np.abs(d)),
        "bias": np.mean(d),
        "cc": np.corrcoef(pv, rv)[0, 1],
        "psnr": 20 * np.log10(L / rmse),
        "sam": np.degrees(np.arccos(np.clip(cos, -1, 1))),
        "ergas": 100 * ratio * np.sqrt((rmse / np.mean(rv)) ** 2),
        "n_valid": v.sum(),
        "data_range": L,
    }


def _sk_ssim(p: np.ndarray, r: np.ndarray, L: float) -> float:
    return structural_similarity(
        p, r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=L
    )


def test_every_score_matches_independent_formulas_in_celsius():
    pred, ref = _images()
    m = metrics(_da(pred), _da(ref))  # K in, °C scores
    assert m.rmse.dims == ("time",)
    for t in range(pred.shape[0]):
        p, r = pred[t] - C0, ref[t] - C0
        want = _ref_scores(p, r)
        for name, value in want.items():
            np.testing.assert_allclose(float(m[name][t]), value, rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(float(m.ssim[t]), _sk_ssim(p, r, np.ptp(r)), rtol=1e-9)
    assert m.rmse.attrs["units"] == "degC" and m.psnr.attrs["units"] == "dB"
    assert m.sam.attrs["units"] == "degree" and m.n_valid.dtype == np.int64
    assert all("long_name" in m[v].attrs for v in m.data_vars)


def test_identical_prediction_is_perfect():
    _, ref = _images()
    m = metrics(_da(ref), _da(ref))
    np.testing.assert_array_equal(m.rmse, 0.0)
    np.testing.assert_array_equal(m.sam, 0.0)
    np.testing.assert_array_equal(m.psnr, np.inf)
    np.testing.assert_allclose(m.ssim, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.cc, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m.ergas, 0.0)


def test_constant_offset_is_the_bias():
    _, ref = _images()
    m = metrics(_da(ref + 1.5), _da(ref))
    np.testing.assert_allclose(m.bias, 1.5, atol=1e-9)
    np.testing.assert_allclose(m.mae, 1.5, atol=1e-9)
    np.testing.assert_allclose(m.rmse, 1.5, atol=1e-9)
    np.testing.assert_allclose(m.cc, 1.0, atol=1e-12)


def test_nan_pixels_and_all_nan_date():
    pred, ref = _images()
    pred[0, :6, :] = np.nan
    ref[0, 10:14, 3:9] = np.nan
    ref[1] = np.nan  # a date with nothing to score
    m = metrics(_da(pred), _da(ref))
    assert int(m.n_valid[1]) == 0
    for name in ("rmse", "mae", "bias", "cc", "ssim", "psnr", "sam", "ergas", "data_range"):
        assert np.isnan(float(m[name][1])), name
    want = _ref_scores(pred[0] - C0, ref[0] - C0)
    for name, value in want.items():
        np.testing.assert_allclose(float(m[name][0]), value, rtol=1e-9, err_msg=name)
    assert int(m.n_valid[0]) == NY * NX - 6 * NX - 4 * 6


def _brute_ssim(p: np.ndarray, r: np.ndarray, valid: np.ndarray, L: float) -> float:
    """Masked SSIM written pixel by pixel: Gaussian 11x11 weights over the valid window pixels."""
    k = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    w2 = np.outer(k, k)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(5, p.shape[0] - 5):
        for j in range(5, p.shape[1] - 5):
            if not valid[i, j]:
                continue
            win = (slice(i - 5, i + 6), slice(j - 5, j + 6))
            w = w2 * valid[win]
            w = w / w.sum()
            x, y = np.where(valid[win], p[win], 0), np.where(valid[win], r[win], 0)
            ux, uy = (w * x).sum(), (w * y).sum()
            vx, vy = (w * (x - ux) ** 2).sum(), (w * (y - uy) ** 2).sum()
            cxy = (w * (x - ux) * (y - uy)).sum()
            s = (2 * ux * uy + c1) * (2 * cxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
            vals.append(s)
    return float(np.mean(vals))


def test_ssim_with_gaps_uses_valid_window_pixels_only():
    pred, ref = _images(seed=3, n=1)
    p0, r0 = pred[0] - C0, ref[0] - C0
    pred[0, 9:15, 4:12] = np.nan  # a cloud in the prediction
    ref[0, 2:4, 15:20] = np.nan
    p, r = pred[0] - C0, ref[0] - C0
    valid = np.isfinite(p) & np.isfinite(r)
    L = np.ptp(r[valid])
    want = _brute_ssim(p, r, valid, L)
    assert float(ssim(p, r)) == pytest.approx(want, rel=1e-9)
    m = metrics(_da(pred), _da(ref))
    assert float(m.ssim[0]) == pytest.approx(want, rel=1e-9)
    # whatever hides under the gap never enters the score
    r2 = r.copy()
    r2[9:15, 4:12] = 1e6
    assert float(ssim(p, r2, data_range=L)) == pytest.approx(want, rel=1e-12)
    # gap-free: exactly skimage
    assert float(ssim(p0, r0)) == pytest.approx(_sk_ssim(p0, r0, np.ptp(r0)), rel=1e-10)


def test_mask_scores_only_true_pixels():
    pred, ref = _images()
    keep = np.ones((NY, NX), dtype=bool)
    keep[:, :8] = False
    mask = xr.DataArray(keep, dims=("y", "x"))
    m = metrics(_da(pred), _da(ref), mask=mask)
    for t in range(pred.shape[0]):
        p = np.where(keep, pred[t] - C0, np.nan)
        want = _ref_scores(p, ref[t] - C0)
        for name in ("rmse", "bias", "cc", "sam", "ergas", "n_valid", "data_range"):
            np.testing.assert_allclose(float(m[name][t]), want[name], rtol=1e-9, err_msg=name)
        ref_masked = np.where(keep, ref[t] - C0, np.nan)
        assert float(m.ssim[t]) == pytest.approx(
            _brute_ssim(p, ref_masked, keep, want["data_range"]), rel=1e-9
        )
    with pytest.raises(TypeError, match="boolean"):
        metrics(_da(pred), _da(ref), mask=mask.astype(float))


def test_regions_use_flag_meanings_and_score_each_label():
    pred, ref = _images()
    labels = np.zeros((NY, NX), dtype=np.int8)
    labels[:, 12:] = 2
    labels[:5, :5] = 7  # a label not in flag_values: scored in no region
    regions = xr.DataArray(
        labels,
        dims=("y", "x"),
        attrs={"flag_values": [0, 1, 2], "flag_meanings": "west empty east"},
    )
    m = metrics(_da(pred), _da(ref), regions=regions)
    assert m.rmse.dims == ("time", "region")
    assert list(m.region.values) == ["west", "empty", "east"]
    assert list(m.region_value.values) == [0, 1, 2]
    for t in range(pred.shape[0]):
        assert int(m.n_valid[t, 1]) == 0 and np.isnan(float(m.rmse[t, 1]))
        L = np.ptp(ref[t])  # the date's range over the whole scene
        for k, value in ((0, 0), (2, 2)):
            sel = labels == value
            p = np.where(sel, pred[t] - C0, np.nan)
            want = _ref_scores(p, ref[t] - C0, L=L)
            for name in ("rmse", "mae", "bias", "cc", "psnr", "sam", "ergas", "n_valid"):
                np.testing.assert_allclose(float(m[name][t, k]), want[name], rtol=1e-9)
    # without flag attrs: the distinct values name the regions
    plain = metrics(_da(pred), _da(ref), regions=xr.DataArray(labels, dims=("y", "x")))
    assert list(plain.region.values) == ["0", "2", "7"]
    np.testing.assert_allclose(plain.rmse.sel(region="2"), m.rmse.sel(region="east"))


def test_method_dim_from_dataset_and_dict():
    pred, ref = _images()
    a, b = _da(pred), _da(ref + 0.25)
    m = metrics(xr.Dataset({"a": a, "b": b}), _da(ref))
    assert m.rmse.dims == ("method", "time")
    assert list(m.method.values) == ["a", "b"]
    xr.testing.assert_allclose(m.sel({"method": "a"}, drop=True), metrics(a, _da(ref)))
    np.testing.assert_allclose(m.bias.sel({"method": "b"}), 0.25, atol=1e-9)
    d = metrics({"a": a, "b": b}, _da(ref))
    xr.testing.assert_identical(d, m)
    # a method that predicted fewer dates: NaN scores and n_valid 0 there, nothing dropped
    part = metrics({"a": a, "b": b.isel(time=[0, 2])}, _da(ref))
    assert part.sizes["time"] == 3
    assert int(part.n_valid.sel({"method": "b"})[1]) == 0
    assert np.isnan(float(part.rmse.sel({"method": "b"})[1]))
    np.testing.assert_allclose(part.rmse.sel({"method": "a"}), m.rmse.sel({"method": "a"}))


def test_dask_equals_numpy_and_stays_lazy():
    ds = xstf.datasets.synthetic(size=32, days=12, seed=0)
    eager = metrics(
        {"coarse": ds.coarse, "fine": ds.fine},
        ds.truth,
        regions=ds.landcover,
        mask=ds.landcover != 0,
    )
    lazy_ds = ds.chunk({"time": 5, "y": 16, "x": 20})  # spatial chunks get merged per date
    lazy = metrics(
        {"coarse": lazy_ds.coarse, "fine": lazy_ds.fine},
        lazy_ds.truth,
        regions=lazy_ds.landcover,
        mask=lazy_ds.landcover != 0,
    )
    for name in lazy.data_vars:
        assert isinstance(lazy[name].data, dsa.Array), name
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12, atol=0)
    assert int(eager.n_valid.sum()) > 0


def test_kelvin_scores_versus_celsius_scores():
    pred, ref = _images()
    c = metrics(_da(pred), _da(ref), units="degC")
    k = metrics(_da(pred - C0, units="degC"), _da(ref), units="K")  # mixed input units
    np.testing.assert_allclose(k.bias, c.bias, atol=1e-9)
    np.testing.assert_allclose(k.rmse, c.rmse, atol=1e-9)
    np.testing.assert_allclose(k.cc, c.cc, atol=1e-9)
    assert k.rmse.attrs["units"] == "K"
    for t in range(pred.shape[0]):
        want_k = _ref_scores(pred[t], ref[t])
        np.testing.assert_allclose(float(k.ergas[t]), want_k["ergas"], rtol=1e-9)
        np.testing.assert_allclose(float(k.sam[t]), want_k["sam"], rtol=1e-6)
        # SSIM's luminance term sees the mean level: skimage on the Kelvin images
        assert float(k.ssim[t]) == pytest.approx(
            _sk_ssim(pred[t], ref[t], np.ptp(ref[t])), rel=1e-9
        )
        np.testing.assert_allclose(float(k.psnr[t]), float(c.psnr[t]), rtol=1e-9)
        # ERGAS scales with 1 / mean of the reference: ~290 K versus ~17 °C
        ratio = float(c.ergas[t] / k.ergas[t])
        assert ratio == pytest.approx(np.mean(ref[t]) / np.mean(ref[t] - C0), rel=1e-9)
    assert float(k.sam.max()) < float(c.sam.min())  # angles shrink far from the origin


def test_one_date_of_the_prediction_is_scored_against_that_date():
    pred, ref = _images()
    one = metrics(_da(pred).isel(time=1), _da(ref))
    assert one.rmse.dims == ()
    assert float(one.rmse) == pytest.approx(_ref_scores(pred[1], ref[1])["rmse"], rel=1e-9)
    with pytest.raises(ValueError, match="does not have"):
        metrics(_da(pred).isel(time=1), _da(ref).isel(time=[0, 2]))


def test_given_data_range_drives_psnr():
    pred, ref = _images()
    m = metrics(_da(pred), _da(ref), data_range=40.0)
    np.testing.assert_allclose(m.psnr, 20 * np.log10(40.0 / m.rmse))
    assert float(m.data_range[0]) == 40.0
    p, r = pred[0] - C0, ref[0] - C0
    assert float(m.ssim[0]) == pytest.approx(_sk_ssim(p, r, 40.0), rel=1e-9)


def test_accessor_takes_ratio_from_the_cube():
    ds = xstf.datasets.synthetic(size=32, days=6, seed=0)
    via = ds.stf.metrics("coarse", "truth")
    direct = metrics(ds.coarse, ds.truth, ratio=30 / 1000)
    xr.testing.assert_allclose(via, direct)
    df = via.to_dataframe()
    assert {"rmse", "ssim", "psnr", "sam", "cc", "ergas", "n_valid"} <= set(df.columns)
    assert "spatial_ref" not in df.columns and len(df) == 6


def test_bad_input_messages():
    pred, ref = _images()
    no_units = _da(pred)
    no_units.attrs = {}
    with pytest.raises(ValueError, match="units"):
        metrics(no_units, _da(ref))
    ok = metrics(no_units, _da(ref), input_units="K")
    assert np.isfinite(ok.rmse).all()
    with pytest.raises(ValueError, match="not in the reference"):
        metrics(_da(pred), _da(ref).isel(time=[0, 1]))
    with pytest.raises(ValueError, match="too small"):
        metrics(_da(pred).isel(x=slice(0, 8)), _da(ref).isel(x=slice(0, 8)))
    with pytest.raises(ValueError, match="different 'x'"):
        metrics(_da(pred), _da(ref).assign_coords(x=np.arange(NX) * 31.0))
    with pytest.raises(TypeError, match="DataArray"):
        metrics(pred, _da(ref))
    with pytest.raises(ValueError, match="two spatial dims"):
        metrics(_da(pred), _da(ref), dim=("y",))
    with pytest.raises(ValueError, match="unknown temperature units"):
        metrics(_da(pred), _da(ref), units="F")


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    offset=st.floats(-5, 5),
    noise=st.floats(0.01, 3),
    gap=st.floats(0, 0.6),
)
def test_score_identities_hold_on_random_scenes(seed, offset, noise, gap):
    rng = np.random.default_rng(seed)
    ref = 285.0 + 3.0 * rng.standard_normal((1, NY, NX))
    pred = ref + offset + rng.normal(0.0, noise, ref.shape)
    pred[rng.uniform(size=ref.shape) < gap] = np.nan
    m = metrics(_da(pred), _da(ref)).isel(time=0)
    err = (pred - ref)[np.isfinite(pred)]
    # RMSE² = bias² + variance of the error; MAE ≤ RMSE; bounded CC and SSIM
    assert float(m.rmse) ** 2 == pytest.approx(float(m.bias) ** 2 + err.var(), rel=1e-9)
    assert float(m.mae) <= float(m.rmse) + 1e-12
    assert -1.0 <= float(m.cc) <= 1.0 and -1.0 <= float(m.ssim) <= 1.0
    assert int(m.n_valid) == err.size


# -- chunks, ubRMSE, baseline skill, common mask -------------------------------------------------
def test_prediction_and_reference_chunked_differently():
    """README snippet: a fused result one date per chunk against a truth eight per chunk."""
    ds = xstf.datasets.synthetic(size=32, days=20, seed=1, chunks={"time": 8})
    fused = (ds.coarse.sel(time=ds.time[2:14]) + 0.3).chunk({"time": 1})
    lazy = metrics(fused, ds.truth)
    assert isinstance(lazy.rmse.data, dsa.Array)
    xr.testing.assert_allclose(
        lazy.compute(), metrics(fused.compute(), ds.truth.compute()), rtol=1e-12, atol=0
    )
    lazy = metrics(fused, ds.truth, baseline=ds.coarse.chunk({"time": 3}))
    eager = metrics(fused.compute(), ds.truth.compute(), baseline=ds.coarse.compute())
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12, atol=0)
    # a stacked prediction whose methods are chunked differently, and a mask
    preds = {"a": fused, "b": ds.truth.sel(time=fused.time).chunk({"time": 5}) - 0.2}
    both = metrics(preds, ds.truth, mask=(ds.landcover != 0).chunk({"y": 7}), common_mask=True)
    want = metrics(
        {k: v.compute() for k, v in preds.items()},
        ds.truth.compute(),
        mask=(ds.landcover != 0).compute(),
        common_mask=True,
    )
    xr.testing.assert_allclose(both.compute(), want, rtol=1e-12, atol=0)
    assert int(want.n_valid.sum()) > 0


def _holes(values: np.ndarray, seed: int, frac: float) -> np.ndarray:
    out = values.copy()
    out[np.random.default_rng(seed).random(out.shape) < frac] = np.nan
    return out


def test_ubrmse_is_the_standard_deviation_of_the_error():
    pred, ref = _images(seed=3)
    pred = _holes(pred, 5, 0.2)
    m = metrics(_da(pred), _da(ref))
    for t in range(pred.shape[0]):
        d = (pred[t] - ref[t])[np.isfinite(pred[t])]
        assert float(m.ubrmse[t]) == pytest.approx(np.std(d), rel=1e-9)
        assert float(m.ubrmse[t]) == pytest.approx(
            np.sqrt(np.mean(d**2) - np.mean(d) ** 2), rel=1e-9
        )
    assert m.ubrmse.attrs["units"] == "degC"
    # a constant offset is all bias and no ubRMSE
    off = metrics(_da(ref + 2.0), _da(ref))
    np.testing.assert_allclose(off.ubrmse, 0.0, atol=1e-9)
    np.testing.assert_allclose(off.rmse, 2.0, atol=1e-9)


def test_baseline_skill_scores_against_hand_worked_numpy():
    pred, ref = _images(seed=4)
    rng = np.random.default_rng(9)
    base = _holes(ref - 1.5 + rng.normal(0, 2.0, ref.shape), 11, 0.3)  # gaps pred lacks
    m = metrics(_da(pred), _da(ref), baseline=_da(base))
    for t in range(pred.shape[0]):
        v = np.isfinite(base[t])  # scored where prediction, reference and baseline are valid
        d, db = (pred[t] - ref[t])[v], (base[t] - ref[t])[v]
        assert int(m.n_valid[t]) == v.sum()
        want = 1 - np.sqrt(np.mean(d**2)) / np.sqrt(np.mean(db**2))
        assert float(m.skill_rmse[t]) == pytest.approx(want, rel=1e-9)
        assert float(m.skill_ubrmse[t]) == pytest.approx(1 - np.std(d) / np.std(db), rel=1e-9)
        assert float(m.rmse[t]) == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-9)
    # the baseline against itself: skill 0; without a baseline: no skill variables
    self_skill = metrics(_da(base), _da(ref), baseline=_da(base))
    np.testing.assert_allclose(self_skill.skill_rmse, 0.0, atol=1e-12)
    assert "skill_rmse" not in metrics(_da(pred), _da(ref))
    # the accessor resolves a variable name
    ds = xstf.datasets.synthetic(size=32, days=8, seed=0)
    via = ds.stf.metrics(ds.coarse + 0.0, "truth", baseline="coarse")
    np.testing.assert_allclose(via.skill_rmse.dropna("time"), 0.0, atol=1e-12)
    with pytest.raises(TypeError, match=r"baseline must be an xarray\.DataArray"):
        metrics(_da(pred), _da(ref), baseline=base)


def test_common_mask_gives_every_method_the_same_pixels():
    pred, ref = _images(seed=6)
    a, b = _holes(pred, 1, 0.25), _holes(ref + 0.4, 2, 0.1)
    r = _holes(ref, 3, 0.05)
    per = metrics({"a": _da(a), "b": _da(b)}, _da(r))
    assert not (per.n_valid.sel({"method": "a"}) == per.n_valid.sel({"method": "b"})).all()
    com = metrics({"a": _da(a), "b": _da(b)}, _da(r), common_mask=True)
    both = np.isfinite(a) & np.isfinite(b) & np.isfinite(r)
    for t in range(pred.shape[0]):
        n = both[t].sum()
        assert list(com.n_valid.isel(time=t).values) == [n, n]
        for name, p in (("a", a), ("b", b)):
            d = (p[t] - r[t])[both[t]]
            got = com.sel({"method": name}).isel(time=t)
            assert float(got.rmse) == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-9)
            assert float(got.bias) == pytest.approx(np.mean(d), rel=1e-9)
    mask = xstf.scoring.common_mask({"a": _da(a), "b": _da(b)}, _da(r))
    np.testing.assert_array_equal(mask.values, both)
    assert mask.dims == ("time", "y", "x")
    # the same mask through mask= gives the same scores
    via_mask = metrics({"a": _da(a), "b": _da(b)}, _da(r), mask=mask)
    xr.testing.assert_allclose(via_mask, com.assign_attrs(via_mask.attrs))
    assert "common" in com.attrs["mask"]


def test_score_table_rounds_without_datetime_warnings():
    ds = xstf.datasets.synthetic(size=32, days=8, seed=0)
    pred = ds.coarse.assign_coords(reference_pair_1=("time", ds.time.values))  # like ESTARFM's
    m = metrics(pred, ds.truth)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.to_dataframe().round(3)


# -- by spatial tile with a halo (bounded memory) -------------------------------------------------
@pytest.mark.parametrize("tiling", ["dask", "numpy"])
def test_tiles_with_a_halo_equal_the_whole_image_scores(tiling, monkeypatch):
    """Scores by 32 px tiles equal today's whole-date kernel and scikit-image."""
    from xstf import scoring

    rng = np.random.default_rng(12)
    ny, nx = 75, 90  # tiles of 32 px: three rows and three columns, uneven last ones
    ref = 290 + 5 * ndimage.gaussian_filter(rng.standard_normal((2, ny, nx)), (0, 4, 4)) * 6
    pred = ref + 0.4 + rng.normal(0, 1.0, ref.shape)
    base = ref - 1.0 + rng.normal(0, 1.5, ref.shape)
    gappy = pred.copy()
    gappy[0, 20:45, 28:70] = np.nan  # a cloud across tile borders
    gappy[1][rng.random((ny, nx)) < 0.1] = np.nan
    labels = rng.integers(0, 3, (ny, nx))
    t = pd.date_range("2021-06-01", periods=2, name="time")

    def da(v):
        return xr.DataArray(
            v, dims=("time", "y", "x"), coords={"time": t, "y": np.arange(ny) * -30.0,
            "x": np.arange(nx) * 30.0}, attrs={"units": "K"},
        )  # fmt: skip

    inputs = [da(gappy), da(ref), da(base)]
    if tiling == "dask":
        inputs = [a.chunk({"time": 1, "y": 32, "x": 32}) for a in inputs]
    else:
        monkeypatch.setattr(scoring, "TILE", 32)
    lab = xr.DataArray(labels, dims=("y", "x"))
    m = metrics(inputs[0], inputs[1], baseline=inputs[2], regions=lab, units="K").compute()
    whole = metrics(inputs[0], inputs[1], baseline=inputs[2], units="K").compute()
    for i in range(2):
        ok = np.isfinite(gappy[i])
        region = np.zeros((ny, nx), int)
        want = scoring._scores_2d(gappy[i], ref[i], ok, np.nan, region, 1, 0.03, base[i])
        for k, name in enumerate(scoring._NAMES):
            np.testing.assert_allclose(float(whole[name][i]), want[0, k], rtol=1e-9, err_msg=name)
        by_region = scoring._scores_2d(gappy[i], ref[i], ok, np.nan, labels, 3, 0.03, base[i])
        for k, name in enumerate(scoring._NAMES):
            if name == "data_range":
                continue
            np.testing.assert_allclose(
                m[name].isel(time=i).values, by_region[:, k], rtol=1e-9, err_msg=name
            )
    # gap-free: scikit-image's SSIM of the whole image
    full = metrics(da(pred) if tiling == "numpy" else da(pred).chunk({"y": 32, "x": 32}),
                   da(ref), units="K").compute()  # fmt: skip
    for i in range(2):
        assert float(full.ssim[i]) == pytest.approx(
            _sk_ssim(pred[i], ref[i], np.ptp(ref[i])), rel=1e-9
        )
