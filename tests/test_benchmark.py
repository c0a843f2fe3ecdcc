"""Smoke test: benchmarks/conv_speed.py --quick runs end to end (Conv2d, then conv1d, conv3d and pooling)
and writes well-formed JSON and a plot; --family picks families."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_conv_speed(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "conv_speed.py"), "--quick", "--threads", "1",
                           *map(str, args)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done


def test_conv_speed_quick(tmp_path):
    json_path, plot_path = tmp_path / "results.json", tmp_path / "ratios.png"
    done = run_conv_speed("--json", json_path, "--plot", plot_path)
    assert "ratio" in done.stdout

    results = json.loads(json_path.read_text())
    assert results["machine"]["threads"] == 1
    assert results["machine"]["torch"]
    rows = results["rows"]
    impls = {row["impl"] for row in rows}
    assert {"native", "cnnext", "naive"} <= impls
    assert {row["pass"] for row in rows} == {"fwd", "fwd+bwd"}
    for row in rows:
        assert row["ms"] > 0 and row["ratio"] > 0
        assert row["reduced_shape"] == (row["impl"] == "naive")
        # pooling does no multiply-adds: no GFLOP/s
        assert (row["gflops"] is None) == (row["family"] == "pool")
        assert row["gflops"] is None or row["gflops"] > 0
    assert results["summary"]["resnet18_geomean_ratio_fwd+bwd"] > 0
    assert plot_path.stat().st_size > 0

    other_ops = [row for row in rows if row["family"] in ("conv1d", "conv3d", "pool")]
    assert {row["family"] for row in other_ops} == {"conv1d", "conv3d", "pool"}
    for family in ("conv1d", "conv3d", "pool"):
        assert {(row["impl"], row["pass"]) for row in other_ops if row["family"] == family} == {
            (impl, pass_name) for impl in ("native", "cnnext") for pass_name in ("fwd", "fwd+bwd")}


def test_conv_speed_family_selects(tmp_path):
    json_path = tmp_path / "results.json"
    run_conv_speed("--family", "conv1d", "--family", "pool", "--json", json_path)
    rows = json.loads(json_path.read_text())["rows"]
    assert {row["family"] for row in rows} == {"conv1d", "pool"}
    assert {row["layer"] for row in rows if row["family"] == "pool"} == {"maxpool.k3s2", "avgpool.k2"}


def test_conv_speed_bfloat16_cpu_time(tmp_path):
    json_path = tmp_path / "results.json"
    done = run_conv_speed("--family", "resnet18", "--dtype", "bfloat16", "--cpu-time", "--no-naive",
                          "--json", json_path)
    assert "bfloat16" in done.stdout and "CPU time" in done.stdout
    results = json.loads(json_path.read_text())
    assert results["args"]["dtype"] == "bfloat16" and results["args"]["cpu_time"] == "True"
    assert len(results["machine"]["load_average_start"]) == 3
    rows = results["rows"]
    assert {row["impl"] for row in rows} == {"native", "cnnext"}
    assert all(row["ms"] > 0 and row["ratio"] > 0 for row in rows)


def test_conv_speed_in_channels_last(tmp_path):
    json_path = tmp_path / "results.json"
    done = run_conv_speed("--family", "resnet18", "--family", "conv3d", "--family", "pool", "--memory-format",
                          "channels_last", "--no-naive", "--json", json_path)
    assert ", channels_last, " in done.stdout.splitlines()[0]
    results = json.loads(json_path.read_text())
    assert results["machine"]["memory_format"] == "channels_last"
    assert {row["family"] for row in results["rows"]} == {"resnet18", "conv3d", "pool"}
    assert all(row["ms"] > 0 for row in results["rows"])
