"""experiments/run.py: every experiment runs with --quick and writes metrics.json, report.md and PNG figures;
checkpoints resume; bad data directories and datasets give clear errors."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RUN_PY = ROOT / "experiments" / "run.py"


def load_run_module():
    spec = importlib.util.spec_from_file_location("experiments_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load_run_module()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread on a busy machine; restore the setting afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def bundled(monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)


def quick(name, out, *extra):
    run.main([name, "--quick", "--threads", "1", "--out", str(out), *extra])
    return json.loads((out / "metrics.json").read_text())


def test_help_lists_every_experiment():
    result = subprocess.run([sys.executable, str(RUN_PY), "--help"], capture_output=True, text=True, check=True)
    for name in list(run.EXPERIMENTS) + ["all"]:
        assert name in result.stdout


@pytest.mark.parametrize("name", list(run.EXPERIMENTS))
def test_quick_run_writes_metrics_report_and_figures(name, tmp_path, bundled):
    metrics = quick(name, tmp_path)
    assert metrics["experiment"] == name and metrics["bundled_data"] and metrics["quick"]
    assert metrics["data"]["source"].startswith("bundled: ") and "scikit-learn" in metrics["data"]["source"]
    assert metrics["environment"]["backend"] == "cnnext" and metrics["environment"]["torch"] == torch.__version__
    assert metrics["runs"]
    for record in metrics["runs"]:
        assert len(record["history"]) == 2 and record["parameters"] > 0
        assert {"train_loss", "test_loss", "epoch_time_s"} <= set(record["history"][-1])
        score = "test_psnr" if name == "dehaze" else "test_accuracy"
        assert score in record["history"][-1]
        assert (tmp_path / record["name"] / "checkpoint.pt").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "Bundled sample data, not the lab's images" in report and "## Results" in report
    figures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "curves.png" in figures and all(f"]({figure})" in report for figure in figures)
    if name == "dehaze":
        assert "dehaze_examples.png" in figures and "test_ssim" in metrics["runs"][0]["final"]
        assert "hazy input (no network)" in report and "20-22 dB" in report


def test_quick_run_on_real_vehicles(tmp_path, data_dir):
    metrics = quick("dilated", tmp_path, "--data", str(data_dir))
    assert not metrics["bundled_data"] and metrics["data"]["source"].startswith("real")
    assert metrics["data"]["classes"] == ["bus", "car", "truck"]
    assert "Bundled sample data" not in (tmp_path / "report.md").read_text()


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, bundled):
    first = quick("mlp", tmp_path, "--epochs", "1")
    assert [r["resumed_from"] for r in first["runs"]] == [None, None]
    second = quick("mlp", tmp_path, "--epochs", "2")
    assert [r["resumed_from"] for r in second["runs"]] == [1, 1]
    assert second["runs"][0]["history"][0] == first["runs"][0]["history"][0]
    assert len(second["runs"][0]["history"]) == 2
    with pytest.raises(SystemExit, match="holds 2 trained epochs, more than --epochs 1"):
        quick("mlp", tmp_path, "--epochs", "1")
    fresh = quick("mlp", tmp_path, "--epochs", "1", "--no-resume")
    assert [r["resumed_from"] for r in fresh["runs"]] == [None, None]


def test_missing_data_directory_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="does not exist.*vehicles/<class>"):
        run.main(["conv", "--quick", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)])


def test_malformed_data_directory_is_a_clear_error(tmp_path):
    (tmp_path / "vehicles" / "car").mkdir(parents=True)
    with pytest.raises(SystemExit, match="class folder.*one folder per class"):
        run.main(["conv", "--quick", "--data", str(tmp_path), "--out", str(tmp_path / "out")])


def test_dataset_must_fit_the_task(tmp_path, bundled):
    with pytest.raises(SystemExit, match="--dataset must be one of"):
        run.main(["dehaze", "--quick", "--dataset", "vehicles", "--out", str(tmp_path)])


def test_unreadable_images_are_logged_and_reported(tmp_path, capsys):
    for part, shade in (("hazy", 160), ("clear", 90)):
        (tmp_path / "data" / "dehaze" / part).mkdir(parents=True)
        for index in range(6):
            Image.new("RGB", (20, 20), (shade, 60, 60)).save(tmp_path / "data" / "dehaze" / part / f"{index}.jpg")
    bad = tmp_path / "data" / "dehaze" / "hazy" / "1.jpg"
    bad.write_bytes(b"")
    metrics = quick("dehaze", tmp_path / "out", "--data", str(tmp_path / "data"))
    out = capsys.readouterr().out
    assert f"warning: skipping {bad}: not a readable image (empty file)" in out
    assert "skipped 1 unreadable image file(s)" in out
    assert metrics["data"]["skipped_files"] == [str(bad)]
    assert "1 unreadable image file(s) skipped" in (tmp_path / "out" / "report.md").read_text()
