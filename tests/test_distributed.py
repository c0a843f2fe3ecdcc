"""Data parallelism: experiments/run.py under torchrun with 2 CPU processes (gloo) trains, and only rank 0 writes."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_torchrun_two_cpu_processes(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "CNNEXT_DATA"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "experiments" / "run.py"), "dilated", "--quick", "--threads", "1", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["environment"]["world_size"] == 2
    assert result.stdout.count("== dilated") == 1  # only rank 0 prints
    for record in metrics["runs"]:
        assert len(record["history"]) == 2 and (tmp_path / record["name"] / "seed0" / "checkpoint.pt").is_file()
    assert not list(tmp_path.rglob("*.tmp"))
