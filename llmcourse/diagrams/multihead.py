"""Chapter 4: the split -> attend -> concatenate -> project of multi-head attention."""

from __future__ import annotations

from matplotlib.patches import Rectangle

from llmcourse.diagrams.canvas import PALETTE, arrow, box, canvas, matrix, text

__all__ = ["split_attend_concat"]

# one colour per head, so that a head's columns can be followed from Q, K, V to the output
HEAD_COLOURS = ("#9ecae1", "#fdae6b", "#a1d99b", "#bcbddc")
CELL = 0.13  # inches per matrix cell
ROWS = 4  # tokens drawn (T)


def _striped(ax, x: float, y: float, heads: int, per_head: int) -> float:
    """A ROWS x (heads * per_head) matrix, top-left at (x, y), its columns coloured by head.
    Returns its width."""
    width, height = matrix(ax, x, y, ROWS, heads * per_head, cell=CELL)
    for i in range(heads):
        ax.add_patch(
            Rectangle(
                (x + i * per_head * CELL, y - height),
                per_head * CELL,
                height,
                facecolor=HEAD_COLOURS[i],
                edgecolor=PALETTE["edge"],
                linewidth=1,
            )
        )
    return width


def _group_centre(x: float, i: int, per_head: int) -> float:
    return x + (i + 0.5) * per_head * CELL


def split_attend_concat(heads: int = 3):
    """Multi-head attention as a picture, shapes labelled: X (T x C) is projected to Q, K, V
    (T x C each), whose columns are cut into ``heads`` groups of d = C / h; head i attends
    with its own columns of Q, K and V (T x d out); the outputs are concatenated back to
    T x C and mixed by W_O into the output (T x C)."""
    if not 1 <= heads <= len(HEAD_COLOURS):
        raise ValueError(f"heads must be 1 to {len(HEAD_COLOURS)}, got {heads}")
    per_head = 3
    fig, ax = canvas(6.2, 5.4, "Split, attend, concatenate, project")
    grey = "#555555"
    # X and the three projections
    x_w = matrix(ax, 0.2, 4.3, ROWS, heads * per_head, cell=CELL, label="X")[0]
    text(ax, 0.2 + x_w / 2, 3.65, "T x C", color=grey)
    qkv_x, centres = 2.75, {"Q": 4.7, "K": 3.95, "V": 3.2}
    for name, yc in centres.items():
        box(ax, 1.95, yc, 0.62, 0.4, f"$W_{name}$", kind="weight")
        arrow(ax, (0.25 + x_w, 4.04), (1.63, yc))
        arrow(ax, (2.27, yc), (qkv_x - 0.05, yc))
        width = _striped(ax, qkv_x, yc + ROWS * CELL / 2, heads, per_head)
        text(ax, qkv_x + width + 0.1, yc, f"{name}: T x C", ha="left")
    text(ax, 5.35, 3.95, f"split into\nh = {heads} heads\nof d = C / h\ncolumns", color=grey)
    # one attention per head, on its own columns
    head_y, head_x = 2.15, [qkv_x + (i - (heads - 1) / 2) * 1.3 + width / 2 for i in range(heads)]
    for i, hx in enumerate(head_x):
        box(ax, hx, head_y, 1.15, 0.62, f"head {i}\nT x d", kind="attention")
        ax.add_patch(Rectangle((hx - 0.575, head_y + 0.23), 1.15, 0.08, facecolor=HEAD_COLOURS[i]))
        # head i reads the same columns of Q, K and V: a line through all three, then down
        gx, top = _group_centre(qkv_x, i, per_head), centres["V"] - ROWS * CELL / 2 - 0.03
        ax.plot([gx, gx], [centres["Q"] + ROWS * CELL / 2, top], color=PALETTE["edge"], lw=1)
        arrow(ax, (gx, top), (hx, head_y + 0.33))
    text(ax, 0.2, head_y, "each head:\nsoftmax(qkᵀ/√d) v\non its columns", ha="left", size=9)
    # concatenate, then project with W_O
    cat_x, cat_top = qkv_x - 1.2, 1.2
    cat_w = _striped(ax, cat_x, cat_top, heads, per_head)
    text(ax, cat_x + cat_w / 2, 0.45, "concat: T x C", color=grey)
    for i, hx in enumerate(head_x):
        arrow(ax, (hx, head_y - 0.33), (_group_centre(cat_x, i, per_head), cat_top + 0.03))
    mid = cat_top - ROWS * CELL / 2
    box(ax, cat_x + cat_w + 0.65, mid, 0.62, 0.4, "$W_O$", kind="weight")
    arrow(ax, (cat_x + cat_w + 0.05, mid), (cat_x + cat_w + 0.33, mid))
    out_x = cat_x + cat_w + 1.3
    arrow(ax, (cat_x + cat_w + 0.97, mid), (out_x - 0.05, mid))
    out_w = matrix(ax, out_x, cat_top, ROWS, heads * per_head, cell=CELL, kind="output")[0]
    text(ax, out_x + out_w / 2, 0.45, "output: T x C", color=grey)
    return fig
