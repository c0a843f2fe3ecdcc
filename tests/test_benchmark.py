"""Smoke test: benchmarks/conv_speed.py --quick runs end to end and writes well-formed JSON and a plot."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_conv_speed_quick(tmp_path):
    json_path, plot_path = tmp_path / "results.json", tmp_path / "ratios.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "conv_speed.py"), "--quick", "--threads", "1",
         "--json", str(json_path), "--plot", str(plot_path)],
        capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "ratio" in done.stdout

    results = json.loads(json_path.read_text())
    assert results["machine"]["threads"] == 1
    assert results["machine"]["torch"]
    impls = {row["impl"] for row in results["rows"]}
    assert {"native", "cnnext", "naive"} <= impls
    assert {row["pass"] for row in results["rows"]} == {"fwd", "fwd+bwd"}
    for row in results["rows"]:
        assert row["ms"] > 0 and row["gflops"] > 0 and row["ratio"] > 0
        assert row["reduced_shape"] == (row["impl"] == "naive")
    assert results["summary"]["resnet18_geomean_ratio_fwd+bwd"] > 0
    assert plot_path.stat().st_size > 0
