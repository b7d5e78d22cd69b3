"""Diagrams of chapter 5, positional encoding: the rotary position embedding (RoPE) as a
rotation of each pair of a query's (or key's) dimensions.

RoPE (Su et al., 2021) turns pair j of a vector at position m by the angle m * theta_j. Drawn
in the plane of that pair, a query is an arrow that turns by theta_j per position, and the
angle between a query at m and a key at n is the same for every (m, n) with the same m - n.
"""

from __future__ import annotations

import math

from matplotlib.patches import Arc, Circle

from llmcourse.diagrams.canvas import PALETTE, arrow, canvas, text

__all__ = ["rotary"]

QUERY, KEY = "#1f77b4", "#ff7f0e"  # the same blue and orange as the chapter's plots


def _plane(ax, cx: float, cy: float, r: float, axis_labels: bool = False) -> None:
    """The plane of one pair of dimensions: a circle of radius r and its two axes."""
    ax.add_patch(Circle((cx, cy), r, fill=False, edgecolor="#bbbbbb", linewidth=1))
    ax.plot([cx - r - 0.1, cx + r + 0.1], [cy, cy], color="#999999", linewidth=0.8)
    ax.plot([cx, cx], [cy - r - 0.1, cy + r + 0.1], color="#999999", linewidth=0.8)
    if axis_labels:
        text(ax, cx + r + 0.12, cy - 0.15, r"$x_j$", size=10, ha="right", va="top")
        text(ax, cx - 0.06, cy + r + 0.1, r"$x_{j+D/2}$", size=10, ha="right", va="top")


def _vector(ax, cx, cy, r, angle, color, label="", label_r=1.2, alpha=1.0, size=10):
    """An arrow from the centre at ``angle`` (radians), with an optional label past its tip."""
    tip = (cx + r * math.cos(angle), cy + r * math.sin(angle))
    arrow(ax, (cx, cy), tip, color=color, alpha=alpha)
    if label:
        lx, ly = cx + label_r * r * math.cos(angle), cy + label_r * r * math.sin(angle)
        text(ax, lx, ly, label, size=size, color=color)


def _angle(ax, cx, cy, r, start, end, label, label_r=1.0, color="#444444", size=10):
    """An arc of radius r from angle ``start`` to ``end`` (radians), labelled at its middle."""
    ax.add_patch(
        Arc(
            (cx, cy),
            2 * r,
            2 * r,
            theta1=math.degrees(start),
            theta2=math.degrees(end),
            color=color,
            linewidth=1.2,
        )
    )
    mid = (start + end) / 2
    text(ax, cx + label_r * math.cos(mid), cy + label_r * math.sin(mid), label, size=size)


def rotary(theta: float = 0.42, query_angle: float = 0.12, key_angle: float = -0.3):
    """RoPE in the plane of one pair of dimensions (j, j + D/2), two panels.

    Left: the same query placed at positions m = 0, 1, 2, 3 turns by ``theta`` (radians) per
    position, so at position m it has turned by m * theta. Right: a query at m and a key at n
    drawn for (m, n) = (3, 1) and (5, 3). Both are turned by 2 * theta more in the second
    picture, so the angle between them, and hence their dot product, is unchanged: it
    depends only on m - n. ``query_angle`` and ``key_angle`` are the directions of the query
    and the key before any rotation (position 0).
    """
    fig, ax = canvas(6.2, 3.1)

    # Left: one query at four positions.
    cx, cy, r = 1.4, 1.2, 0.85
    _plane(ax, cx, cy, r, axis_labels=True)
    for m in range(4):
        angle = query_angle + m * theta
        _vector(ax, cx, cy, r, angle, QUERY, f"m={m}", label_r=1.3, alpha=0.4 + 0.2 * m, size=10)
    _angle(ax, cx, cy, 0.42, query_angle, query_angle + theta, r"$\theta_j$", label_r=0.58)
    text(ax, cx, 2.95, "a query at position m", size=10, va="top")
    text(ax, cx, 2.7, r"is turned by $m\,\theta_j$", size=10, va="top")

    # Right: the same offset m - n = 2 at two places in the text.
    r2 = 0.62
    for cx2, (m, n) in [(3.75, (3, 1)), (5.35, (5, 3))]:
        cy2 = 1.45
        _plane(ax, cx2, cy2, r2)
        qa, ka = query_angle + m * theta, key_angle + n * theta
        _vector(ax, cx2, cy2, r2, qa, QUERY, "q", label_r=1.3)
        _vector(ax, cx2, cy2, r2, ka, KEY, "k", label_r=1.3)
        _angle(ax, cx2, cy2, 0.28, ka, qa, "", color=PALETTE["highlight"])
        text(ax, cx2, 2.55, f"q at m={m}, k at n={n}", size=10)
    text(
        ax,
        4.55,
        0.5,
        r"both turned $2\theta_j$ more: the same angle",
        size=10,
        color=PALETTE["highlight"],
    )
    text(ax, 4.55, 0.2, r"so $q \cdot k$ depends only on $m - n = 2$", size=10)
    ax.plot([2.85, 2.85], [0.15, 2.95], color="#dddddd", linewidth=1)
    return fig
