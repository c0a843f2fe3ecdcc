"""cnnext.receptive_field: path counts of stacked dilated 3x3 convolutions, and the gridding holes HDC forbids."""
import pytest
import torch

from cnnext import hdc_check
from cnnext.receptive_field import path_counts, receptive_field_size


@pytest.mark.parametrize("rates", [(1,), (1, 2, 5), (2, 2, 2), (2, 4, 6), (1, 2, 9), (1, 1, 1)])
def test_every_path_is_counted_once(rates):
    counts = path_counts(rates)
    assert counts.shape == (receptive_field_size(rates),) * 2
    assert counts.sum().item() == 9 ** len(rates)           # one path per choice of tap in each layer
    assert torch.equal(counts, counts.flip(0)) and torch.equal(counts, counts.flip(1))


@pytest.mark.parametrize("rates", [(1, 2, 5), (1, 2, 3), (2, 2, 2), (2, 4, 6), (1, 2, 9)])
def test_holes_exactly_where_hdc_fails(rates):
    has_holes = bool((path_counts(rates) == 0).any())
    assert has_holes == (not hdc_check(rates))


def test_rates_2_2_2_see_only_even_offsets():
    counts = path_counts((2, 2, 2))
    assert counts[1::2, :].abs().sum() == 0 and counts[:, 1::2].abs().sum() == 0
    assert counts[6, 6] == 7 ** 2                              # 7 ways per axis to sum three taps in {-2, 0, 2} to 0


@pytest.mark.parametrize("bad", [(), (0, 1), (1.5,)])
def test_bad_rates_are_named(bad):
    with pytest.raises(ValueError, match="rates"):
        path_counts(bad)
