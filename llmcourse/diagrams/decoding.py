"""Diagrams of chapter 9, generating text: the key-value cache growing step by step, and
the tree that beam search explores.

Each function draws and returns a matplotlib Figure; sizes are in inches (see
``llmcourse.diagrams.canvas``).
"""

from __future__ import annotations

from llmcourse.diagrams.canvas import PALETTE, arrow, box, canvas, text

__all__ = ["kv_cache_steps", "beam_tree"]

# A small made-up search (2 beams, 3 steps) to draw when no real one is given: for each
# step, the candidates as (parent, token, cumulative log-probability, kept), where parent
# indexes the kept candidates of the step before, best first.
_EXAMPLE_BEAMS = [
    [(0, "cat", -0.9, True), (0, "dog", -1.2, True), (0, "bird", -2.3, False)],
    [(0, "sat", -1.5, True), (1, "ran", -1.9, True), (0, "ate", -2.4, False)],
    [(1, "away", -2.2, True), (0, "on", -2.5, True), (0, "down", -3.1, False)],
]


def _short(token: str, limit: int = 7) -> str:
    """A token as a label: surrounding spaces dropped, long ones cut with an ellipsis, and
    punctuation or white space quoted so that it stays visible."""
    shown = token.strip()
    if not any(ch.isalnum() for ch in shown):
        shown = repr(shown or token)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def kv_cache_steps(tokens=("The", "cat", "sat", "on", "a", "mat"), steps: int = 3):
    """The key-value cache over the last ``steps`` decoding steps of ``tokens``.

    Each panel is one step: a column per position so far, its key above its value. With the
    cache (top row) the earlier columns are read from the cache and only the newest token's
    key and value are computed; without it (bottom row) every column is computed again. In
    both, the newest token's query attends to the keys of every position, itself included.
    """
    tokens = [_short(t, 4) for t in tokens]
    if not 1 <= steps < len(tokens):
        raise ValueError(f"need 1 <= steps < len(tokens), got steps={steps}")
    pitch, slot, gap = 0.31, 0.27, 0.3
    widths = [pitch * t for t in range(len(tokens) - steps + 1, len(tokens) + 1)]
    width = sum(widths) + gap * (steps - 1) + 0.5
    fig, ax = canvas(width, 5.3, title="The key-value cache, step by step")
    blocks = [
        (4.75, True, "With a cache: one new key and value per step"),
        (2.6, False, "Without a cache: every key and value computed again"),
    ]
    for top, cached, heading in blocks:
        text(ax, width / 2, top, heading, size=10, fontweight="bold")
        x0 = 0.25
        for panel, t in enumerate(range(len(tokens) - steps + 1, len(tokens) + 1)):
            _kv_panel(ax, x0, top - 0.3, tokens[:t], panel + 1, cached, pitch, slot)
            x0 += widths[panel] + gap
    _legend(
        fig,
        ax,
        width / 2,
        0.22,
        [
            ("input", PALETTE["edge"], "-", "cached"),
            ("weight", PALETTE["highlight"], "-", "computed this step"),
            ("attention", PALETTE["edge"], "-", "new token's query"),
        ],
    )
    return fig


def _legend(fig, ax, x_centre, y, entries, gap=0.3):
    """A row of (kind, edge colour, line style, label) swatches, centred at ``x_centre``."""
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi
    labels = [text(ax, 0, y, label, size=10, ha="left") for *_, label in entries]
    widths = [t.get_window_extent(renderer).width / dpi for t in labels]
    x = x_centre - (sum(widths) + len(entries) * 0.28 + gap * (len(entries) - 1)) / 2
    for (kind, edge, style, _), label, w in zip(entries, labels, widths):
        box(ax, x + 0.1, y, 0.2, 0.2, kind=kind, edgecolor=edge, linestyle=style)
        label.set_x(x + 0.28)
        x += 0.28 + w + gap


def _kv_panel(ax, x0, top, tokens, number, cached, pitch, slot):
    """One decoding step: the new token's query over the keys and values of ``tokens``."""
    t = len(tokens)
    text(ax, x0 + pitch * t / 2, top, f"step {number}", size=10, va="top")
    y_q, y_k, y_v, y_tok = top - 0.4, top - 0.95, top - 1.25, top - 1.55
    x_new = x0 + pitch * (t - 0.5)
    box(ax, x_new, y_q, slot, slot, "$q$", kind="attention")
    for i in range(t):
        x = x0 + pitch * (i + 0.5)
        new = i == t - 1 or not cached
        kind, edge = ("weight", PALETTE["highlight"]) if new else ("input", PALETTE["edge"])
        for y, name in ((y_k, "k"), (y_v, "v")):
            box(ax, x, y, slot, slot, f"${name}_{{{i + 1}}}$", kind=kind, edgecolor=edge)
        weight = "bold" if i == t - 1 else "normal"
        text(ax, x, y_tok, tokens[i], size=10, fontweight=weight)
        arrow(ax, (x_new, y_q - slot / 2), (x, y_k + slot / 2), color="#2a7d2a")


def beam_tree(steps=None, prompt: str = "prompt"):
    """The tree a beam search explored, scores included.

    ``steps`` holds one list per step of the candidates drawn, each
    ``(parent, token, score, kept)``: ``parent`` indexes the kept candidates of the step
    before (best first; 0 for the prompt at step 1), ``score`` is the cumulative
    log-probability and ``kept`` says whether the candidate became a beam. Kept beams are
    blue, pruned candidates grey with a dashed edge, and the best final beam's path red.
    Without ``steps``, a small made-up search (2 beams, 3 steps) is drawn.
    """
    steps = _EXAMPLE_BEAMS if steps is None else steps
    kept_counts = [sum(c[3] for c in step) for step in steps]
    if not steps or min(kept_counts) < 1:
        raise ValueError("every step needs at least one kept candidate")
    for n, (step, before) in enumerate(zip(steps, [1] + kept_counts)):
        if any(not 0 <= c[0] < before for c in step):
            raise ValueError(f"step {n + 1} has a parent outside the {before} beams before it")
    rows = max(len(step) for step in steps)
    root_w, col, node_w, node_h, pitch = 0.85, 1.3, 1.05, 0.42, 0.5
    width = max(root_w + 0.2 + col * len(steps), 4.5)
    height = rows * pitch + 1.2
    fig, ax = canvas(width, height, title="Beam search, step by step")
    y_top, y_bottom = height - 0.75, 0.65

    def ys(n):  # n nodes spread over the column's height, top down
        if n == 1:
            return [(y_top + y_bottom) / 2]
        return [y_top - i * (y_top - y_bottom) / (n - 1) for i in range(n)]

    # The best final beam (kept, best first) and its ancestors, step by step.
    best = [None] * len(steps)
    index = next(i for i, c in enumerate(steps[-1]) if c[3])
    for n in range(len(steps) - 1, -1, -1):
        best[n] = index
        kept = [i for i, c in enumerate(steps[n - 1]) if c[3]] if n else [0]
        index = kept[steps[n][index][0]]

    root_y = ys(1)[0]
    box(ax, 0.1 + root_w / 2, root_y, root_w, node_h, _short(prompt, 9), kind="neutral")
    # (x of the right edge, y) of the kept candidates of the step before, best first
    parents = [(0.1 + root_w, root_y)]
    for n, step in enumerate(steps):
        x = root_w + 0.2 + col * n + col / 2 + 0.05
        text(ax, x, height - 0.45, f"step {n + 1}", size=10, fontweight="bold")
        # children under their parent, so that branches do not cross
        order = sorted(range(len(step)), key=lambda i: (step[i][0], -step[i][2]))
        kept_rank = {i: r for r, i in enumerate(i for i, c in enumerate(step) if c[3])}
        next_parents = [None] * len(kept_rank)
        for i, y in zip(order, ys(len(step))):
            parent, token, score, kept = step[i]
            on_path = best[n] == i
            edge = PALETTE["highlight"] if on_path else PALETTE["edge"]
            box(
                ax,
                x,
                y,
                node_w,
                node_h,
                kind="input" if kept else "neutral",
                edgecolor=edge,
                linewidth=2 if on_path else 1,
                linestyle="-" if kept else "--",
            )
            colour = "black" if kept else "#666666"
            text(ax, x, y + 0.09, _short(token, 10), size=10, color=colour)
            text(ax, x, y - 0.1, f"{score:.2f}", size=10, color=colour)
            arrow(
                ax,
                parents[parent],
                (x - node_w / 2, y),
                color=edge if kept else "#999999",
                linestyle="-" if kept else "--",
                linewidth=2 if on_path else 1,
            )
            if kept:
                next_parents[kept_rank[i]] = (x + node_w / 2, y)
        parents = next_parents
    _legend(
        fig,
        ax,
        width / 2,
        0.22,
        [
            ("input", PALETTE["edge"], "-", "kept"),
            ("neutral", PALETTE["edge"], "--", "pruned"),
            ("input", PALETTE["highlight"], "-", "best beam"),
        ],
    )
    return fig
