"""Chapter 1: a character-level recurrent language model (Elman, 1990; Mikolov et al., 2010).

A recurrent network reads one character at a time and carries everything it has read in a
hidden state vector:

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
    P(c_{t+1} | c_1 .. c_t) = softmax(h_t W_out^T + b_out)

The loop over t is the point: step t needs h_{t-1}, so the steps of one sequence cannot run in
parallel. ``ElmanRNN`` keeps PyTorch's parameter names (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``) so its weights copy one to one into ``torch.nn.RNN``.
Letters: B batch, T time steps, E embedding size, H hidden size, V vocabulary size.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from llmcourse.validation import tensor_of_shape

__all__ = ["ElmanRNN", "CharRNN", "train_char_rnn", "train_char_rnn_tbptt", "rnn_log_probs"]


class ElmanRNN(nn.Module):
    """One tanh recurrent layer, written as an explicit loop over time."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        bound = 1 / math.sqrt(hidden_size)  # PyTorch's initialisation for nn.RNN
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        """x: (B, T, E), h: (B, H) or None -> outputs (B, T, H), last hidden state (B, H)."""
        E = self.weight_ih.shape[1]
        tensor_of_shape("x", x, f"(batch, time, {E})", rank=3, last=E)
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        inputs = x @ self.weight_ih.T + self.bias_ih  # all time steps at once: (B, T, H)
        outputs = []
        for t in range(x.shape[1]):  # the sequential part
            h = torch.tanh(inputs[:, t] + h @ self.weight_hh.T + self.bias_hh)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


class CharRNN(nn.Module):
    """Embedding -> Elman RNN -> linear read-out over the vocabulary."""

    def __init__(self, vocab_size: int, embed_size: int = 32, hidden_size: int = 256):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = ElmanRNN(embed_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, h: torch.Tensor | None = None):
        """ids: (B, T) -> logits (B, T, V) for the next character, last hidden state (B, H)."""
        tensor_of_shape("ids", ids, "(batch, time)", rank=2)
        outputs, h = self.rnn(self.embed(ids), h)
        return self.head(outputs), h


def _batches(ids: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator):
    """Endless random windows: inputs (B, T) and their next characters (B, T)."""
    data = torch.from_numpy(ids)
    while True:
        starts = torch.from_numpy(rng.integers(0, len(ids) - seq_len - 1, size=batch_size))
        window = torch.stack([data[s : s + seq_len + 1] for s in starts.tolist()])
        yield window[:, :-1], window[:, 1:]


def train_char_rnn(
    model: CharRNN,
    ids,
    *,
    steps: int,
    batch_size: int = 32,
    seq_len: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    max_seconds: float | None = None,
    log_every: int = 100,
) -> list[tuple[int, float]]:
    """Train on random windows of ``ids`` with Adam and gradient clipping (Pascanu et al., 2013).

    Returns ``[(step, mean training loss over the last log_every steps), ...]``. Stops early,
    after a whole logging interval, once ``max_seconds`` have passed (a guard for slow machines).
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) <= seq_len + 1:
        raise ValueError(f"ids must be a 1-D sequence longer than seq_len + 1 = {seq_len + 1}")
    torch.manual_seed(seed)
    batches = _batches(ids, batch_size, seq_len, np.random.default_rng(seed))
    device = next(model.parameters()).device  # windows are drawn on the CPU, then moved
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, running, start = [], 0.0, time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        x, y = (t.to(device) for t in next(batches))
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running += loss.item()
        if step % log_every == 0:
            history.append((step, running / log_every))
            running = 0.0
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
    model.eval()
    return history


def train_char_rnn_tbptt(
    model: CharRNN,
    ids,
    *,
    steps: int,
    batch_size: int = 32,
    seq_len: int = 64,
    lr: float = 3e-3,
    clip: float = 1.0,
    log_every: int = 100,
) -> list[tuple[int, float]]:
    """Truncated backpropagation through time (Williams & Peng, 1990) with Adam and clipping.

    ``ids`` is cut into ``batch_size`` consecutive streams, read side by side ``seq_len``
    characters at a time. The hidden state is carried from one window to the next, so the
    model learns to use context longer than a window, but it is detached, so gradients flow
    back through at most ``seq_len`` steps. The gradient norm is clipped to ``clip``
    (Pascanu et al., 2013), and the learning rate falls linearly from ``lr`` to zero over the
    ``steps``. After the last full window of the streams the state restarts
    from zero at their beginning. Returns ``[(step, mean training loss over the last
    log_every steps), ...]``; deterministic (no random sampling).
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D sequence, got shape {ids.shape}")
    stream_len = (len(ids) - 1) // batch_size
    if stream_len < seq_len:
        raise ValueError(
            f"need at least batch_size * seq_len + 1 = {batch_size * seq_len + 1} "
            f"ids, got {len(ids)}"
        )
    if steps < 1 or log_every < 1 or clip <= 0:
        raise ValueError("steps and log_every must be >= 1 and clip > 0")
    data = torch.from_numpy(ids).to(next(model.parameters()).device)
    inputs = data[: batch_size * stream_len].view(batch_size, stream_len)
    targets = data[1 : batch_size * stream_len + 1].view(batch_size, stream_len)
    windows = stream_len // seq_len
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history, running, h = [], 0.0, None
    model.train()
    for step in range(1, steps + 1):
        w = (step - 1) % windows
        if w == 0:
            h = None  # back at the start of the streams: a fresh zero state
        for group in optimizer.param_groups:  # the learning rate falls linearly to zero
            group["lr"] = lr * (1 - (step - 1) / steps)
        x = inputs[:, w * seq_len : (w + 1) * seq_len]
        y = targets[:, w * seq_len : (w + 1) * seq_len]
        logits, h = model(x, h)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        h = h.detach()  # keep the state's value, cut its gradient path
        running += loss.item()
        if step % log_every == 0:
            history.append((step, running / log_every))
            running = 0.0
    model.eval()
    return history


@torch.no_grad()
def rnn_log_probs(model: CharRNN, ids, streams: int = 32) -> np.ndarray:
    """Natural-log probability of ids[1:], each given every earlier id of its stream.

    The text is cut into ``streams`` consecutive pieces read in parallel, each starting from a
    zero hidden state, so every character but the first is predicted exactly once.
    """
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=next(model.parameters()).device)
    n = len(ids) - 1
    if n < streams:
        raise ValueError(f"need more than {streams} ids, got {len(ids)}")
    length = math.ceil(n / streams)
    padded = torch.cat([ids, ids.new_zeros(length * streams + 1 - len(ids))])
    x = padded[:-1].view(streams, length)  # (B, T)
    y = padded[1:].view(streams, length)
    logits, _ = model(x)
    log_probs = F.log_softmax(logits, dim=-1).gather(-1, y[..., None])[..., 0]
    return log_probs.reshape(-1)[:n].double().cpu().numpy()  # NumPy needs the CPU
