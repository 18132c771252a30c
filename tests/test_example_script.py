"""examples/orleans_to_zarr.py: clear errors before any work, nothing overwritten unasked."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "orleans_to_zarr.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("orleans_to_zarr", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_data(tmp_path: Path) -> Path:
    data = tmp_path / "orleans"
    (data / "landsat8").mkdir(parents=True)
    (data / "modis").mkdir()
    return data


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path):
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--data", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert "no Orléans data in" in res.stderr and "--data DIR" in res.stderr
    assert "Traceback" not in res.stderr


def test_default_outputs_are_not_tracked_files(example, tmp_path):
    args = example.parse_args(["--data", str(_fake_data(tmp_path))])
    assert args.store == Path("out/orleans/fused.zarr")
    assert args.figure == Path("out/orleans/orleans.png")
    tracked = subprocess.run(
        ["git", "ls-files", "out"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert tracked == ""  # out/ is ignored by git: docs/_static/orleans.png is never the default
    assert (ROOT / "docs" / "_static" / "orleans.png") not in {args.figure.resolve(), args.store}


def test_existing_outputs_are_refused_unless_overwrite(example, tmp_path, capsys):
    data, out = _fake_data(tmp_path), tmp_path / "res"
    out.mkdir()
    (out / "orleans.png").write_bytes(b"keep me")
    with pytest.raises(SystemExit) as stop:
        example.parse_args(["--data", str(data), "--out", str(out)])
    assert stop.value.code == 2
    assert "orleans.png already exist(s): pass --overwrite" in capsys.readouterr().err
    assert (out / "orleans.png").read_bytes() == b"keep me"
    args = example.parse_args(["--data", str(data), "--out", str(out), "--overwrite"])
    assert args.overwrite and args.figure == out / "orleans.png"
