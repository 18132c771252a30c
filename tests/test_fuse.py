"""xstf.fuse: method and gain chosen by leave-one-pair-out validation."""

from __future__ import annotations

import json

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest

import xstf
from xstf import fuse as fuse_mod
from xstf.fuse import available_candidates, cv_table, fuse, report


@pytest.fixture(scope="module")
def cube():
    return xstf.datasets.synthetic(size=48, days=90, seed=0)  # 5 pairs


def _rmse(a, b, m):
    return float(np.sqrt(np.mean((a[m] - b[m]) ** 2)))


def test_validation_never_sees_the_date_it_scores(cube, monkeypatch):
    import xstf.fusion.estarfm as est
    import xstf.fusion.starfm as sta

    calls = []
    import xstf.fusion.fitfc as fit

    real = {"estarfm": est.estarfm, "starfm": sta.starfm, "fitfc": fit.fitfc}

    def spy(name):
        def wrapped(ds, targets, pairs, **kw):
            tg = pd.DatetimeIndex(np.atleast_1d(targets))
            visible = [
                str(t.date())
                for t in pd.DatetimeIndex(ds.time.values)
                if bool(ds.fine.sel(time=t).notnull().any())
            ]
            calls.append(
                {"targets": list(tg), "pairs": list(pd.DatetimeIndex(pairs)), "visible": visible}
            )
            return real[name](ds, targets, pairs, **kw)

        return wrapped

    monkeypatch.setattr(est, "estarfm", spy("estarfm"))
    monkeypatch.setattr(sta, "starfm", spy("starfm"))
    monkeypatch.setattr(fit, "fitfc", spy("fitfc"))
    held = cube.stf.pairs[2]  # a pair date predicted leave-one-out: it must stay hidden throughout
    out = fuse(cube, targets=[held], half_window=4, progress=False, gains=(0.0, 1.0))
    n_pool = len(cube.stf.pairs) - 1
    n_cand = len(available_candidates())  # ESTARFM, ubESTARFM, STARFM, FitFC
    assert n_cand == 4
    # every candidate on each pool date, then the final run: the chosen method, or all of
    # them when the choice is their median
    final = n_cand if json.loads(out.attrs["fuse"])["choice"]["method"] == "blend" else 1
    assert len(calls) == n_pool * n_cand + final
    for c in calls:
        for t in c["targets"]:
            assert str(t.date()) not in c["visible"], "a method saw the fine image it is scored on"
            assert t not in c["pairs"]
        assert str(held.date()) not in c["visible"]  # the final target is hidden in the CV too
    scored = set(cv_table(out).date)
    assert scored == {str(d.date()) for d in cube.stf.pairs if d != held}
    assert bool(cube.fine.sel(time=held).notnull().any())  # the caller's cube is untouched


def test_common_mask_and_table(cube):
    out = fuse(cube, targets=cube.time[40], half_window=4, progress=False, gains=(0.0, 0.5, 1.0))
    t = cv_table(out)
    assert (t.groupby("date").n_valid.nunique() == 1).all()  # one mask per date for everything
    assert set(t.method) == {"coarse_only", "ESTARFM", "ubESTARFM", "STARFM", "FitFC", "blend"}
    # gain 0 is coarse only, exactly, whatever the method
    g0 = t[t.gain == 0.0].groupby("date").rmse.nunique()
    assert (g0 == 1).all()
    info = json.loads(out.attrs["fuse"])
    json.dumps(info)  # JSON-able
    ch = info["choice"]
    assert ch["validated"]
    best = min(r["rmse"] for r in info["mean"].values() if r["gain"] is not None)
    assert ch["cv_rmse"] == pytest.approx(best)
    assert ch["cv_rmse"] <= info["mean"]["coarse_only"]["rmse"] + 1e-12
    assert "chosen:" in report(out) and "coarse_only" in report(out)


def test_cv_rmse_against_a_direct_leave_one_out(cube):
    out = fuse(cube, targets=cube.time[40], half_window=4, progress=False,
               candidates=["STARFM", "ubESTARFM"], gains=(1.0,))  # fmt: skip
    t = cv_table(out)
    d = pd.Timestamp(cube.stf.pairs[1])
    others = cube.stf.pairs[cube.stf.pairs != d]
    hidden = cube.assign(fine=cube.fine.where(cube.time != np.datetime64(d)))
    p1 = xstf.starfm(hidden, [d], others, half_window=4, n_pairs=2)
    p2 = xstf.estarfm(hidden, [d], others, half_window=4, bias_correction=True)
    ref = cube.fine.sel(time=[d]).values
    m = np.isfinite(ref) & np.isfinite(cube.coarse.sel(time=[d]).values)
    m &= np.isfinite(p1.values) & np.isfinite(p2.values)
    blend = p1.copy(data=((p1.values.astype(float) + p2.values) / 2).astype("float32"))
    for name, p in (("STARFM", p1), ("blend", blend)):
        a = xstf.anchor.anchor(p, cube, gain=1.0).values
        row = t[(t.date == str(d.date())) & (t.method == name) & (t.gain == 1.0)]
        assert float(row.rmse.iloc[0]) == pytest.approx(_rmse(a, ref, m), rel=1e-5), name
        assert int(row.n_valid.iloc[0]) == int(m.sum())


def test_beats_coarse_only_on_held_out_dates():
    ds = xstf.datasets.synthetic(size=64, days=150, seed=4)
    pairs = ds.stf.pairs
    held = pairs[[2, 4]]
    hidden = ds.assign(fine=ds.fine.where(~ds.time.isin(held.values)))
    out = fuse(
        hidden, targets=held, pairs=pairs.drop(held), half_window=5, progress=False
    ).compute()
    ref = ds.fine.sel(time=held).values
    c = ds.coarse.sel(time=held).values
    m = np.isfinite(ref) & np.isfinite(out.values) & np.isfinite(c)
    assert _rmse(out.values, ref, m) < _rmse(c, ref, m)


def test_lazy_final_prediction(cube):
    lazy = cube.chunk({"time": 1, "y": 24, "x": 24})
    out = fuse(lazy, targets=cube.time[[40, 41]], half_window=4, progress=False,
               candidates=["STARFM"], gains=(0.0, 1.0))  # fmt: skip
    assert isinstance(out.data, dsa.Array)
    eager = fuse(cube, targets=cube.time[[40, 41]], half_window=4, progress=False,
                 candidates=["STARFM"], gains=(0.0, 1.0))  # fmt: skip
    np.testing.assert_allclose(out.values, eager.values, atol=1e-5)
    assert out.attrs["fuse"] == eager.attrs["fuse"]


def test_two_pairs_warns_and_falls_back(cube):
    pairs = cube.stf.pairs[:2]
    with pytest.warns(UserWarning, match="only 2 pairs"):
        out = fuse(cube, targets=cube.time[40], pairs=pairs, half_window=4, progress=False)
    info = json.loads(out.attrs["fuse"])
    assert info["choice"] == {"method": "ESTARFM", "gain": 0.5, "validated": False}
    expect = xstf.estarfm(cube, cube.time[40], pairs, half_window=4, anchor="coarse", gain=0.5)
    np.testing.assert_array_equal(out.values, expect.values)
    assert "NOT validated" in report(out)


def test_bad_input(cube):
    with pytest.raises(ValueError, match="unknown candidate"):
        fuse(cube, targets=cube.time[40], candidates=["nope"], progress=False)
    with pytest.raises(ValueError, match="gains"):
        fuse(cube, targets=cube.time[40], gains=(0.0, 2.0), progress=False)
    with pytest.raises(xstf.CubeError, match="not in the cube"):
        fuse(cube, targets="1999-01-01", progress=False)
    with pytest.raises(ValueError, match="not a result"):
        cv_table(cube.fine)


def test_candidate_table_is_one_line_per_method():
    assert set(fuse_mod.CANDIDATES) >= {"ESTARFM", "ubESTARFM", "STARFM", "FitFC"}
    assert set(fuse_mod.available_candidates()) >= {"ESTARFM", "ubESTARFM", "STARFM"}


def test_accessor_fuse_delegates(cube):
    a = cube.stf.fuse(
        cube.time[40], half_window=4, progress=False, candidates=["STARFM"], gains=(0.5,)
    )
    b = fuse(
        cube, cube.time[40], half_window=4, progress=False, candidates=["STARFM"], gains=(0.5,)
    )
    np.testing.assert_array_equal(a.values, b.values)


def test_median_blend_is_lazy_and_matches_numpy():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(290, 2, (2, 16, 16)).astype("float32") for _ in range(3)]
    arrays[1][0, 3, 4] = np.nan
    eager = fuse_mod._median(arrays)
    lazy = fuse_mod._median([dsa.from_array(a, chunks=(1, 8, 8)) for a in arrays])
    assert isinstance(lazy, dsa.Array)
    np.testing.assert_array_equal(lazy.compute(), eager)
    np.testing.assert_allclose(eager[1], np.median(np.stack(arrays)[:, 1], axis=0), rtol=1e-7)
    assert np.isnan(eager[0, 3, 4])  # a gap in one candidate is a gap in the blend
