"""Chapter 8: training a language model by next-token prediction.

A causal language model reads a window of T tokens and, at every position t, predicts token
t + 1. The targets are therefore the inputs shifted left by one, and the training loss is the
cross-entropy of the right next token, averaged over the B * T positions of a batch:

    L = -(1 / (B T)) * sum_{b, t} log p(x_{b, t+1} | x_{b, 1..t})

A model that spreads its probability evenly over V tokens scores exactly ``log V``; a model
that only knows how often each token occurs (the unigram model) scores the cross-entropy of
the training text's token frequencies on the evaluation text. A trained model must beat both.

The loop is nanoGPT's (Karpathy, 2022): random windows of a long token array, AdamW
(Loshchilov & Hutter, 2019) with weight decay on matrices only, gradient clipping (Pascanu et
al., 2013), a linear warm-up then cosine decay of the learning rate (Loshchilov & Hutter,
2017; Radford et al., 2018), and the loss on fixed train and validation batches every
``eval_every`` steps. Everything is seeded and runs a fixed number of steps (never "until a
time limit"), so a run gives the same numbers every time on the same machine.
Letters: B batch, T positions in a window (block size), V vocabulary size.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from llmcourse.validation import logits_and_targets, positive_int

__all__ = [
    "next_token_loss",
    "unigram_cross_entropy",
    "get_batch",
    "write_token_file",
    "open_token_file",
    "fixed_batches",
    "estimate_loss",
    "lr_schedule",
    "set_scheduled_lr",
    "TrainConfig",
    "History",
    "configure_optimizer",
    "train",
    "sequence_log_probs",
]


def _as_ids(ids, name: str = "ids") -> torch.Tensor:
    """A 1-D int64 tensor of token ids from a list, NumPy array or tensor."""
    if isinstance(ids, torch.Tensor):
        tensor = ids  # stays on its device
    else:
        tensor = torch.as_tensor(np.asarray(ids), device="cpu")  # a list or array: on the CPU
    if tensor.numel() == 0 and tensor.dim() == 1:
        return tensor.long()
    if tensor.dim() != 1 or tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
        raise ValueError(
            f"expected {name} as a 1-D sequence of integer token ids, got shape "
            f"{tuple(tensor.shape)} and dtype {tensor.dtype}"
        )
    return tensor.long()


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of ``logits`` (B, T, V) against ``targets`` (B, T).

    The same number as ``F.cross_entropy`` on the flattened positions: -log softmax(logits)
    at the target token, averaged over all B * T positions.
    """
    logits_and_targets(logits, targets)
    vocab = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))  # (B*T, V), (B*T,)


def unigram_cross_entropy(train_ids, eval_ids, vocab_size: int) -> float:
    """Cross-entropy (nats per token) on ``eval_ids`` of the training text's token frequencies.

    The baseline a language model must beat: p(v) = count of v in ``train_ids`` / their number,
    the same for every position, whatever came before. A token that occurs in ``eval_ids`` but
    never in ``train_ids`` would have probability 0: that raises ValueError.
    """
    train, evaluation = _as_ids(train_ids, "train_ids"), _as_ids(eval_ids, "eval_ids")
    if len(train) == 0 or len(evaluation) == 0:
        raise ValueError("train_ids and eval_ids must be non-empty")
    both = torch.cat([train, evaluation])
    if int(both.max()) >= vocab_size or int(both.min()) < 0:
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1} (vocab_size={vocab_size})")
    counts = torch.bincount(train, minlength=vocab_size).double()
    unseen = evaluation[counts[evaluation] == 0]
    if len(unseen):
        raise ValueError(
            f"token id {int(unseen[0])} occurs in eval_ids but never in train_ids: "
            f"its unigram probability is 0 and the cross-entropy infinite"
        )
    log_p = torch.log(counts / counts.sum())
    return float(-log_p[evaluation].mean())


def get_batch(
    ids,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
):
    """``batch_size`` random windows of ``ids``: inputs (B, T) and their next tokens (B, T).

    Each window holds ``block_size + 1`` consecutive ids; the inputs are all but its last id,
    the targets all but its first (the same window shifted left by one). ``ids`` is a list,
    a tensor or a NumPy array, including a memory-mapped token file (:func:`write_token_file`):
    only the B * (T + 1) sampled ids are read and converted to int64, never the whole corpus,
    so a file far larger than memory costs no more per batch than a small one (nanoGPT's
    ``get_batch`` does the same). ``device`` is where the batch goes (for example
    ``"cuda"``); from the CPU to a GPU it travels through pinned memory without blocking.
    """
    data = _window_source(ids)
    positive_int("batch_size", batch_size)
    positive_int("block_size", block_size)
    if len(data) < block_size + 1:
        raise ValueError(f"need at least block_size + 1 = {block_size + 1} ids, got {len(data)}")
    # The windows are drawn on the CPU, explicitly (``generator`` is a CPU generator), so a
    # seed gives the same batches on every device; only the batch travels to ``device``.
    starts = torch.randint(
        0, len(data) - block_size, (batch_size,), generator=generator, device="cpu"
    )
    index = starts[:, None] + torch.arange(block_size + 1, device="cpu")  # (B, T + 1)
    if isinstance(data, np.ndarray):  # reads only these rows of a memory map
        windows = torch.from_numpy(data[index.numpy()].astype(np.int64))
    else:
        windows = data[index.to(data.device)].long()
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and windows.device.type == "cpu":
            windows = windows.pin_memory().to(device, non_blocking=True)
        else:
            windows = windows.to(device)
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T)


def _window_source(ids):
    """``ids`` itself if it is a 1-D integer array or tensor (no copy), else a tensor of it."""
    if isinstance(ids, np.ndarray) and ids.ndim == 1 and ids.dtype.kind in "iu":
        return ids
    if (
        isinstance(ids, torch.Tensor)
        and ids.dim() == 1
        and not ids.dtype.is_floating_point
        and ids.dtype != torch.bool
    ):
        return ids
    return _as_ids(ids)


def write_token_file(ids, path, dtype=np.uint16, chunk_size: int = 1 << 20) -> np.memmap:
    """Write token ids to ``path`` as a flat binary array and return it memory-mapped.

    ``ids`` is any iterable of ints (a list, an array, or a generator such as
    ``tokenizer.encode_iterable(open(file))``); it is written ``chunk_size`` ids at a time,
    so memory stays bounded whatever the corpus size. ``uint16`` holds ids below 65,536
    (GPT-2's 50,257 fit): 2 bytes a token. The file is written under a temporary name and
    renamed when complete. Reopen it later with :func:`open_token_file`.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"dtype must be an integer type, got {dtype}")
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    if isinstance(ids, (np.ndarray, torch.Tensor)):
        ids = np.asarray(ids)
        chunks = (ids[k : k + chunk_size] for k in range(0, len(ids), chunk_size))
    else:
        iterator = iter(ids)
        chunks = iter(lambda: list(itertools.islice(iterator, chunk_size)), [])
    top = np.iinfo(dtype).max
    with open(partial, "wb") as f:
        for chunk in chunks:
            chunk = np.asarray(chunk)
            if chunk.dtype.kind not in "iu" or chunk.ndim != 1:
                partial.unlink()
                raise ValueError(f"expected integer token ids, got {chunk.dtype} values")
            if len(chunk) and (chunk.min() < 0 or chunk.max() > top):
                partial.unlink()
                raise ValueError(
                    f"token ids must lie in 0..{top} to fit {dtype}, got values "
                    f"from {chunk.min()} to {chunk.max()}"
                )
            chunk.astype(dtype).tofile(f)
    os.replace(partial, path)
    return open_token_file(path, dtype)


def open_token_file(path, dtype=np.uint16) -> np.memmap:
    """The token file at ``path`` (written by :func:`write_token_file`), memory-mapped
    read-only: nothing is read until indexed."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no token file at {path}")
    if path.stat().st_size % np.dtype(dtype).itemsize:
        raise ValueError(
            f"{path} is {path.stat().st_size} bytes, not a whole number of {np.dtype(dtype)} ids"
        )
    return np.memmap(path, dtype=dtype, mode="r")


def fixed_batches(
    ids,
    num_batches: int,
    batch_size: int,
    block_size: int,
    seed: int = 0,
    device: str | torch.device | None = None,
):
    """The same ``num_batches`` random batches every call: a fixed set to measure loss on."""
    generator = torch.Generator().manual_seed(seed)
    return [get_batch(ids, batch_size, block_size, generator, device) for _ in range(num_batches)]


@torch.no_grad()
def estimate_loss(model: nn.Module, batches) -> float:
    """Mean next-token loss of ``model`` over ``batches`` of (inputs, targets), in eval mode."""
    if len(batches) == 0:
        raise ValueError("estimate_loss needs at least one batch")
    was_training = model.training
    model.eval()
    losses = torch.stack([next_token_loss(model(x), y) for x, y in batches]).tolist()  # 1 sync
    model.train(was_training)
    return float(np.mean(losses))


def lr_schedule(
    step: int, *, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> float:
    """Learning rate at ``step`` (counted from 0): linear warm-up, then cosine decay.

    Steps 0 .. warmup_steps - 1 rise linearly, ``max_lr * (step + 1) / warmup_steps``, so the
    first update is small but not zero. From ``warmup_steps`` to ``total_steps`` the rate falls
    along half a cosine, ``min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2`` with
    ``progress = (step - warmup_steps) / (total_steps - warmup_steps)``; after that it stays
    at ``min_lr``. The same curve as PyTorch's ``LinearLR`` followed by ``CosineAnnealingLR``.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps} "
            f"and total_steps={total_steps}"
        )
    if not 0 <= min_lr <= max_lr:
        raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={min_lr} and max_lr={max_lr}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_scheduled_lr(optimizer: torch.optim.Optimizer, step: int, config: TrainConfig) -> float:
    """Give every parameter group ``lr_schedule``'s rate at ``step`` for ``config``; return it."""
    lr = lr_schedule(
        step,
        max_lr=config.max_lr,
        warmup_steps=config.warmup_steps,
        total_steps=config.steps,
        min_lr=config.min_lr,
    )
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (no time limits: the run is reproducible)."""

    steps: int = 1000  # optimizer updates
    batch_size: int = 32  # windows per update (B)
    block_size: int = 128  # tokens per window (T); at most the model's context length
    max_lr: float = 3e-3  # peak learning rate, reached at the end of the warm-up
    min_lr: float = 3e-4  # learning rate at the end of the cosine decay
    warmup_steps: int = 50  # linear warm-up from max_lr / warmup_steps to max_lr
    weight_decay: float = 0.1  # AdamW decay, applied to weight matrices only
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW's moment decay rates
    grad_clip: float = 1.0  # largest allowed global gradient norm (0 disables clipping)
    eval_every: int = 100  # measure train and validation loss every this many steps
    eval_batches: int = 8  # fixed batches per loss measurement
    seed: int = 0  # seeds the batches drawn and the model's dropout

    def __post_init__(self):
        for name in ("steps", "batch_size", "block_size", "eval_every", "eval_batches"):
            positive_int(name, getattr(self, name))
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(
                f"need 0 <= warmup_steps < steps, got {self.warmup_steps} and {self.steps}"
            )
        if not 0 <= self.min_lr <= self.max_lr:
            raise ValueError(f"need 0 <= min_lr <= max_lr, got {self.min_lr} and {self.max_lr}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("grad_clip and weight_decay must be >= 0")


@dataclass
class History:
    """What a run measured: losses at each evaluation, and every step's learning rate."""

    eval_steps: list[int] = field(default_factory=list)  # steps at which losses were measured
    train_loss: list[float] = field(default_factory=list)  # on the fixed training batches
    val_loss: list[float] = field(default_factory=list)  # on the fixed validation batches
    lr: list[float] = field(default_factory=list)  # the rate used at each step
    grad_norm: list[float] = field(default_factory=list)  # global norm before clipping


def configure_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (linear and embedding weights) only.

    Biases and layer-norm gains are vectors that shift and scale activations; common
    practice exempts them from decay, which is meant to keep weight matrices small. GPT-1
    (Radford et al., 2018) applied its weight decay "on all non bias or gain weights";
    nanoGPT decays every parameter with 2 or more dimensions (embeddings included), as here;
    minGPT also exempts the embeddings. OpenAI never released GPT-2's training code.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.max_lr, betas=config.betas)


def _progress(steps: int, show: bool):
    """A progress bar on stderr that draws only its first and last state (stable output)."""
    if not show:
        return range(steps)
    from tqdm import tqdm

    return tqdm(range(steps), desc="training", file=sys.stderr, mininterval=1e9, ncols=80)


def train(
    model: nn.Module, train_ids, val_ids, config: TrainConfig = TrainConfig(), progress: bool = True
) -> History:
    """Train ``model`` (input ids (B, T) -> logits (B, T, V)) on random windows of ``train_ids``.

    Measures the loss on fixed batches of ``train_ids`` and ``val_ids`` before the first step,
    every ``config.eval_every`` steps, and after the last. Returns the :class:`History`; the
    model is left in eval mode.
    """
    # No copy of the corpus: get_batch reads the sampled windows (of a memory map, too) and
    # moves them to the model's device.
    train_data, val_data = _window_source(train_ids), _window_source(val_ids)
    device = next(model.parameters()).device
    block = config.block_size
    torch.manual_seed(config.seed)  # dropout, if the model has any
    generator = torch.Generator().manual_seed(config.seed)  # batches: drawn on the CPU
    train_eval = fixed_batches(
        train_data, config.eval_batches, config.batch_size, block, seed=1, device=device
    )
    val_eval = fixed_batches(
        val_data, config.eval_batches, config.batch_size, block, seed=2, device=device
    )
    optimizer = configure_optimizer(model, config)
    history = History()

    def evaluate(step: int) -> None:
        history.eval_steps.append(step)
        history.train_loss.append(estimate_loss(model, train_eval))
        history.val_loss.append(estimate_loss(model, val_eval))

    evaluate(0)
    model.train()
    norms = []  # each step's gradient norm, a tensor: read once, at the end (no sync a step)
    for step in _progress(config.steps, progress):
        lr = set_scheduled_lr(optimizer, step, config)
        x, y = get_batch(train_data, config.batch_size, block, generator, device)
        loss = next_token_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or float("inf"))
        optimizer.step()
        history.lr.append(lr)
        norms.append(norm)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            evaluate(step + 1)
    model.eval()
    history.grad_norm = torch.stack(norms).tolist()
    return history


@torch.no_grad()
def sequence_log_probs(model: nn.Module, ids, block_size: int, batch_size: int = 64) -> np.ndarray:
    """Natural-log probability the model gives each of ``ids[1:]``, in order.

    The ids are cut into consecutive, non-overlapping windows of ``block_size + 1`` ids that
    share their boundary id, so every id but the first is predicted exactly once, from the
    earlier ids of its own window (0 to block_size - 1 of them). Windows run ``batch_size``
    at a time; the last, shorter window is scored on its own.
    """
    data = _as_ids(ids)
    if len(data) < 2:
        raise ValueError(f"need at least 2 ids to predict one, got {len(data)}")
    positive_int("block_size", block_size)
    positive_int("batch_size", batch_size)
    model.eval()
    data = data.to(next(model.parameters()).device)
    n_full = (len(data) - 1) // block_size
    out = []
    full = data[: n_full * block_size + 1]
    inputs = full[:-1].view(n_full, block_size)  # (N, T)
    targets = full[1:].view(n_full, block_size)
    for i in range(0, n_full, batch_size):
        log_p = F.log_softmax(model(inputs[i : i + batch_size]).double(), dim=-1)  # (b, T, V)
        out.append(log_p.gather(-1, targets[i : i + batch_size, :, None])[..., 0].reshape(-1))
    rest = data[n_full * block_size :]
    if len(rest) > 1:
        log_p = F.log_softmax(model(rest[None, :-1]).double(), dim=-1)  # (1, t, V)
        out.append(log_p.gather(-1, rest[None, 1:, None])[..., 0].reshape(-1))
    return torch.cat(out).cpu().numpy()
