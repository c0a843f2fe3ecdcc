"""Smoke test: benchmarks/models_speed.py --quick times tiny lab models (and torchvision's, where importable)
end to end, cnnext against PyTorch, and writes well-formed JSON and a plot."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_models_speed_quick(tmp_path):
    json_path, plot_path = tmp_path / "models.json", tmp_path / "models.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "models_speed.py"), "--quick", "--threads", "1",
                           "--json", str(json_path), "--plot", str(plot_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "lab_geomean_ratio_train step" in done.stdout
    results = json.loads(json_path.read_text())
    assert results["machine"]["threads"] == 1
    rows = results["rows"]
    assert {(row["model"], row["pass"]) for row in rows if row["group"] == "lab"} == {
        (model, pass_name) for model in ("cnn", "aodnet") for pass_name in ("inference", "train step")}
    for row in rows:
        assert row["torch_ms"] > 0 and row["cnnext_ms"] > 0
        assert abs(row["ratio"] - row["torch_ms"] / row["cnnext_ms"]) < 1e-9
        assert row["max_abs_diff"] < 1e-3  # the converted model computes what the original does
    has_torchvision = importlib.util.find_spec("torchvision") is not None
    assert any(row["group"] == "torchvision" for row in rows) == has_torchvision
    if not has_torchvision:
        assert "skipping torchvision's models" in done.stderr
    assert plot_path.stat().st_size > 0


def run_models_speed(json_path, *options):
    """models_speed.py --quick --threads 1 --group lab with `options`, writing json_path; the finished process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "models_speed.py"), "--quick", "--threads", "1",
                           "--group", "lab", *options, "--json", str(json_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done


# bfloat16 on both sides agrees to bfloat16's rounding, not float32's; channels-last to float32's
@pytest.mark.parametrize("option, value, recorded_in, tolerance", [
    ("--precision", "bfloat16", ("args", "precision"), 0.1),
    ("--memory-format", "channels_last", ("machine", "memory_format"), 1e-3)])
def test_models_speed_options(tmp_path, option, value, recorded_in, tolerance):
    json_path = tmp_path / "models.json"
    done = run_models_speed(json_path, option, value)
    assert f", {value}, " in done.stdout.splitlines()[0]
    results = json.loads(json_path.read_text())
    section, key = recorded_in
    assert results[section][key] == value
    assert all(row["max_abs_diff"] < tolerance for row in results["rows"])


def test_models_speed_in_runs_and_in_separate_processes(tmp_path):
    """--in-a-row times runs of consecutive steps per side; --separate-processes runs each in a fresh process."""
    for extra in (["--in-a-row", "3"], ["--in-a-row", "2", "--separate-processes"]):
        json_path = tmp_path / "models.json"
        run_models_speed(json_path, "--only", "cnn", "--repeats", "2", *extra)
        rows = json.loads(json_path.read_text())["rows"]
        assert [(row["model"], row["pass"]) for row in rows] == [("cnn", "inference"), ("cnn", "train step")]
        assert all(row["torch_ms"] > 0 and row["cnnext_ms"] > 0 for row in rows)
