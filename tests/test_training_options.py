"""Training options of the loops: bfloat16 mixed precision (TrainConfig.precision, SpeedrunConfig.precision,
run.py --precision: the convolutions of a training step run in bfloat16, weights and optimiser state stay
float32, evaluation runs in float32), channels-last memory (TrainConfig.memory_format, run.py --memory-format)
and batch mixing (data.augment.BatchMix, run.py --mix: mixup and CutMix)."""
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

import cnnext
from cnnext.data.augment import BatchMix
from cnnext.speedrun import SpeedrunConfig
from cnnext.speedrun import train as speedrun_train
from cnnext.train import TrainConfig, fit
from test_cli import quick


def tiny_classification(samples=32, classes=3):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(samples, 3, 8, 8, generator=generator)
    labels = torch.arange(samples) % classes
    return SimpleNamespace(train=TensorDataset(images, labels), test=TensorDataset(images[:8], labels[:8]),
                           task="classification")


def conv_net(classes=3):
    return torch.nn.Sequential(cnnext.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, classes))


@pytest.mark.parametrize("precision,training_dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_training_steps_run_in_the_chosen_precision_and_evaluation_in_float32(precision, training_dtype, tmp_path):
    model = conv_net()
    seen = {True: set(), False: set()}
    model[0].register_forward_hook(lambda module, inputs, output: seen[module.training].add(output.dtype))
    config = TrainConfig(epochs=2, batch_size=8, lr=0.05, precision=precision, resume=False, progress=False)
    record = fit(model, tiny_classification(), config, tmp_path, "tiny")
    assert seen == {True: {training_dtype}, False: {torch.float32}}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in record["history"])


def test_bfloat16_training_learns_like_float32(tmp_path):
    """The same seeds and batches: the bfloat16 run's losses follow the float32 run's within bfloat16 rounding."""
    histories = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        config = TrainConfig(epochs=4, batch_size=8, lr=0.05, precision=precision, resume=False, progress=False)
        histories[precision] = fit(conv_net(), tiny_classification(), config, tmp_path / precision)["history"]
    for full, mixed in zip(histories["float32"], histories["bfloat16"]):
        assert mixed["train_loss"] == pytest.approx(full["train_loss"], rel=0.05)
    assert histories["bfloat16"][-1]["train_loss"] < histories["bfloat16"][0]["train_loss"]


def test_unknown_precision_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"TrainConfig.precision must be one of .*'float16'"):
        fit(conv_net(), tiny_classification(), TrainConfig(precision="float16"), tmp_path)
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    labels = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"SpeedrunConfig.precision must be one of .*'half'"):
        speedrun_train(None, (images, labels), (images, labels), SpeedrunConfig(precision="half"))


def test_precision_option_is_recorded_in_the_report(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    metrics = quick("mlp", tmp_path, "--precision", "float32")
    assert metrics["settings"]["precision"] == "float32"
    assert "bfloat16 mixed precision" not in (tmp_path / "report.md").read_text()
    assert quick("mlp", tmp_path / "lab")["settings"]["precision"] == "bfloat16"  # the lab split's recipe
    assert "bfloat16 mixed precision" in (tmp_path / "lab" / "report.md").read_text()


def test_precision_option_takes_only_known_values(tmp_path, capsys):
    with pytest.raises(SystemExit):
        quick("mlp", tmp_path, "--precision", "float16")
    assert "--precision: invalid choice: 'float16'" in capsys.readouterr().err


def test_channels_last_training_computes_what_contiguous_training_does(tmp_path):
    """Weights and batches in channels-last memory reach the convolutions as such (in training and evaluation),
    and the run learns what the NCHW run learns: the same losses within float32 rounding of the kernels' sums."""
    histories, formats = {}, {True: set(), False: set()}
    for memory_format in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        model = conv_net()
        if memory_format == "channels_last":
            model[0].register_forward_hook(lambda module, inputs, output: formats[module.training].add(
                inputs[0].is_contiguous(memory_format=torch.channels_last)
                and module.weight.is_contiguous(memory_format=torch.channels_last)))
        config = TrainConfig(epochs=3, batch_size=8, lr=0.05, memory_format=memory_format, resume=False,
                             progress=False)
        histories[memory_format] = fit(model, tiny_classification(), config, tmp_path / memory_format)["history"]
    assert formats == {True: {True}, False: {True}}
    for nchw, nhwc in zip(histories["contiguous"], histories["channels_last"]):
        assert nhwc["train_loss"] == pytest.approx(nchw["train_loss"], rel=1e-4)
        assert nhwc["test_loss"] == pytest.approx(nchw["test_loss"], rel=1e-4)


def test_unknown_memory_format_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"TrainConfig.memory_format must be one of .*'nhwc'"):
        fit(conv_net(), tiny_classification(), TrainConfig(memory_format="nhwc"), tmp_path)
    with pytest.raises(SystemExit):
        quick("mlp", tmp_path, "--memory-format", "nhwc")
    assert "--memory-format: invalid choice: 'nhwc'" in capsys.readouterr().err


def test_memory_format_option_is_recorded_in_the_report(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    metrics = quick("conv", tmp_path, "--memory-format", "channels_last")
    assert metrics["settings"]["memory_format"] == "channels_last"
    assert "channels-last memory" in (tmp_path / "report.md").read_text()


def test_mixup_blends_each_image_with_its_partner_by_the_share():
    inputs = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 3, 4, 4).clone()
    targets = torch.arange(6)
    mixed, partners, share = BatchMix("mixup", seed=1)(inputs, targets)
    assert 0 < share < 1
    torch.testing.assert_close(mixed, share * inputs + (1 - share) * inputs[partners])


def test_cutmix_pastes_one_box_whose_area_is_one_minus_the_share():
    inputs, targets = torch.zeros(8, 3, 16, 16), torch.arange(8)
    inputs += targets.view(8, 1, 1, 1).float() + 1
    for seed in range(20):
        mixed, partners, share = BatchMix("cutmix", seed=seed)(inputs, targets)
        pasted = (mixed != inputs).all(1)       # [N, H, W]: pixels taken from the partner
        moved = partners != targets
        fractions = pasted[moved].float().mean(dim=(1, 2))
        torch.testing.assert_close(fractions, torch.full_like(fractions, 1 - share))
        assert not pasted[~moved].any()
        assert ((mixed == inputs) | (mixed == inputs[partners])).all()


def test_mix_options_are_checked():
    with pytest.raises(ValueError, match="mode must be one of \\['mixup', 'cutmix'\\], got 'cutout'"):
        BatchMix("cutout")
    with pytest.raises(ValueError, match="alpha must be > 0, got 0"):
        BatchMix("mixup", alpha=0)


def test_mixed_training_weighs_both_label_sets(tmp_path):
    """With share forced to 1 mixing changes nothing; with 0 the loss is that of the partners' labels."""
    class Fixed:
        def __init__(self, share):
            self.share = share

        def __call__(self, inputs, targets):
            return inputs, targets.roll(1), self.share

    losses = {}
    for share in (None, 1.0, 0.0):
        torch.manual_seed(0)
        config = TrainConfig(epochs=1, batch_size=8, lr=0.0, mix=None if share is None else Fixed(share),
                             resume=False, progress=False, weight_decay=0.0)
        losses[share] = fit(conv_net(), tiny_classification(), config, tmp_path / str(share))["history"][0]
    assert losses[1.0]["train_loss"] == pytest.approx(losses[None]["train_loss"])
    assert losses[0.0]["train_loss"] != pytest.approx(losses[None]["train_loss"])


def test_mix_option_is_recorded_in_the_report(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    metrics = quick("mlp", tmp_path, "--mix", "cutmix")
    assert metrics["settings"]["mix"] == "cutmix" and metrics["methods"]["batch mixing"].startswith("CutMix")


def test_mix_is_refused_for_dehazing(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNEXT_DATA", raising=False)
    with pytest.raises(SystemExit, match="--mix is for classification experiments"):
        quick("dehaze", tmp_path, "--mix", "mixup")
