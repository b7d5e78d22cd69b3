"""Checks for the exercises of chapter 8, training a tiny GPT.

check_shift(shift)                              inputs and targets from a batch of windows
check_cross_entropy(cross_entropy)              cross-entropy of predicted distributions
check_unigram_baseline(unigram_baseline)        the unigram model's cross-entropy
check_learning_rate(learning_rate)              linear warm-up, then cosine decay
check_train_steps(train_steps)                  a training loop that reports every step's loss
check_checkpoint(checkpoint)                    a checkpoint that resumes a run exactly

The last two build a tiny GPT (``tiny_gpt``) and random token windows from a seed; the
grader runs the same cases through ``grading_drivers`` (``llmcourse.teaching.codec``).
"""

from __future__ import annotations

import math
import threading

import torch

from llmcourse.exercises import ExerciseError, expect, expect_close, run_checks
from llmcourse.training import lr_schedule, unigram_cross_entropy

__all__ = [
    "check_shift",
    "check_cross_entropy",
    "check_unigram_baseline",
    "check_learning_rate",
    "check_train_steps",
    "check_checkpoint",
]


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


# ---- the training loop and its checkpoints: tiny models the checks build --------------------

VOCAB = 13  # token ids of the checks' random data
# Dropout draws from PyTorch's global generator, which threads share: the grader judges
# several notebooks at once, in threads, so each run that seeds it holds this lock.
_GLOBAL_RNG = threading.RLock()
_DATA_LENGTH = 300


def tiny_gpt(seed: int, dropout: float = 0.0, dtype: str = "float32"):
    """A one-block GPT of width 8 on 13 tokens, its weights drawn from ``seed``."""
    from llmcourse.gpt import GPT, GPTConfig

    config = GPTConfig(
        vocab_size=VOCAB, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=dropout
    )
    with _GLOBAL_RNG, torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT(config)
    return model.to(getattr(torch, dtype)).eval()


def _windows(seed: int, count: int, batch: int = 3, length: int = 6) -> list:
    """``count`` batches (x, y) of random token windows, y shifted by one."""
    gen = torch.Generator().manual_seed(seed)
    windows = torch.randint(0, VOCAB, (count, batch, length + 1), generator=gen)
    return [(w[:, :-1], w[:, 1:]) for w in windows]


def _optimizer(model, name: str):
    if name == "sgd":  # plain SGD: every slip in scale or order shows in the weights
        return torch.optim.SGD(model.parameters(), lr=0.05)
    return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)


def _lrs(seed: int, count: int, optimizer: str) -> list[float]:
    top = 0.6 if optimizer == "sgd" else 0.02
    gen = torch.Generator().manual_seed(seed + 7)
    return [top * (0.3 + 0.7 * float(u)) for u in torch.rand(count, generator=gen)]


def reference_train_steps(
    model,
    optimizer,
    batches,
    lrs,
    max_norm,
    *,
    zero_grad=True,
    clip=True,
    set_lr=True,
    train_mode=True,
) -> list[float]:
    """The chapter's loop on given batches and rates; the keywords switch on classic slips."""
    if train_mode:
        model.train()
    losses = []
    for (x, y), lr in zip(batches, lrs):
        if set_lr:
            for group in optimizer.param_groups:
                group["lr"] = lr
        logits = model(x)  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def _flat_weights(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def run_train_steps(answer, seed, dtype, optimizer, dropout, steps, **slips):
    """A hidden case of ``train_steps``: (losses, weights after, model.training after).

    ``answer`` None runs the reference (with ``slips``). The model arrives in eval mode; the
    dropout masks are drawn from ``seed`` too, without touching the caller's random state."""
    model = tiny_gpt(seed, dropout, dtype)
    opt = _optimizer(model, optimizer)
    batches, lrs = _windows(seed, steps), _lrs(seed, steps, optimizer)
    max_norm = 0.3
    with _GLOBAL_RNG, torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        if answer is None:
            out = reference_train_steps(model, opt, batches, lrs, max_norm, **slips)
        else:
            out = answer(model, opt, batches, lrs, max_norm)
    return out, _flat_weights(model), model.training


def _losses(out, steps: int) -> list[float]:
    expect(
        isinstance(out, (list, tuple)),
        f"return the list of the step losses, got {type(out).__name__}",
    )
    expect(
        len(out) == steps, f"{steps} batches are {steps} steps, so {steps} losses; got {len(out)}"
    )
    try:
        return [float(v) for v in out]
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseError("each loss must be a number: append loss.item()") from None


def _same(a, b, rel=1e-5) -> bool:
    return all(math.isclose(x, y, rel_tol=rel, abs_tol=1e-7) for x, y in zip(a, b))


_STEP_SLIPS = [
    (
        {"train_mode": False},
        "the losses are those of a model in eval mode, with dropout off: call "
        "model.train() before the steps (the model arrives in eval mode)",
    ),
    (
        {"set_lr": False},
        "the rates in lrs were never used: before each step set group['lr'] = lrs[i] for "
        "every group in optimizer.param_groups",
    ),
    (
        {"zero_grad": False},
        "the losses are those of a loop that never zeroes the gradients: backward ADDS "
        "to .grad, so call optimizer.zero_grad() before loss.backward()",
    ),
    (
        {"clip": False},
        "the losses are those of a loop without clipping (or clipping at the wrong "
        "moment): call torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm) after "
        "backward and before optimizer.step()",
    ),
]


def check_train_steps(train_steps) -> None:
    """``train_steps(model, optimizer, batches, lrs, max_norm)``: one clipped step per batch
    at its rate; returns the losses; leaves the model in eval mode."""
    steps = 5

    def case(seed, dtype, optimizer):
        def check(f):
            got, weights, training = run_train_steps(f, seed, dtype, optimizer, 0.2, steps)
            losses = _losses(got, steps)
            want, want_weights, _ = run_train_steps(None, seed, dtype, optimizer, 0.2, steps)
            if not _same(losses, want):
                for slip, hint in _STEP_SLIPS:
                    if _same(
                        losses, run_train_steps(None, seed, dtype, optimizer, 0.2, steps, **slip)[0]
                    ):
                        raise ExerciseError(hint)
                first = next(
                    i
                    for i, (a, b) in enumerate(zip(losses, want))
                    if not math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7)
                )
                raise ExerciseError(
                    f"the losses differ from the chapter's loop from step {first} on "
                    f"({losses[first]:.5f} instead of {want[first]:.5f}): each loss is the "
                    "batch's loss before its step's update, in training mode"
                )
            expect(
                torch.allclose(weights.double(), want_weights.double(), rtol=1e-4, atol=1e-4),
                "the losses are right but the weights after the last batch are not: take "
                "exactly one optimizer.step() per batch, after clipping",
            )
            expect(
                not training,
                "leave the model in eval mode at the end (model.eval()), as train_loop does",
            )

        return check

    return run_checks(
        "Exercise: a training loop that reports every step",
        train_steps,
        [case(11, "float32", "sgd"), case(12, "float64", "adamw"), case(13, "float32", "adamw")],
    )


# ---- checkpoints ------------------------------------------------------------------------------


def _run_steps(model, optimizer, generator, data, lrs, start, stop) -> list[float]:
    """Steps ``start`` .. ``stop`` - 1 of a clipped loop on random windows of ``data``."""
    from llmcourse.training import get_batch

    model.train()
    losses = []
    for step in range(start, stop):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step]
        x, y = get_batch(data, 3, 6, generator)
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def restore_checkpoint(state: dict, model, optimizer, generator) -> int:
    """The chapter's resume: load what ``state`` holds of the run; return the step to resume at
    (what is missing stays as the fresh objects have it)."""
    if "model" in state:
        model.load_state_dict(state["model"])
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    if "batch_rng" in state:
        generator.set_state(state["batch_rng"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    return int(state.get("step", 0))


def reference_checkpoint(model, optimizer, generator, step) -> dict:
    import copy

    return copy.deepcopy(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "batch_rng": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
    )


def run_checkpoint(answer, seed, dtype, save_at, steps, keep=None):
    """A hidden case of ``checkpoint``: a run with dropout and AdamW is checkpointed by
    ``answer`` (None: the reference) after ``save_at`` steps and goes on to ``steps``; a fresh
    model, optimizer and generator restored from the checkpoint run the remaining steps.
    Returns (the resumed run's losses, its weights at the end); with ``keep``, the
    checkpoint is stored in ``keep["state"]`` and the uninterrupted losses in ``keep["whole"]``."""
    data = torch.randint(0, VOCAB, (_DATA_LENGTH,), generator=torch.Generator().manual_seed(seed))
    lrs = _lrs(seed, 2 * steps, "adamw")  # room for a resume at a wrong step
    with _GLOBAL_RNG, torch.random.fork_rng():
        model = tiny_gpt(seed, 0.2, dtype)
        optimizer = _optimizer(model, "adamw")
        generator = torch.Generator().manual_seed(seed + 2)
        torch.manual_seed(seed + 1)
        whole = _run_steps(model, optimizer, generator, data, lrs, 0, save_at)
        state = (answer or reference_checkpoint)(model, optimizer, generator, save_at)
        whole += _run_steps(model, optimizer, generator, data, lrs, save_at, steps)
        if keep is not None:
            keep.update(state=state, whole=whole)
        # a new process: fresh weights, a fresh optimizer, other random states
        torch.manual_seed(seed + 99)
        model = tiny_gpt(seed + 50, 0.2, dtype)
        optimizer = _optimizer(model, "adamw")
        generator = torch.Generator().manual_seed(seed + 51)
        start = restore_checkpoint(state, model, optimizer, generator)
        resumed = _run_steps(model, optimizer, generator, data, lrs, start, start + steps - save_at)
    return resumed, _flat_weights(model)


_MISSING = {
    "model": "the weights (model.state_dict())",
    "optimizer": "AdamW's moments m and v and its step count (optimizer.state_dict()): "
    "a fresh optimizer would restart them from zero",
    "step": "the step number: the schedule's rate, lrs[step], depends on it",
    "batch_rng": "the batch generator's state (generator.get_state()): the resumed run "
    "would draw other batches",
    "torch_rng": "PyTorch's global random state (torch.get_rng_state()): dropout would "
    "draw other masks",
}


def check_checkpoint(checkpoint) -> None:
    """``checkpoint(model, optimizer, generator, step)`` -> a dict that resumes the run
    exactly, even kept in memory while training goes on."""
    steps, save_at = 8, 4

    def case(seed, dtype):
        def check(f):
            keep: dict = {}
            resumed, weights = run_checkpoint(f, seed, dtype, save_at, steps, keep)
            state = keep["state"]
            expect(isinstance(state, dict), f"return a dict, got {type(state).__name__}")
            for key, what in _MISSING.items():
                expect(key in state, f"the checkpoint has no {key!r}: it must hold {what}")
            expect(
                state["step"] == save_at,
                f"the checkpoint was taken after {save_at} steps, so 'step' must be {save_at}, "
                f"got {state['step']!r}",
            )
            reference: dict = {}
            want, want_weights = run_checkpoint(None, seed, dtype, save_at, steps, reference)
            moved = not torch.equal(
                _checkpoint_weights(state, seed, dtype),
                _checkpoint_weights(reference["state"], seed, dtype),
            )
            expect(
                not moved,
                "the checkpoint changed as training went on: state_dict() hands out the "
                "model's (and the optimizer's) live tensors, not copies, so a dict kept in "
                "memory follows the run; copy them (copy.deepcopy) when you take it",
            )
            expect(
                _same(resumed, want),
                "the resumed run's losses differ from the uninterrupted run's: something "
                "it depends on was not saved as it was at the checkpoint (copy the "
                "optimizer's state too)",
            )
            expect(
                torch.allclose(weights.double(), want_weights.double(), rtol=1e-4, atol=1e-4),
                "the resumed run ends with other weights than the uninterrupted run",
            )
            expect(
                _same(resumed, keep["whole"][save_at:]),
                "the run went on differently after the checkpoint was taken: take it without "
                "changing the model, the optimizer or the random states",
            )

        return check

    return run_checks(
        "Exercise: a checkpoint that resumes exactly",
        checkpoint,
        [case(21, "float32"), case(22, "float64")],
    )


def _checkpoint_weights(state: dict, seed: int, dtype: str) -> torch.Tensor:
    """The weights a checkpoint holds, in parameter order."""
    model = tiny_gpt(seed, 0.2, dtype)
    model.load_state_dict(state["model"])
    return _flat_weights(model)


def grading_drivers() -> dict:
    """The grader's harnesses for this chapter's answers that act on a model (codec.make_driver)."""
    return {
        "ch08_train_steps": run_train_steps,
        "ch08_checkpoint": lambda answer, *args: run_checkpoint(answer, *args),
    }
