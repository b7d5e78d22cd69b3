"""Checks for the exercises of chapter 8, training a tiny GPT.

check_shift(shift)                              inputs and targets from a batch of windows
check_cross_entropy(cross_entropy)              cross-entropy of predicted distributions
check_unigram_baseline(unigram_baseline)        the unigram model's cross-entropy
check_learning_rate(learning_rate)              linear warm-up, then cosine decay
"""

from __future__ import annotations

import math

import torch

from llmcourse.exercises import expect, expect_close, run_checks
from llmcourse.training import lr_schedule, unigram_cross_entropy

__all__ = ["check_shift", "check_cross_entropy", "check_unigram_baseline", "check_learning_rate"]


def check_shift(shift) -> None:
    """``shift(windows)``: windows (B, T + 1) -> inputs (B, T) and targets (B, T)."""
    windows = torch.tensor([[10, 11, 12, 13, 14], [20, 21, 22, 23, 24]])

    def returns_pair(f):
        out = f(windows.clone())
        expect(isinstance(out, tuple) and len(out) == 2, "return a tuple (inputs, targets)")
        inputs, targets = out
        expect(
            tuple(inputs.shape) == (2, 4) and tuple(targets.shape) == (2, 4),
            f"a window of T + 1 = 5 ids gives inputs and targets of shape (2, 4), got "
            f"{tuple(inputs.shape)} and {tuple(targets.shape)}: drop one id from each end, "
            "not from the batch dimension",
        )

    def direction(f):
        inputs, targets = f(windows.clone())
        expect(
            not torch.equal(inputs, targets),
            "the targets equal the inputs: a model would learn to copy its input. "
            "The target at position t is the id at position t + 1",
        )
        expect(
            not (torch.equal(inputs, windows[:, 1:]) and torch.equal(targets, windows[:, :-1])),
            "inputs and targets are swapped: the model must predict the NEXT id, so the "
            "targets are the window without its first id",
        )
        expect(
            torch.equal(inputs, windows[:, :-1]) and torch.equal(targets, windows[:, 1:]),
            "inputs are the window without its last id, targets the window without its first",
        )

    def one_window(f):
        single = torch.arange(7)[None, :]  # batch of one
        inputs, targets = f(single)
        expect(
            torch.equal(targets - inputs, torch.ones(1, 6, dtype=torch.long)),
            "for a batch of one window 0..6, each target should be its input plus one",
        )

    return run_checks("Exercise: shifted targets", shift, [returns_pair, direction, one_window])


def check_cross_entropy(cross_entropy) -> None:
    """``cross_entropy(probs, targets)``: mean of -ln probs[i, targets[i]] (nats)."""
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5], [0.1, 0.8, 0.1]], dtype=torch.float64)
    targets = torch.tensor([0, 2, 0])
    want = float(-torch.log(probs[torch.arange(3), targets]).mean())

    def sign(f):
        got = float(f(probs, targets))
        expect(
            got > 0,
            f"cross-entropy is never negative, got {got:.4f}: did you forget the "
            "minus sign in -log p?",
        )

    def natural_log(f):
        got = float(f(probs, targets))
        expect(
            not math.isclose(got, want / math.log(10), rel_tol=1e-6),
            "this is in base-10 logs: use the natural log (torch.log), so the unit is nats "
            "and a uniform model scores ln V",
        )
        expect(
            not math.isclose(got, want / math.log(2), rel_tol=1e-6),
            "this is in bits (log base 2): use the natural log, as F.cross_entropy does",
        )

    def mean_of_logs(f):
        got = float(f(probs, targets))
        picked = probs[torch.arange(3), targets]
        expect(
            not math.isclose(got, float(-torch.log(picked.mean())), rel_tol=1e-6),
            "you took the log of the mean probability: take the log of each probability "
            "first, then average the logs",
        )
        expect(
            not math.isclose(got, float(-torch.log(picked).sum()), rel_tol=1e-6),
            "this is the sum over positions: average it (divide by the number of positions)",
        )
        expect_close(got, want, "the mean over positions of -ln p(target)")

    def uniform(f):
        v = 7
        flat = torch.full((4, v), 1 / v, dtype=torch.float64)
        expect_close(
            f(flat, torch.tensor([0, 3, 6, 2])),
            math.log(v),
            "a uniform distribution over V tokens must score ln V",
            rel=1e-9,
        )

    return run_checks(
        "Exercise: cross-entropy by hand", cross_entropy, [sign, natural_log, mean_of_logs, uniform]
    )


def check_unigram_baseline(unigram_baseline) -> None:
    """``unigram_baseline(train_ids, eval_ids, vocab_size)``: cross-entropy of train frequencies."""
    train = [0, 0, 0, 1, 1, 2, 0, 1, 3, 0]
    evaluation = [1, 0, 2, 2, 3, 0, 1]
    want = unigram_cross_entropy(train, evaluation, 4)

    def hand_example(f):
        got = float(f([0, 0, 1, 1], [0, 1], 2))
        expect(
            not math.isclose(got, 1.0, rel_tol=1e-6),
            "you got 1 for a fair coin: that is in bits (log base 2); use the natural log",
        )
        expect_close(
            got,
            math.log(2),
            "with train ids [0, 0, 1, 1] each id has p = 1/2, so "
            "the cross-entropy on any text of 0s and 1s is ln 2",
        )

    def train_counts(f):
        got = float(f(train, evaluation, 4))
        cheat = unigram_cross_entropy(evaluation, evaluation, 4)
        expect(
            not math.isclose(got, cheat, rel_tol=1e-6),
            "you counted the evaluation text: the frequencies must come from the training "
            "ids only (the model never sees the evaluation text)",
        )
        expect(
            not math.isclose(got, math.log(4), rel_tol=1e-6),
            "this is ln V, the uniform model: weight each id by its training frequency",
        )
        expect(
            not math.isclose(got, want / math.log(2), rel_tol=1e-6),
            "this is in bits: use the natural log",
        )
        expect_close(
            got, want, "the mean over evaluation ids of -ln(count in train / train length)"
        )

    def unused_vocab(f):
        got = float(f([0, 1, 1, 1], [1, 0, 1], 50))
        exact = -(math.log(1 / 4) + 2 * math.log(3 / 4)) / 3
        expect_close(
            got,
            exact,
            "ids that never occur (here 2..49) get probability 0 but do not "
            "change the others: divide counts by the number of training "
            "ids, not by the vocabulary size",
        )

    return run_checks(
        "Exercise: unigram baseline", unigram_baseline, [hand_example, train_counts, unused_vocab]
    )


def check_learning_rate(learning_rate) -> None:
    """``learning_rate(step, max_lr, warmup_steps, total_steps, min_lr)``: warm-up then cosine."""
    kw = dict(max_lr=1e-3, warmup_steps=10, total_steps=110, min_lr=1e-4)

    def want(step):
        return lr_schedule(step, **kw)

    def warmup(f):
        first = float(f(0, 1e-3, 10, 110, 1e-4))
        expect(
            first != 0,
            "the learning rate at step 0 is 0, so the first update does nothing: "
            "rise as max_lr * (step + 1) / warmup_steps",
        )
        expect_close(
            first, want(0), "during warm-up the rate is max_lr * (step + 1) / warmup_steps"
        )
        expect_close(f(9, 1e-3, 10, 110, 1e-4), 1e-3, "the warm-up ends at max_lr (step 9)")

    def cosine(f):
        middle = float(f(60, 1e-3, 10, 110, 1e-4))
        expect(
            not math.isclose(middle, 1e-3 * 0.5, rel_tol=1e-6),
            "halfway through the decay the rate should be halfway between max_lr and "
            "min_lr, not max_lr / 2: min_lr + (max_lr - min_lr) * (1 + cos(pi p)) / 2",
        )
        expect(
            not math.isclose(middle, 1e-4 + 9e-4 * 1.0, rel_tol=1e-6),
            "halfway through the decay the rate is still max_lr: (1 + cos(pi p)) runs from "
            "2 to 0, so it needs the factor 1/2",
        )
        expect_close(
            f(10, 1e-3, 10, 110, 1e-4), 1e-3, "the decay starts at max_lr at step warmup_steps"
        )
        for step in (30, 60, 85):
            expect_close(
                f(step, 1e-3, 10, 110, 1e-4),
                want(step),
                f"the cosine decay is wrong at step {step}",
            )

    def floor(f):
        expect_close(
            f(110, 1e-3, 10, 110, 1e-4), 1e-4, "at total_steps the rate reaches min_lr (not 0)"
        )
        expect_close(
            f(500, 1e-3, 10, 110, 1e-4), 1e-4, "after total_steps the rate stays at min_lr"
        )

    return run_checks("Exercise: learning-rate schedule", learning_rate, [warmup, cosine, floor])
