"""Diagrams of chapter 12, from scratch to a real LLM: how Llama-style models share
key-value heads among query heads."""

from __future__ import annotations

from llmcourse.diagrams.canvas import PALETTE, box, canvas, text

__all__ = ["grouped_query_attention"]


def grouped_query_attention(num_heads: int = 9, num_kv_heads: int = 3, model: str = "SmolLM2"):
    """Multi-head, grouped-query and multi-query attention, one above the other: the query
    heads in a row, each linked to the key-value head it attends with, and beside each row
    the KV cache it needs, proportional to its number of key-value heads.

    The middle row is the model's, named by ``model`` (SmolLM2-135M: 9 query heads and 3
    key-value heads, so query heads 3g to 3g + 2 share key-value head g; Ainslie et al.,
    2023); above it every query head has its own key-value head (Vaswani et al., 2017),
    below it all share one (Shazeer, 2019).
    """
    if num_heads < 2 or num_kv_heads < 1 or num_heads % num_kv_heads:
        raise ValueError(
            f"num_heads must be a multiple of num_kv_heads, got {num_heads} and {num_kv_heads}"
        )
    rows = [
        (num_heads, f"multi-head: {num_heads} key-value heads"),
        (num_kv_heads, f"grouped-query: {num_kv_heads} key-value heads ({model})"),
        (1, "multi-query: 1 key-value head"),
    ]
    width, row_height = 6.0, 1.35
    height = 0.45 + row_height * len(rows)
    fig, ax = canvas(width, height)
    left, step, head_w, head_h = 0.1, 4.3 / num_heads, 4.3 / num_heads - 0.06, 0.3
    bar_left, bar_max = 4.75, 0.95
    text(ax, bar_left, height - 0.2, "KV cache", size=10, ha="left", fontweight="bold")
    for r, (kv, title) in enumerate(rows):
        top = height - 0.35 - r * row_height
        text(ax, left, top - 0.05, title, size=10, ha="left", fontweight="bold")
        q_y, kv_y = top - 0.42, top - 1.02
        group = num_heads // kv
        for h in range(num_heads):
            x = left + step * (h + 0.5)
            box(ax, x, q_y, head_w, head_h, f"q{h}", kind="input")
            g = h // group
            kv_x = left + step * (g * group + group / 2)
            ax.plot([x, kv_x], [q_y - head_h / 2, kv_y + head_h / 2], color=PALETTE["edge"], lw=1)
        for g in range(kv):
            kv_x = left + step * (g * group + group / 2)
            label = f"kv{g}" if kv > 1 else "kv0, shared by all"
            box(ax, kv_x, kv_y, step * group - 0.06, head_h, label, kind="weight")
        # the cache: one key and one value vector per key-value head, per layer and token
        cell = bar_max / num_heads
        for g in range(kv):
            box(ax, bar_left + cell * (g + 0.5), kv_y, cell - 0.02, head_h, kind="weight")
        share = f"1/{num_heads // kv}" if kv < num_heads else "1"  # of multi-head's cache
        text(ax, bar_left, q_y, f"{kv} head{'s' if kv > 1 else ''} (×{share})", ha="left")
    return fig
