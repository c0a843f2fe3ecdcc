"""cnnext.lecture: every demo's numbers (the lecture's worked examples, identities that hold exactly, agreement
with torch.nn) and `run.py lecture --quick` writing the handout with one figure per demo."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnext import lecture
from cnnext.lecture import (arithmetic, channels, conv1d_3d, cross_correlation, dilation, learn_kernel,
                            normalisation, output_size, photo_kernels, pooling, speed_ladder)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_corr2d_lecture_example_and_shape_rule():
    result = cross_correlation.corr2d_numbers()
    assert result["y"].tolist() == [[19.0, 25.0], [37.0, 43.0]]
    assert torch.equal(result["y"], result["y_cnnext"])
    assert sum(sum(row) for row in result["first_window"]) == 19
    assert len(result["shapes"]) >= 15
    assert all(r["formula"] == r["cnnext"] for r in result["shapes"])


def test_edges_found_in_two_columns_and_not_on_the_transpose():
    result = cross_correlation.edge_numbers()
    y = result["y"]
    assert y.shape == (6, 7)
    assert torch.equal(y[:, 1], torch.ones(6)) and torch.equal(y[:, 5], -torch.ones(6))
    assert int((y != 0).sum()) == 12
    assert result["falling_columns"] == [1] and result["rising_columns"] == [5]
    assert result["y_transposed"].shape == (8, 5) and not result["y_transposed"].any()


def test_learnt_kernel_recovers_one_minus_one():
    result = learn_kernel.learn_numbers()
    assert abs(result["start"][0] - 1) > 0.5  # it really starts far from the answer
    assert result["learnt"] == pytest.approx([1.0, -1.0], abs=1e-2)
    assert result["losses"][-1] < 1e-3 * result["losses"][0]
    assert all(b <= a for a, b in zip(result["losses"], result["losses"][1:]))


def test_photo_kernels_keep_or_remove_the_mean_and_convolution_flips():
    result = photo_kernels.kernel_numbers(quick=True)
    assert result["size"] == [106, 160]  # china.jpg is 427x640, quartered
    assert result["reference_max_error"] < 1e-5
    assert result["convolution_equals_minus_correlation"] < 1e-6
    mean, std = result["mean"], result["std"]
    for name in ("sharpen", "Gaussian blur (5x5, σ = 1)"):
        assert result["kernel_sums"][name] == pytest.approx(1.0, abs=1e-6)
        assert mean[name] == pytest.approx(mean["photo"], abs=0.01)
    for name in ("edges (Laplacian)", "Sobel x"):
        assert result["kernel_sums"][name] == 0 and abs(mean[name]) < 0.01
    assert std["Gaussian blur (5x5, σ = 1)"] < std["photo"] < std["sharpen"]


def test_output_size_formula_matches_cnnext_and_the_224_example():
    result = output_size.size_numbers(quick=True)
    assert result["mismatches"] == 0 and len(result["rows"]) > 100
    assert {r["d"] for r in result["rows"]} == {1, 2} and {r["S"] for r in result["rows"]} == {1, 2, 3}
    assert output_size.output_size(224, 5) == 220 and output_size.effective_kernel(3, 2) == 5
    assert result["layers_to_4"] == 55 and result["side_after_44_layers"] == 48
    assert result["shrink_sides"][:3] == [224, 220, 216]


def test_channels_sum_stack_and_pointwise_is_a_matrix_product():
    result = channels.channel_numbers()
    assert result["summed"].tolist() == [[56.0, 72.0], [104.0, 120.0]]
    assert torch.equal(result["per_channel"][0] + result["per_channel"][1], result["summed"])
    assert result["stacked_shape"] == [3, 2, 2, 2] and list(result["multi_out"].shape) == [3, 2, 2]
    assert result["multi_out"][0].tolist() == [[56.0, 72.0], [104.0, 120.0]]
    assert result["multi_out"][1].tolist() == [[76.0, 100.0], [148.0, 172.0]]
    assert result["multi_out_vs_separate"] == 0 and result["pointwise_max_error"] == 0


def test_pooling_lecture_example_and_shift_tolerance():
    result = pooling.pooling_numbers()
    assert result["max"].tolist() == [[4.0, 5.0], [7.0, 8.0]]
    assert result["avg"].tolist() == [[2.0, 3.0], [5.0, 6.0]]
    assert result["edge_columns"] == [1] and result["edge_columns_shifted"] == [2]
    assert result["pooled_columns"] == [0, 1] and result["pooled_columns_shifted"] == [1, 2]
    assert result["pooled_agreement_at_edge"] == [1]


def test_hand_written_batchnorm_and_dropout_match_torch():
    for name, differences in normalisation.compare_batchnorm().items():
        assert max(differences.values()) < 1e-5, name
    drop = normalisation.compare_dropout()
    assert drop["same_mask_as_torch"] and drop["max_difference_to_torch"] < 1e-6 and drop["eval_is_identity"]
    assert drop["dropped_fraction"] == pytest.approx(0.3, abs=0.01)
    assert drop["kept_scale"] == pytest.approx(1 / 0.7, rel=1e-5)
    assert drop["mean_ratio"] == pytest.approx(1.0, abs=0.01)


def test_batchnorm_running_statistics_and_modes():
    layer = normalisation.BatchNorm(3, momentum=0.5)
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    y = layer(x)
    assert y.mean((0, 2, 3)).abs().max() < 1e-5 and (y.var((0, 2, 3), unbiased=False) - 1).abs().max() < 1e-3
    assert torch.allclose(layer.running_mean, 0.5 * x.mean((0, 2, 3)))
    layer.eval()
    assert torch.allclose(layer(x), (x - layer.running_mean.view(1, 3, 1, 1))
                          / torch.sqrt(layer.running_var.view(1, 3, 1, 1) + 1e-5))
    with pytest.raises(ValueError, match="BatchNorm: expected"):
        layer(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="Dropout: p must be"):
        normalisation.Dropout(1.0)


def test_small_training_runs_with_and_without_each():
    result = normalisation.normalisation_numbers(quick=True)
    assert list(result["runs"]) == list(normalisation.VARIANTS)
    assert result["train_size"] == 256 and result["test_size"] == 128
    for name, run in result["runs"].items():
        assert len(run["history"]) == 2, name
        assert run["history"][-1]["train_loss"] < run["history"][0]["train_loss"] or name.startswith(("plain", "drop"))
        assert all(np.isfinite(h["test_loss"]) for h in run["history"])
    best = max(run["history"][-1]["test_accuracy"] for run in result["runs"].values())
    assert best > 0.3  # chance is 0.1


def test_dilation_maps_show_holes_exactly_where_hdc_fails():
    rows = {tuple(r["rates"]): r for r in dilation.dilation_numbers()["rows"]}
    assert rows[(1, 2, 5)]["hdc"] and rows[(1, 2, 5)]["holes"] == 0 and rows[(1, 2, 5)]["size"] == 17
    assert rows[(2, 2, 2)]["M"] == [2, 2, 2] and rows[(2, 2, 2)]["seen"] == 7 * 7
    assert rows[(2, 4, 6)]["M"] == [2, 4, 6] and rows[(2, 4, 6)]["seen"] == 13 * 13
    for rates in ((2, 2, 2), (2, 4, 6)):
        assert not rows[rates]["hdc"] and rows[rates]["holes"] > 0
    assert all(r["paths"] == 27 ** 2 for r in rows.values())  # 9 taps per layer, 3 layers


def test_conv1d_on_prices_and_conv3d_on_the_clip():
    result = conv1d_3d.series_numbers(quick=True)
    assert result["series_length"] == 200 and result["average_length"] == 200 - 20 + 1
    assert result["average_error"] < 1e-9 and result["change_error"] < 1e-9
    assert result["clip_shape"] == [1, 1, 8, 12, 12] and result["motion_shape"] == [7, 12, 12]
    assert result["motion_entering"] == [4.0] * 7 and result["motion_leaving"] == [4.0] * 7
    assert result["smooth_shape"] == [6, 10, 10]
    full = conv1d_3d.closing_prices()[1]
    assert len(full) == 1047 and float(full[0]) == pytest.approx(100.34)


def test_dense_and_conv_arithmetic():
    result = arithmetic.arithmetic_numbers(quick=True)
    assert result["dense_weights"] == 3_600_000_000 and result["dense_parameters"] == 3_600_000_100
    assert result["dense_gigabytes"] == pytest.approx(14.4, abs=1e-3)
    assert result["conv_parameters"] == 100 * 9 + 100
    assert result["multiply_adds"] == 1_024_000_000
    assert result["timed_multiply_adds"] == result["timed_multiply_adds_from_output"]
    assert result["total_multiply_adds"] == 1.024e16
    hours = result["hours"]
    assert hours["lecture's CPU\n0.15 T multiply-adds/s"] == pytest.approx(18.96, abs=0.01)  # the lecture's "18 h"
    assert hours["lecture's GPU\n12 T multiply-adds/s"] * 60 == pytest.approx(14.2, abs=0.1)  # and "14 min"
    assert result["measured_multiply_adds_per_s"] > 1e7


def test_speed_ladder_rungs_agree_and_are_ordered_at_the_ends():
    result = speed_ladder.ladder_numbers(quick=True)
    rungs = result["rungs"]
    expected = [name for name in speed_ladder.RUNGS
                if result["direct_available"] or name not in speed_ladder.AVX512_RUNGS]
    assert list(rungs) == expected
    for name, rung in rungs.items():
        assert rung["max_error"] < 1e-3, name
        assert rung["reduced"] == (name in ("Python loops", "cnnext.naive"))
        assert rung["epoch_s"] == pytest.approx(result["network"]["epoch_flops"] / rung["gflops"] / 1e9)
    assert rungs["Python loops"]["factor"] is None
    assert rungs["cnnext.naive"]["factor"] == pytest.approx(rungs["cnnext.naive"]["gflops"]
                                                            / rungs["Python loops"]["gflops"])
    assert rungs["PyTorch oneDNN"]["gflops"] > 10 * rungs["Python loops"]["gflops"]
    assert result["layer_flops"] == 2 * 4 * 16 * 16 * 16 * 8 * 9


def test_loop_and_unfold_rungs_are_correct_convolutions():
    layer = speed_ladder.Layer(2, 3, 4, 5)
    x, w = layer.inputs()
    reference = torch.nn.functional.conv2d(x, w, padding=1)
    assert torch.allclose(speed_ladder.loop_conv2d(x, w), reference, atol=1e-5)
    assert torch.allclose(speed_ladder.unfold_conv2d(x, w), reference, atol=1e-5)


def test_lab_network_flops():
    network = speed_ladder.lab_network_flops()
    # 3 -> 32 at 64x64, 32 -> 64 at 32x32, 64 -> 128 at 16x16, 3x3 kernels
    forward = 2 * 9 * (64 * 64 * 32 * 3 + 32 * 32 * 64 * 32 + 16 * 16 * 128 * 64)
    assert network["forward_flops_per_image"] == forward and network["layers"] == 3
    assert network["train_images"] == 623 + 174 + 288
    assert network["epoch_flops"] == 3 * forward * 1085


def test_every_item_of_the_lecture_has_a_demo():
    assert [demo.item for demo in lecture.DEMOS.values()] == list(range(1, 13))


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("experiments_run", ROOT / "experiments" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_py_lecture_quick_writes_the_handout(run, tmp_path):
    run.main(["lecture", "--quick", "--threads", "1", "--out", str(tmp_path)])
    report = (tmp_path / "report.md").read_text()
    assert "Quick run" in report
    for demo in lecture.DEMOS.values():
        figure = f"{demo.item:02d}-{demo.name}.png"
        assert f"## {demo.item}. {demo.title}" in report and f"({figure})" in report
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["quick"] and list(metrics["demos"]) == list(lecture.DEMOS)
    assert metrics["demos"]["corr2d"]["result"]["y"] == [[19.0, 25.0], [37.0, 43.0]]
    assert metrics["demos"]["photo-kernels"]["result"]["image"] == {"shape": [1, 1, 106, 160]}


def test_run_py_lecture_only_runs_the_chosen_demos(run, tmp_path):
    run.main(["lecture", "--quick", "--out", str(tmp_path), "--only", "dilation"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["09-dilation.png", "metrics.json", "report.md"]
    with pytest.raises(SystemExit):
        run.main(["lecture", "--only", "no-such-demo"])
