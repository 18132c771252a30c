"""Checkpoint integrity: checksum, damaged files, incomplete configs, model/cube mismatches."""

from __future__ import annotations

import json
import struct
import warnings
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import xstf  # noqa: E402
from xstf.models import load_model  # noqa: E402
from xstf.models.checkpoint import (  # noqa: E402
    FittedModel,
    load_checkpoint,
    save_checkpoint,
    weights_sha256,
)
from xstf.models.registry import create  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def cube():
    return xstf.datasets.synthetic(size=48, days=100, seed=0, cloud_fraction=0.0)


def _model(bands: int = 1) -> FittedModel:
    torch.manual_seed(0)
    net = create("edcstfn", bands=bands, width=4)
    cfg = {"model": "edcstfn", "bands": bands, "model_options": {"width": 4}, "n_refs": 2,
           "mean": 290.0, "std": 5.0, "fine": "fine", "coarse": "coarse",
           "resolution_ratio": 1000 / 30, "normalisation": "global"}  # fmt: skip
    return FittedModel("edcstfn", net, cfg, [])


def _largest_record(path) -> tuple[int, int]:
    """(offset, size) of the largest stored tensor's bytes inside the torch zip file."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_flipped_bytes_in_the_weights_are_refused(tmp_path):
    path = _model().save(tmp_path / "m.pt")
    offset, size = _largest_record(path)
    raw = bytearray(path.read_bytes())
    for i in range(64):  # flip 64 bytes spread over the largest weight tensor
        raw[offset + (i * size) // 64] ^= 0xFF
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(raw))
    # the file is still a readable torch archive: only the checksum catches it
    assert torch.load(bad, weights_only=True)["format"] == "xstf-checkpoint"
    with pytest.raises(ValueError, match=r"flipped\.pt is corrupt: the checksum") as err:
        load_model(bad)
    assert "FittedModel.save" in str(err.value)


def test_truncated_and_empty_files_give_one_clear_error(tmp_path):
    path = _model().save(tmp_path / "m.pt")
    data = path.read_bytes()
    half = tmp_path / "half.pt"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"half\.pt is not an xstf checkpoint, or is truncated"):
        load_model(half)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt is empty \(0 bytes\)"):
        load_model(empty)
    one = tmp_path / "one.pt"
    one.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"one\.pt is not an xstf checkpoint"):
        load_model(one)


@pytest.mark.parametrize("drop", ["mean", "std", "model", "n_refs"])
def test_a_config_without_what_prediction_needs_is_refused(tmp_path, drop):
    path = _model().save(tmp_path / "m.pt")
    raw = load_checkpoint(path)
    cfg = json.loads(raw["config"])
    del cfg[drop]
    raw["config"] = json.dumps(cfg)
    bad = tmp_path / f"no_{drop}.pt"
    save_checkpoint(bad, {k: v for k, v in raw.items() if k not in ("format", "version")})
    with pytest.raises(
        ValueError, match=rf"no_{drop}\.pt: the checkpoint config lacks \['{drop}'\]"
    ):
        load_model(bad)


def test_an_incomplete_file_and_a_bad_normalisation_are_refused(tmp_path):
    bad = tmp_path / "noweights.pt"
    torch.save({"format": "xstf-checkpoint", "version": 2, "config": "{}"}, bad)
    with pytest.raises(ValueError, match=r"noweights\.pt is an incomplete xstf checkpoint"):
        load_model(bad)
    m = _model()
    m.config["std"] = 0.0
    path = m.save(tmp_path / "zero_std.pt")
    with pytest.raises(ValueError, match=r"zero_std\.pt: the checkpoint's normalisation"):
        load_model(path)


def test_checksum_covers_every_weight_and_a_version_1_file_still_loads(tmp_path):
    m = _model()
    path = m.save(tmp_path / "m.pt")
    raw = load_checkpoint(path)
    assert raw["version"] == 2 and raw["sha256"] == weights_sha256(raw)
    # changing any single weight changes the digest
    for key in list(raw["modules"]["net"])[:3]:
        other = {"modules": {"net": {**raw["modules"]["net"]}}}
        t = other["modules"]["net"][key].clone()
        t.view(-1)[0] += 1e-3
        other["modules"]["net"][key] = t
        assert weights_sha256(other) != raw["sha256"]
    old = {k: v for k, v in raw.items() if k != "sha256"}
    old["version"] = 1
    v1 = tmp_path / "v1.pt"
    torch.save(old, v1)
    with pytest.warns(UserWarning, match="version-1 xstf checkpoint"):
        back = load_model(v1)
    assert all(torch.equal(a, b) for a, b in zip(back.net.state_dict().values(),
                                                 m.net.state_dict().values(), strict=True))  # fmt: skip


@pytest.mark.parametrize("lazy", [False, True])
def test_a_two_band_model_on_a_one_band_cube_fails_before_any_work(cube, lazy, monkeypatch):
    import xstf.models.inference as inference

    def no_work(*args, **kwargs):
        raise AssertionError("prediction started")

    monkeypatch.setattr(inference, "predict_image", no_work)
    ds = cube.chunk({"time": 8}) if lazy else cube
    with pytest.raises(
        xstf.CubeError, match=r"fitted with 2 band\(s\).*\{'fine': 1, 'coarse': 1\}"
    ):
        xstf.models.predict(ds, _model(bands=2), targets=cube.time.values[[5]], device="cpu")


def test_a_matching_model_still_predicts_on_dask_and_numpy(cube):
    m = _model()
    t = cube.time.values[[5, 6]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an untrained net is flat
        eager = xstf.models.predict(cube, m, targets=t, device="cpu", tile=32, overlap=8)
        lazy = xstf.models.predict(cube.chunk({"time": 8}), m, targets=t, device="cpu", tile=32,
                                   overlap=8)  # fmt: skip
        assert lazy.chunks is not None
        np.testing.assert_allclose(lazy.values, eager.values, rtol=0, atol=1e-4)
