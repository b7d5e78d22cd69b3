"""Grading (llmcourse.teaching.grade): sandboxed, decided outside the student's process, fair.

Without a sandbox (the first part): every exercise of every chapter has hidden test cases, the
book's solutions pass them, float32, float64 and idiomatic answers pass, plausible wrong ones
and objects that lie about equality fail, and the static reading names copied, aliased and
forbidden answers and tampering. With bubblewrap (the second part, skipped with a message
where bubblewrap cannot run): a simulated class is graded as a teacher would; no cheat gets
credit, no notebook changes another's result or the teacher's files, the book scores 100%
and the student edition 0%, an interrupted run resumes, and shards merged equal one run.
"""

from __future__ import annotations

import ast
import collections
import csv
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.teaching import grade, honesty, layout, sandbox, simulate
from llmcourse.teaching.codec import (
    Unsupported,
    decode,
    encode_input,
    make_driver,
    make_encoder,
)
from llmcourse.teaching.specs import SPECS, Raises, expected
from llmcourse.teaching.student_edition import build as build_student_edition

ROOT = Path(__file__).resolve().parent.parent
FULL = "04_multi_head_attention.ipynb"  # graded whole: short, a few exercises
CHAPTERS = layout.chapters()  # every chapter notebook in book/
ENCODE, DRIVE = make_encoder(), make_driver()


def book_functions(path: Path) -> dict:
    """Every function the chapter defines (solutions included), run in one namespace."""
    namespace = {
        "math": math,
        "np": np,
        "torch": torch,
        "nn": nn,
        "F": F,
        "Counter": collections.Counter,
    }
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            tree.body = [
                n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom))
            ]
            exec(compile(tree, path.name, "exec"), namespace)
    return namespace


def verdict(label: str, answer, seeds=range(3)) -> str | None:
    """What the grader's comparison says of ``answer`` (None: right), through plain data."""
    spec = SPECS[label]
    for seed in seeds:
        for case in spec.cases(np.random.default_rng(seed)):
            args = decode(encode_input(case.args), tensors=True)
            kwargs = decode(encode_input(case.kwargs), tensors=True)
            want = expected(spec, case)
            try:
                got = decode(ENCODE(DRIVE(spec.driver, answer, args, kwargs)))
            except Exception as error:  # noqa: BLE001 - a wrong answer may raise
                raised = f"{type(error).__name__}: {error}"
                if isinstance(want, Raises) and want.check(raised) is None:
                    continue
                return f"raised {raised}"
            problem = want.check(None) if isinstance(want, Raises) else spec.compare(got, want)
            if problem:
                return problem
    return None


def source_answer(source: str, name: str):
    namespace = {"math": math, "np": np, "torch": torch, "F": F}
    exec(source, namespace)
    return namespace[name]


# ---- hidden test cases, references, comparisons -------------------------------------------


def test_every_exercise_of_every_chapter_has_hidden_cases():
    labels = [e.label for p in CHAPTERS for e in layout.find_exercises(nbformat.read(p, 4))]
    assert len(CHAPTERS) >= 12 and len(labels) >= 3 * len(CHAPTERS)
    assert sorted(set(labels) - set(SPECS)) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_books_solutions_pass_the_hidden_cases(path):
    functions = book_functions(path)
    for exercise in layout.find_exercises(nbformat.read(path, as_version=4)):
        answer = functions[exercise.answer_names[0]]
        assert verdict(exercise.label, answer, seeds=range(4)) is None, exercise.label


def test_hidden_cases_depend_on_the_secret_seed():
    spec = SPECS["ex-ch03-attention"]
    one = [c.describe() for c in spec.cases(grade._rng("secret", "alice", spec.label))]
    assert one == [c.describe() for c in spec.cases(grade._rng("secret", "alice", spec.label))]
    assert one != [c.describe() for c in spec.cases(grade._rng("other", "alice", spec.label))]
    dtypes = {str(a.dtype) for c in spec.cases(np.random.default_rng(0)) for a in c.args}
    assert dtypes == {"torch.float32", "torch.float64"}


RIGHT = {  # float32, float64 and idiomatic answers, beyond simulate.VARIANTS
    "ex-ch06-layer-norm": [
        "def f(x, w, b, eps):\n    d = tuple(range(-w.dim(), 0))\n"
        "    return (x - x.mean(d, keepdim=True)) / (x.var(d, correction=0, keepdim=True) + eps)"
        ".sqrt() * w + b\n",
        "def f(x, w, b, eps):\n    x32 = x.float().flatten(-w.dim())\n"
        "    m = x32.mean(-1, keepdim=True)\n"
        "    v = ((x32 - m) ** 2).mean(-1, keepdim=True)\n"
        "    y = ((x32 - m) * torch.rsqrt(v + eps)).view(x.shape)\n"
        "    return y * w.float() + b.float()\n",
    ],
    "ex-ch06-pre-norm": [
        "def f(x, attn, ffn, norm1, norm2):\n    x = x.double()\n"
        "    for sub, norm in ((attn, norm1), (ffn, norm2)):\n        x = x + sub(norm(x))\n"
        "    return x\n",
    ],
    "ex-ch06-layer-norm-effect": [
        "def f(change):\n    v = torch.randn(8, dtype=torch.float64)\n"
        "    v = (v - v.mean()) / v.std(correction=0)\n"
        "    ln = lambda t: (t - t.mean()) / (t.var(correction=0) + 1e-5).sqrt()\n"
        "    new = {'add 3': v + 3, 'times 10': 10 * v, 'times -1': -v, 'times 0.001': v / 1000,"
        " 'add 1 to one feature': v + torch.eye(8, dtype=v.dtype)[0]}[change]\n"
        "    y, out = ln(v), ln(new)\n    c = float(out @ y / (y @ y))\n"
        "    if (out - c * y).norm() > 1e-3:\n        return 'changed'\n"
        "    return 'same' if abs(c - 1) < 1e-3 else 'negated' if c < 0 else 'smaller'\n",
    ],
    "ex-ch06-stream-growth": [
        "def f(n_blocks, write_ratio):\n    var = torch.tensor(1.0)\n"
        "    for _ in range(n_blocks):\n        var = var * (1 + write_ratio)\n"
        "    return var.sqrt()\n",
    ],
    "ex-ch12-swiglu": [
        "def f(x, g, u, d):\n    x, g, u, d = x.float(), g.float(), u.float(), d.float()\n"
        "    return (F.silu(x @ g.T) * (x @ u.T)) @ d.T\n",
        "def f(x, g, u, d):\n    x, g, u, d = (t.double() for t in (x, g, u, d))\n"
        "    h = x @ g.T\n    return (h * torch.sigmoid(h) * (x @ u.T)) @ d.T\n",
    ],
    "ex-ch03-softmax": ["def f(x):\n    return (x - x.logsumexp(-1, keepdim=True)).exp()\n"],
    "ex-ch12-repeat-kv": [
        "def f(x, n):\n    B, K, S, D = x.shape\n"
        "    return x[:, :, None].expand(B, K, n, S, D).reshape(B, K * n, S, D)\n"
    ],
    "ex-ch12-param-count": [
        "def f(V, C, F, L, H, K, tied):\n    kv = K * (C // H)\n    head = 0 if tied else V * C\n"
        "    return V * C + L * (2 * C * C + 2 * kv * C + 3 * C * F + 2 * C) + C + head\n",
    ],
    "ex-ch12-rope-permute": [
        "def f(w, n):\n    rows, C = w.shape\n"
        "    return w.view(n, rows // n // 2, 2, C).transpose(1, 2).reshape(rows, C)\n",
        "def f(w, n):\n    D = w.shape[0] // n\n    order = [*range(0, D, 2), *range(1, D, 2)]\n"
        "    return w[[h * D + i for h in range(n) for i in order]]\n",
    ],
    "ex-ch09-top-p": [
        "def f(p, top):\n    s, i = p.sort(descending=True)\n    keep = (s.cumsum(0) - s) < top\n"
        "    out = torch.zeros_like(p)\n    out[i[keep]] = s[keep]\n    return out / out.sum()\n"
    ],
    "ex-ch10-top-k": [
        "def f(q, c, k):\n    return torch.topk(F.cosine_similarity(c, q[None], dim=-1), k)"
        ".indices\n"
    ],
    "ex-ch02-count-pairs": [
        "def f(words, rank):\n    out = {}\n    for w, n in words.items():\n"
        "        for a, b in zip(w, w[1:]):\n            out[a, b] = out.get((a, b), 0) + n\n"
        "    return sorted(out, key=lambda p: (-out[p], rank[p[0]], rank[p[1]]))[0]\n"
    ],
    "ex-ch01-perplexity": [
        "def f(docs):\n    n = sum(len(d) for d in docs)\n"
        "    return math.exp(-sum(float(x) for d in docs for x in d) / n)\n"
    ],
    "ex-ch01-kneser-ney": [
        "def f(c, d):\n    c = np.asarray(c, dtype=np.float32)\n    s = c > 0\n"
        "    pc = s.sum(0) / s.sum()\n    r = c.sum(1, keepdims=True)\n"
        "    t = np.maximum(c - d, 0) / np.maximum(r, 1) + d * s.sum(1, keepdims=True)"
        " / np.maximum(r, 1) * pc\n"
        "    return np.where(r > 0, t, pc)\n"
    ],
    "ex-ch02-one-hot": [
        "def f(ids, g, V):\n    return torch.zeros(V, g.shape[-1], dtype=g.dtype).index_add_("
        "0, ids.flatten(), g.reshape(-1, g.shape[-1]))\n",
        "def f(ids, g, V):\n    return F.one_hot(ids, V).float().flatten(0, -2).T @ "
        "g.float().reshape(-1, g.shape[-1])\n",
    ],
    "ex-ch02-decode": [
        "def f(tokens):\n    from llmcourse.tokenization import bytes_to_unicode\n"
        "    back = {v: k for k, v in bytes_to_unicode().items()}\n"
        "    return bytearray(back[c] for c in ''.join(tokens)).decode()\n"
    ],
    "ex-ch02-unseen-word": [
        "def f(word, merges, sizes):\n    from llmcourse.tokenization import bytes_to_unicode\n"
        "    table = bytes_to_unicode()\n    out = []\n    for m in sizes:\n"
        "        ranks = {tuple(p): r for r, p in enumerate(merges[:m])}\n"
        "        s = [table[b] for b in word.encode()]\n        while True:\n"
        "            c = [(ranks[p], i) for i, p in enumerate(zip(s, s[1:])) if p in ranks]\n"
        "            if not c:\n                break\n            r, i = min(c)\n"
        "            s[i:i + 2] = [s[i] + s[i + 1]]\n"
        "        out.append(len(s))\n    return out\n"
    ],
    "ex-ch14-gguf-bytes": [
        "def f(n, fmt):\n    per = {'F32': 4.0, 'Q8_0': 34 / 32, 'Q4_1': 20 / 32}[fmt]\n"
        "    return round(n * per)\n",
    ],
    "ex-ch14-encode-q4-1": [
        "def f(b):\n    lo = b.min()\n    d = (b.max() - lo) / 15\n"
        "    return d, lo, ((b - lo) / d).round().clamp(0, 15).to(torch.uint8)\n",
    ],
    "ex-ch14-tokens-per-pass": [
        "def f(a, k):\n    return (1 - a ** (k + 1)) / (1 - a)\n",
    ],
    "ex-ch13-lora-trainable": [
        "def f(shapes, r):\n    total = 0\n    for o, i in shapes:\n"
        "        total += r * o + r * i\n    return total\n",
        "def f(shapes, r):\n    return int(r * np.asarray(shapes).sum())\n",
    ],
    "ex-ch13-choose-rank": [
        "def f(s, keep):\n    s2 = torch.as_tensor(s).float().sort(descending=True).values ** 2\n"
        "    return int((s2.cumsum(0) / s2.sum() < keep).sum()) + 1\n",
        "def f(s, keep):\n    s2 = np.sort(np.asarray(s, dtype=np.float64))[::-1] ** 2\n"
        "    return int(np.searchsorted(np.cumsum(s2) / s2.sum(), keep)) + 1\n",
    ],
    "ex-ch13-masked-sft-loss": [
        "def f(logits, ids, p, m):\n    lp = logits.float().log_softmax(-1)\n    tot, n = 0.0, 0\n"
        "    for b in range(ids.shape[0]):\n        for t in range(max(p[b], 1), ids.shape[1]):\n"
        "            if m[b, t]:\n                tot, n = tot - lp[b, t - 1, ids[b, t]], n + 1\n"
        "    return tot / n\n",
        "def f(logits, ids, p, m):\n    keep = torch.zeros_like(m, dtype=torch.bool)\n"
        "    for b, n in enumerate(p):\n        keep[b, n:] = m[b, n:].bool()\n"
        "    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction='none')\n"
        "    return nll[keep[:, 1:]].mean()\n",
    ],
    "ex-ch15-largest-model": [
        "def f(gpu, n, stage):\n    per = {0: 16, 1: 4 + 12 / n, 2: 2 + 14 / n, 3: 16 / n}[stage]\n"
        "    return math.floor(gpu / per)\n",
        "def f(gpu, n, stage):\n"
        "    return gpu * n // [16 * n, 4 * n + 12, 2 * n + 14, 16][stage]\n",
    ],
    "ex-ch15-shard-indices": [
        "def f(n, rank, w, epoch, seed):\n    g = torch.Generator()\n"
        "    g.manual_seed(seed + epoch)\n"
        "    idx = torch.randperm(n, generator=g).tolist()\n    per = -(-n // w)\n"
        "    pad = per * w - n\n    idx = idx + (idx * (pad // n + 1))[:pad]\n"
        "    return torch.tensor(idx[rank::w])\n",
    ],
    "ex-ch15-fixed-step": [
        "def f(model, mb, opt):\n    opt.zero_grad(set_to_none=True)\n    k = len(mb)\n"
        "    for x, y in mb[:-1]:\n        with model.no_sync():\n"
        "            (F.mse_loss(model(x), y) / k).backward()\n    x, y = mb[-1]\n"
        "    (F.mse_loss(model(x), y) / k).backward()\n    opt.step()\n",
        "import contextlib\n\ndef f(model, mb, opt):\n    for p in model.parameters():\n"
        "        p.grad = None\n    n = sum(y.numel() for _, y in mb)\n"
        "    for i, (x, y) in enumerate(mb):\n        with contextlib.ExitStack() as stack:\n"
        "            if i < len(mb) - 1:\n                stack.enter_context(model.no_sync())\n"
        "            (F.mse_loss(model(x), y, reduction='sum') / n).backward()\n"
        "    opt.step()\n",
    ],
}
WRONG = {  # plausible slips, each must fail with a message saying what is wrong
    "ex-ch01-perplexity": [
        "def f(docs):\n    return float(np.mean([np.exp(-np.mean(d)) for d in docs]))\n",
        "def f(docs):\n    return float(np.exp(-np.mean([np.mean(d) for d in docs])))\n",
    ],
    "ex-ch01-kneser-ney": [
        "def f(c, d):\n    u = c.sum(0) / c.sum()\n    r = c.sum(1, keepdim=True)\n"
        "    t = (c - d).clamp(min=0) / r.clamp(min=1) + d * (c > 0).sum(1, keepdim=True)"
        " / r.clamp(min=1) * u\n    return torch.where(r > 0, t, u.expand_as(t))\n",
        "def f(c, d):\n    s = (c > 0).to(c.dtype)\n    pc = s.sum(0) / s.sum()\n"
        "    r = c.sum(1, keepdim=True)\n"
        "    return (c - d) / r + d * s.sum(1, keepdim=True) / r * pc\n",
    ],
    "ex-ch02-count-pairs": [
        "def f(words, rank):\n    out = {}\n    for w, n in words.items():\n"
        "        for a, b in zip(w, w[1:]):\n            out[a, b] = out.get((a, b), 0) + 1\n"
        "    return min(out, key=lambda p: (-out[p], rank[p[0]], rank[p[1]]))\n",
        "def f(words, rank):\n    out = {}\n    for w, n in words.items():\n"
        "        for a, b in zip(w, w[1:]):\n            out[a, b] = out.get((a, b), 0) + n\n"
        "    return max(out, key=lambda p: (out[p], rank[p[0]], rank[p[1]]))\n",
    ],
    "ex-ch02-one-hot": [
        "def f(ids, g, V):\n    out = torch.zeros(V, g.shape[-1], dtype=g.dtype)\n"
        "    out[ids.flatten()] = g.reshape(-1, g.shape[-1])\n    return out\n",
        "def f(ids, g, V):\n    return torch.zeros(int(ids.max()) + 1, g.shape[-1]).index_add_("
        "0, ids.flatten(), g.reshape(-1, g.shape[-1]).float())\n",
    ],
    "ex-ch02-decode": [
        "def f(tokens):\n    return ''.join(tokens).replace('Ġ', ' ').replace('Ċ', '\\n')\n",
        "def f(tokens):\n    from llmcourse.tokenization import bytes_to_unicode\n"
        "    back = {v: k for k, v in bytes_to_unicode().items()}\n"
        "    return ''.join(bytes(back[c] for c in t).decode(errors='replace') for t in tokens)\n",
    ],
    "ex-ch02-unseen-word": [
        "def f(word, merges, sizes):\n    out = []\n    for m in sizes:\n"
        "        s = list(word)\n        for a, b in merges[:m]:\n            i = 0\n"
        "            while i < len(s) - 1:\n                if (s[i], s[i + 1]) == (a, b):\n"
        "                    s[i:i + 2] = [a + b]\n                i += 1\n"
        "        out.append(len(s))\n    return out\n",
        "def f(word, merges, sizes):\n    return [len(word.encode()) - m for m in sizes]\n",
    ],
    "ex-ch06-layer-norm": [
        "def f(x, w, b, eps):\n    return (x - x.mean(-1, keepdim=True)) / torch.sqrt("
        "x.var(-1, correction=0, keepdim=True) + eps) * w + b\n",  # the chapter's: last dim
        "def f(x, w, b, eps):\n    return (x - x.mean(-1, keepdim=True)) / torch.sqrt("
        "x.var(-1, keepdim=True) + eps) * w + b\n",
        "def f(x, w, b, eps):\n    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, "
        "unbiased=False, keepdim=True) + eps) * w + b\n",
    ],
    "ex-ch06-pre-norm": [
        "def f(x, attn, ffn, norm1, norm2):\n    return x + attn(norm1(x)) + ffn(norm2(x))\n",
        "def f(x, attn, ffn, norm1, norm2):\n    h = norm1(x + attn(x))\n"
        "    return norm2(h + ffn(h))\n",
    ],
    "ex-ch06-layer-norm-effect": [
        "def f(change):\n    return {'times -1': 'negated', 'add 1 to one feature': 'changed'}"
        ".get(change, 'same')\n",
        "def f(change):\n    return 'smaller' if 'times' in change else 'changed'\n",
    ],
    "ex-ch06-stream-growth": [
        "def f(n_blocks, write_ratio):\n    return (1 + write_ratio) ** n_blocks\n",
        "def f(n_blocks, write_ratio):\n    return (1 + n_blocks * write_ratio) ** 0.5\n",
    ],
    "ex-ch06-gelu-tanh": [
        "def f(x):\n    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))\n",
        "def f(x):\n    return x * torch.sigmoid(1.702 * x)\n",
    ],
    "ex-ch12-rms-norm": [
        "def f(x, w, eps):\n    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w\n",
        "def f(x, w, eps):\n    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w\n",
    ],
    "ex-ch12-swiglu": [
        "def f(x, g, u, d):\n    return (F.gelu(x @ g.T) * (x @ u.T)) @ d.T\n",
        "def f(x, g, u, d):\n    return (F.silu(x @ u.T) * (x @ u.T)) @ d.T\n",
    ],
    "ex-ch12-repeat-kv": [
        "def f(x, n):\n    return x.repeat(1, n, 1, 1)\n",
        "def f(x, n):\n    return x.repeat_interleave(n, dim=2)\n",
    ],
    "ex-ch12-param-count": [
        "def f(V, C, F, L, H, K, tied):\n"
        "    return V * C + L * (4 * C * C + 3 * C * F + 2 * C) + C\n",
        "def f(V, C, F, L, H, K, tied):\n    kv = K * (C // H)\n"
        "    return 2 * V * C + L * (2 * C * C + 2 * kv * C + 3 * C * F + 2 * C) + C\n",
    ],
    "ex-ch12-rope-permute": [
        "def f(w, n):\n    return w\n",
        "def f(w, n):\n    rows, C = w.shape\n"
        "    return w.view(rows // 2, 2, C).transpose(0, 1).reshape(rows, C)\n",
        "def f(w, n):\n    rows, C = w.shape\n"
        "    return w.view(n, 2, rows // n // 2, C).transpose(1, 2).reshape(rows, C)\n",
    ],
    "ex-ch09-top-p": [
        "def f(p, top):\n    s, i = p.sort(descending=True)\n    keep = s.cumsum(0) < top\n"
        "    out = torch.zeros_like(p)\n    out[i[keep]] = s[keep]\n    return out / out.sum()\n",
        "def f(p, top):\n    return p\n",
    ],
    "ex-ch09-temperature": [
        "def f(z, T):\n    return torch.softmax(z * T, -1)\n",
        "def f(z, T):\n    return torch.softmax(z, -1) / T\n",
    ],
    "ex-ch01-table-size": [
        "def f(v, n):\n    return math.pow(v, n)\n",
        "def f(v, n):\n    return v * n\n",
    ],
    "ex-ch10-top-k": [
        "def f(q, c, k):\n    return (c @ q).argsort(descending=True)[:k].tolist()\n",
        "def f(q, c, k):\n    return (c @ q).argsort()[:k].tolist()\n",
    ],
    "ex-ch07-mean-pool": [
        "def f(h, m):\n    return h.mean(1)\n",
        "def f(h, m):\n    return (h * m[..., None]).sum(1) / m.shape[1]\n",
    ],
    "ex-ch08-schedule": [
        "def f(s, mx, w, t, mn):\n    return mx * s / w if s < w else mn + 0.5 * (mx - mn) * "
        "(1 + math.cos(math.pi * (s - w) / (t - w)))\n",
        "def f(s, mx, w, t, mn):\n    return mx\n",
    ],
    "ex-ch14-gguf-bytes": [
        "def f(n, fmt):\n    return n * {'F32': 4, 'Q8_0': 1, 'Q4_1': 0.5}[fmt]\n",
        "def f(n, fmt):\n    return n // 32 * {'F32': 128, 'Q8_0': 34, 'Q4_1': 18}[fmt]\n",
    ],
    "ex-ch14-encode-q4-1": [
        "def f(b):\n    lo = b.min()\n    d = (b.max() - lo) / 16\n"
        "    return d, lo, ((b - lo) / d).round().to(torch.uint8)\n",
        "def f(b):\n    lo = b.min()\n    d = (b.max() - lo) / 15\n"
        "    return d, lo, ((b - lo) / d).floor().to(torch.uint8)\n",
    ],
    "ex-ch14-tokens-per-pass": [
        "def f(a, k):\n    return sum(a ** i for i in range(1, k + 1))\n",
        "def f(a, k):\n    return 1 + k * a\n",
    ],
    "ex-ch13-lora-trainable": [
        "def f(shapes, r):\n    return sum(r * o * i for o, i in shapes)\n",
        "def f(shapes, r):\n    return r * (shapes[0][0] + shapes[0][1])\n",
        "def f(shapes, r):\n    return float(sum(r * (o + i) for o, i in shapes))\n",
    ],
    "ex-ch13-choose-rank": [
        "def f(s, keep):\n    s = torch.as_tensor(s).sort(descending=True).values\n"
        "    return int((s.cumsum(0) / s.sum() < keep).sum()) + 1\n",
        "def f(s, keep):\n    s2 = torch.as_tensor(s).sort(descending=True).values ** 2\n"
        "    return int((s2.cumsum(0) / s2.sum() < keep).sum())\n",
        "def f(s, keep):\n    s2 = torch.as_tensor(s) ** 2\n"
        "    return int((s2.cumsum(0) / s2.sum() < keep).sum()) + 1\n",
    ],
    "ex-ch13-masked-sft-loss": [
        "def f(logits, ids, p, m):\n"
        "    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())\n",
        "def f(logits, ids, p, m):\n    labels = ids.clone()\n    for b, n in enumerate(p):\n"
        "        labels[b, :n] = -100\n    labels[m == 0] = -100\n"
        "    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)\n",
        "def f(logits, ids, p, m):\n    labels = ids.clone()\n    for b, n in enumerate(p):\n"
        "        labels[b, :n] = -100\n    return F.cross_entropy(logits[:, :-1].flatten(0, 1), "
        "labels[:, 1:].flatten(), ignore_index=-100)\n",
        "def f(logits, ids, p, m):\n    out = []\n    for b, n in enumerate(p):\n"
        "        labels = ids[b].masked_fill((torch.arange(len(ids[b])) < n) | (m[b] == 0), -100)\n"
        "        out.append(F.cross_entropy(logits[b, :-1], labels[1:], ignore_index=-100))\n"
        "    return torch.stack(out).mean()\n",
    ],
    "ex-ch15-largest-model": [
        "def f(gpu, n, stage):\n    return int(gpu // (16 if stage == 0 else 16 / n))\n",
        "def f(gpu, n, stage):\n    per = {0: 16, 1: 4 + 12 / n, 2: 4 + 12 / n, 3: 16 / n}[stage]\n"
        "    return int(gpu // per)\n",
        "def f(gpu, n, stage):\n    return gpu * n / [16 * n, 4 * n + 12, 2 * n + 14, 16][stage]\n",
    ],
    "ex-ch15-shard-indices": [
        "def f(n, rank, w, epoch, seed):\n"
        "    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))"
        ".tolist()\n    per = -(-n // w)\n    idx = idx + idx[:per * w - n]\n"
        "    return idx[rank * per:(rank + 1) * per]\n",
        "def f(n, rank, w, epoch, seed):\n"
        "    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()\n"
        "    per = -(-n // w)\n    idx = idx + idx[:per * w - n]\n    return idx[rank::w]\n",
        "def f(n, rank, w, epoch, seed):\n"
        "    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))"
        ".tolist()\n    return idx[rank::w]\n",
    ],
    "ex-ch15-fixed-step": [
        "def f(model, mb, opt):\n    opt.zero_grad()\n    for x, y in mb:\n"
        "        F.mse_loss(model(x), y).backward()\n    opt.step()\n",
        "def f(model, mb, opt):\n    for i, (x, y) in enumerate(mb):\n"
        "        if i < len(mb) - 1:\n            with model.no_sync():\n"
        "                (F.mse_loss(model(x), y) / len(mb)).backward()\n"
        "        else:\n            (F.mse_loss(model(x), y) / len(mb)).backward()\n"
        "    opt.step()\n",
        "def f(model, mb, opt):\n    opt.zero_grad()\n    with model.no_sync():\n"
        "        for x, y in mb:\n            (F.mse_loss(model(x), y) / len(mb)).backward()\n"
        "    opt.step()\n",
        "def f(model, mb, opt):\n    opt.zero_grad()\n    for i, (x, y) in enumerate(mb):\n"
        "        if i < len(mb) - 1:\n            with model.no_sync():\n"
        "                (F.mse_loss(model(x), y) / len(mb)).backward()\n"
        "        else:\n            (F.mse_loss(model(x), y) / len(mb)).backward()\n"
        "        opt.step()\n",
    ],
}


@pytest.mark.parametrize("label", sorted(set(RIGHT) | {k for k in simulate.VARIANTS}))
def test_correct_answers_in_any_precision_or_idiom_pass(label):
    sources = RIGHT.get(label, []) + [
        s.replace("{name}", "f") for s in simulate.VARIANTS.get(label, ([], []))[0]
    ]
    for source in sources:
        assert verdict(label, source_answer(source, "f")) is None, source


@pytest.mark.parametrize("label", sorted(set(WRONG) | {k for k in simulate.VARIANTS}))
def test_plausible_wrong_answers_fail_and_say_why(label):
    sources = WRONG.get(label, []) + [
        s.replace("{name}", "f") for s in simulate.VARIANTS.get(label, ([], []))[1]
    ]
    assert len(sources) >= 2
    for source in sources:
        problem = verdict(label, source_answer(source, "f"))
        assert problem, f"{label} passed a wrong answer:\n{source}"
        assert any(
            word in problem for word in ("expected", "differ", "NaN", "raised", "integer")
        ), problem


def test_the_hard_coded_attention_scale_fails():
    hard = source_answer("def f(Q, K, V):\n    return torch.softmax(Q @ K.T / 4.0, -1) @ V\n", "f")
    assert "differ" in verdict("ex-ch03-attention", hard)


def test_results_that_lie_are_not_data():
    class Yes:
        def __eq__(self, other):
            return True

    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True

    class LyingList(list):
        def __iter__(self):
            return iter([1.0, 2.0])

    assert isinstance(decode(ENCODE(Yes())), Unsupported)
    assert isinstance(decode(ENCODE(torch.zeros(3).as_subclass(Liar))), Unsupported)
    assert decode(ENCODE(LyingList([5.0]))).type_name.endswith("LyingList")
    assert decode(ENCODE([Yes()]))[0].type_name.endswith("Yes")
    spec = SPECS["ex-ch03-causal"]
    case = spec.cases(np.random.default_rng(0))[0]
    for liar in (Yes(), torch.zeros(3).as_subclass(Liar)):
        assert "not plain data" in spec.compare(decode(ENCODE(liar)), expected(spec, case))
    both = decode(ENCODE((torch.ones(2, dtype=torch.float64), np.float32(1.5), {"a": [1, 2]})))
    assert both[0].dtype == np.float64 and both[1] == 1.5 and both[2] == {"a": [1, 2]}


# ---- reading answers before they run ------------------------------------------------------


def scan(label: str, source: str, names=("f",)):
    spec = SPECS[label]
    return honesty.scan_answer(
        source, list(names), spec.forbid, spec.chapter, spec.no_index, "the answer cell"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_books_solutions_read_as_honest(path):
    nb = nbformat.read(path, as_version=4)
    for exercise in layout.find_exercises(nb):
        for index in exercise.solution_cells:
            found = scan(exercise.label, nb.cells[index].source, exercise.answer_names)
            assert found == [], (exercise.label, found)


@pytest.mark.parametrize(
    ("label", "source", "kind"),
    [
        ("ex-ch03-softmax", "from llmcourse.attention import softmax as f\n", "package"),
        (
            "ex-ch03-softmax",
            "def f(x):\n    import llmcourse.attention as a\n    return a.softmax(x)",
            "package",
        ),
        ("ex-ch03-softmax", "def f(x):\n    return torch.softmax(x, -1)\n", "forbidden"),
        ("ex-ch03-softmax", "def f(x):\n    return x.softmax(-1)\n", "forbidden"),
        (
            "ex-ch03-softmax",
            "def f(x):\n    return getattr(torch, 'soft' + 'max')(x, -1)\n",
            "forbidden",
        ),
        ("ex-ch03-attention", "f = attention\n", "alias"),
        ("ex-ch03-attention", "def f(Q, K, V):\n    return attention(Q, K, V)\n", "forbidden"),
        (
            "ex-ch06-layer-norm",
            "def f(x, w, b, eps):\n    return F.layer_norm(x, (4,), w, b, eps)",
            "forbidden",
        ),
        (
            "ex-ch02-one-hot",
            "def f(ids, g, V):\n    W = torch.zeros(V, g.shape[-1], requires_grad=True)\n"
            "    (W[ids] * g).sum().backward()\n    return W.grad\n",
            "forbidden",
        ),
        ("ex-ch03-causal", "def f(T):\n    return torch.ones(T, T).tril(\n", "syntax error"),
        ("ex-ch03-causal", "def f(T):\n    exec('x = 1')\n    return T\n", "tampering"),
    ],
)
def test_copied_forbidden_and_broken_answers_are_named(label, source, kind):
    found = scan(label, source)
    assert kind in {f.kind for f in found}, found


@pytest.mark.parametrize(
    "source",
    [
        "import json\njson.dumps = lambda *a, **k: 'pass'",
        "import llmcourse.exercises as ex\nex.run_checks = lambda *a, **k: None",
        "from llmcourse.exercises import ch03\nch03.check_attention = print",
        "get_ipython().input_transformers_post.append(lambda lines: lines)",
        "import sys\nsys.settrace(lambda *a: None)",
        "import gc\nobjects = gc.get_objects()",
        "import torch\ntorch.Tensor.__eq__ = lambda a, b: True",
        "class T(torch.Tensor):\n    def __torch_function__(cls, *a):\n        return True",
        "import os\nos.write(3, b'x')",
        "import ctypes",
    ],
)
def test_tampering_in_any_cell_is_named(source):
    modules = honesty.imported_names([source, "import torch"])
    assert [f.kind for f in honesty.scan_cell(source, modules, "cell 7")] != []


def test_ordinary_scratch_cells_are_not_tampering():
    for source in (
        "x = torch.randn(3)\nprint(stable_softmax(x))",
        "!pip list",
        "%timeit 1",
        "import math\nvalues = [math.exp(i) for i in range(3)]",
        "model.config.n_embd = 64",
        "plt.rcParams['figure.dpi'] = 80",
    ):
        assert honesty.scan_cell(source, honesty.imported_names([source]), "cell") == [], source


def test_grading_refuses_without_a_sandbox(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sandbox, "bubblewrap", lambda: None)
    assert grade.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "REFUSING TO GRADE" in capsys.readouterr().err


# ---- a simulated class, graded in the sandbox ---------------------------------------------

SANDBOX = sandbox.bubblewrap()
needs_sandbox = pytest.mark.skipif(
    SANDBOX is None,
    reason=f"SKIPPED: the sandbox cannot run here ({sandbox.why_no_sandbox()}); "
    "the grading of real notebooks is not tested",
)
KEEP = (
    "cheat-",
    "cross",
    "correct0-",
    "correct1-",
    "wrong0-",
    "untouched-",
    "syntax-",
    "crash-",
    "endless-",
    "loud-",
    "scratch-",
    "swallow-",
    "garbage",
)


def run_grader(*args, timeout=900) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "llmcourse.teaching.grade", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def statuses(out: Path) -> dict[str, list[str]]:
    return {
        k: [e["status"] for e in r["exercises"]] + [r["status"]]
        for k, r in grade.load_results([out]).items()
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A simulated class (chapter 3, tiny notebooks), the book's chapter 4 and its student
    edition, graded once by the command line tool with two jobs."""
    base = tmp_path_factory.mktemp("class")
    folder = base / "submissions"
    expected = simulate.build_class(base / "all", ["03"], tiny=True)
    folder.mkdir()
    for name in expected:
        if name.startswith(KEEP) and (base / "all" / name).exists():
            (folder / name).parent.mkdir(exist_ok=True)
            shutil.copy(base / "all" / name, folder / name)
    expected = {k: v for k, v in expected.items() if (folder / k).exists()}
    full = base / "full"  # whole chapters, graded with more time
    (full / "book").mkdir(parents=True)
    shutil.copy(ROOT / "book" / FULL, full / "book" / FULL)
    build_student_edition([ROOT / "book" / FULL], full / "student-edition")
    start = time.monotonic()
    run_grader(folder, "--out", base / "out", "--jobs", 2, "--timeout", 60)
    seconds = time.monotonic() - start
    # The same command with one more folder grades only the new notebooks (and reports all).
    done = run_grader(folder, full, "--out", base / "out", "--jobs", 2)
    assert "grading 2 notebooks" in done.stderr
    return {
        "paths": [folder, full],
        "folder": folder,
        "full": full,
        "out": base / "out",
        "expected": expected,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "results": grade.load_results([base / "out"]),
        "seconds": seconds,
    }


def by_name(results) -> dict[str, dict]:
    return {
        f"{Path(r['submission']).parent.name}/{Path(r['submission']).name}": r
        for r in results.values()
    }


@needs_sandbox
def test_no_cheat_gets_credit_and_every_answer_gets_its_verdict(graded):
    problems = simulate.mismatches(graded["expected"], graded["results"])
    assert problems == [], "\n".join(problems)
    cheats = [k for k in graded["expected"] if k.startswith("cheat-")]
    assert len(cheats) >= 14
    results = by_name(graded["results"])
    assert results["cheat-json/03_self_attention.ipynb"]["status"] == "tampering"
    alias = results["cheat-alias/03_self_attention.ipynb"]["exercises"][1]
    assert alias["status"] == "not own work" and "another name" in alias["detail"]
    syntax = results["syntax-03/03_self_attention.ipynb"]["exercises"][0]
    assert syntax["status"] == "syntax error" and "line 1" in syntax["detail"]


@needs_sandbox
def test_a_notebook_cannot_change_another_or_the_teachers_files(graded):
    results = by_name(graded["results"])
    second = results["cross/04_b_second.ipynb"]
    assert second["status"] == "ran"
    assert {e["status"] for e in second["exercises"]} == {"not answered"}
    assert results["cheat-write-teacher/03_self_attention.ipynb"]["status"] == "ran"
    # The cheat tried to write its fake check into the package and a file next to the book.
    assert (
        "def check_causal_mask(f): pass"
        not in (ROOT / "llmcourse" / "exercises" / "ch03.py").read_text()
    )
    assert not (ROOT / "grading-canary.txt").exists()


@needs_sandbox
def test_the_book_scores_full_marks_and_the_student_edition_zero(graded):
    results = by_name(graded["results"])
    book = results[f"book/{FULL}"]
    exercises = len(layout.find_exercises(nbformat.read(ROOT / "book" / FULL, 4)))
    assert (
        book["status"] == "ran" and [e["status"] for e in book["exercises"]] == ["pass"] * exercises
    )
    student = results[f"student-edition/{FULL}"]
    assert student["chapter"] == FULL and student["status"] == "ran"
    assert {e["status"] for e in student["exercises"]} == {"not answered"}


@needs_sandbox
def test_broken_notebooks_keep_the_answers_before_the_break(graded):
    results = by_name(graded["results"])
    assert results["crash-03/03_self_attention.ipynb"]["status"] == "crashed"
    assert results["endless-03/03_self_attention.ipynb"]["status"] == "timeout"
    assert results["loud-03/03_self_attention.ipynb"]["status"] == "output limit"
    assert results["swallow-03/03_self_attention.ipynb"]["status"] == "timeout"
    assert results["garbage/04_multi_head_attention.ipynb"]["status"] == "unreadable"
    for name in ("crash-03", "endless-03", "loud-03"):
        rows = results[f"{name}/03_self_attention.ipynb"]["exercises"]
        assert rows[0]["status"] == "pass" and rows[1]["status"] != "pass", name


@needs_sandbox
def test_class_csv_and_feedback(graded):
    out = graded["out"]
    rows = list(csv.DictReader((out / "class.csv").open()))
    students = {r["student"] for r in rows}
    assert len(rows) == len(students) and {"book", "cross", "cheat-json"} <= students
    book = next(r for r in rows if r["student"] == "book")
    # chapters 3 and 4 graded; the book's chapter 4 passes all of its exercises
    count = {p.name[:2]: len(layout.find_exercises(nbformat.read(p, 4))) for p in CHAPTERS}
    assert book["total"] == str(count["04"])
    assert book["out_of"] == str(count["03"] + count["04"])
    wrong = (out / "feedback" / "wrong0-03.md").read_text()
    assert "ex-ch03-attention" in wrong and "Hint:" in wrong and "hidden test case" in wrong
    assert "Total:" in graded["stdout"]


@needs_sandbox
def test_grading_again_resumes(graded, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(graded["out"], out)
    again = run_grader(*graded["paths"], "--out", out, "--jobs", 2)
    assert "grading 0 notebooks" in again.stderr
    assert (out / "class.csv").read_text() == (graded["out"] / "class.csv").read_text()
    removed = sorted((out / "results").glob("correct0*.json"))[:1]
    removed[0].unlink()
    again = run_grader(*graded["paths"], "--out", out, "--timeout", 60, "--regrade", "untouched-03")
    assert "grading 2 notebooks" in again.stderr
    assert statuses(out) == statuses(graded["out"])


@needs_sandbox
def test_an_interrupted_run_resumes_where_it_stopped(graded, tmp_path):
    folder = tmp_path / "few"
    for name in ("correct0-03", "wrong0-03", "untouched-03", "scratch-03"):
        shutil.copytree(graded["folder"] / name, folder / name)
    out = tmp_path / "out"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmcourse.teaching.grade",
            str(folder),
            "--out",
            str(out),
            "--seed-file",
            str(graded["out"] / "seed"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    import os

    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    written = len(list((out / "results").glob("*.json")))
    assert 1 <= written < 4 and not list((out / "results").glob(".*.tmp"))
    again = run_grader(folder, "--out", out, "--seed-file", graded["out"] / "seed")
    assert f"grading {4 - written} notebooks ({written} already graded)" in again.stderr
    mine = statuses(out)
    assert len(mine) == 4 and all(s[-1] == "ran" for s in mine.values())


@needs_sandbox
def test_shards_merged_equal_one_run(graded, tmp_path):
    folder = tmp_path / "class"
    for name in ("correct1-03", "wrong0-03", "cheat-forbidden", "untouched-03"):
        shutil.copytree(graded["folder"] / name, folder / name)
    shutil.copytree(graded["full"] / "book", folder / "book")
    seed = graded["out"] / "seed"
    run_grader(folder, "--out", tmp_path / "one", "--seed-file", seed, "--jobs", 2)
    for index in (0, 1):
        run_grader(
            folder,
            "--out",
            tmp_path / f"shard-{index}",
            "--seed-file",
            seed,
            "--shard",
            f"{index}/2",
        )
    shards = [tmp_path / "shard-0", tmp_path / "shard-1"]
    for _ in range(2):  # merging twice changes nothing
        run_grader("merge", *shards, "--out", tmp_path / "merged")
    assert statuses(tmp_path / "merged") == statuses(tmp_path / "one")
    assert (tmp_path / "merged" / "class.csv").read_text() == (
        tmp_path / "one" / "class.csv"
    ).read_text()
    counts = [len(list((s / "results").glob("*.json"))) for s in shards]
    assert sorted(counts) == [2, 3]
    assert json.loads((tmp_path / "merged" / "results").glob("*.json").__next__().read_text())[
        "seed_id"
    ]


# ---- the self-study checks are tested against wrong answers (grading no longer uses them) -

RECORDER = r"""
import importlib, json, pkgutil, sys
import pytest
import llmcourse.exercises as ex

seen = {}  # "chNN.check_x" -> {"rejected": n, "not_answered": n}
current = {}


def record(module, outcome):
    frame = sys._getframe(2)
    while frame and not frame.f_code.co_name.startswith("check_"):
        frame = frame.f_back
    if frame is not None:
        counts = seen.setdefault(f"{module}.{frame.f_code.co_name}", {})
        counts[outcome] = counts.get(outcome, 0) + 1


def wrap(module, original):
    def run_checks(exercise, answer, checks):
        try:
            return original(exercise, answer, checks)
        except ex.NotYetAnswered:
            record(module, "not_answered")
            raise
        except ex.ExerciseError:
            record(module, "rejected")
            raise
    return run_checks


for info in pkgutil.iter_modules(ex.__path__):
    if info.name.startswith("ch"):
        module = importlib.import_module(f"llmcourse.exercises.{info.name}")
        if hasattr(module, "run_checks"):
            module.run_checks = wrap(info.name, module.run_checks)
code = pytest.main(sys.argv[2:] + ["-q", "-p", "no:cacheprovider", "-x", "--no-header"])
json.dump({"exit": int(code), "seen": seen}, open(sys.argv[1], "w"))
"""


def every_check() -> dict[str, list[str]]:
    """Module name (ch04) -> the check_* functions it defines."""
    import importlib
    import inspect
    import pkgutil

    import llmcourse.exercises as ex

    found = {}
    for info in sorted(pkgutil.iter_modules(ex.__path__), key=lambda i: i.name):
        if info.name.startswith("ch"):
            module = importlib.import_module(f"llmcourse.exercises.{info.name}")
            found[info.name] = [
                name
                for name, f in inspect.getmembers(module, inspect.isfunction)
                if name.startswith("check_") and f.__module__ == module.__name__
            ]
    return found


def test_every_check_is_tested_against_two_wrong_answers_and_none(tmp_path):
    """Run the tests/test_exercises_chNN.py files, counting what each check rejected."""
    checks = every_check()
    missing_files = [
        f"tests/test_exercises_{m}.py"
        for m in checks
        if not (ROOT / "tests" / f"test_exercises_{m}.py").exists()
    ]
    assert not missing_files, f"checks without tests: {missing_files}"
    script, out = tmp_path / "recorder.py", tmp_path / "seen.json"
    script.write_text(RECORDER)
    files = [str(ROOT / "tests" / f"test_exercises_{m}.py") for m in checks]
    done = subprocess.run(
        [sys.executable, str(script), str(out), *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(out.read_text())
    assert report["exit"] == 0, done.stdout[-3000:]
    seen = report["seen"]
    gaps = []
    for module, names in checks.items():
        for name in names:
            counts = seen.get(f"{module}.{name}", {})
            if counts.get("rejected", 0) < 2:
                gaps.append(f"{module}.{name}: {counts.get('rejected', 0)} wrong answers rejected")
            if counts.get("not_answered", 0) < 1:
                gaps.append(f"{module}.{name}: never shown an unanswered exercise (None)")
    assert not gaps, "checks whose tests need more wrong answers:\n" + "\n".join(gaps)
