"""Each figure rendered to PNG with the Agg backend; the Figure's content checked."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

import xstf
from xstf import plot


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return xstf.datasets.synthetic(size=64, days=40, seed=0)


@pytest.fixture(autouse=True)
def _close_figures():
    """The figures are pyplot-managed: close them so that tests do not pile them up."""
    yield
    plt.close("all")


def _png(fig: Figure, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _colourbar_labels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _images(fig: Figure) -> list[np.ndarray]:
    return [im.get_array() for ax in fig.axes for im in ax.get_images()]


def test_compare_panels_titles_colourbars(ds, tmp_path):
    t = ds.stf.pairs[1]
    shifted = ds.truth + 0.5
    fig = plot.compare(ds, {"coarse_only": ds.coarse, "truth+0.5": shifted}, t, reference="fine")
    _png(fig, tmp_path, "compare")
    # 2 rows x (coarse, reference, 2 predictions) panels + 2 colourbars
    assert len(fig.axes) == 2 * 4 + 2
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("RMSE" in s and "SSIM" in s for s in titles) == 3  # coarse + 2 predictions
    # the title's RMSE is the one xstf.metrics gives, in °C
    want = xstf.metrics(shifted.sel(time=t), ds.fine.sel(time=t))
    assert f"RMSE {float(want.rmse):.2f} °C" in titles[3]
    assert sorted(_colourbar_labels(fig)) == ["LST (°C)", "error (°C)"]
    # one shared LST scale; error scale symmetric about 0
    lst = [im for ax in fig.axes[:8] for im in ax.get_images() if im.get_cmap().name == "inferno"]
    assert len(lst) == 4 and len({im.get_clim() for im in lst}) == 1
    err = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "RdBu_r"]
    assert len(err) == 3
    lo, hi = err[0].get_clim()
    assert lo == -hi and hi > 0
    # under the reference: one error histogram per scored map, all its pixels counted
    hist_ax = fig.axes[1 * 4 + 1]
    assert hist_ax.get_title() == "error distribution"
    legend = [tx.get_text() for tx in hist_ax.get_legend().get_texts()]
    assert legend == ["coarse", "coarse_only", "truth+0.5"]
    # error map = prediction - reference in °C
    diff = (shifted - ds.fine).sel(time=t).values
    np.testing.assert_allclose(err[2].get_array().filled(np.nan), diff, atol=1e-4)


def test_compare_zoom_and_without_coarse(ds, tmp_path):
    t = ds.stf.pairs[0]
    fig = plot.compare(
        ds,
        ds.coarse.rename("coarse_only"),
        t,
        coarse=None,
        zoom={"y": slice(8, 40), "x": slice(0, 20)},
    )
    _png(fig, tmp_path, "compare_zoom")
    assert len(fig.axes) == 2 * 2 + 2
    assert all(a.shape == (32, 20) for a in _images(fig))
    xs = ds.x.values
    by_coord = plot.compare(
        ds, {"c": ds.coarse}, t, zoom={"x": slice(float(xs[10]), float(xs[29]))}
    )
    assert all(a.shape == (64, 20) for a in _images(by_coord))
    with pytest.raises(ValueError, match="no valid pixel"):
        plot.compare(ds, {"c": ds.coarse}, ds.stf.targets[0], reference="fine")


def test_scores_lines_bars_and_regions(ds, tmp_path):
    m = xstf.metrics({"coarse_only": ds.coarse, "fine": ds.fine}, ds.truth)
    fig = plot.scores(m, ["rmse", "ssim"])
    _png(fig, tmp_path, "scores")
    assert len(fig.axes) == 2
    assert [ax.get_ylabel() for ax in fig.axes] == ["RMSE (°C)", "SSIM"]
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["coarse_only", "fine"]
    np.testing.assert_allclose(lines[0].get_ydata(), m.rmse.sel({"method": "coarse_only"}).values)
    bars = plot.scores(m.isel(time=slice(0, 5)), "bias", kind="bar")
    assert len(bars.axes[0].patches) == 2 * 5
    reg = xstf.metrics(ds.coarse, ds.truth, regions=ds.landcover)
    by_region = plot.scores(reg, "rmse")
    assert len(by_region.axes) == 6
    assert by_region.axes[4].get_title() == "region: cropland"
    with pytest.raises(ValueError, match="no score"):
        plot.scores(m, "nse")


def test_scatter_density_one_to_one_and_fit(ds, tmp_path):
    t = ds.stf.pairs[0]
    fig = plot.scatter(ds, "coarse", time=t, reference="fine")
    _png(fig, tmp_path, "scatter")
    ax = fig.axes[0]
    labels = [tx.get_text() for tx in ax.get_legend().get_texts()]
    assert labels[0] == "1:1" and labels[1].startswith("fit: y = ")
    c, f = (
        ds.coarse.sel(time=t).values.ravel() - 273.15,
        ds.fine.sel(time=t).values.ravel() - 273.15,
    )
    ok = np.isfinite(c) & np.isfinite(f)
    slope, _ = np.polyfit(f[ok].astype(float), c[ok].astype(float), 1)
    assert f"{slope:.3f}" in labels[1]
    assert f"n = {ok.sum()}" in ax.get_title() and "RMSE" in ax.get_title()
    assert ax.get_title().splitlines()[0] == f"coarse vs fine, {t.date()}"
    assert _colourbar_labels(fig) == ["pixels (log scale)"]
    assert len(ax.collections) == 1  # the hexbin


def test_timeseries_pixel_and_region(ds, tmp_path):
    fig = plot.timeseries(ds, y=10, x=20, predictions={"p": ds.truth + 1.0})
    _png(fig, tmp_path, "timeseries")
    ax = fig.axes[0]
    lines = {ln.get_label().split(" (")[0]: ln for ln in ax.get_lines()}
    assert set(lines) == {"truth", "coarse", "fine", "p"}
    np.testing.assert_allclose(lines["truth"].get_ydata(), ds.truth[:, 10, 20] - 273.15, atol=1e-4)
    assert ax.get_ylabel() == "LST (°C)"
    reg = plot.timeseries(ds, region="water", units="K")
    rl = {ln.get_label().split(" (")[0]: ln for ln in reg.axes[0].get_lines()}
    want = ds.truth.where(ds.landcover == 0).mean(("y", "x")).values
    np.testing.assert_allclose(rl["truth"].get_ydata(), want, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown region"):
        plot.timeseries(ds, region="glacier")


def test_overview_rows_dates_landcover(ds, tmp_path):
    fig = plot.overview(ds, n=3)
    _png(fig, tmp_path, "overview")
    # 3 rows x (3 dates + land cover) + LST colourbar + land-cover colourbar
    assert len(fig.axes) == 3 * 4 + 2
    assert [fig.axes[i * 4].get_ylabel() for i in range(3)] == ["truth", "fine", "coarse"]
    titles = [fig.axes[j].get_title() for j in range(3)]
    assert (
        sum(s.endswith("pair") for s in titles) == 2
        and sum(s.endswith("target") for s in titles) == 1
    )
    assert fig.axes[3].get_title() == "landcover"
    assert "LST (°C)" in _colourbar_labels(fig)
    clims = {
        im.get_clim()
        for ax in fig.axes[:12]
        for im in ax.get_images()
        if im.get_cmap().name == "inferno"
    }
    assert len(clims) == 1
    bare = ds[["fine", "coarse"]]
    fig2 = plot.overview(bare, times=[ds.time.values[0]])
    assert len(fig2.axes) == 2 * 1 + 1


def test_accessor_namespace_passes_the_cube(ds):
    assert set(plot.CUBE_FIGURES) <= set(plot.__all__)
    fig = ds.stf.plot.overview(n=2)
    assert isinstance(fig, Figure)


def test_scatter_names_the_method_and_gives_cc_per_date(ds):
    dates = ds.stf.targets[:6]
    pred = (ds.truth + 0.3).rename("ESTARFM").sel(time=dates)
    fig = plot.scatter(ds, pred, reference="truth", time=dates)
    title = fig.axes[0].get_title().splitlines()
    assert title[0] == "ESTARFM vs truth, 6 dates"
    assert title[1].startswith("pooled: RMSE 0.30 °C")
    # CC per date, from plain numpy on each date's valid pixels
    ccs = []
    for t in dates:
        p, r = pred.sel(time=t).values.ravel(), ds.truth.sel(time=t).values.ravel()
        ok = np.isfinite(p) & np.isfinite(r)
        ccs.append(np.corrcoef(p[ok], r[ok])[0, 1])
    assert title[2].startswith(f"CC per date: mean {np.mean(ccs):.2f} (min {min(ccs):.2f}")
    named = plot.scatter(ds, "coarse", reference="truth", time=dates[0], label="coarse_only")
    assert named.axes[0].get_title().startswith(f"coarse_only vs truth, {dates[0].date()}\nRMSE")


def test_figures_are_pyplot_managed_so_jupyter_shows_them(ds):
    t = ds.stf.pairs[0]
    figs = [
        plot.overview(ds, n=2),
        plot.compare(ds, {"c": ds.coarse}, t),
        plot.scores(xstf.metrics(ds.coarse, ds.truth), "rmse"),
        plot.scatter(ds, "coarse", time=t),
        plot.timeseries(ds),
    ]
    assert all(plt.fignum_exists(f.number) for f in figs)  # inline backend flushes these
    plt.close(figs[0])
    assert not plt.fignum_exists(figs[0].number)


def test_a_figure_displays_in_an_executed_notebook(tmp_path):
    """Executed like the docs' notebooks (Jupyter kernel, inline backend): one PNG output."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    code = (
        "import xstf\n"
        "ds = xstf.datasets.synthetic(size=32, days=20, seed=0)\n"
        "fig = ds.stf.plot.overview(n=2)"  # assigned, not the cell's value
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    # as in the docs build: the kernel picks its inline backend (an inherited
    # MPLBACKEND=Agg would hide every figure, see docs/conf.py)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    root = str(Path(xstf.__file__).resolve().parents[1])  # this xstf, not another install
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute(
        cwd=str(tmp_path), env=env
    )
    outputs = nb.cells[0].outputs
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1, outputs
