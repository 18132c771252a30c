"""Tiled, lazy prediction, checkpoints and model/cube checks of xstf.models."""

from __future__ import annotations

import json
import pickle
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import deep_models as dm  # noqa: E402

import xstf  # noqa: E402
from xstf.models import load_model  # noqa: E402
from xstf.models.inference import predict_image  # noqa: E402

pytestmark = pytest.mark.torch

TINY = dm.TINY


@pytest.fixture(scope="module")
def cube():
    return dm.gappy_cube()


@pytest.fixture(scope="module")
def model(cube):
    torch.manual_seed(0)
    m = xstf.models.fit(cube, "edcstfn", **TINY)
    # untrained-looking weights would make every test trivially pass: perturb them so the
    # network output depends on its inputs in a non-trivial way
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def test_tiling_and_normalisation_with_a_pointwise_net(cube):
    # a net returning the target coarse input: the prediction must equal the coarse image
    stack = dm.reference_stack(cube)
    out = predict_image(
        dm.pointwise_net(1.0), stack, 291.0, 6.5, 2, tile=24, overlap=12, batch_size=3
    )
    np.testing.assert_allclose(out, stack[0], rtol=0, atol=1e-4, equal_nan=True)
    assert np.array_equal(np.isnan(out), np.isnan(stack[0]))


def test_whole_scene_and_small_tiles_agree(model, cube):
    t = cube.time.values[[5, 10, 40]]
    whole = xstf.models.predict(cube, model, targets=t, tile=64, device="cpu")
    tiles = xstf.models.predict(
        cube, model, targets=t, tile=24, overlap=20, batch_size=5, device="cpu"
    )
    diff = np.abs(whole.values - tiles.values)
    assert np.nanmax(diff) < 1e-3
    # the taper matters: tiles without overlap leave seams
    seams = xstf.models.predict(cube, model, targets=t, tile=16, overlap=0, device="cpu")
    assert np.nanmax(np.abs(whole.values - seams.values)) > 1e-2


def test_output_nan_only_where_target_coarse_is_nan(model, cube):
    t = cube.time.values[[10, 17]]  # 10 has a coarse gap; 17 uses the gappy fine of day 16
    out = xstf.models.predict(cube, model, targets=t, tile=32, overlap=16, device="cpu")
    assert out.dtype == np.float32 and out.dims == ("time", "y", "x")
    np.testing.assert_array_equal(np.isnan(out.values), np.isnan(cube.coarse.sel(time=t).values))
    assert np.isfinite(out.values[1]).all()
    assert 250 < float(out.mean()) < 330


def test_references_and_attrs(model, cube):
    t = pd.DatetimeIndex(cube.time.values[[5, 40]])
    out = xstf.models.predict(cube, model, targets=t, device="cpu")
    pairs = xstf.cube.pair_dates(cube)
    for i, d in enumerate(t):
        want = xstf.cube.reference_pairs(pairs, d, n=2)
        got = [pd.Timestamp(out[f"reference_pair_{k}"].values[i]) for k in (1, 2)]
        assert got == want
    assert out.attrs["method"] == "edcstfn" and out.attrs["units"] == "K"
    params = json.loads(out.attrs["parameters"])
    assert params["model"] == "edcstfn" and params["tile"] == 1024
    np.testing.assert_array_equal(out.x.values, cube.x.values)
    # a pair date is predicted leave-one-out
    p = pairs[2]
    loo = xstf.models.predict(cube, model, targets=[p], device="cpu")
    assert p not in [pd.Timestamp(loo[f"reference_pair_{k}"].values[0]) for k in (1, 2)]


def test_default_targets_are_the_target_dates(model, cube):
    small = cube.isel(time=slice(0, 20))
    out = xstf.models.predict(small, model, device="cpu")
    assert list(out.time.values) == list(xstf.cube.target_dates(small).values)


def test_dask_in_dask_out_lazy_and_equal(model, cube):
    lazy = cube.chunk({"time": 1, "y": 40, "x": 24})
    t = cube.time.values[[5, 10]]
    out = xstf.models.predict(lazy, model, targets=t, tile=32, overlap=20, device="cpu")
    assert out.chunks is not None and out.data.dtype == np.float32
    eager = xstf.models.predict(cube, model, targets=t, tile=32, overlap=20, device="cpu")
    res = out.compute()
    np.testing.assert_allclose(res.values, eager.values, atol=1e-3)
    np.testing.assert_array_equal(np.isnan(res.values), np.isnan(eager.values))
    # building the graph ran no forward pass; only computing does
    P = sys.modules["xstf.models.inference"]
    P._NETS.clear()
    out2 = xstf.models.predict(lazy, model, targets=t, tile=32, overlap=20, device="cpu")
    assert not P._NETS
    out2.compute()
    assert P._NETS


def test_save_load_round_trip_gives_identical_predictions(model, cube, tmp_path):
    path = model.save(tmp_path / "m.pt")
    back = load_model(path)
    assert back.config == model.config and back.history == model.history
    t = cube.time.values[[5]]
    a = xstf.models.predict(cube, model, targets=t, device="cpu")
    b = xstf.models.predict(cube, back, targets=t, device="cpu")
    np.testing.assert_array_equal(a.values, b.values)
    c = xstf.models.predict(cube, str(path), targets=t, device="cpu")  # a path works too
    np.testing.assert_array_equal(a.values, c.values)
    assert not hasattr(back, "predict")  # one way to predict: xstf.models.predict
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(path)
    model.save(path, overwrite=True)


class _Evil:
    def __reduce__(self):
        import os

        return (os.mkdir, (self.target,))


def test_checkpoints_are_loaded_weights_only(model, tmp_path):
    target = tmp_path / "pwned"
    evil = _Evil()
    evil.target = str(target)
    path = tmp_path / "evil.pt"
    torch.save({"format": "xstf-checkpoint", "version": 1, "config": "{}", "x": evil}, path)
    with pytest.raises(ValueError, match="not an xstf checkpoint"):
        load_model(path)
    assert not target.exists()  # the code in the pickle never ran
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(ValueError, match="no 'format'"):
        load_model(plain)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ValueError, match="not an xstf checkpoint"):
        load_model(raw)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


def test_model_and_cube_must_match(model, cube):
    t = cube.time.values[[5]]
    renamed = cube.rename({"fine": "lst_landsat", "coarse": "lst_modis"})
    with pytest.raises(xstf.CubeError, match="fitted on variables fine='fine'"):
        xstf.models.predict(renamed, model, targets=t, device="cpu")
    ok = xstf.models.predict(
        renamed, model, targets=t, fine="lst_landsat", coarse="lst_modis", device="cpu"
    )
    np.testing.assert_array_equal(
        ok.values, xstf.models.predict(cube, model, targets=t, device="cpu").values
    )
    other = cube.assign_attrs(coarse_resolution=500)
    with pytest.raises(xstf.CubeError, match="resolution ratio"):
        xstf.models.predict(other, model, targets=t, device="cpu")
    with pytest.raises(xstf.CubeError, match="not dates of the cube"):
        xstf.models.predict(cube, model, targets=["1999-01-01"], device="cpu")
    with pytest.raises(TypeError, match="FittedModel"):
        xstf.models.predict(cube, 3, device="cpu")


def test_a_target_without_coarse_data_is_refused_like_estarfm(model, cube):
    # one prediction contract (xstf.prediction): the same CubeError for every method
    t = cube.time.values[5]
    empty = cube.copy()
    empty["coarse"] = empty.coarse.where(empty.time != t)
    errors = []
    for run in (
        lambda: xstf.models.predict(empty, model, targets=[t], device="cpu"),
        lambda: xstf.estarfm(empty, targets=[t], half_window=3),
    ):
        with pytest.raises(xstf.CubeError, match="no valid 'coarse' pixel") as err:
            run()
        errors.append(str(err.value))
    assert errors[0] == errors[1]


def test_a_model_name_is_refused_prediction_never_trains(cube, monkeypatch):
    import xstf.models.train

    def boom(*args, **kwargs):
        raise AssertionError("predict must not train")

    monkeypatch.setattr(xstf.models.train, "fit", boom)
    small = cube.isel(time=slice(0, 100))
    for call in (
        lambda: small.stf.predict("edcstfn", targets=small.time.values[[5]], device="cpu"),
        lambda: xstf.models.predict(small, "EDCSTFN", device="cpu"),
    ):
        with pytest.raises(TypeError, match=r"fit one first.*xstf\.models\.fit"):
            call()
    with pytest.raises(TypeError):  # no default model
        small.stf.predict()


def test_models_package_without_torch_names_the_extra():
    import subprocess

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import xstf, xstf.models\n"
        "assert xstf.models.available() == [], xstf.models.available()\n"
        "assert 'edcstfn' in xstf.models.names()\n"
        "for f in (lambda: xstf.models.create('edcstfn'), lambda: xstf.load_model('m.pt')):\n"
        "    try:\n"
        "        f()\n"
        "    except ImportError as e:\n"
        "        assert \"pip install 'xstf[torch]'\" in str(e), e\n"
        "    else:\n"
        "        raise SystemExit('no ImportError')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_devices_and_mixed_precision(model, cube):
    from xstf.models.registry import resolve_device

    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            xstf.models.predict(cube, model, targets=cube.time.values[[5]], device="cuda")
    t = cube.time.values[[5]]
    full = xstf.models.predict(cube, model, targets=t, device="cpu")
    half = xstf.models.predict(cube, model, targets=t, device="cpu", amp=True)
    assert half.dtype == np.float32
    d = np.abs(full.values - half.values)
    assert 0 < np.nanmax(d) < 0.5  # K: bfloat16 rounding, not garbage


def test_a_nearly_flat_prediction_warns_once_naming_the_dates(cube):
    from xstf.models.inference import FLAT_RATIO, _warn_if_flat

    coarse = np.stack([cube.coarse[10].values, cube.coarse[11].values])
    sc = np.nanstd(coarse, axis=(1, 2))
    flat = 290.0 + 0.1 * (coarse - np.nanmean(coarse))  # std 10 % of the coarse image's
    with pytest.warns(UserWarning, match=r"nearly flat on 2 of 2 date\(s\).*2021-01-11") as rec:
        _warn_if_flat(flat, coarse, "edcstfn", ["2021-01-11", "2021-01-12"])
    assert len(rec) == 1 and f"{0.1 * sc[0]:.3g} K vs {sc[0]:.3g} K" in str(rec[0].message)
    detailed = coarse + 2.0 * (np.indices(coarse.shape[1:]).sum(0) % 2)  # more detail: no warning
    just_above = 290.0 + (FLAT_RATIO + 0.01) * (coarse - np.nanmean(coarse))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_flat(detailed, coarse, "edcstfn", ["a", "b"])
        _warn_if_flat(just_above, coarse, "edcstfn", ["a", "b"])
        _warn_if_flat(flat, np.full_like(coarse, 290.0), "edcstfn", ["a", "b"])  # flat coarse


def test_an_untrained_model_warns_through_predict(cube):
    from xstf.models.checkpoint import FittedModel
    from xstf.models.registry import create

    torch.manual_seed(0)
    cfg = {"model": "edcstfn", "bands": 1, "model_options": {"width": 4}, "n_refs": 2,
           "mean": 290.0, "std": 5.0, "normalisation": "global"}  # fmt: skip
    m = FittedModel("edcstfn", create("edcstfn", width=4), cfg, [])
    with torch.no_grad():
        for p in m.net.parameters():
            p.mul_(1e-3)  # output ~ constant
    t = cube.time.values[[10]]
    with pytest.warns(UserWarning, match="nearly flat on 1 of 1 date"):
        xstf.models.predict(cube, m, targets=t, device="cpu")
    with pytest.warns(UserWarning, match="nearly flat on 1 of 1 date"):  # dask, whole dates
        xstf.models.predict(cube.chunk({"time": 4}), m, targets=t, device="cpu").compute()


def _models_import_graph():
    """Edges module -> xstf.models module it imports (top-level or inside functions)."""
    import ast
    from pathlib import Path

    root = Path(xstf.__file__).parent / "models"
    graph = {}
    for path in sorted(root.glob("*.py")):
        name = "xstf.models" if path.stem == "__init__" else f"xstf.models.{path.stem}"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(f"xstf.models.{node.module}")
                else:
                    deps |= {f"xstf.models.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xstf.models"):
                deps.add(node.module)
        graph[name] = deps - {name}
    return graph


def test_the_models_import_graph_is_acyclic_and_never_goes_through_the_front():
    graph = _models_import_graph()
    inner = {k: v for k, v in graph.items() if k != "xstf.models"}
    assert not [k for k, v in inner.items() if "xstf.models" in v]  # no `from . import x`
    assert "xstf.models.train" not in graph["xstf.models.inference"]
    state = {}

    def visit(n, path):
        if state.get(n) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*path, n])}")
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in sorted(graph.get(n, ())):
            visit(d, [*path, n])
        state[n] = 2

    for n in graph:
        visit(n, [])


@pytest.mark.parametrize("module", ["registry", "checkpoint", "inference", "train", "gan"])
def test_each_models_module_imports_alone(module):
    import subprocess

    res = subprocess.run([sys.executable, "-c", f"import xstf.models.{module}"],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
