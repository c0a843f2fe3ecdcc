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


# speedrun has its own loop and report (tests/test_cifar_speedrun.py checks its --quick run); transfer needs
# CIFAR-10 beside the vehicles (tests/test_transfer.py)
@pytest.mark.parametrize("name", [name for name in run.EXPERIMENTS if name not in ("speedrun", "transfer")])
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
        assert (tmp_path / record["name"] / "seed0" / "checkpoint.pt").is_file()
        assert record["seeds"] == [0] and len(record["per_seed"]) == 1
    report = (tmp_path / "report.md").read_text()
    assert "Bundled sample data, not the lab's images" in report and "## Results" in report
    figures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "curves.png" in figures and all(f"]({figure})" in report for figure in figures)
    if name == "dehaze":
        assert "dehaze_examples.png" in figures and "test_ssim" in metrics["runs"][0]["final"]
        assert "hazy input (no network)" in report and "20-22 dB" in report
    else:
        assert "majority class (baseline)" in report and metrics["majority_baseline"]["accuracy"] > 0
        assert set(metrics["methods"]) >= {"augmentation", "weight averaging", "unsupervised domain adaptation"}
        for record in metrics["runs"]:
            assert len(record["per_class_accuracy"]) == len(metrics["data"]["classes"])
            assert {"test_accuracy_plain", "test_accuracy_bn-adapt+tta"} <= set(record["final"])
            assert len(record["per_seed"][0]["predictions"]) == metrics["data"]["test_samples"]
        if min(record["final"]["test_accuracy"] for record in metrics["runs"]) < 1:
            assert "errors.png" in figures and "gets wrong, true class -> predicted" in report
    if name == "resnet":
        assert "depth_train_loss.png" in figures and "plain56" in report
    if name == "dilation":
        assert "gridding.png" in figures and "holes" in report


def test_quick_run_on_real_vehicles(tmp_path, data_dir):
    metrics = quick("dilated", tmp_path, "--data", str(data_dir))
    assert not metrics["bundled_data"] and metrics["data"]["source"].startswith("real")
    assert metrics["data"]["classes"] == ["bus", "car", "truck"]
    assert "Bundled sample data" not in (tmp_path / "report.md").read_text()


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, bundled):
    first = quick("mlp", tmp_path, "--epochs", "1")
    assert [r["resumed_from"] for r in first["runs"]] == [[None], [None]]
    second = quick("mlp", tmp_path, "--epochs", "2")
    assert [r["resumed_from"] for r in second["runs"]] == [[1], [1]]
    assert second["runs"][0]["history"][0] == first["runs"][0]["history"][0]
    assert len(second["runs"][0]["history"]) == 2
    with pytest.raises(SystemExit, match="holds 2 trained epochs, more than --epochs 1"):
        quick("mlp", tmp_path, "--epochs", "1")
    fresh = quick("mlp", tmp_path, "--epochs", "1", "--no-resume")
    assert [r["resumed_from"] for r in fresh["runs"]] == [[None], [None]]


def test_seeds_give_mean_and_standard_deviation(tmp_path, bundled):
    metrics = quick("mlp", tmp_path, "--seeds", "2")
    assert metrics["seeds"] == [0, 1]
    for record in metrics["runs"]:
        accuracies = [seed_run["final"]["test_accuracy"] for seed_run in record["per_seed"]]
        assert [seed_run["seed"] for seed_run in record["per_seed"]] == [0, 1]
        assert record["final"]["test_accuracy"] == pytest.approx(sum(accuracies) / 2)
        assert record["final_std"]["test_accuracy"] == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2)
        assert (tmp_path / record["name"] / "seed1" / "checkpoint.pt").is_file()
    assert "± " in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("split", ["lab", "random"])
def test_split_option_is_recorded(tmp_path, split, data_dir):
    metrics = quick("mlp", tmp_path, "--data", str(data_dir), "--split", split, "--test-fraction", "0.25")
    assert metrics["split"].startswith(split) and metrics["test_fraction"] == 0.25
    assert metrics["settings"]["split"] == split and "25%" in metrics["split"]
    assert f"| split | {metrics['split']} |" in (tmp_path / "report.md").read_text()


def test_methods_can_be_switched_off_and_are_recorded(tmp_path, bundled):
    metrics = quick("mlp", tmp_path, "--no-augment", "--no-ema", "--no-tta", "--no-bn-adapt", "--standardize", "none")
    assert metrics["methods"]["augmentation"] == "none" and metrics["reported_test_variant"] == "plain"
    record = metrics["runs"][0]
    assert record["final"]["test_accuracy"] == record["final"]["test_accuracy_plain"]


def test_tent_goes_with_batchnorm_adaptation_unless_switched_off(tmp_path, bundled):
    metrics = quick("mlp", tmp_path, "--bn-adapt")
    assert metrics["settings"]["tent"] and metrics["reported_test_variant"] == "tent+tta"
    assert metrics["methods"]["unsupervised domain adaptation"].startswith("TENT")
    assert "test_accuracy_tent+tta" in metrics["runs"][0]["final"]
    assert "TENT + flip TTA (reported)" in (tmp_path / "report.md").read_text()
    off = quick("mlp", tmp_path / "off", "--bn-adapt", "--no-tent")
    assert off["reported_test_variant"] == "bn-adapt+tta" and "test_accuracy_tent" not in off["runs"][0]["final"]


def test_balanced_class_weights_follow_the_class_counts(tmp_path, bundled):
    from experiments.context import Context
    args = run.build_parser().parse_args(["mlp", "--quick", "--class-weights", "balanced", "--out", str(tmp_path)])
    ctx = Context(run.EXPERIMENTS["mlp"], args)
    counts = torch.bincount(torch.as_tensor(ctx.data.train.labels), minlength=len(ctx.data.classes)).float()
    weights = ctx.training_loss(ctx.data).weight
    assert torch.allclose(weights, counts.sum() / (len(counts) * counts))
    assert "weighted" in ctx.methods()["loss"]
    metrics = quick("mlp", tmp_path / "run", "--class-weights", "balanced")
    assert metrics["settings"]["class_weights"] == "balanced" and "weighted" in metrics["methods"]["loss"]
    assert "weighted" not in quick("mlp", tmp_path / "plain")["methods"]["loss"]


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


def test_bundled_digits_are_upsampled_only_as_far_as_the_models_need(bundled, tmp_path, monkeypatch):
    from experiments.context import resolve_settings

    def image_size(*argv):
        return resolve_settings(run.EXPERIMENTS[argv[0]], run.build_parser().parse_args(argv))["image_size"]

    assert image_size("resnet") == 16 and image_size("dilated") == 32      # HDC's unpadded rates need 32 px
    assert image_size("resnet", "--image-size", "40") == 40
    assert image_size("resnet", "--data", str(tmp_path)) == 32             # a real data set keeps the recipe
    assert image_size("dehaze") == run.EXPERIMENTS["dehaze"].defaults["image_size"]


def test_all_runs_the_lab_experiments_and_leaves_the_hours_long_cifar_ones_out():
    assert {"conv", "resnet", "dilated", "dehaze"} <= set(run.LAB_EXPERIMENTS)
    assert set(run.CIFAR_ONLY) == {"cifar", "speedrun"} and not set(run.CIFAR_ONLY) & set(run.LAB_EXPERIMENTS)
