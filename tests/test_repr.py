"""repr(ds.stf) and its HTML form: what a notebook shows, without computing a lazy cube."""

from __future__ import annotations

import dask
import pytest

import xstf
from xstf._repr import cube_info


def _no_compute(*args, **kwargs):
    raise AssertionError("the repr computed a dask graph")


@pytest.fixture(scope="module")
def ds():
    return xstf.datasets.synthetic(size=32, days=30, seed=1)


def test_text_repr_lists_dates_pairs_targets_coverage(ds):
    text = repr(ds.stf)
    assert text.startswith("<xstf accessor ds.stf>")
    assert "30 dates, 2021-01-01 .. 2021-01-30" in text
    pairs, targets = ds.stf.pairs, ds.stf.targets
    assert f"pairs     : {len(pairs)}: {pairs[0].date()}" in text
    assert f"targets   : {len(targets)}: {targets[0].date()}" in text
    cov = xstf.coverage(ds)
    assert f"fine {float(cov.fine.mean()):.0%}, coarse {float(cov.coarse.mean()):.0%}" in text


def test_html_repr_is_a_table_with_the_same_rows(ds):
    page = ds.stf._repr_html_()
    assert page.count("<tr>") == 6 and "<th" in page and "pairs" in page
    odd = ds.rename({"fine": "<fine>"})
    assert "&lt;fine&gt;" in odd.stf._repr_html_()  # escaped


def test_lazy_cube_repr_computes_nothing_and_says_how():
    lazy = xstf.datasets.synthetic(size=32, days=30, seed=1, chunks={"time": 5})
    with dask.config.set(scheduler=_no_compute):
        text, page = repr(lazy.stf), lazy.stf._repr_html_()
    assert "lazy (dask) cube" in text and "ds.stf.summary()" in text and "lazy" in page
    assert "pairs     :" not in text
    held = lazy.persist()  # in memory: cheap, so shown
    assert len(cube_info(held).pairs) == len(held.stf.pairs)


def test_repr_never_raises_on_a_non_cube(ds):
    assert "not a cube yet" in repr(ds[["fine"]].stf)
    broken = ds.assign(coarse=ds.coarse.isel(time=0, drop=True))  # no time dim
    assert "<xstf accessor ds.stf>" in repr(broken.stf)
