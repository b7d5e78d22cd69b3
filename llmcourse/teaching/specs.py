"""What the grader asks of each exercise: hidden test cases, the reference, the comparison.

One ``Spec`` per exercise of every chapter, keyed by its label. ``cases(rng)`` draws the
hidden test cases from the grader's secret seed: shapes, sizes and dtypes the chapters never
print (float32 and float64 where the answer takes tensors). ``reference`` is the answer
computed in the grader's own process (in float64 where it matters); ``compare`` decides, on
plain data only, and says what is wrong. ``forbid`` names calls the prompt rules out (or that
would be the chapter's own function doing the work), ``chapter`` the chapter's functions an
answer must not call by name; ``driver`` names the harness in ``codec.make_driver`` that calls
an answer returning nothing (a training step) and sends back what it did to the model.
The tolerances accept float32 rounding (relative 1e-4 and an
absolute 1e-5 of the result's scale): a float32 answer and a float64 one both pass, and every
plausible slip (a missing scale, the wrong variance, eps outside the root, GELU's exact form)
is far larger.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable as Fn
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmcourse.exercises.ch11 import _budget_for_ratio as _ch11_budget_for_ratio
from llmcourse.exercises.ch11 import _samples_needed as _ch11_samples_needed
from llmcourse.exercises.ch12 import llama_param_count as _llama_param_count
from llmcourse.teaching.codec import Callable, Unsupported
from llmcourse.tokenization import bytes_to_unicode, merge_pair

F32, F64 = torch.float32, torch.float64


@dataclass
class Case:
    args: tuple
    kwargs: dict = field(default_factory=dict)

    def describe(self) -> str:
        parts = [_describe(a) for a in self.args]
        parts += [f"{k}={_describe(v)}" for k, v in self.kwargs.items()]
        return ", ".join(parts)


@dataclass
class Spec:
    label: str
    cases: Fn[[np.random.Generator], list[Case]]
    reference: Fn[..., Any]
    compare: Fn[[Any, Any], str | None]  # (got, want) -> None if right, else what is wrong
    forbid: set[str] = field(default_factory=set)  # calls by name or attribute: torch.softmax
    chapter: set[str] = field(default_factory=set)  # the chapter's functions, called by name
    no_index: int | None = None  # this argument must not be indexed (ch02 one-hot)
    driver: str | None = None  # codec.make_driver's harness that calls the answer, if any


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, str) and len(value) > 30:
        return repr(value[:27] + "...")
    if isinstance(value, (list, dict)) and len(str(value)) > 60:
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


# ---- comparing plain data ----------------------------------------------------------------


def _array(got) -> np.ndarray | None:
    """``got`` as a float64 array if it is numbers (array, tensor, list, number), else None."""
    if isinstance(got, Unsupported) or isinstance(got, (str, dict)) or got is None:
        return None
    try:
        array = np.asarray(got)
    except (TypeError, ValueError):
        return None
    if array.dtype == object or array.dtype.kind not in "biuf":
        return None
    return array


def _what(got) -> str:
    if isinstance(got, np.ndarray):
        return f"an array of shape {got.shape} ({got.dtype})"
    if isinstance(got, Unsupported):
        return f"{got}: return a plain tensor, array, number or list"
    return f"{type(got).__name__} {str(got)[:60]}"


def close(rtol: float = 1e-4, atol: float = 1e-5, kind: str = "") -> Fn:
    """Numbers close to the reference's, with its shape (and, with ``kind="b"``, booleans)."""

    def compare(got, want) -> str | None:
        want = np.asarray(want)
        array = _array(got)
        if array is None:
            return f"expected numbers of shape {want.shape}, got {_what(got)}"
        if array.shape != want.shape:
            return f"expected shape {want.shape}, got shape {array.shape}"
        if kind == "b" and array.dtype.kind != "b":
            return f"expected a boolean tensor (True where allowed), got dtype {array.dtype}"
        if kind == "i" and array.dtype.kind not in "iu":
            return f"expected integers (token ids), got dtype {array.dtype}"
        if want.dtype.kind in "biu" or kind in ("b", "i"):
            if not np.array_equal(array, want):
                wrong = int((array != want).sum())
                return f"{wrong} of {want.size} entries differ from the right answer"
            return None
        a, w = array.astype(np.float64), want.astype(np.float64)
        if not np.array_equal(np.isnan(a), np.isnan(w)):
            return (
                "NaN where the right answer has a number (or the reverse): did something "
                "overflow or divide by zero?"
            )
        scale = float(np.nanmax(np.abs(w))) if w.size and np.isfinite(w).any() else 1.0
        if not np.allclose(a, w, rtol=rtol, atol=atol * max(scale, 1e-12), equal_nan=True):
            error = np.nanmax(np.abs(a - w)) if a.size else 0.0
            return f"values differ from the right answer by up to {error:.3g}"
        return None

    return compare


def number(rtol: float = 1e-6, atol: float = 1e-12) -> Fn:
    """One number (a float, an int, a one-element tensor or array)."""

    def compare(got, want) -> str | None:
        array = _array(got)
        if array is None or array.size != 1:
            return f"expected one number, got {_what(got)}"
        value = float(array.reshape(()))
        if not math.isclose(value, float(want), rel_tol=rtol, abs_tol=atol):
            return f"expected {float(want):.6g}, got {value:.6g}"
        return None

    return compare


def integer(exact_type: bool = False) -> Fn:
    """An exact integer count (with ``exact_type``: a Python int, not a rounded float)."""

    def compare(got, want) -> str | None:
        if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
            return f"expected an integer, got {_what(got)}"
        if exact_type and not isinstance(got, (int, np.integer)):
            return (
                f"expected an exact int, got {type(got).__name__} {got!r}: use integer "
                "arithmetic (**, not math.pow)"
            )
        if isinstance(got, (float, np.floating)) and not float(got).is_integer():
            return f"expected an integer, got {float(got)!r}"
        if int(got) != want:
            return f"expected {want:,}, got {int(got):,}"
        return None

    return compare


def each(*parts: Fn) -> Fn:
    """A tuple (or list) of results, each compared by its own rule."""

    def compare(got, want) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != len(parts):
            return f"expected {len(parts)} results (a tuple), got {_what(got)}"
        for i, (part, g, w) in enumerate(zip(parts, got, want)):
            problem = part(g, w)
            if problem:
                return f"result {i + 1} of {len(parts)}: {problem}"
        return None

    return compare


def equal(normalise: Fn = lambda v: v) -> Fn:
    """Plain data equal to the reference's after ``normalise``."""

    def compare(got, want) -> str | None:
        try:
            mine = normalise(got)
        except Exception as error:  # wrong type or shape: say what came back
            return f"expected something like {str(want)[:80]}, got {_what(got)} ({error})"
        if mine != want:
            return f"expected {str(want)[:120]}, got {str(mine)[:120]}"
        return None

    return compare


def index_list(got) -> list[int]:
    array = _array(got)
    if array is None or array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError("expected a list of integer indices")
    return [int(i) for i in array]


# ---- drawing test cases ------------------------------------------------------------------


def _t(rng: np.random.Generator, *shape: int, dtype=F32, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape) * scale).to(dtype)


def _dims(rng, low: int, high: int, even: bool = False) -> int:
    n = int(rng.integers(low, high + 1))
    return n + (n % 2) if even else n


def _dtypes():
    return (F32, F64)


def _probs(rng, n: int, dtype=F32) -> torch.Tensor:
    """A probability vector with well separated values (no ties, no near-ties)."""
    while True:
        p = rng.dirichlet(np.ones(n))
        s = np.sort(p)
        if np.min(np.diff(s)) > 1e-3:
            return torch.from_numpy(p).to(dtype)


# ---- references (float64 where it matters) -------------------------------------------------


def _softmax(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def _rope(x: torch.Tensor, pos: int, base: float = 10000.0) -> torch.Tensor:
    D = x.shape[-1]
    inv_freq = 1.0 / base ** (torch.arange(0, D, 2, dtype=F64) / D)
    angle = (pos * inv_freq).repeat(2)
    x = x.double()
    return x * angle.cos() + torch.cat([-x[D // 2 :], x[: D // 2]]) * angle.sin()


def _pe(pos: int, d_model: int) -> np.ndarray:
    pe = np.zeros(d_model)
    for i in range(d_model // 2):
        angle = pos / 10000 ** (2 * i / d_model)
        pe[2 * i], pe[2 * i + 1] = math.sin(angle), math.cos(angle)
    return pe


def _add_k(text, prev, nxt, k):
    pairs = sum(1 for a, b in zip(text, text[1:]) if (a, b) == (prev, nxt))
    starts = sum(1 for a in text[:-1] if a == prev)
    return (pairs + k) / (starts + k * len(set(text)))


def _pairs(word_counts):
    counts: dict = {}
    for word, n in word_counts.items():
        for pair in zip(word, word[1:]):
            counts[pair] = counts.get(pair, 0) + n
    return counts


def _block_params(C: int) -> int:
    return 12 * C * C + 13 * C


def _lr(step, max_lr, warmup_steps, total_steps, min_lr):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def _top_k(probs, k):
    p = probs.double()
    kept = torch.zeros_like(p)
    values, index = p.topk(k)
    kept[index] = values
    return kept / kept.sum()


def _top_p(probs, p):
    q = probs.double()
    sorted_probs, order = q.sort(descending=True)
    before = sorted_probs.cumsum(0) - sorted_probs
    keep = torch.zeros_like(q, dtype=torch.bool)
    keep[order] = before < p
    kept = q * keep
    return kept / kept.sum()


def _top_p_cases(rng):
    cases = []
    while len(cases) < 4:
        probs = _probs(rng, _dims(rng, 5, 12), dtype=_dtypes()[len(cases) % 2])
        p = float(rng.uniform(0.1, 0.95))
        cum = np.cumsum(np.sort(probs.double().numpy())[::-1])
        if np.min(np.abs(cum - p)) > 1e-3:  # no case on a boundary
            cases.append(Case((probs, p)))
    return cases


def _sentence(rng, n: int, alphabet: str = "abcde") -> str:
    return "".join(rng.choice(list(alphabet), size=n))


def _word_counts(rng):
    words = {}
    while len(words) < _dims(rng, 3, 6):
        word = tuple(rng.choice(list("abcdelowrnst"), size=_dims(rng, 1, 6)))
        words[tuple(str(s) for s in word)] = int(rng.integers(1, 9))
    return words


def _symbols(rng):
    pieces = ["a", "b", "ab", "c", "th", "e", "Ġ"]
    symbols = [str(s) for s in rng.choice(pieces, size=_dims(rng, 4, 12))]
    i = int(rng.integers(0, len(symbols) - 1))
    return symbols, (symbols[i], symbols[i + 1])


def _split_special(text, specials):
    longest_first = sorted(specials, key=len, reverse=True)
    pattern = "|".join(re.escape(s) for s in longest_first)
    pieces, start = [], 0
    for match in re.finditer(pattern, text):
        if match.start() > start:
            pieces.append((text[start : match.start()], False))
        pieces.append((match.group(), True))
        start = match.end()
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


def _special_case(rng) -> Case:
    """Special tokens that share a start (the longer must win) listed in a random order."""
    a, b = "<|" + _sentence(rng, 2, "xyz") + "|>", "[" + _sentence(rng, 3, "XYZ") + "]"
    specials = [a, a + a, b]
    rng.shuffle(specials)
    parts = [
        str(rng.choice([_sentence(rng, _dims(rng, 1, 5), "ab <|>"), a, b, a + a]))
        for _ in range(_dims(rng, 3, 8))
    ]
    return Case(("".join(parts), specials))


def _wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def _wordpiece_case(rng) -> Case:
    letters = "abcd"
    vocab = {_sentence(rng, _dims(rng, 1, 3), letters) for _ in range(8)}
    vocab |= {"##" + _sentence(rng, _dims(rng, 1, 3), letters) for _ in range(10)}
    starts, rests = sorted(v for v in vocab if v[0] != "#"), sorted(v for v in vocab if v[0] == "#")
    word = str(rng.choice(starts)) + "".join(
        str(rng.choice(rests))[2:] for _ in range(_dims(rng, 0, 3))
    )
    if rng.random() < 0.3:  # sometimes a letter no piece continues
        word += "e"
    return Case((word, vocab))


def _pad_mask(rng, B: int, T: int) -> torch.Tensor:
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T  # one full row
    return torch.tensor([[1] * n + [0] * (T - n) for n in lengths], dtype=torch.long)


def _layer_norm(x, w, b, eps):
    """Over the last ``w.dim()`` dimensions together, as ``nn.LayerNorm(w.shape)``."""
    x, dims = x.double(), tuple(range(-w.dim(), 0))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, correction=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w.double() + b.double()


def _gelu_tanh(x):
    x = x.double()
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _pre_norm_layer(x, *functions: Callable):
    attn, ffn, norm1, norm2 = (f.build() if isinstance(f, Callable) else f for f in functions)
    h = x.double() + attn(norm1(x.double()))
    return h + ffn(norm2(h))


def _pre_norm_layer_cases(rng):
    """Two sublayers and two norms, all different: a swapped pair, a parallel block or a
    post-norm order cannot pass."""
    cases = []
    for dtype in _dtypes():
        B, C = _dims(rng, 2, 4), _dims(rng, 3, 7)
        attn, ffn = (
            Callable("tanh_linear", _t(rng, C, C, dtype=dtype), _t(rng, C, dtype=dtype))
            for _ in range(2)
        )
        norm1, norm2 = (
            Callable("center_scale", _t(rng, C, dtype=dtype), _t(rng, C, dtype=dtype))
            for _ in range(2)
        )
        cases.append(Case((_t(rng, B, C, dtype=dtype, scale=2.0), attn, ffn, norm1, norm2)))
    return cases


# ex-ch06-layer-norm-effect: what layer norm gives for each change to a unit-variance vector
_LAYER_NORM_EFFECT = {
    "add 3": "same",
    "times 10": "same",
    "times -1": "negated",
    "times 0.001": "smaller",
    "add 1 to one feature": "changed",
}


def _effect_word(got) -> str:
    if not isinstance(got, str):
        raise TypeError("expected one of the words 'same', 'negated', 'smaller', 'changed'")
    return got.strip().lower()


def _mean_pool(hidden, mask):
    m = mask.double().unsqueeze(-1)
    return (hidden.double() * m).sum(1) / m.sum(1)


def _attention_mask(pad, causal):
    T = pad.shape[1]
    allowed = pad.bool()[:, None, :].expand(-1, T, -1)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()
    return allowed


def _unigram(train_ids, eval_ids, vocab_size):
    counts = np.bincount(np.asarray(train_ids), minlength=vocab_size)
    with np.errstate(divide="ignore"):
        log_p = np.log(counts / len(train_ids))
    return float(-log_p[np.asarray(eval_ids)].mean())


def _unigram_cases(rng):
    cases = []
    for as_array in (False, True, False):
        V = _dims(rng, 3, 9)
        train = rng.integers(0, V, size=_dims(rng, 20, 60))
        evaluation = rng.choice(np.unique(train), size=_dims(rng, 5, 15))  # only seen tokens
        make = (lambda a: a.astype(np.int64)) if as_array else (lambda a: [int(i) for i in a])
        cases.append(Case((make(train), make(evaluation), V)))
    return cases


def _cross_entropy(probs, targets):
    return float(-torch.log(probs.double()[torch.arange(len(targets)), targets]).mean())


def _ce_cases(rng):
    cases = []
    for dtype in _dtypes():
        N, V = _dims(rng, 3, 8), _dims(rng, 4, 11)
        probs = torch.from_numpy(rng.dirichlet(np.ones(V), size=N)).to(dtype)
        cases.append(Case((probs, torch.from_numpy(rng.integers(0, V, size=N)))))
    return cases


def _rms_norm(x, w, eps):
    x = x.double()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.double()


def _swiglu(x, g, u, d):
    x, g, u, d = (t.double() for t in (x, g, u, d))
    return (torch.nn.functional.silu(x @ g.T) * (x @ u.T)) @ d.T


def _new_tokens(prompt_len, max_length=None, max_new_tokens=None):
    if max_new_tokens is not None:
        return max_new_tokens
    if prompt_len >= max_length:  # generate refuses, and so must the answer
        raise ValueError(f"a prompt of {prompt_len} tokens leaves no room")
    return max_length - prompt_len


def _tensor_cases(rng, make: Fn, n: int = 2) -> list[Case]:
    """``n`` cases per dtype (float32 and float64) from ``make(rng, dtype) -> Case``."""
    return [make(rng, dtype) for dtype in _dtypes() for _ in range(n)]


def _rnn_case(rng, dt) -> Case:
    B, D, H = _dims(rng, 1, 4), _dims(rng, 2, 6), _dims(rng, 3, 7)
    return Case(
        (
            _t(rng, B, D, dtype=dt),
            _t(rng, B, H, dtype=dt),
            _t(rng, H, D, dtype=dt, scale=0.5),
            _t(rng, H, H, dtype=dt, scale=0.5),
            _t(rng, H, dtype=dt),
        )
    )


def _cosine_case(rng, dt) -> Case:
    D = _dims(rng, 2, 9)
    return Case((_t(rng, D, dtype=dt), _t(rng, D, dtype=dt, scale=3.0)))


def _attention_case(rng, dt) -> Case:
    """The queries of the last L of S tokens, 2 <= L < S (so that the mask's alignment
    matters), and any d_k: a hard-coded scale or a top-left mask cannot pass."""
    Tk = _dims(rng, 3, 8)
    Tq, dk, dv = _dims(rng, 2, Tk - 1), _dims(rng, 2, 12), _dims(rng, 1, 5)
    return Case((_t(rng, Tq, dk, dtype=dt), _t(rng, Tk, dk, dtype=dt), _t(rng, Tk, dv, dtype=dt)))


def _newest_attention(Q, K, V):
    """Causal attention for queries that are the last L of S tokens: query i sees keys
    0..S - L + i."""
    L, S = Q.shape[-2], K.shape[-2]
    allowed = torch.ones(L, S, dtype=torch.bool).tril(diagonal=S - L)
    scores = Q.double() @ K.double().T / math.sqrt(K.shape[-1])
    return _softmax(scores.masked_fill(~allowed, float("-inf"))) @ V.double()


def _split_case(rng, dt, lead: int = 1) -> Case:
    """(..., T, h * d) with ``lead`` leading dimensions: none, a batch, a batch of beams."""
    shape = [_dims(rng, 1, 3) for _ in range(lead)]
    T, h, d = _dims(rng, 2, 6), _dims(rng, 2, 4), _dims(rng, 2, 5)
    return Case((_t(rng, *shape, T, h * d, dtype=dt), h))


def _layer_norm_case(rng, dt) -> Case:
    """Small and large spreads, small and large eps: eps outside the root shows. A normalized
    shape of one or two dimensions (float32 one, float64 two, so both are always drawn): the
    chapter's last-dimension-only version fails the second."""
    B, T, C = _dims(rng, 1, 4), _dims(rng, 2, 5), _dims(rng, 3, 9)
    spread = float(rng.choice([0.1, 1.0, 20.0]))
    shape = (C,) if dt == F32 else (T, C)
    return Case(
        (
            _t(rng, B, T, C, dtype=dt, scale=spread) + 3,
            _t(rng, *shape, dtype=dt),
            _t(rng, *shape, dtype=dt),
            float(rng.choice([1e-5, 0.05, 0.3])),
        )
    )


def _mean_pool_case(rng, dt) -> Case:
    B, T, C = _dims(rng, 1, 4), _dims(rng, 2, 7), _dims(rng, 2, 6)
    return Case((_t(rng, B, T, C, dtype=dt), _pad_mask(rng, B, T)))


def _search_case(rng, dt) -> Case:
    """Rows of different lengths: a dot product without the norms ranks them wrongly."""
    N, D = _dims(rng, 3, 12), _dims(rng, 2, 8)
    lengths = torch.from_numpy(rng.uniform(0.2, 5, size=(N, 1))).to(dt)
    return Case(
        (_t(rng, D, dtype=dt), _t(rng, N, D, dtype=dt) * lengths, int(rng.integers(1, N + 1)))
    )


def _rms_norm_case(rng, dt) -> Case:
    B, C = _dims(rng, 1, 4), _dims(rng, 2, 9)
    return Case(
        (
            _t(rng, B, C, dtype=dt, scale=float(rng.choice([0.05, 1.0, 30.0]))),
            _t(rng, C, dtype=dt),
            float(rng.choice([1e-6, 1e-5, 0.1])),
        )
    )


def _swiglu_case(rng, dt) -> Case:
    B, C, H = _dims(rng, 1, 4), _dims(rng, 2, 8), _dims(rng, 3, 12)
    return Case(
        (
            _t(rng, B, C, dtype=dt),
            _t(rng, H, C, dtype=dt),
            _t(rng, H, C, dtype=dt),
            _t(rng, C, H, dtype=dt),
        )
    )


SPECS: dict[str, Spec] = {}


def _add(spec: Spec) -> None:
    SPECS[spec.label] = spec


# ---- chapter 1 -----------------------------------------------------------------------------
def _documents(rng) -> list:
    """Two to four documents of different lengths, as lists or arrays."""
    docs = [np.log(rng.uniform(0.01, 1, size=n)) for n in rng.permutation(np.arange(1, 12))[:4]]
    docs = docs[: _dims(rng, 2, 4)]
    return [list(d) if i % 2 else d for i, d in enumerate(docs)]


_add(
    Spec(
        "ex-ch01-perplexity",
        lambda rng: (
            [Case((_documents(rng),)) for _ in range(2)]
            + [Case(([[math.log(0.01)], [math.log(0.5)] * int(rng.integers(20, 99))],))]
        ),
        lambda docs: float(
            np.exp(-np.concatenate([np.asarray(d, dtype=float) for d in docs]).mean())
        ),
        number(rtol=1e-6),
        chapter={"ngram_perplexity", "perplexity"},
    )
)
_add(
    Spec(
        "ex-ch01-add-k",
        lambda rng: [
            Case(
                (
                    text,
                    str(text[int(rng.integers(0, len(text) - 1))]),
                    str(rng.choice(sorted(set(text)))),
                    float(rng.choice([0.1, 0.5, 1, 2])),
                )
            )
            for text in (_sentence(rng, _dims(rng, 8, 30)) for _ in range(4))
        ],
        _add_k,
        number(rtol=1e-9),
        chapter={"add_k_bigram_distribution"},
    )
)
_add(
    Spec(
        "ex-ch01-table-size",
        lambda rng: [
            Case((int(rng.integers(2, 40)), int(rng.integers(1, 4)))),
            Case((int(rng.integers(20_000, 120_000)), int(rng.integers(4, 7)))),
            Case((int(rng.integers(2, 9)), 1)),
        ],
        lambda v, n: v**n,
        integer(exact_type=True),
    )
)
_add(
    Spec(
        "ex-ch01-rnn-step",
        lambda rng: _tensor_cases(rng, _rnn_case),
        lambda x, h, Wi, Wh, b: torch.tanh(
            x.double() @ Wi.double().T + h.double() @ Wh.double().T + b.double()
        ),
        close(),
        forbid={"RNN", "RNNCell", "rnn_tanh_cell"},
        chapter={"ElmanRNN"},
    )
)


def _count_gradient_case(rng, dt) -> Case:
    V = _dims(rng, 3, 8)
    counts = rng.integers(0, 6, size=(V, V)).astype(float)
    counts[int(rng.integers(0, V))] = 0  # a character that starts no pair
    counts[0, 0] += 1  # at least one pair
    return Case((_t(rng, V, V, dtype=dt), torch.from_numpy(counts).to(dt)))


def _count_gradient(W, counts):
    """d mean NLL / d W for a bigram logit table: (row count * softmax - counts) / pairs."""
    c = counts.double()
    return (c.sum(dim=1, keepdim=True) * torch.softmax(W.double(), dim=-1) - c) / c.sum()


_add(
    Spec(
        "ex-ch01-count-gradient",
        lambda rng: _tensor_cases(rng, _count_gradient_case),
        _count_gradient,
        close(),
        forbid={"backward", "grad"},
        chapter={"count_loss"},
    )
)


def _kneser_ney_case(rng, dt) -> Case:
    V = _dims(rng, 3, 8)
    counts = rng.integers(0, 5, size=(V, V)) * (rng.random((V, V)) < 0.6)
    counts[int(rng.integers(0, V))] = 0  # a character that starts no pair
    counts[0, int(rng.integers(0, V))] += 7  # a frequent pair
    return Case(
        (torch.from_numpy(counts.astype(float)).to(dt), float(rng.choice([0.5, 0.75, 0.9])))
    )


def _kneser_ney(counts, d):
    c = counts.double().numpy()
    seen = c > 0
    p_cont = seen.sum(axis=0) / seen.sum()
    row = c.sum(axis=1, keepdims=True)
    safe = np.where(row > 0, row, 1.0)
    lam = d * seen.sum(axis=1, keepdims=True) / safe
    return np.where(row > 0, np.maximum(c - d, 0) / safe + lam * p_cont, p_cont)


_add(
    Spec(
        "ex-ch01-kneser-ney",
        lambda rng: _tensor_cases(rng, _kneser_ney_case),
        _kneser_ney,
        close(),
    )
)


# ---- chapter 2 -----------------------------------------------------------------------------
def _next_merge_case(rng) -> Case:
    words = _word_counts(rng)
    words[("l", "o", "w")] = int(rng.integers(1, 9))  # at least one pair
    symbols = sorted({c for w in words for c in w})
    rank = {c: int(i) for c, i in zip(symbols, rng.permutation(len(symbols)))}
    return Case((words, rank))


def _next_merge(word_counts, rank):
    counts = _pairs(word_counts)
    top = max(counts.values())
    return min((p for p, c in counts.items() if c == top), key=lambda p: (rank[p[0]], rank[p[1]]))


_add(
    Spec(
        "ex-ch02-count-pairs",
        lambda rng: [_next_merge_case(rng) for _ in range(5)],
        _next_merge,
        equal(lambda got: tuple(str(s) for s in got)),
        chapter={"train_bpe"},
    )
)
_add(
    Spec(
        "ex-ch02-merge-pair",
        lambda rng: (
            [Case(_symbols(rng)) for _ in range(3)]
            + [Case((["a", "a", "a", "a", "a"], ("a", "a")))]
        ),
        lambda symbols, pair: merge_pair(symbols, tuple(pair)),  # pairs arrive as lists
        equal(list),
        chapter={"merge_word", "train_bpe", "encode_word"},
    )
)
_add(
    Spec(
        "ex-ch02-special-tokens",
        lambda rng: [_special_case(rng) for _ in range(4)],
        _split_special,
        equal(lambda got: [(str(piece), bool(special)) for piece, special in got]),
    )
)
_add(
    Spec(
        "ex-ch02-wordpiece",
        lambda rng: [_wordpiece_case(rng) for _ in range(6)],
        _wordpiece,
        equal(list),
        forbid={"tokenize"},
    )
)


def _embedding_grad_case(rng, dt) -> Case:
    V, D = _dims(rng, 5, 12), _dims(rng, 2, 6)
    shape = tuple(int(n) for n in rng.integers(2, 5, size=_dims(rng, 1, 2)))
    ids = rng.integers(0, V - 2, size=shape)  # the last two rows never used
    ids.flat[0] = ids.flat[-1]  # an id used at least twice
    return Case((torch.from_numpy(ids), _t(rng, *shape, D, dtype=dt), V))


def _embedding_grad(ids, grad_output, V):
    g = grad_output.double()
    return torch.zeros(V, g.shape[-1], dtype=torch.float64).index_add_(
        0, ids.reshape(-1), g.reshape(-1, g.shape[-1])
    )


_add(
    Spec(
        "ex-ch02-one-hot",
        lambda rng: _tensor_cases(rng, _embedding_grad_case),
        _embedding_grad,
        close(),
        forbid={"backward", "autograd"},  # the solution may compare with .grad
        chapter={"rows_moved"},
    )
)
_add(
    Spec(
        "ex-ch02-cosine",
        lambda rng: _tensor_cases(rng, _cosine_case),
        lambda a, b: float(a.double() @ b.double() / (a.double().norm() * b.double().norm())),
        number(rtol=1e-4, atol=1e-6),
        chapter={"cosine_matrix", "cosine_similarity_matrix"},
    )
)


def _decode_case(rng) -> Case:
    pieces = ["to", " be", ",", " é", "ï", "東京", "🙂", "\n", "\t", " «x»", "ß", "a"]
    text = "".join(rng.choice(pieces, size=_dims(rng, 3, 8)))
    table = bytes_to_unicode()
    symbols = [table[b] for b in text.encode("utf-8")]
    cuts = sorted({0, len(symbols), *(int(c) for c in rng.integers(1, len(symbols), size=4))})
    return Case(([("".join(symbols[i:j])) for i, j in zip(cuts, cuts[1:])],))


def _decode_tokens(tokens):
    back = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(back[c] for token in tokens for c in token).decode("utf-8")


_add(
    Spec(
        "ex-ch02-decode",
        lambda rng: [_decode_case(rng) for _ in range(4)] + [Case(([],))],
        _decode_tokens,
        equal(str),
    )
)


def _merges_case(rng) -> Case:
    word = "".join(rng.choice(["a", "b", "ab", "c", "é", " "], size=_dims(rng, 3, 7)))
    table = bytes_to_unicode()
    symbols, merges = [table[b] for b in word.encode("utf-8")], []
    for _ in range(_dims(rng, 2, 6)):  # merges learned from the word itself, in some order
        if len(symbols) < 2:
            break
        i = int(rng.integers(0, len(symbols) - 1))
        merges.append((symbols[i], symbols[i + 1]))
        symbols = merge_pair(symbols, merges[-1])
    merges.insert(int(rng.integers(0, len(merges) + 1)), ("x", "y"))  # one that never applies
    sizes = sorted({0, len(merges), *(int(m) for m in rng.integers(0, len(merges), size=2))})
    return Case((word, merges, sizes))


def _tokens_per_merges(word, merges, sizes):
    table = bytes_to_unicode()
    out = []
    for m in sizes:
        symbols = [table[b] for b in word.encode("utf-8")]
        for pair in merges[:m]:
            symbols = merge_pair(symbols, tuple(pair))
        out.append(len(symbols))
    return out


_add(
    Spec(
        "ex-ch02-unseen-word",
        lambda rng: [_merges_case(rng) for _ in range(5)],
        _tokens_per_merges,
        equal(lambda got: [int(n) for n in got]),
    )
)

# ---- chapter 5 -----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch05-pe-vector",
        lambda rng: [
            Case((int(rng.integers(0, 500)), _dims(rng, 2, 40, even=True))) for _ in range(3)
        ],
        _pe,
        close(atol=1e-5),
        chapter={"sinusoidal", "sinusoidal_loop", "sinusoidal_encoding"},
    )
)
_add(
    Spec(
        "ex-ch05-wavelength",
        lambda rng: [
            Case((i, d))
            for d in (_dims(rng, 8, 1024, even=True) for _ in range(3))
            for i in (int(rng.integers(0, d // 2)),)
        ],
        lambda i, d: 2 * math.pi * 10000 ** (2 * i / d),
        number(rtol=1e-6),
    )
)
_add(
    Spec(
        "ex-ch05-rope-complex",
        lambda rng: _tensor_cases(
            rng,
            lambda rng, dt: Case(
                (_t(rng, _dims(rng, 2, 24, even=True), dtype=dt), int(rng.integers(0, 300)))
            ),
        ),
        _rope,
        close(atol=1e-5),
        # the prompt asks for the complex multiplication: no cos, sin or rotate_half
        forbid={"cos", "sin", "rotate_half", "apply_rotary", "rotary_cos_sin"},
        chapter={"rope", "rope_score", "rotation"},
    )
)


def _rope_score_curve(q, k, max_distance, start=100):
    """Entry d: RoPE(q, start + d) . RoPE(k, start), in float64."""
    key = _rope(k, start)
    return np.array([float(_rope(q, start + d) @ key) for d in range(max_distance + 1)])


def _rope_distance_case(rng, dt) -> Case:
    D = _dims(rng, 2, 24, even=True)
    q, k = _t(rng, D, dtype=dt), _t(rng, D, dtype=dt)
    return Case((q, k, int(rng.integers(3, 60))), {"start": int(rng.integers(0, 300))})


_add(
    Spec(
        "ex-ch05-rope-distance",
        lambda rng: _tensor_cases(rng, _rope_distance_case),
        _rope_score_curve,
        close(atol=1e-4),
        chapter={"rope_score"},
    )
)


def _positions_shuffle_gap(X, W_query, W_key, W_value, perm):
    """Unmasked self-attention of X[perm] + PE against that of X + PE shuffled, in float64."""
    T, d_model = X.shape
    pe = torch.from_numpy(np.stack([_pe(t, d_model) for t in range(T)]))

    def run(X):
        Z = X.double() + pe
        Q, K, V = (Z @ W.double() for W in (W_query, W_key, W_value))
        return _softmax(Q @ K.T / math.sqrt(Q.shape[-1])) @ V

    return float((run(X[perm]) - run(X)[perm]).abs().max())


def _positions_shuffle_cases(rng):
    """Two cases per dtype; permutations that are not their own inverse, gaps far from 0."""
    cases = []
    for dt in _dtypes():
        for _ in range(2):
            while True:
                T, d_model, d_k = _dims(rng, 3, 7), _dims(rng, 2, 8, even=True), _dims(rng, 2, 6)
                perm = rng.permutation(T)
                X = _t(rng, T, d_model, dtype=dt)
                Ws = [_t(rng, d_model, d_k, dtype=dt, scale=0.7) for _ in range(3)]
                case = Case((X, *Ws, torch.from_numpy(perm)))
                involution = (perm[perm] == np.arange(T)).all()
                if not involution and _positions_shuffle_gap(*case.args) > 0.05:
                    cases.append(case)
                    break
    return cases


_add(
    Spec(
        "ex-ch05-shuffle",
        _positions_shuffle_cases,
        _positions_shuffle_gap,
        number(rtol=1e-3, atol=1e-4),
    )
)

# ---- chapter 3 -----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch03-softmax",
        # A shift of 1000 overflows exp() in float32 and float64 alike, so an answer that does
        # not subtract the maximum fails on every seed, not only when the random draw is large.
        lambda rng: [
            Case((_t(rng, *rng.integers(1, 6, size=_dims(rng, 1, 3)), dtype=dt, scale=s) + shift,))
            for dt in _dtypes()
            for s, shift in ((3.0, 0.0), (400.0, 0.0), (3.0, 1000.0))
        ],
        _softmax,
        close(),
        forbid={"softmax", "log_softmax", "Softmax", "softmax_np"},
        chapter={"softmax_np"},
    )
)
_add(
    Spec(
        "ex-ch03-attention",
        lambda rng: _tensor_cases(rng, _attention_case, n=3),
        _newest_attention,
        close(),
        forbid={"scaled_dot_product_attention", "MultiheadAttention", "attn"},
        chapter={"attention", "attention_np"},  # causal_attention_weights: a demo in the solution
    )
)
_add(
    Spec(
        "ex-ch03-causal",
        lambda rng: [Case((int(t),)) for t in rng.choice(np.arange(1, 12), size=3, replace=False)],
        lambda T: torch.ones(T, T, dtype=torch.bool).tril(),
        close(kind="b"),
        chapter={"causal_attention_weights"},
    )
)


def _ch03_scores(Q, K, allowed=None):
    """Q K^T / sqrt(d_k) in float64, -inf where ``allowed`` (True = may attend) is False."""
    scores = Q.double() @ K.double().transpose(-2, -1) / math.sqrt(Q.shape[-1])
    return scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))


def _shuffle_gap(X, W_query, W_key, W_value, perm, causal):
    def run(X):
        T = X.shape[0]
        allowed = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
        Q, K, V = (X.double() @ W.double() for W in (W_query, W_key, W_value))
        return _softmax(_ch03_scores(Q, K, allowed)) @ V

    return float((run(X[perm]) - run(X)[perm]).abs().max())


def _shuffle_gap_cases(rng):
    """Without the mask and (three times, so that a signed maximum rarely passes by luck) with
    it, in float32 and float64; permutations that are not their own inverse, and data whose
    causal gap is far from zero."""
    cases = []
    for dt in _dtypes():
        for causal in (False, True, True, True):
            while True:
                T, d_model, d_k = _dims(rng, 3, 7), _dims(rng, 2, 8), _dims(rng, 2, 6)
                perm = rng.permutation(T)
                X = _t(rng, T, d_model, dtype=dt)
                Ws = [_t(rng, d_model, d_k, dtype=dt, scale=0.7) for _ in range(3)]
                case = Case((X, *Ws, torch.from_numpy(perm), causal))
                involution = (perm[perm] == np.arange(T)).all()
                if not involution and (not causal or _shuffle_gap(*case.args) > 0.05):
                    cases.append(case)
                    break
    return cases


def _gap(got, want) -> str | None:
    """A reference gap of zero (up to float64 rounding) accepts float32 rounding; any other
    must be matched to 1e-3."""
    array = _array(got)
    if array is None or array.size != 1:
        return f"expected one number, got {_what(got)}"
    value = float(array.reshape(()))
    if want < 1e-9:
        if not abs(value) <= 1e-4:
            return f"expected 0 (up to rounding), got {value:.6g}"
    elif not math.isclose(value, want, rel_tol=1e-3, abs_tol=1e-4):
        return f"expected {want:.6g}, got {value:.6g}"
    return None


def _padded_attention(Q, K, V, lengths):
    """Real queries over real keys; the padding queries' rows are NaN: not compared."""
    real = torch.arange(K.shape[-2])[None, :] < lengths[:, None]  # (B, T)
    out = _softmax(_ch03_scores(Q, K, real[:, None, :])) @ V.double()
    return out.masked_fill(~real[:, :, None], float("nan"))


def _padded_attention_case(rng, dt) -> Case:
    """At least two sequences, one without padding and one with: an answer that ignores the
    lengths cannot pass by luck."""
    B, T, d_k, d_v = _dims(rng, 2, 4), _dims(rng, 2, 7), _dims(rng, 2, 9), _dims(rng, 1, 5)
    lengths = rng.integers(1, T + 1, size=B)
    full, padded = rng.choice(B, size=2, replace=False)
    lengths[full], lengths[padded] = T, rng.integers(1, T)
    qkv = (_t(rng, B, T, d, dtype=dt) for d in (d_k, d_k, d_v))
    return Case((*qkv, torch.from_numpy(lengths)))


def _close_where_defined(got, want) -> str | None:
    """``close()`` on the entries where the reference is defined (not NaN): the rows of
    padding queries may hold anything."""
    want = np.asarray(want)
    array = _array(got)
    if array is not None and array.shape == want.shape:
        array = np.where(np.isnan(want), np.nan, array.astype(np.float64))
    return close()(got if array is None else array, want)


_add(
    Spec(
        "ex-ch03-shuffle",
        _shuffle_gap_cases,
        _shuffle_gap,
        _gap,
    )
)
_add(
    Spec(
        "ex-ch03-padding",
        lambda rng: _tensor_cases(rng, _padded_attention_case),
        _padded_attention,
        _close_where_defined,
    )
)

# ---- chapter 4 -----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch04-split",
        # (B, T, C) and, since the chapter's split_heads takes only that, (T, C) and
        # (B, beams, T, C)
        lambda rng: [_split_case(rng, dt, lead) for dt in _dtypes() for lead in (1, 0, 2)],
        lambda x, h: x.view(*x.shape[:-1], h, x.shape[-1] // h).transpose(-3, -2),
        close(rtol=0, atol=0),
        chapter={"split_heads", "multi_head_attention"},
    )
)
_add(
    Spec(
        "ex-ch04-params",
        lambda rng: [
            Case((h * int(rng.integers(2, 80)), h), {"bias": bool(b)})
            for h, b in (
                (int(rng.integers(1, 17)), True),
                (int(rng.integers(1, 17)), False),
                (int(rng.integers(1, 17)), True),
            )
        ],
        lambda C, h, bias=True: 4 * C * C + (4 * C if bias else 0),
        integer(),
        chapter={"mha_params"},
    )
)
_add(
    Spec(
        "ex-ch04-flops",
        lambda rng: [
            Case((int(rng.integers(1, 600)), h * int(rng.integers(2, 100)), h))
            for h in (int(rng.integers(1, 17)) for _ in range(3))
        ],
        lambda T, C, h: 8 * T * C * C + 4 * T * T * C,
        integer(),
        chapter={"mha_flops"},
    )
)


def _single_heads_case(rng, dt) -> Case:
    """An input and a fused layer's state_dict (q_proj, k_proj, v_proj, out_proj), h >= 2."""
    B, T, h, d = _dims(rng, 1, 3), _dims(rng, 2, 6), _dims(rng, 2, 4), _dims(rng, 2, 5)
    C = h * d
    state = {}
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        state[f"{name}.weight"] = _t(rng, C, C, dtype=dt, scale=C**-0.5)
        state[f"{name}.bias"] = _t(rng, C, dtype=dt, scale=0.5)
    return Case((_t(rng, B, T, C, dtype=dt), state, h))


def _fused_attention(x, state, h):
    """Self-attention of the fused layer in float64: project, split, attend, merge, project."""
    from llmcourse.multihead import merge_heads, split_heads

    s = {k: v.double() for k, v in state.items()}

    def proj(name, t):
        return t @ s[f"{name}.weight"].T + s[f"{name}.bias"]

    q, k, v = (split_heads(proj(f"{n}_proj", x.double()), h) for n in "qkv")
    weights = _softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
    return proj("out_proj", merge_heads(weights @ v))


_add(
    Spec(
        "ex-ch04-single-heads",
        lambda rng: _tensor_cases(rng, _single_heads_case),
        _fused_attention,
        close(),
        forbid={"MultiHeadAttention", "MultiheadAttention", "multi_head_attention_forward"},
        chapter={"multi_head_attention", "split_heads", "merge_heads"},
    )
)


def _best_blend(values) -> float:
    """Distinct blends (v_a + v_b) / 2, to 1e-6 in every entry, over all vocab^2 pairs."""
    vocab = values.shape[0]
    flat = ((values[:, None] + values[None, :]).double() / 2).reshape(vocab * vocab, -1)
    same = (flat[:, None] - flat[None, :]).abs().amax(-1) <= 1e-6
    return (~same.tril(-1).any(-1)).sum().item() / (vocab * vocab)


def _blend_case(rng, dt) -> Case:
    """A random table, and (so that the general-position formula fails) one with a repeated
    value vector."""
    vocab, C = _dims(rng, 3, 20), _dims(rng, 2, 8)
    values = _t(rng, vocab, C, dtype=dt)
    if rng.random() < 0.5 or dt == F64:
        a, b = rng.choice(vocab, size=2, replace=False)
        values[b] = values[a]
    return Case((values,))


_add(
    Spec(
        "ex-ch04-blend",
        lambda rng: _tensor_cases(rng, _blend_case),
        _best_blend,
        number(rtol=1e-6),
    )
)

# ---- chapter 6 -----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch06-layer-norm",
        lambda rng: _tensor_cases(rng, _layer_norm_case),
        _layer_norm,
        close(),
        forbid={
            "layer_norm",
            "LayerNorm",
            "package_layer_norm",
            "group_norm",
            "instance_norm",
            "batch_norm",
        },
        chapter={"layer_norm", "annotated_layer_norm", "package_layer_norm"},
    )
)
_add(
    Spec(
        "ex-ch06-gelu-tanh",
        lambda rng: _tensor_cases(
            rng,
            lambda rng, dt: Case(
                (_t(rng, *rng.integers(1, 7, size=_dims(rng, 1, 2)), dtype=dt, scale=3.0),)
            ),
            n=1,
        ),
        _gelu_tanh,
        close(),
        forbid={"gelu", "GELU", "package_gelu"},
        chapter={"gelu"},
    )
)
_add(
    Spec(
        "ex-ch06-ffn-params",
        lambda rng: [
            Case((int(rng.integers(1, 2000)), int(rng.integers(1, 9000)))) for _ in range(3)
        ],
        lambda d, f: 2 * d * f + d + f,
        integer(),
    )
)
_add(
    Spec(
        "ex-ch06-pre-norm",
        _pre_norm_layer_cases,
        _pre_norm_layer,
        close(),
        forbid={"PreNormBlock", "pre_norm_block", "TransformerEncoderLayer"},
        chapter={"pre_norm_block", "residual"},
    )
)
_add(
    Spec(
        "ex-ch06-layer-norm-effect",
        lambda rng: [Case((str(c),)) for c in rng.permutation(list(_LAYER_NORM_EFFECT))],
        _LAYER_NORM_EFFECT.__getitem__,
        equal(_effect_word),
    )
)
_add(
    Spec(
        "ex-ch06-stream-growth",
        lambda rng: [
            Case((int(rng.integers(0, 60)), float(rng.uniform(0.01, 1.5)))) for _ in range(3)
        ],
        lambda n_blocks, write_ratio: (1 + write_ratio) ** (n_blocks / 2),
        number(rtol=1e-5),
    )
)

# ---- chapter 7 -----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch07-block-params",
        lambda rng: [Case((int(c),)) for c in rng.integers(1, 3000, size=3)],
        _block_params,
        integer(),
        forbid={"gpt_param_count", "parameters", "numel"},
        chapter={"count"},
    )
)
_add(
    Spec(
        "ex-ch07-masks",
        lambda rng: [
            Case((_pad_mask(rng, _dims(rng, 1, 4), _dims(rng, 2, 7)), causal))
            for causal in (False, True, True)
        ],
        _attention_mask,
        close(kind="b"),
        chapter={"causal_mask"},
    )
)
_add(
    Spec(
        "ex-ch07-mean-pool",
        lambda rng: _tensor_cases(rng, _mean_pool_case, n=1),
        _mean_pool,
        close(),
        forbid={"mean_pool", "package_mean_pool", "sentence_embeddings"},
        chapter={"mean_pool", "package_mean_pool", "sentence_embeddings"},
    )
)


def _cross_changes_cases(rng) -> list[Case]:
    cases = []
    for side in ("source", "target", "target"):
        T, S = _dims(rng, 2, 9), _dims(rng, 2, 9)
        cases.append(Case((T, S, side, int(rng.integers(0, T if side == "target" else S)))))
    return cases


_add(
    Spec(
        "ex-ch07-cross-changes",
        _cross_changes_cases,
        lambda T, S, side, j: list(range(T)) if side == "source" else list(range(j, T)),
        equal(index_list),
    )
)


def _causal_head(x, W_qkv, W_out):
    """ex-ch07-leak: buggy_attention with the softmax over the keys."""
    x, W_qkv, W_out = x.double(), W_qkv.double(), W_out.double()
    T, C = x.shape[-2:]
    q, k, v = (x @ W_qkv).split(C, dim=-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(C)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return _softmax(scores) @ v @ W_out


def _causal_head_case(rng, dt) -> Case:
    T, C = _dims(rng, 3, 7), _dims(rng, 2, 6)
    batch = (_dims(rng, 1, 3),) if rng.random() < 0.5 else ()
    return Case(
        (
            _t(rng, *batch, T, C, dtype=dt),
            _t(rng, C, 3 * C, dtype=dt, scale=0.7),
            _t(rng, C, C, dtype=dt),
        )
    )


_add(
    Spec(
        "ex-ch07-leak",
        lambda rng: _tensor_cases(rng, _causal_head_case),
        _causal_head,
        close(),
    )
)

# ---- chapter 8 -----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch08-shift",
        lambda rng: [
            Case(
                (torch.from_numpy(rng.integers(0, 90, size=(_dims(rng, 1, 4), _dims(rng, 2, 10)))),)
            )
            for _ in range(2)
        ],
        lambda w: (w[:, :-1], w[:, 1:]),
        each(close(kind="i"), close(kind="i")),
        forbid={"get_batch"},
    )
)
_add(
    Spec(
        "ex-ch08-cross-entropy",
        _ce_cases,
        _cross_entropy,
        number(rtol=1e-4, atol=1e-6),
        forbid={"cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"},
        chapter={"next_token_loss_inline", "next_token_loss"},
    )
)
_add(
    Spec(
        "ex-ch08-unigram",
        _unigram_cases,
        _unigram,
        number(rtol=1e-6),
        chapter={"unigram_cross_entropy"},
    )
)
_add(
    Spec(
        "ex-ch08-schedule",
        lambda rng: [
            Case((int(s), 10 ** float(rng.uniform(-4, -2)), w, t, 1e-5))
            for w, t in ((int(rng.integers(2, 30)), int(rng.integers(60, 400))),)
            for s in (0, w - 1, w, rng.integers(w, t), t, t + 7)
        ],
        _lr,
        number(rtol=1e-6),
        forbid={"lr_scheduler", "LambdaLR", "CosineAnnealingLR"},
        chapter={"lr_inline", "lr_schedule"},
    )
)


def _train_steps_cases(rng) -> list[Case]:
    """A tiny GPT with dropout from a hidden seed: SGD (where every slip of scale or order
    shows) and AdamW, float32 and float64."""
    return [
        Case(
            (
                int(rng.integers(1000, 10**6)),
                dtype,
                optimizer,
                float(rng.uniform(0.1, 0.3)),
                _dims(rng, 3, 6),
            )
        )
        for dtype, optimizer in (("float32", "sgd"), ("float64", "adamw"), ("float32", "adamw"))
    ]


def _checkpoint_cases(rng) -> list[Case]:
    cases = []
    for dtype in ("float32", "float64"):
        save_at = _dims(rng, 2, 5)
        cases.append(
            Case((int(rng.integers(1000, 10**6)), dtype, save_at, save_at + _dims(rng, 2, 4)))
        )
    return cases


def _ch08_train_steps(*args):
    from llmcourse.exercises.ch08 import run_train_steps

    return run_train_steps(None, *args)


def _ch08_checkpoint(*args):
    from llmcourse.exercises.ch08 import run_checkpoint

    return run_checkpoint(None, *args)


# The answers act on a model the grader's harness builds (codec.make_driver): they come back
# as (losses, the weights after, whether the model is left in training mode) and (the
# resumed run's losses, its weights after). AdamW in float32 turns rounding-sized
# differences of near-zero gradients into larger ones, hence the looser weights' tolerance.
_add(
    Spec(
        "ex-ch08-train-steps",
        _train_steps_cases,
        _ch08_train_steps,
        each(close(rtol=1e-4, atol=1e-6), close(rtol=1e-3, atol=1e-4), equal()),
        chapter={"train_loop", "run_steps"},
        driver="ch08_train_steps",
    )
)
_add(
    Spec(
        "ex-ch08-checkpoint",
        _checkpoint_cases,
        _ch08_checkpoint,
        each(close(rtol=1e-4, atol=1e-6), close(rtol=1e-3, atol=1e-4)),
        chapter={"save_checkpoint"},
        driver="ch08_checkpoint",
    )
)

# ---- chapter 9 -----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch09-temperature",
        lambda rng: [
            Case((_t(rng, _dims(rng, 3, 12), dtype=dt, scale=2.0), float(T)))
            for dt in _dtypes()
            for T in (rng.uniform(0.2, 0.9), rng.uniform(1.1, 3.0))
        ],
        lambda logits, T: _softmax(logits.double() / T),
        close(),
        chapter={"apply_temperature"},
    )
)
_add(
    Spec(
        "ex-ch09-top-k",
        lambda rng: [
            Case((_probs(rng, n, dtype=dt), int(rng.integers(1, n + 1))))
            for dt in _dtypes()
            for n in (_dims(rng, 4, 12), _dims(rng, 4, 12))
        ],
        _top_k,
        close(),
        chapter={"top_k_filter"},
    )
)
_add(Spec("ex-ch09-top-p", _top_p_cases, _top_p, close(), chapter={"top_p_filter"}))


def _sequence_log_prob(logits, ids, prompt_len):
    log_probs = torch.log_softmax(logits.double(), dim=-1)[prompt_len - 1 : -1]
    return float(log_probs.gather(1, ids[prompt_len:, None].long()).sum())


def _sequence_log_prob_cases(rng):
    cases = []
    for dt in _dtypes():
        for _ in range(2):
            T, V = _dims(rng, 4, 12), _dims(rng, 5, 40)
            ids = torch.from_numpy(rng.integers(0, V, T))
            logits = _t(rng, T, V, dtype=dt, scale=2.0)
            cases.append(Case((logits, ids, int(rng.integers(1, T)))))
    return cases


_add(
    Spec(
        "ex-ch09-sequence-log-prob",
        _sequence_log_prob_cases,
        _sequence_log_prob,
        number(rtol=1e-4, atol=1e-5),
    )
)


def _repetition_penalty(logits, input_ids, penalty):
    """Hugging Face's RepetitionPenaltyLogitsProcessor, in float64."""
    from transformers import RepetitionPenaltyLogitsProcessor

    return RepetitionPenaltyLogitsProcessor(penalty)(input_ids, logits.double().clone())


def _repetition_cases(rng):
    """Batches whose rows repeat tokens, with positive, negative and zero logits."""
    cases = []
    for dt in _dtypes():
        B, T, V = _dims(rng, 1, 3), _dims(rng, 3, 9), _dims(rng, 6, 30)
        logits = _t(rng, B, V, dtype=dt, scale=2.0)
        logits[0, 0] = 0.0
        ids = torch.from_numpy(rng.integers(0, V, size=(B, T)))
        ids[:, -1] = ids[:, 0]  # a repeat in every row
        ids[0, 1] = 0  # the zero logit is seen
        cases.append(Case((logits, ids, float(rng.uniform(1.1, 2.5)))))
    return cases


def _cached_step(q, k, v, K_cache, V_cache):
    K2, V2 = torch.cat([K_cache, k], 2).double(), torch.cat([V_cache, v], 2).double()
    out = _softmax(q.double() @ K2.transpose(-2, -1) / math.sqrt(q.shape[-1])) @ V2
    return out, K2, V2


def _cached_step_case(rng, dt) -> Case:
    B, H, T, d = _dims(rng, 1, 3), _dims(rng, 1, 4), _dims(rng, 0, 7), _dims(rng, 2, 8)
    new = [_t(rng, B, H, 1, d, dtype=dt) for _ in range(3)]
    return Case((*new, _t(rng, B, H, T, d, dtype=dt), _t(rng, B, H, T, d, dtype=dt)))


_add(
    Spec(
        "ex-ch09-repetition-penalty",
        _repetition_cases,
        _repetition_penalty,
        close(),
        forbid={"RepetitionPenaltyLogitsProcessor", "apply_repetition_penalty"},
        chapter={"apply_repetition_penalty"},
    )
)
_add(
    Spec(
        "ex-ch09-cached-step",
        lambda rng: _tensor_cases(rng, _cached_step_case),
        _cached_step,
        each(close(), close(), close()),
        forbid={"scaled_dot_product_attention", "KVCache"},
    )
)

# ---- chapter 10 ----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch10-chat-messages",
        lambda rng: [
            Case(
                (
                    _sentence(rng, _dims(rng, 3, 20), "xyz .!"),
                    _sentence(rng, _dims(rng, 3, 20), "pqr ?"),
                )
            )
            for _ in range(2)
        ],
        lambda system, user: [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        equal(lambda got: [dict(m) for m in got]),
        forbid={"apply_chat_template"},
    )
)
_add(
    Spec(
        "ex-ch10-new-tokens",
        lambda rng: (
            [
                Case((int(p),), {"max_new_tokens": int(rng.integers(1, 60))})
                for p in rng.integers(1, 40, size=1)
            ]
            + [
                Case((int(p),), {"max_length": int(p + rng.integers(1, 50))})
                for p in rng.integers(1, 40, size=1)
            ]
            + [
                Case(
                    (int(p),),
                    {
                        "max_length": int(rng.integers(60, 90)),
                        "max_new_tokens": int(rng.integers(1, 30)),
                    },
                )
                for p in rng.integers(1, 40, size=1)
            ]
            + [
                Case((int(p),), {"max_length": int(p - rng.integers(0, 5))})
                for p in rng.integers(10, 40, size=1)
            ]
        ),
        _new_tokens,
        integer(),
    )
)
_add(
    Spec(
        "ex-ch10-greedy-step",
        lambda rng: [
            Case((torch.from_numpy(rng.integers(0, V, size=(B, T))), _t(rng, B, T, V, dtype=dt)))
            for dt in _dtypes()
            for B, T, V in ((_dims(rng, 1, 3), _dims(rng, 1, 6), _dims(rng, 5, 30)),)
        ],
        lambda ids, logits: torch.cat([ids, logits[:, -1, :].argmax(-1)[:, None]], dim=1),
        close(kind="i"),
        forbid={"generate", "greedy_generate"},
        chapter={"greedy_generate", "generate"},
    )
)
_add(
    Spec(
        "ex-ch10-top-k",
        lambda rng: _tensor_cases(rng, _search_case, n=1),
        lambda q, corpus, k: [
            int(i)
            for i in (
                corpus.double() @ q.double() / (corpus.double().norm(dim=-1) * q.double().norm())
            ).argsort(descending=True)[:k]
        ],
        equal(index_list),
        forbid={"semantic_search"},
        chapter={"semantic_search"},
    )
)


def _rag_messages(question, passages, max_words):
    kept, words = [], 0
    for p in passages:
        words += len(p.split())
        if words > max_words:
            break
        kept.append(p)
    listed = "\n".join(f"[{n}] {p}" for n, p in enumerate(kept, start=1))
    return [{"role": "user", "content": f"{listed}\n\nQuestion: {question}" if kept else question}]


def _rag_cases(rng):
    """Budgets that end exactly on a passage, fall inside one (a shorter one follows), fit
    none, or fit all."""
    cases = []
    for _ in range(2):
        sizes = [_dims(rng, 1, 6) for _ in range(_dims(rng, 3, 5))]
        sizes.insert(2, 9)  # a long passage, followed by short ones
        passages = [
            " ".join(_sentence(rng, _dims(rng, 2, 7), "abcdeklmnr") for _ in range(n))
            for n in sizes
        ]
        question = _sentence(rng, _dims(rng, 4, 12), "pqrst ") + "?"
        totals = np.cumsum(sizes)
        budgets = (int(totals[1]), int(totals[1] + rng.integers(1, 9)), sizes[0] - 1)
        for budget in budgets + (int(totals[-1]),):
            cases.append(Case((question, passages, budget)))
    return cases


_JUDGE_WORDS = ["king", "kingdom", "kings", "horse", "march", "ides", "of", "rose", "flesh"]


def _judge(answer, accepted):
    return any(re.search(rf"\b{re.escape(a)}\b", answer, flags=re.IGNORECASE) for a in accepted)


def _judge_cases(rng):
    """Answers of capitalised words and punctuation; accepted words that occur only inside
    longer ones, phrases whose words occur apart, and none."""
    cases = []
    for _ in range(6):
        words = list(rng.choice(_JUDGE_WORDS, size=_dims(rng, 3, 8)))
        words = [w.capitalize() if rng.random() < 0.4 else w for w in words]
        answer = " ".join(w + str(rng.choice(["", "", ",", "!", "."])) for w in words)
        accepted = [str(w) for w in rng.choice(["king", "horse", "rose"], size=_dims(rng, 1, 2))]
        if rng.random() < 0.5:
            accepted.append("ides of march")
        cases.append(Case((answer, accepted)))
    cases.append(Case(("The ides fall in March.", ["ides of march"])))
    cases.append(Case(("His kingdom, for a Horse!", ["king", "rose"])))
    cases.append(Case(("Beware the Ides of March, Caesar.", ["rose", "ides of march"])))
    return cases


def _boolean(got, want) -> str | None:
    if not isinstance(got, (bool, np.bool_)):
        return f"expected True or False, got {_what(got)}"
    if bool(got) != want:
        return f"expected {want}, got {bool(got)}"
    return None


_add(
    Spec(
        "ex-ch10-rag-budget",
        _rag_cases,
        _rag_messages,
        equal(lambda got: [dict(m) for m in got]),
        forbid={"apply_chat_template"},
        chapter={"rag_prompt"},
    )
)
_add(Spec("ex-ch10-judge", _judge_cases, _judge, _boolean))

# ---- chapter 11 ----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch11-gpt2-params",
        lambda rng: [
            Case(
                (
                    int(rng.integers(1, 40)),
                    int(rng.integers(8, 2000)),
                    int(rng.integers(100, 60000)),
                    int(rng.integers(16, 4096)),
                )
            )
            for _ in range(3)
        ],
        lambda L, d, V, P: V * d + P * d + L * _block_params(d) + 2 * d,
        integer(),
        forbid={
            "gpt2_param_count",
            "gpt_param_count",
            "param_count",
            "num_parameters",
            "parameters",
            "numel",
        },
        chapter={"gpt2_param_count", "gpt_param_count", "param_count", "n_params"},
    )
)
_add(
    Spec(
        "ex-ch11-params-for-loss",
        lambda rng: [
            Case(
                (
                    float(rng.uniform(2, 40)),
                    -float(rng.uniform(0.03, 0.6)),
                    float(rng.uniform(1.2, 2.0)),
                )
            )
            for _ in range(3)
        ],
        lambda c, a, loss: (loss / c) ** (1 / a),
        number(rtol=1e-6),
    )
)
_add(
    Spec(
        "ex-ch11-chinchilla",
        lambda rng: [Case((float(10 ** rng.uniform(18, 26)),)) for _ in range(3)],
        lambda C: (math.sqrt(C / 120), 20 * math.sqrt(C / 120)),
        each(number(rtol=1e-6), number(rtol=1e-6)),
    )
)
_add(
    Spec(
        "ex-ch11-samples-needed",
        lambda rng: [
            Case((float(rng.choice([0.0, 0.1, 0.25, 0.5, 0.8])), float(rng.uniform(0.05, 0.2))))
            for _ in range(3)
        ],
        _ch11_samples_needed,
        integer(),
    )
)
_add(
    Spec(
        "ex-ch11-budget-for-ratio",
        lambda rng: [Case((float(rng.uniform(5, 200)),)) for _ in range(3)],
        _ch11_budget_for_ratio,
        number(rtol=1e-6),
    )
)

# ---- chapter 12 ----------------------------------------------------------------------------
_add(
    Spec(
        "ex-ch12-rms-norm",
        lambda rng: _tensor_cases(rng, _rms_norm_case),
        _rms_norm,
        close(),
        forbid={"rms_norm", "RMSNorm"},
        chapter={"rms_norm"},
    )
)
_add(
    Spec(
        "ex-ch12-swiglu",
        lambda rng: _tensor_cases(rng, _swiglu_case),
        _swiglu,
        close(),
        chapter={"swiglu"},
    )
)
_add(
    Spec(
        "ex-ch12-repeat-kv",
        lambda rng: _tensor_cases(
            rng,
            lambda rng, dt: Case(
                (
                    _t(
                        rng,
                        _dims(rng, 1, 2),
                        _dims(rng, 1, 4),
                        _dims(rng, 1, 5),
                        _dims(rng, 1, 4),
                        dtype=dt,
                    ),
                    int(rng.integers(1, 5)),
                )
            ),
            n=1,
        ),
        lambda x, n: x.repeat_interleave(n, dim=1),
        close(rtol=0, atol=0),
        chapter={"repeat_kv"},
    )
)
_add(
    Spec(
        "ex-ch12-kv-bytes",
        lambda rng: [
            Case(
                tuple(
                    int(v)
                    for v in (
                        rng.integers(1, 80),
                        rng.integers(1, 64),
                        rng.choice([32, 64, 128, 256]),
                        rng.integers(1, 131072),
                        rng.choice([1, 2, 4]),
                    )
                )
            )
            for _ in range(3)
        ],
        lambda L, K, D, S, b: 2 * L * K * D * S * b,
        integer(),
        chapter={"kv_cache_megabytes"},
    )
)


def _permute_for_rotate_half(w, n_heads):
    """Hugging Face's convert_llama_weights_to_hf.py: interleaved RoPE rows -> halves."""
    rows, C = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, C).transpose(1, 2).reshape(rows, C)


def _rope_permute_case(rng, dt) -> Case:
    H, D, C = _dims(rng, 1, 4), 2 * _dims(rng, 3, 8), _dims(rng, 2, 8)
    return Case((_t(rng, H * D, C, dtype=dt), H))


_add(
    Spec(
        "ex-ch12-rope-permute",
        lambda rng: _tensor_cases(rng, _rope_permute_case),
        _permute_for_rotate_half,
        close(rtol=0, atol=0),
        forbid={"unpermute_rope_rows"},  # chapter 14's package function, the same permutation
    )
)

_add(
    Spec(
        "ex-ch12-param-count",
        lambda rng: [
            Case((V, H * D, F, L, H, K, tied))
            for V, D, F, L, H, K, tied in [
                (
                    int(rng.integers(10, 60000)),
                    int(rng.choice([16, 32, 64, 128])),
                    int(rng.integers(8, 4000)),
                    int(rng.integers(1, 40)),
                    int(h),
                    int(rng.choice([k for k in range(1, h + 1) if h % k == 0])),
                    bool(rng.integers(0, 2)),
                )
                for h in rng.integers(1, 17, size=3)
            ]
        ],
        _llama_param_count,
        integer(),
        forbid={"numel", "num_parameters", "parameters", "LlamaForCausalLM", "LlamaConfig"},
        chapter={"llama_param_count"},
    )
)


# ---- chapter 13 ----------------------------------------------------------------------------
def _choose_rank(singular_values, keep):
    s2 = torch.as_tensor(singular_values, dtype=F64).sort(descending=True).values ** 2
    kept = s2.cumsum(0) / s2.sum()
    return int((kept < keep - 1e-12).sum().item()) + 1


def _choose_rank_cases(rng) -> list[Case]:
    """Unsorted spectra; ``keep`` at least 1e-3 from every cumulative fraction, so float32
    rounding cannot move the answer."""
    cases = []
    for dt in _dtypes():
        s = torch.from_numpy(rng.gamma(0.7, 1.0, size=_dims(rng, 3, 40)) + 1e-3).to(dt)
        kept = (s.double().sort(descending=True).values ** 2).cumsum(0)
        kept = (kept / kept[-1]).numpy()
        keep = float(rng.uniform(0.05, 0.99))
        while np.abs(kept - keep).min() < 1e-3:
            keep = float(rng.uniform(0.05, 0.99))
        cases.append(Case((s, keep)))
    return cases


def _masked_sft_loss(logits, input_ids, prompt_lengths, attention_mask):
    positions = torch.arange(input_ids.shape[1])[None, :]
    learn = (positions >= torch.as_tensor(prompt_lengths)[:, None]) & attention_mask.bool()
    labels = input_ids.masked_fill(~learn, -100)
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].double().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
    )


def _sft_case(rng, dt) -> Case:
    """Right-padded rows; each has a prompt of at least one token and an answer after it."""
    B, T, V = _dims(rng, 2, 5), _dims(rng, 5, 12), _dims(rng, 5, 40)
    lengths = rng.integers(3, T + 1, size=B)  # tokens before the padding
    lengths[0] = T
    prompts = [int(rng.integers(1, n - 1)) for n in lengths]
    mask = torch.from_numpy((np.arange(T)[None, :] < lengths[:, None]).astype(np.int64))
    ids = torch.from_numpy(rng.integers(0, V, size=(B, T)))
    return Case((_t(rng, B, T, V, dtype=dt, scale=2.0), ids, prompts, mask))


_add(
    Spec(
        "ex-ch13-lora-trainable",
        lambda rng: [
            Case(
                (
                    [
                        (int(rng.integers(1, 5000)), int(rng.integers(1, 5000)))
                        for _ in range(_dims(rng, 1, 8))
                    ],
                    int(rng.integers(1, 65)),
                )
            )
            for _ in range(3)
        ],
        lambda shapes, r: sum(r * (n_out + n_in) for n_out, n_in in shapes),
        integer(exact_type=True),
    )
)
_add(
    Spec(
        "ex-ch13-choose-rank",
        _choose_rank_cases,
        _choose_rank,
        integer(exact_type=True),
    )
)
_add(
    Spec(
        "ex-ch13-masked-sft-loss",
        lambda rng: _tensor_cases(rng, _sft_case),
        _masked_sft_loss,
        close(),
    )
)


# ---- chapter 14 ----------------------------------------------------------------------------
def _encode_q4_1(block):
    b = block.double()
    low, high = b.min(), b.max()
    d = (high - low) / 15
    return d, low, torch.round((b - low) / d).to(torch.uint8)


_add(
    Spec(
        "ex-ch14-gguf-bytes",
        lambda rng: [
            Case((32 * int(rng.integers(1, 10**7)), fmt)) for fmt in ("F32", "Q8_0", "Q4_1")
        ],
        lambda n, fmt: n // 32 * {"F32": 128, "Q8_0": 34, "Q4_1": 20}[fmt],
        integer(),
    )
)
_add(
    Spec(
        "ex-ch14-encode-q4-1",
        lambda rng: _tensor_cases(rng, lambda rng, dt: Case((_t(rng, 32, dtype=dt),))),
        _encode_q4_1,
        each(close(), close(), close(kind="i")),
    )
)
_add(
    Spec(
        "ex-ch14-tokens-per-pass",
        lambda rng: [
            Case((float(rng.uniform(0.05, 0.98)), int(rng.integers(1, 12)))) for _ in range(3)
        ],
        lambda alpha, k: sum(alpha**i for i in range(k + 1)),
        number(rtol=1e-9),
    )
)


# ---- chapter 15 ----------------------------------------------------------------------------
def _largest_model(gpu_bytes, n_gpus, stage):
    """Exact: 2 + 2 + 12 bytes per parameter, the first ``stage`` of (12, 2, 2) split N ways."""
    from fractions import Fraction

    share = Fraction(1, n_gpus)
    weights, grads, optimizer = (
        Fraction(2) * (share if stage >= 3 else 1),
        Fraction(2) * (share if stage >= 2 else 1),
        Fraction(12) * (share if stage >= 1 else 1),
    )
    return math.floor(Fraction(gpu_bytes) / (weights + grads + optimizer))


def _within_one(got, want) -> str | None:
    """An int within 1 of the exact floor (float division may round the last unit)."""
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        return integer(exact_type=True)(got, want) or f"expected an int, got {_what(got)}"
    if abs(int(got) - want) > 1:
        return f"expected {want:,} parameters, got {int(got):,}"
    return None


def _shard_indices(n, rank, world_size, epoch, seed):
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def _shard_cases(rng) -> list[Case]:
    cases = []
    for _ in range(4):
        world = int(rng.integers(1, 9))
        n = int(rng.integers(world, 80))
        cases.append(
            Case(
                (
                    n,
                    int(rng.integers(0, world)),
                    world,
                    int(rng.integers(0, 6)),
                    int(rng.integers(0, 1000)),
                )
            )
        )
    return cases


def _fixed_step(weight, bias, micro_batches):
    """What one step on the mean gradient of all micro-batches, all-reduced once on the last,
    leaves: the forwards' all-reduce flags, one optimizer step, the weight and bias after."""
    w = weight.double().requires_grad_()
    b = bias.double().requires_grad_()
    x = torch.cat([x for x, _ in micro_batches]).double()
    y = torch.cat([y for _, y in micro_batches]).double()
    loss = torch.nn.functional.mse_loss(x @ w.T + b, y)
    grad_w, grad_b = torch.autograd.grad(loss, [w, b])
    syncs = [False] * (len(micro_batches) - 1) + [True]
    return syncs, 1, (w - grad_w).detach(), (b - grad_b).detach()


def _flags(got) -> list[bool]:
    if not isinstance(got, list) or not all(isinstance(s, bool) for s in got):
        raise TypeError("expected a list of True/False")
    return got


def _fixed_step_case(rng, dt) -> Case:
    n_in, n_out, rows = _dims(rng, 2, 7), _dims(rng, 1, 4), _dims(rng, 1, 5)
    batches = [
        (_t(rng, rows, n_in, dtype=dt), _t(rng, rows, n_out, dtype=dt))
        for _ in range(_dims(rng, 1, 6))
    ]
    return Case((_t(rng, n_out, n_in, dtype=dt), _t(rng, n_out, dtype=dt), batches))


_add(
    Spec(
        "ex-ch15-largest-model",
        lambda rng: [
            Case(
                (
                    int(rng.integers(4, 200)) * 10**9 + int(rng.integers(0, 10**9)),
                    int(rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256])),
                    stage,
                )
            )
            for stage in (0, 1, 2, 3, 3)
        ],
        _largest_model,
        _within_one,
        chapter={"zero_bytes_per_gpu"},
    )
)
_add(
    Spec(
        "ex-ch15-shard-indices",
        _shard_cases,
        _shard_indices,
        equal(index_list),
        forbid={"DistributedSampler"},
    )
)
_add(
    Spec(
        "ex-ch15-fixed-step",
        lambda rng: _tensor_cases(rng, _fixed_step_case),
        _fixed_step,
        each(equal(_flags), integer(), close(), close()),
        driver="fixed_step",
    )
)


class Raises:
    """The reference raises on this case: so must the answer (the same exception type)."""

    def __init__(self, error: Exception):
        self.name, self.message = type(error).__name__, str(error)

    def check(self, raised: str | None) -> str | None:
        if raised is not None and raised.startswith(self.name + ":"):
            return None
        got = f"it raised {raised}" if raised else "it returned a value"
        return f"expected a {self.name} here ({self.message}); {got}"


def expected(spec: Spec, case: Case):
    """The reference result for one case, as the plain values the comparison sees, or
    ``Raises`` where the answer must refuse."""
    try:
        value = spec.reference(*case.args, **case.kwargs)
    except (ValueError, TypeError) as error:
        return Raises(error)
    return _plain(value)


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value
