"""Figures for the book: one style, and every figure titled with labelled axes.

A chapter draws with ``fig, ax = new_figure("title", "x label", "y label")`` and gives the
cell a caption through its ``mystnb: figure:`` metadata, so the website numbers the figure.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker

__all__ = ["apply_style", "new_figure", "heatmap", "log_axis"]


def apply_style() -> None:
    """A clean, readable style with a fixed size and resolution (same pixels on every run)."""
    matplotlib.rcParams.update(
        {
            "figure.figsize": (6.4, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "font.size": 10,
        }
    )


def new_figure(title: str, xlabel: str, ylabel: str, ncols: int = 1, **kwargs):
    """A figure with one or more axes, each titled and labelled. Returns ``(fig, ax)``."""
    for name, text in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a figure needs a non-empty {name}, got {text!r}")
    fig, ax = plt.subplots(1, ncols, **kwargs)
    for a in ax if ncols > 1 else [ax]:
        a.set_xlabel(xlabel)
        a.set_ylabel(ylabel)
    if ncols > 1:
        fig.suptitle(title, fontweight="bold")
    else:
        ax.set_title(title)
    return fig, ax


def heatmap(ax, matrix, row_labels=None, col_labels=None, cmap="viridis", colorbar=True):
    """Draw ``matrix`` on ``ax`` with optional tick labels; returns the image."""
    image = ax.imshow(matrix, cmap=cmap, aspect="auto")
    ax.grid(False)
    if row_labels is not None:
        ax.set_yticks(range(len(row_labels)), row_labels)
    if col_labels is not None:
        ax.set_xticks(range(len(col_labels)), col_labels, rotation=90)
    if colorbar:
        ax.figure.colorbar(image, ax=ax)
    return image


def log_axis(ax, which: str, ticks) -> None:
    """A logarithmic x or y axis labelled with plain numbers at ``ticks`` (no 10^x clutter)."""
    if which not in ("x", "y"):
        raise ValueError(f"which must be 'x' or 'y', got {which!r}")
    getattr(ax, f"set_{which}scale")("log")
    getattr(ax, f"set_{which}ticks")(list(ticks), [f"{t:g}" for t in ticks])
    getattr(ax, f"{which}axis").set_minor_locator(matplotlib.ticker.NullLocator())
