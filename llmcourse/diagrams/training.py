"""Diagrams of chapter 8, training a tiny GPT: the training loop as a cycle.

Each function draws and returns a matplotlib Figure; sizes are in inches (see
``llmcourse.diagrams.canvas``).
"""

from __future__ import annotations

from llmcourse.diagrams.canvas import PALETTE, arrow, box, canvas, text

__all__ = ["loop"]


def loop(eval_every: int = 100, grad_clip: float = 1.0):
    """One step of the training loop, drawn as the cycle it repeats, in the order of chapter
    8's ``train_loop``: a batch of inputs and targets shifted by one, the forward pass to
    logits, the cross-entropy loss, ``zero_grad``, ``backward``, gradient clipping and the
    AdamW step at the rate the schedule gives for this step; then the next batch.

    Around the cycle: ``model.train()`` before the first step and ``model.eval()`` after the
    last, and every ``eval_every`` steps the loss on fixed training and validation batches,
    measured in eval mode without gradients. ``grad_clip`` is the largest gradient norm
    (0 means no clipping, as in ``TrainConfig``).
    """
    if eval_every < 1:
        raise ValueError(f"eval_every must be at least 1, got {eval_every}")
    fig, ax = canvas(6.4, 4.3, title="The training loop, one step per turn")
    top, bottom, w, h = 3.2, 2.0, 1.42, 0.62
    xs = (0.8, 2.4, 4.0, 5.6)

    # The cycle: the top row runs left to right, the bottom row right to left.
    box(ax, xs[0], top, w, h, "batch x, y  (B, T)\ny = next tokens of x", kind="input")
    box(ax, xs[1], top, w, h, "forward\nlogits (B, T, V)", kind="weight")
    box(ax, xs[2], top, w, h, "cross-entropy\nloss(logits, y)", kind="output")
    box(ax, xs[3], top, w, h, "zero_grad\nold gradients off", kind="neutral")
    box(ax, xs[3], bottom, w, h, "backward\ngradients", kind="norm")
    clip = f"clip gradients\nnorm ≤ {grad_clip:g}" if grad_clip else "no clipping"
    box(ax, xs[2], bottom, w, h, clip, kind="norm")
    box(ax, xs[1], bottom, w, h, "AdamW step\nupdate weights", kind="weight")
    box(ax, xs[0], bottom, w, h, "schedule\nrate of step k", kind="neutral")

    half = w / 2
    arrow(ax, (xs[0] + half, top), (xs[1] - half, top))
    arrow(ax, (xs[1] + half, top), (xs[2] - half, top))
    arrow(ax, (xs[2] + half, top), (xs[3] - half, top))
    arrow(ax, (xs[3], top - h / 2), (xs[3], bottom + h / 2))
    arrow(ax, (xs[3] - half, bottom), (xs[2] + half, bottom))
    arrow(ax, (xs[2] - half, bottom), (xs[1] + half, bottom))
    arrow(ax, (xs[0] + half, bottom), (xs[1] - half, bottom), color=PALETTE["edge"])
    # The step closes the cycle: back to a fresh batch.
    arrow(
        ax,
        (xs[1] - 0.25, bottom + h / 2),
        (xs[0] + 0.25, top - h / 2),
        color=PALETTE["highlight"],
    )
    text(ax, 1.75, 2.6, "next\nstep", size=10, color=PALETTE["highlight"], ha="left")

    # Train and eval modes around the loop.
    text(ax, xs[0], top + 0.62, "model.train()", size=10, family="monospace")
    arrow(ax, (xs[0], top + 0.5), (xs[0], top + h / 2))
    text(ax, 0.1, 0.7, "after the last step:\nmodel.eval()", size=10, ha="left")
    box(
        ax,
        4.05,
        0.7,
        4.3,
        0.8,
        f"every {eval_every} steps: model.eval(), loss on fixed\n"
        "training and validation batches without\n"
        "gradients, then model.train() again",
        kind="attention",
    )
    arrow(ax, (xs[1] + 0.1, bottom - h / 2), (xs[1] + 0.1, 1.1), style="-|>", linestyle="--")
    return fig
