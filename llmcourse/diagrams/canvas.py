"""Drawing primitives for schematic diagrams: a canvas measured in inches, boxes, arrows,
matrices drawn as grids of cells, and one palette.

Sizes are in inches on purpose: a diagram 6 inches wide is shown at the width of the text
column, and one 4 inches wide stays legible on a phone (390 px), so keep text at 10 points
or more and canvases at most about 6.5 inches wide.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

__all__ = ["PALETTE", "canvas", "box", "arrow", "matrix", "text"]

# One colour per kind of thing, the same in every diagram of the course.
PALETTE = {
    "input": "#dbe8f6",  # tokens, embeddings, the residual stream
    "weight": "#fbe3c2",  # learned matrices and layers
    "attention": "#d9efd9",  # scores, weights, attention outputs
    "norm": "#f6d5d5",  # normalisation
    "output": "#e6e0f3",  # logits, probabilities, results
    "neutral": "#f2f2f2",
    "edge": "#444444",
    "highlight": "#d62728",
}


def canvas(width: float, height: float, title: str | None = None):
    """A blank figure whose data units are inches: (0, 0) is the bottom left corner and
    (width, height) the top right. Returns ``(fig, ax)``."""
    if not (0 < width <= 10 and 0 < height <= 12):
        raise ValueError(f"a diagram is at most 10 x 12 inches, got {width} x {height}")
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    if title:
        ax.text(
            width / 2, height - 0.1, title, ha="center", va="top", fontsize=12, fontweight="bold"
        )
    return fig, ax


def text(ax, x: float, y: float, s: str, size: float = 10, **kwargs):
    """Text centred at (x, y) unless ``ha``/``va`` say otherwise."""
    kwargs.setdefault("ha", "center")
    kwargs.setdefault("va", "center")
    return ax.text(x, y, s, fontsize=size, **kwargs)


def box(
    ax,
    x: float,
    y: float,
    w: float,
    h: float,
    label: str = "",
    kind: str = "neutral",
    size: float = 10,
    **kwargs,
):
    """A rounded box centred at (x, y), ``w`` by ``h`` inches, filled with ``kind``'s colour;
    ``kwargs`` (``edgecolor``, ``linewidth``, ``linestyle``, ...) go to the patch."""
    if kind not in PALETTE:
        raise ValueError(f"kind must be one of {sorted(PALETTE)}, got {kind!r}")
    outline = {"edgecolor": PALETTE["edge"], "linewidth": 1, **kwargs}  # kwargs may override
    patch = FancyBboxPatch(
        (x - w / 2, y - h / 2),
        w,
        h,
        boxstyle="round,pad=0,rounding_size=0.06",
        facecolor=PALETTE[kind],
        **outline,
    )
    ax.add_patch(patch)
    if label:
        text(ax, x, y, label, size=size)
    return patch


def arrow(
    ax,
    start,
    end,
    label: str = "",
    color: str | None = None,
    size: float = 9,
    style: str = "-|>",
    **kwargs,
):
    """An arrow from ``start`` to ``end`` (points in inches), optionally labelled at its middle;
    ``kwargs`` (``linewidth``, ``linestyle``, ...) go to the patch."""
    patch = FancyArrowPatch(
        start,
        end,
        arrowstyle=style,
        mutation_scale=12,
        color=color or PALETTE["edge"],
        shrinkA=0,
        shrinkB=0,
        **{"linewidth": 1.2, **kwargs},
    )
    ax.add_patch(patch)
    if label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        text(ax, mx + 0.08, my, label, size=size, ha="left")
    return patch


def matrix(
    ax,
    x: float,
    y: float,
    rows: int,
    cols: int,
    cell: float = 0.18,
    kind: str = "input",
    label: str = "",
    shape: str = "",
    values=None,
    highlight=(),
    size: float = 10,
):
    """A ``rows`` x ``cols`` grid of cells whose top-left corner is at (x, y): a matrix.

    ``label`` is written above it and ``shape`` (such as "T x d") below it. ``values``, a
    rows x cols array in [0, 1], shades the cells (darker is larger) instead of the flat
    colour; cells listed in ``highlight`` as (row, col) get a red outline.
    Returns the grid's (width, height) in inches.
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"a matrix needs at least one row and one column, got {rows} x {cols}")
    if kind not in PALETTE:
        raise ValueError(f"kind must be one of {sorted(PALETTE)}, got {kind!r}")
    cmap = plt.get_cmap("Greens" if kind == "attention" else "Blues")
    for r in range(rows):
        for c in range(cols):
            color = PALETTE[kind] if values is None else cmap(0.1 + 0.8 * float(values[r][c]))
            ax.add_patch(
                Rectangle(
                    (x + c * cell, y - (r + 1) * cell),
                    cell,
                    cell,
                    facecolor=color,
                    edgecolor="white",
                    linewidth=1,
                )
            )
    width, height = cols * cell, rows * cell
    ax.add_patch(
        Rectangle(
            (x, y - height), width, height, fill=False, edgecolor=PALETTE["edge"], linewidth=1
        )
    )
    for r, c in highlight:
        ax.add_patch(
            Rectangle(
                (x + c * cell, y - (r + 1) * cell),
                cell,
                cell,
                fill=False,
                edgecolor=PALETTE["highlight"],
                linewidth=2,
            )
        )
    if label:
        text(ax, x + width / 2, y + 0.15, label, size=size, va="bottom")
    if shape:
        text(ax, x + width / 2, y - height - 0.1, shape, size=size - 1, va="top", color="#555555")
    return width, height
