"""Chapter 3's diagrams: scaled dot-product self-attention as a chain of matrix products, and
the path of one query through it.

The equation is Vaswani et al. (2017, eq. 1): Q = X W_Q, K = X W_K, V = X W_V, then
softmax(Q K^T / sqrt(d_k)) V. ``matrices`` draws every matrix of it with its shape, at the
sizes the chapter uses (T = 5 tokens, d_model = 8, d_k = d_v = 4), optionally shaded with the
chapter's own attention weights. ``one_query`` draws the chapter's worked example, "the
black cat sat", with its real numbers: one query, one score per key, the softmax weights
and the weighted sum of the values.
"""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from llmcourse.diagrams.canvas import PALETTE, arrow, box, canvas, matrix, text

__all__ = ["matrices", "one_query"]

_GREY = "#555555"


def _default_weights(T: int) -> np.ndarray:
    """A fixed (T, T) matrix of attention weights: rows of a softmax, each summing to one."""
    scores = np.cos(np.add.outer(np.arange(T) * 1.3, np.arange(T) * 2.1)) * 2.0
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def matrices(weights=None, d_model: int = 8, d_k: int = 4):
    """Self-attention as matrices, every one drawn cell by cell with its shape. Top row:
    X (T x d_model) times W_Q, W_K, W_V (each d_model x d_k) gives Q, K, V (each T x d_k).
    Bottom row: Q times K^T gives the scores (T x T); dividing by sqrt(d_k) and a softmax
    along each row gives the weights (T x T, each row sums to one); the weights times V give
    the output (T x d_v). ``weights``, a (T, T) array of attention weights (the chapter's),
    shades the weight matrix; without it a fixed example of T = 5 is drawn."""
    W = _default_weights(5) if weights is None else np.asarray(weights, dtype=float)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"weights must be a square (T, T) array, got shape {W.shape}")
    T, d_v = W.shape[0], d_k
    c = 0.13  # one cell, in inches
    fig, ax = canvas(6.4, 4.0)
    text(ax, 3.2, 3.88, "Self-attention as matrix products", size=12, fontweight="bold")

    def op(x, y, s):
        text(ax, x, y, s, size=14, color=_GREY)

    # Row 1: X @ [W_Q | W_K | W_V] = [Q | K | V]
    top = 3.25
    x = 0.2
    matrix(ax, x, top, T, d_model, cell=c, kind="input", label="$X$", shape="T × $d_{model}$")
    x += d_model * c
    op(x + 0.17, top - T * c / 2, "×")
    x += 0.34
    w_left = x
    for name in ("Q", "K", "V"):
        matrix(ax, x, top, d_model, d_k, cell=c, kind="weight", label=f"$W_{name}$")
        x += d_k * c + 0.16
    w_mid = (w_left + x - 0.16) / 2
    text(
        ax,
        w_mid,
        top - d_model * c - 0.1,
        "$d_{model}$ × $d_k$ ($d_v$ for $W_V$)",
        size=9,
        color=_GREY,
        va="top",
    )
    op(x + 0.05, top - T * c / 2, "=")
    x += 0.3
    for name, width in (("Q", "d_k"), ("K", "d_k"), ("V", "d_v")):
        matrix(ax, x, top, T, d_k, cell=c, kind="input", label=f"${name}$", shape=f"T × ${width}$")
        x += d_k * c + 0.22

    # Row 2: Q @ K^T = scores -> / sqrt(d_k), softmax by row -> weights @ V = output
    top2 = 1.3
    mid = top2 - T * c / 2
    x = 0.2
    matrix(ax, x, top2, T, d_k, cell=c, kind="input", label="$Q$", shape="T × $d_k$")
    x += d_k * c
    op(x + 0.13, mid, "×")
    x += 0.26
    matrix(ax, x, top2, d_k, T, cell=c, kind="input", label="$K^\\top$", shape="$d_k$ × T")
    x += T * c
    op(x + 0.13, mid, "=")
    x += 0.26
    matrix(ax, x, top2, T, T, cell=c, kind="neutral", label="scores", shape="T × T")
    x += T * c + 0.08
    arrow(ax, (x, mid), (x + 1.05, mid))
    text(ax, x + 0.52, mid + 0.2, "÷ $\\sqrt{d_k}$", size=10)
    text(ax, x + 0.52, mid - 0.22, "softmax\nof each row", size=9, va="top")
    x += 1.15
    matrix(
        ax,
        x,
        top2,
        T,
        T,
        cell=c,
        kind="attention",
        label="weights",
        shape="T × T",
        values=W / W.max(),
    )
    text(ax, x + T * c / 2, top2 - T * c - 0.32, "rows sum to 1", size=9, color=_GREY, va="top")
    x += T * c
    op(x + 0.13, mid, "×")
    x += 0.26
    matrix(ax, x, top2, T, d_v, cell=c, kind="input", label="$V$", shape="T × $d_v$")
    x += d_v * c
    op(x + 0.13, mid, "=")
    x += 0.26
    matrix(ax, x, top2, T, d_v, cell=c, kind="output", label="output", shape="T × $d_v$")
    return fig


def one_query(tokens=None, query=None, keys=None, values=None, query_token: str = "sat"):
    """One query's path, with the chapter's worked example by default ("the black cat sat",
    the query of *sat* looking for a noun): the query's dot product with each key gives one
    score per key, the softmax turns the scores into weights that sum to one, and the
    weighted sum of the value vectors is the output. Every number drawn is computed here,
    from ``query``, ``keys`` and ``values`` (arrays of shape (d_k,), (S, d_k), (S, d_v))."""
    if tokens is None:
        tokens = ["the", "black", "cat", "sat"]
        keys = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
        values = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
        query = [3.0, 0.0]
    q, K, V = (np.asarray(a, dtype=float) for a in (query, keys, values))
    if K.shape[0] != len(tokens) or V.shape[0] != len(tokens) or K.shape[1] != q.shape[0]:
        raise ValueError(
            f"need one key and one value per token and keys as long as the query: "
            f"{len(tokens)} tokens, keys {K.shape}, values {V.shape}, query {q.shape}"
        )
    scores = K @ q
    e = np.exp(scores - scores.max())
    w = e / e.sum()
    out = w @ V
    S, d_k, d_v = len(tokens), K.shape[1], V.shape[1]

    row_h, cell = 0.46, 0.34
    height = 2.3 + S * row_h
    fig, ax = canvas(6.2, height)
    text(ax, 3.1, height - 0.12, "One query, step by step", size=12, fontweight="bold", va="top")

    def numbers(x, y, vector, kind, width=cell):
        """A vector as a row of cells with its numbers (rounded to 3 decimals) written in."""
        matrix(ax, x, y + width / 2, 1, len(vector), cell=width, kind=kind)
        for i, v in enumerate(vector):
            text(ax, x + (i + 0.5) * width, y, f"{round(float(v), 3):g}", size=9)

    # The query, top left
    qy = height - 0.62
    text(ax, 0.1, qy, f"query $q$ ({query_token})", size=10, ha="left")
    numbers(1.55, qy, q, "input")

    # Column heads
    xk, xs, xw, xv, vc = 0.85, 2.2, 3.1, 4.85, 0.38
    hy = qy - 0.5
    for x, s in (
        (xk + d_k * cell / 2, "key $k_j$"),
        (xs, "score $q·k_j$"),
        (xw + 0.5, "weight $w_j$"),
        (xv + d_v * vc / 2, "value $v_j$"),
    ):
        text(ax, x, hy, s, size=10)

    bar_max = 0.75
    for j, token in enumerate(tokens):
        y = hy - 0.42 - j * row_h
        text(ax, 0.1, y, token, size=10, ha="left")
        numbers(xk, y, K[j], "input")
        box(ax, xs, y, 0.5, 0.3, f"{scores[j]:g}", kind="neutral", size=10)
        arrow(ax, (xk + d_k * cell + 0.08, y), (xs - 0.3, y), color=_GREY)
        arrow(ax, (xs + 0.3, y), (xw - 0.05, y), color=_GREY)
        ax.add_patch(
            Rectangle(
                (xw, y - 0.11),
                max(bar_max * w[j], 0.01),
                0.22,
                facecolor=PALETTE["attention"],
                edgecolor=PALETTE["edge"],
                linewidth=0.8,
            )
        )
        text(ax, xw + bar_max + 0.08, y, f"{round(float(w[j]), 3):g}", size=10, ha="left")
        text(ax, xv - 0.16, y, "×", size=11, color=_GREY)
        numbers(xv, y, V[j], "input", vc)

    # softmax note and the sum
    last = hy - 0.42 - (S - 1) * row_h
    text(ax, xw + 0.5, last - 0.36, "softmax: they sum to 1", size=9, color=_GREY)
    oy = last - 0.85
    arrow(ax, (xv + d_v * vc / 2, last - 0.24), (xv + d_v * vc / 2, oy + 0.25))
    text(
        ax, xv + d_v * vc / 2 + 0.1, (last + oy) / 2 - 0.02, "$\\sum_j w_j v_j$", size=10, ha="left"
    )
    text(ax, xv - 0.25, oy, "output", size=10, ha="right")
    numbers(xv + d_v * (vc - 0.46) / 2, oy, out, "output", 0.46)
    return fig
