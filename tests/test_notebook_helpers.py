"""Notebook helpers: seeding, rounding, figures."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from llmcourse.notebook import rounded, seed_everything, setup  # noqa: E402
from llmcourse.plotting import log_axis, new_figure  # noqa: E402


def test_seed_everything_makes_draws_repeat():
    seed_everything(3)
    a = (np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        seed_everything(-1)


def test_setup_prints_four_decimals():
    setup(seed=0)
    assert str(torch.tensor([1 / 3])) == "tensor([0.3333])"
    assert str(np.array([2 / 3])) == "[0.6667]"


def test_rounded_handles_nested_values():
    value = {"a": [1 / 3, torch.tensor(2 / 3)], "b": (np.float64(0.123456), "text")}
    assert rounded(value, 3) == {"a": [0.333, 0.667], "b": (0.123, "text")}


def test_figures_need_titles_and_labels():
    fig, ax = new_figure("Title", "x", "y")
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Title", "x", "y")
    with pytest.raises(ValueError, match="non-empty xlabel"):
        new_figure("Title", "", "y")
    fig, axes = new_figure("Two panels", "x", "y", ncols=2)
    assert len(axes) == 2 and fig._suptitle.get_text() == "Two panels"


def test_log_axis_uses_plain_tick_labels():
    fig, ax = new_figure("t", "x", "y")
    ax.plot([1, 100], [1, 2])
    log_axis(ax, "x", [1, 10, 100])
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "100"]
    with pytest.raises(ValueError, match="which must be 'x' or 'y'"):
        log_axis(ax, "z", [1])
