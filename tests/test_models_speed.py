"""Smoke test: benchmarks/models_speed.py --quick times tiny lab models (and torchvision's, where importable)
end to end, cnnext against PyTorch, and writes well-formed JSON and a plot."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_models_speed_in_bfloat16(tmp_path):
    json_path = tmp_path / "models.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "models_speed.py"), "--quick", "--threads", "1",
                           "--group", "lab", "--precision", "bfloat16", "--json", str(json_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert ", bfloat16, " in done.stdout.splitlines()[0]
    results = json.loads(json_path.read_text())
    assert results["args"]["precision"] == "bfloat16"
    for row in results["rows"]:
        # both sides run in bfloat16: they agree to bfloat16's rounding, not float32's
        assert row["max_abs_diff"] < 0.1


def test_models_speed_in_channels_last(tmp_path):
    json_path = tmp_path / "models.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "models_speed.py"), "--quick", "--threads", "1",
                           "--group", "lab", "--memory-format", "channels_last", "--json", str(json_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert ", channels_last, " in done.stdout.splitlines()[0]
    results = json.loads(json_path.read_text())
    assert results["machine"]["memory_format"] == "channels_last"
    for row in results["rows"]:
        assert row["max_abs_diff"] < 1e-3


def test_models_speed_in_runs_and_in_separate_processes(tmp_path):
    """--in-a-row times runs of consecutive steps per side; --separate-processes runs each in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for extra in (["--in-a-row", "3"], ["--in-a-row", "2", "--separate-processes"]):
        json_path = tmp_path / "models.json"
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "models_speed.py"), "--quick", "--threads",
                               "1", "--group", "lab", "--only", "cnn", "--repeats", "2", *extra, "--json",
                               str(json_path)], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        rows = json.loads(json_path.read_text())["rows"]
        assert [(row["model"], row["pass"]) for row in rows] == [("cnn", "inference"), ("cnn", "train step")]
        assert all(row["torch_ms"] > 0 and row["cnnext_ms"] > 0 for row in rows)

