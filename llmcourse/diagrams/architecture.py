"""Chapter 7's diagrams: the three Transformer families side by side, and one block on its
residual stream.

The families (Vaswani et al., 2017; Radford et al., 2018; Devlin et al., 2019): an encoder
stack with bidirectional self-attention (BERT), a decoder stack with causal self-attention
(GPT), and the original encoder-decoder, whose decoder blocks add a cross-attention that
reads the encoder's output (the 2017 Transformer, T5). The block is drawn pre-norm, as GPT-2
and T5 arrange it: each sublayer reads a normalised copy of the stream and adds its output
back.
"""

from __future__ import annotations

from matplotlib.patches import Circle

from llmcourse.diagrams.canvas import PALETTE, arrow, box, canvas, text

__all__ = ["families", "residual_block"]

_SUB_W, _SUB_H, _GAP = 1.1, 0.46, 0.1  # sublayer boxes inside a stack, in inches
_FRAME_W, _HEADER = 1.24, 0.3  # the block's frame, and the room for its "block × N" label


def _stack(ax, x, y0, sublayers):
    """A block drawn as a frame at x, bottom at y0, holding its sublayers from the bottom up
    (label, kind) under a "block × N" label. Returns the frame's top y and the centre y of
    each sublayer box."""
    height = len(sublayers) * (_SUB_H + _GAP) + _GAP + _HEADER
    box(ax, x, y0 + height / 2, _FRAME_W, height, kind="neutral")
    centres = []
    for i, (label, kind) in enumerate(sublayers):
        cy = y0 + _GAP + _SUB_H / 2 + i * (_SUB_H + _GAP)
        box(ax, x, cy, _SUB_W, _SUB_H, label, kind=kind, size=9)
        centres.append(cy)
    text(ax, x, y0 + height - _HEADER / 2 - 0.02, "block × N", size=9)
    return y0 + height, centres


def families():
    """Encoder-only (BERT), decoder-only (GPT) and encoder-decoder (2017 Transformer, T5) side
    by side: a stack of N blocks each, the attention each block uses, what goes in and what
    comes out. The encoder's output enters every decoder block's cross-attention."""
    fig, ax = canvas(6.2, 4.1)
    ff = ("feed-forward", "weight")
    bottom, inp_y, out_gap = 0.85, 0.3, 0.5
    for x, title in [
        (0.7, "encoder-only\n(BERT)"),
        (2.05, "decoder-only\n(GPT)"),
        (4.5, "encoder-decoder\n(2017, T5)"),
    ]:
        text(ax, x, 4.0, title, size=10, fontweight="bold", va="top")
    ax.plot([2.88, 2.88], [0.1, 3.95], color="#bbbbbb", linewidth=1)

    def io(x, top, source, result):
        box(ax, x, inp_y, 1.2, 0.42, source, kind="input", size=9)
        arrow(ax, (x, inp_y + 0.21), (x, bottom))
        if result:
            arrow(ax, (x, top), (x, top + out_gap - 0.21))
            box(ax, x, top + out_gap, 1.24, 0.42, result, kind="output", size=9)

    top, _ = _stack(ax, 0.7, bottom, [("bidirectional\nself-attention", "attention"), ff])
    io(0.7, top, "tokens", "a vector\nper token")
    top, _ = _stack(ax, 2.05, bottom, [("causal\nself-attention", "attention"), ff])
    io(2.05, top, "tokens so far", "next-token\nprobabilities")

    # Encoder-decoder: the encoder stack on the left, the decoder stack on the right.
    xe, xd, xm = 3.7, 5.35, 4.52
    top_e, _ = _stack(ax, xe, bottom, [("bidirectional\nself-attention", "attention"), ff])
    io(xe, top_e, "source", "")
    top_d, (_, cross_y, _) = _stack(
        ax,
        xd,
        bottom,
        [("causal\nself-attention", "attention"), ("cross-attention", "attention"), ff],
    )
    io(xd, top_d, "target so far", "next-token\nprobabilities")
    # The encoder's output climbs out of its stack and enters every cross-attention.
    rise = top_e + 0.3
    arrow(ax, (xe, top_e), (xe, rise), style="-")
    arrow(ax, (xe, rise), (xm, rise), style="-")
    arrow(ax, (xm, rise), (xm, cross_y), style="-")
    arrow(ax, (xm, cross_y), (xd - _SUB_W / 2, cross_y))
    text(ax, xe - 0.1, rise + 0.18, "encoder output", size=9, ha="left")
    return fig


def residual_block():
    """One pre-norm decoder block on its residual stream: each sublayer reads a LayerNorm'd
    copy of the stream and adds its output back (a "+"). A GPT block has two sublayers; a
    decoder block of an encoder-decoder has a cross-attention between them, whose keys and
    values come from the encoder's output."""
    fig, ax = canvas(5.4, 5.0)
    stream_x, ln_x, sub_x = 0.75, 1.95, 3.45
    rows = [
        (1.2, "causal\nself-attention", False),
        (2.55, "cross-attention", True),
        (3.9, "feed-forward", False),
    ]
    # The residual stream: one vector per position, carried from block to block.
    box(ax, stream_x, 0.3, 1.2, 0.4, "x (T × C)", kind="input")
    box(ax, stream_x, 4.7, 1.3, 0.4, "to next block", kind="input")
    arrow(ax, (stream_x, 0.5), (stream_x, 4.5), color="#4a7ab5")
    text(ax, stream_x - 0.25, 2.1, "residual stream", rotation=90, color="#4a7ab5")
    for y, label, cross in rows:
        add_y = y + 0.45
        arrow(ax, (stream_x, y), (ln_x - 0.45, y))
        box(ax, ln_x, y, 0.9, 0.46, "LayerNorm", kind="norm", size=9)
        arrow(ax, (ln_x + 0.45, y), (sub_x - 0.75, y))
        kind = "attention" if "att" in label else "weight"
        box(ax, sub_x, y, 1.5, 0.5, label, kind=kind, linestyle="--" if cross else "-")
        arrow(ax, (sub_x, y + 0.25), (sub_x, add_y), style="-")
        arrow(ax, (sub_x, add_y), (stream_x + 0.13, add_y))
        ax.add_patch(
            Circle((stream_x, add_y), 0.13, facecolor="white", edgecolor=PALETTE["edge"], zorder=3)
        )
        text(ax, stream_x, add_y, "+", size=12, zorder=4)
    cross_y = rows[1][0]
    arrow(ax, (sub_x + 0.4, cross_y - 0.6), (sub_x + 0.4, cross_y - 0.25))
    text(ax, sub_x + 0.4, cross_y - 0.65, "encoder output (keys, values)", va="top", size=9)
    text(ax, sub_x + 0.85, cross_y, "encoder-\ndecoder\nonly", ha="left", size=9, color="#555555")
    return fig
