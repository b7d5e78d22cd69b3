"""Diagrams of chapter 6, feed-forward, residual connections and layer normalization: a
Transformer block's residual stream, with the LayerNorms placed before the sublayers
(pre-norm) or after the residual additions (post-norm).
"""

from __future__ import annotations

from matplotlib.patches import Circle

from llmcourse.diagrams.canvas import PALETTE, arrow, box, canvas, text

__all__ = ["pre_and_post_norm"]

STREAM = "#9ecae1"  # the residual stream: a darker shade of the "input" colour
BOX_W, BOX_H = 1.1, 0.36


def _add(ax, x: float, y: float) -> None:
    """The residual addition: a circled plus on the stream."""
    ax.add_patch(Circle((x, y), 0.13, facecolor="white", edgecolor=PALETTE["edge"], zorder=3))
    text(ax, x, y, "+", size=12, zorder=4)


def _branch(ax, sx: float, bx: float, y_tap: float, y_add: float, boxes) -> None:
    """A sublayer beside the stream: it reads the stream at ``y_tap``, goes up through
    ``boxes`` ((label, kind, y) each, centred at x = bx) and is added back at ``y_add``."""
    ax.plot([sx], [y_tap], "o", color=PALETTE["edge"], markersize=4, zorder=3)
    first = boxes[0][2] - BOX_H / 2
    ax.plot([sx, bx], [y_tap, y_tap], color=PALETTE["edge"], linewidth=1.2)
    arrow(ax, (bx, y_tap), (bx, first))
    for (_, _, y), (_, _, y_next) in zip(boxes, boxes[1:]):
        arrow(ax, (bx, y + BOX_H / 2), (bx, y_next - BOX_H / 2))
    for label, kind, y in boxes:
        box(ax, bx, y, BOX_W, BOX_H, label, kind=kind)
    top = boxes[-1][2] + BOX_H / 2
    ax.plot([bx, bx], [top, y_add], color=PALETTE["edge"], linewidth=1.2)
    arrow(ax, (bx, y_add), (sx + 0.13, y_add))
    _add(ax, sx, y_add)


def _stream(ax, sx: float, y0: float, y1: float) -> None:
    """The residual stream: one straight band from the block's input to its output."""
    ax.plot([sx, sx], [y0, y1], color=STREAM, linewidth=7, solid_capstyle="butt", zorder=1)
    arrow(ax, (sx, y0), (sx, y1), zorder=2)


def pre_and_post_norm():
    """One Transformer block drawn twice, bottom to top, its residual stream as the straight
    vertical path. Pre-norm (GPT-2 and most later LLMs): each sublayer reads a LayerNorm'd
    copy of the stream, x + f(LayerNorm(x)), and the stream itself is never normalized.
    Post-norm (the 2017 Transformer, BERT): the sublayer reads the stream as it is, and a
    LayerNorm sits on the stream after each addition, LayerNorm(x + f(x)).
    """
    fig, ax = canvas(5.6, 5.3)
    y_in, y_out = 0.45, 4.25
    columns = [
        (
            0.75,
            "pre-norm",
            "GPT-2 (Llama: RMSNorm)",
            [
                (0.75, 2.05, [("LayerNorm", "norm", 1.15), ("attention", "attention", 1.65)]),
                (2.35, 3.65, [("LayerNorm", "norm", 2.75), ("FFN", "weight", 3.25)]),
            ],
            [],
        ),
        (
            3.55,
            "post-norm",
            "2017 Transformer, BERT",
            [
                (0.75, 1.55, [("attention", "attention", 1.15)]),
                (2.45, 3.25, [("FFN", "weight", 2.85)]),
            ],
            [1.95, 3.65],
        ),
    ]
    for sx, name, models, branches, stream_norms in columns:
        bx = sx + 1.25
        _stream(ax, sx, y_in, y_out)
        text(ax, sx, y_in - 0.2, "x", size=11)
        text(ax, sx, y_out + 0.1, "to the next block", size=10, va="bottom")
        for y_tap, y_add, boxes in branches:
            _branch(ax, sx, bx, y_tap, y_add, boxes)
        for y in stream_norms:  # post-norm: the stream itself goes through a LayerNorm
            box(ax, sx, y, BOX_W, BOX_H, "LayerNorm", kind="norm", zorder=3)
        text(ax, sx + 0.6, 5.22, name, size=11, fontweight="bold", va="top")
        text(ax, sx + 0.6, 4.95, models, size=9, va="top", color="#555555")
    text(ax, 0.45, 2.3, "residual stream", size=9, rotation=90, color="#3a6f96")
    return fig
