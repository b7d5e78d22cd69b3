"""A simulated class, for trying the grader as a teacher would.

Usage: llmcourse-class OUT [--chapters 3 05] [--copies 1]

Writes OUT/STUDENT/NN_name.ipynb, made from the student edition of each chapter: students
who answer correctly (the book's solutions, and idiomatic or float32/float64 variants),
wrongly (plausible slips), not at all, brokenly (a syntax error, a crash, an endless loop,
endless output, a file that is not a notebook), students whose later scratch cells reuse an
answer's name or swallow the interrupt, and cheats: patching the checks or ``run_checks``,
``json.dumps``, an IPython input transformer, results that lie about equality (``__eq__``,
a ``Tensor`` subclass with ``__torch_function__``), ``exec`` of the book's solutions found
through ``llmcourse.__file__``, the package's function, the chapter's function under
another name, a call the prompt rules out (directly, through ``getattr`` or through an
alias made in another cell), writing into the teacher's files, and a notebook that writes a
fake ``./llmcourse/`` next to itself to change the next notebook's result. OUT/expected.json
says what each notebook must score: ``{"student/file": {"label": "pass" | "no credit"}}``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from llmcourse.teaching.layout import chapters, find_exercises
from llmcourse.teaching.student_edition import student_notebook

# label -> (correct variants, wrong variants); {name} is the answer's name from the layout.
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "ex-ch01-perplexity": (
        [
            "def {name}(documents):\n    total = sum(float(x) for d in documents for x in d)\n"
            "    return float(np.exp(-total / sum(len(d) for d in documents)))\n",
        ],
        [
            "def {name}(documents):\n"
            "    return float(np.mean([np.exp(-np.mean(d)) for d in documents]))\n",
            "def {name}(documents):\n"
            "    return float(np.exp(-np.mean([np.mean(d) for d in documents])))\n",
        ],
    ),
    "ex-ch01-kneser-ney": (
        [
            "def {name}(counts, d):\n    c = counts.float()\n    seen = (c > 0).float()\n"
            "    p = seen.sum(0) / seen.sum()\n    r = c.sum(1, keepdim=True)\n"
            "    t = (c - d).clamp(min=0) / r.clamp(min=1)"
            " + d * seen.sum(1, keepdim=True) / r.clamp(min=1) * p\n"
            "    return torch.where(r > 0, t, p.expand_as(t))\n",
        ],
        [
            "def {name}(counts, d):\n    seen = (counts > 0).to(counts.dtype)\n"
            "    p = counts.sum(0) / counts.sum()\n    r = counts.sum(1, keepdim=True)\n"
            "    t = (counts - d).clamp(min=0) / r.clamp(min=1)"
            " + d * seen.sum(1, keepdim=True) / r.clamp(min=1) * p\n"
            "    return torch.where(r > 0, t, p.expand_as(t))\n",
            "def {name}(counts, d):\n    seen = (counts > 0).to(counts.dtype)\n"
            "    p = seen.sum(0) / seen.sum()\n    r = counts.sum(1, keepdim=True).clamp(min=1)\n"
            "    return (counts - d) / r + d * seen.sum(1, keepdim=True) / r * p\n",
        ],
    ),
    "ex-ch02-count-pairs": (
        [
            "def {name}(word_counts, rank):\n    c = {}\n    for w, n in word_counts.items():\n"
            "        for i in range(len(w) - 1):\n"
            "            c[w[i], w[i + 1]] = c.get((w[i], w[i + 1]), 0) + n\n"
            "    return sorted(c, key=lambda p: (-c[p], rank[p[0]], rank[p[1]]))[0]\n",
        ],
        [
            "def {name}(word_counts, rank):\n    c = dict()\n    for w in word_counts:\n"
            "        for p in zip(w, w[1:]):\n            c[p] = c.get(p, 0) + 1\n"
            "    return min(c, key=lambda p: (-c[p], rank[p[0]], rank[p[1]]))\n",
            "def {name}(word_counts, rank):\n    c = dict()\n    for w, n in word_counts.items():\n"
            "        for p in zip(w, w[1:]):\n            c[p] = c.get(p, 0) + n\n"
            "    return max(c, key=lambda p: (c[p], rank[p[0]], rank[p[1]]))\n",
        ],
    ),
    "ex-ch02-one-hot": (
        [
            "def {name}(ids, grad_output, num_embeddings):\n    D = grad_output.shape[-1]\n"
            "    out = torch.zeros(num_embeddings, D, dtype=grad_output.dtype)\n"
            "    return out.index_add_(0, ids.reshape(-1), grad_output.reshape(-1, D))\n",
        ],
        [
            "def {name}(ids, grad_output, num_embeddings):\n    D = grad_output.shape[-1]\n"
            "    out = torch.zeros(num_embeddings, D, dtype=grad_output.dtype)\n"
            "    out[ids.reshape(-1)] = grad_output.reshape(-1, D)\n    return out\n",
            "def {name}(ids, grad_output, num_embeddings):\n    D = grad_output.shape[-1]\n"
            "    out = torch.zeros(int(ids.max()) + 1, D, dtype=grad_output.dtype)\n"
            "    return out.index_add_(0, ids.reshape(-1), grad_output.reshape(-1, D))\n",
        ],
    ),
    "ex-ch02-decode": (
        [],  # the book's own solution (bytes_to_unicode comes from the chapter)
        [
            "def {name}(tokens):\n"
            "    return ''.join(tokens).replace('Ġ', ' ').replace('Ċ', '\\n')\n",
            "def {name}(tokens):\n    back = dict((c, b) for b, c in bytes_to_unicode().items())\n"
            "    return ''.join(bytes(back[c] for c in t).decode(errors='replace') "
            "for t in tokens)\n",
        ],
    ),
    "ex-ch02-unseen-word": (
        [],  # the book's own solution (bytes_to_unicode comes from the chapter)
        [
            "def {name}(word, merges, sizes):\n    out = []\n    for m in sizes:\n"
            "        s = list(word)\n        for a, b in merges[:m]:\n            i = 0\n"
            "            while i < len(s) - 1:\n                if (s[i], s[i + 1]) == (a, b):\n"
            "                    s[i : i + 2] = [a + b]\n                i += 1\n"
            "        out.append(len(s))\n    return out\n",
            "def {name}(word, merges, sizes):\n"
            "    return [len(word.encode()) - m for m in sizes]\n",
        ],
    ),
    "ex-ch03-softmax": (
        [
            "def {name}(x):\n    z = x - x.max(dim=-1, keepdim=True).values\n"
            "    return z.exp() / z.exp().sum(-1, keepdim=True)\n",
            "def {name}(x):\n    x = x.double()\n    m = x.amax(-1, keepdim=True)\n"
            "    return torch.exp(x - m - torch.logsumexp(x - m, -1, keepdim=True))\n",
        ],
        [
            "def {name}(x):\n    return x.exp() / x.exp().sum(dim=-1, keepdim=True)\n",
            "def {name}(x):\n    e = (x - x.max()).exp()\n"
            "    return e / e.sum(dim=0, keepdim=True)\n",
        ],
    ),
    "ex-ch03-attention": (
        [
            "def {name}(Q, K, V):\n    L, S = Q.shape[-2], K.shape[-2]\n"
            "    keep = torch.arange(S)[None, :] <= torch.arange(S - L, S)[:, None]\n"
            "    s = Q @ K.transpose(-2, -1) / K.size(-1) ** 0.5\n"
            "    s = torch.where(keep, s, float('-inf'))\n"
            "    w = (s - s.amax(-1, keepdim=True)).exp()\n"
            "    return (w / w.sum(-1, keepdim=True)) @ V\n",
            "def {name}(Q, K, V):\n    Q, K, V = Q.double(), K.double(), V.double()\n"
            "    L, S = len(Q), len(K)\n"
            "    m = torch.ones(S, S, dtype=torch.bool).tril()[S - L:]\n"
            "    s = (Q @ K.T / math.sqrt(K.shape[1])).masked_fill(~m, -math.inf)\n"
            "    return torch.softmax(s, dim=1) @ V\n",
        ],
        [
            "def {name}(Q, K, V):\n    L, S = Q.shape[0], K.shape[0]\n"
            "    m = torch.ones(L, S, dtype=torch.bool).tril()\n"
            "    s = (Q @ K.T / math.sqrt(K.shape[-1])).masked_fill(~m, float('-inf'))\n"
            "    return torch.softmax(s, dim=-1) @ V\n",
            "def {name}(Q, K, V):\n    return torch.softmax(Q @ K.T / math.sqrt(K.shape[-1]), "
            "dim=-1) @ V\n",
        ],
    ),
    "ex-ch03-causal": (
        [
            "def {name}(T):\n    return torch.arange(T)[:, None] >= torch.arange(T)[None, :]\n",
            "def {name}(T):\n    return ~torch.ones(T, T, dtype=torch.bool).triu(1)\n",
        ],
        [
            "def {name}(T):\n    return torch.ones(T, T, dtype=torch.bool).triu()\n",
            "def {name}(T):\n    return torch.ones(T, T).tril()\n",
        ],
    ),
    "ex-ch03-shuffle": (
        [
            "def {name}(X, Wq, Wk, Wv, perm, causal):\n"
            "    def run(X):\n        X = X.double()\n"
            "        q, k, v = ((X @ W.double())[None] for W in (Wq, Wk, Wv))\n"
            "        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)[0]\n"
            "    return torch.max(torch.abs(run(X[perm]) - run(X)[perm]))\n",
        ],
        [
            "def {name}(X, Wq, Wk, Wv, perm, causal):\n"
            "    def run(X):\n        q, k, v = ((X @ W)[None] for W in (Wq, Wk, Wv))\n"
            "        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)[0]\n"
            "    return (run(X[perm]) - run(X)).abs().max().item()\n",
            "def {name}(X, Wq, Wk, Wv, perm, causal):\n"
            "    def run(X):\n        q, k, v = ((X @ W)[None] for W in (Wq, Wk, Wv))\n"
            "        return F.scaled_dot_product_attention(q, k, v)[0]\n"
            "    return (run(X[perm]) - run(X)[perm]).abs().max().item()\n",
        ],
    ),
    "ex-ch03-padding": (
        [
            "def {name}(Q, K, V, lengths):\n"
            "    keep = torch.arange(K.shape[1])[None, None, :] < lengths[:, None, None]\n"
            "    return F.scaled_dot_product_attention(Q.float(), K.float(), V.float(), "
            "attn_mask=keep)\n",
            "def {name}(Q, K, V, lengths):\n"
            "    out = torch.zeros(*Q.shape[:2], V.shape[-1], dtype=torch.float64)\n"
            "    for b, n in enumerate(lengths.tolist()):\n"
            "        q, k, v = Q[b, :n].double(), K[b, :n].double(), V[b, :n].double()\n"
            "        out[b, :n] = torch.softmax(q @ k.T / k.shape[-1] ** 0.5, -1) @ v\n"
            "    return out\n",
        ],
        [
            "def {name}(Q, K, V, lengths):\n"
            "    keep = torch.arange(K.shape[1])[None, None, :] < lengths[:, None, None]\n"
            "    s = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])\n"
            "    return torch.softmax(s * keep, dim=-1) @ V\n",
            "def {name}(Q, K, V, lengths):\n"
            "    keep = torch.arange(K.shape[1])[None, None, :] < lengths[:, None, None]\n"
            "    s = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])\n"
            "    return torch.softmax(s, dim=-1) * keep @ V\n",
        ],
    ),
    "ex-ch04-split": (
        [
            "def {name}(x, num_heads):\n"
            "    return x.reshape(*x.shape[:-1], num_heads, -1).transpose(-3, -2)\n",
            "def {name}(x, num_heads):\n"
            "    return x.double().unflatten(-1, (num_heads, -1)).movedim(-2, -3)\n",
        ],
        [
            "def {name}(x, num_heads):\n    B, T, C = x.shape\n"
            "    return x.view(B, T, num_heads, C // num_heads).transpose(1, 2)\n",
            "def {name}(x, num_heads):\n"
            "    return x.reshape(*x.shape[:-2], num_heads, x.shape[-2], -1)\n",
        ],
    ),
    "ex-ch04-params": (
        [
            "def {name}(d_model, num_heads, bias=True):\n"
            "    return 4 * (d_model * d_model + (d_model if bias else 0))\n"
        ],
        [
            "def {name}(d_model, num_heads, bias=True):\n    return 4 * d_model * d_model\n",
            "def {name}(d_model, num_heads, bias=True):\n"
            "    return 3 * d_model * d_model + 3 * d_model\n",
        ],
    ),
    "ex-ch04-flops": (
        [
            "def {name}(T, d_model, num_heads):\n"
            "    return 8 * T * d_model ** 2 + 4 * T ** 2 * d_model\n"
        ],
        [
            "def {name}(T, d_model, num_heads):\n    return 8 * T * d_model ** 2\n",
            "def {name}(T, d_model, num_heads):\n"
            "    return 4 * T * d_model ** 2 + 4 * T ** 2 * d_model\n",
        ],
    ),
    "ex-ch04-single-heads": (
        [
            "def {name}(x, s, h):\n    d = x.shape[-1] // h\n    heads = []\n"
            "    for i in range(h):\n        r = slice(i * d, (i + 1) * d)\n"
            "        q, k, v = (x @ s[n + '_proj.weight'][r].T + s[n + '_proj.bias'][r]"
            " for n in 'qkv')\n"
            "        w = torch.softmax(q @ k.transpose(-2, -1) / d ** 0.5, dim=-1)\n"
            "        heads.append(w @ v)\n"
            "    return torch.cat(heads, -1) @ s['out_proj.weight'].T + s['out_proj.bias']\n"
        ],
        [
            "def {name}(x, s, h):\n    d = x.shape[-1] // h\n    heads = []\n"
            "    for i in range(h):\n        r = slice(i, None, h)\n"
            "        q, k, v = (x @ s[n + '_proj.weight'][r].T + s[n + '_proj.bias'][r]"
            " for n in 'qkv')\n"
            "        w = torch.softmax(q @ k.transpose(-2, -1) / d ** 0.5, dim=-1)\n"
            "        heads.append(w @ v)\n"
            "    return torch.cat(heads, -1) @ s['out_proj.weight'].T + s['out_proj.bias']\n",
            "def {name}(x, s, h):\n    d = x.shape[-1] // h\n    heads = []\n"
            "    for i in range(h):\n        r = slice(i * d, (i + 1) * d)\n"
            "        q, k, v = (x @ s[n + '_proj.weight'][r].T + s[n + '_proj.bias'][r]"
            " for n in 'qkv')\n"
            "        w = torch.softmax(q @ k.transpose(-2, -1) / d ** 0.5, dim=-1)\n"
            "        heads.append(w @ v)\n"
            "    return torch.cat(heads, -1)\n",
        ],
    ),
    "ex-ch08-train-steps": (
        [
            "def {name}(model, optimizer, batches, lrs, max_norm):\n    model.train()\n"
            "    out = []\n    for i, (x, y) in enumerate(batches):\n"
            "        for g in optimizer.param_groups:\n            g['lr'] = lrs[i]\n"
            "        optimizer.zero_grad()\n        logits = model(x)\n"
            "        loss = F.cross_entropy(logits.transpose(1, 2), y)\n        loss.backward()\n"
            "        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
            "        optimizer.step()\n        out.append(float(loss.detach()))\n"
            "    model.eval()\n    return out\n",
        ],
        [
            "def {name}(model, optimizer, batches, lrs, max_norm):\n    model.train()\n"
            "    out = []\n    for (x, y), lr in zip(batches, lrs):\n"
            "        for g in optimizer.param_groups:\n            g['lr'] = lr\n"
            "        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())\n"
            "        loss.backward()\n"
            "        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
            "        optimizer.step()\n        out.append(loss.item())\n"
            "    model.eval()\n    return out\n",
            "def {name}(model, optimizer, batches, lrs, max_norm):\n    model.train()\n"
            "    out = []\n    for (x, y), lr in zip(batches, lrs):\n"
            "        for g in optimizer.param_groups:\n            g['lr'] = lr\n"
            "        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())\n"
            "        optimizer.zero_grad()\n        loss.backward()\n"
            "        optimizer.step()\n        out.append(loss.item())\n"
            "    model.eval()\n    return out\n",
        ],
    ),
    "ex-ch08-checkpoint": (
        [
            "def {name}(model, optimizer, generator, step):\n    import copy\n"
            "    return dict(\n        model=copy.deepcopy(model.state_dict()),\n"
            "        optimizer=copy.deepcopy(optimizer.state_dict()),\n        step=step,\n"
            "        batch_rng=generator.get_state(),\n        torch_rng=torch.get_rng_state(),\n"
            "    )\n",
        ],
        [
            "def {name}(model, optimizer, generator, step):\n"
            "    return dict(\n        model=model.state_dict(),\n"
            "        optimizer=optimizer.state_dict(),\n        step=step,\n"
            "        batch_rng=generator.get_state(),\n        torch_rng=torch.get_rng_state(),\n"
            "    )\n",
            "def {name}(model, optimizer, generator, step):\n    import copy\n"
            "    return dict(\n        model=copy.deepcopy(model.state_dict()),\n"
            "        optimizer=copy.deepcopy(optimizer.state_dict()),\n        step=step,\n"
            "    )\n",
        ],
    ),
    "ex-ch04-blend": (
        [
            "def {name}(values):\n    v = values.shape[0]\n"
            "    flat = ((values[:, None] + values[None]) / 2).reshape(v * v, -1).double()\n"
            "    groups = []\n"
            "    for row in flat:\n"
            "        if not any((row - g).abs().max() <= 1e-6 for g in groups):\n"
            "            groups.append(row)\n"
            "    return len(groups) / v ** 2\n",
        ],
        [
            "def {name}(values):\n    v = values.shape[0]\n    return (v + 1) / (2 * v)\n",
            "def {name}(values):\n    v = values.shape[0]\n"
            "    flat = ((values[:, None] + values[None]) / 2).reshape(v * v, -1)\n"
            "    return torch.unique(flat, dim=0).shape[0] / (v * (v + 1) / 2)\n",
        ],
    ),
    "ex-ch05-shuffle": (
        [
            "def {name}(X, Wq, Wk, Wv, perm):\n    T, C = X.shape\n"
            "    i = torch.arange(0, C, 2, dtype=torch.float64)\n"
            "    a = torch.arange(T, dtype=torch.float64)[:, None] / 10000 ** (i / C)\n"
            "    pe = torch.stack([a.sin(), a.cos()], -1).reshape(T, C)\n"
            "    def run(Z):\n        Z = Z.double() + pe\n"
            "        q, k, v = (Z @ W.double() for W in (Wq, Wk, Wv))\n"
            "        return torch.softmax(q @ k.T / k.shape[-1] ** 0.5, -1) @ v\n"
            "    return torch.max(torch.abs(run(X[perm]) - run(X)[perm]))\n",
        ],
        [
            "def {name}(X, Wq, Wk, Wv, perm):\n    T, C = X.shape\n"
            "    i = torch.arange(0, C, 2, dtype=torch.float64)\n"
            "    a = torch.arange(T, dtype=torch.float64)[:, None] / 10000 ** (i / C)\n"
            "    pe = torch.stack([a.sin(), a.cos()], -1).reshape(T, C)\n"
            "    Z = X + pe.to(X.dtype)\n"
            "    def run(Z):\n        q, k, v = (Z @ W for W in (Wq, Wk, Wv))\n"
            "        return torch.softmax(q @ k.T / k.shape[-1] ** 0.5, -1) @ v\n"
            "    return (run(Z[perm]) - run(Z)[perm]).abs().max().item()\n",
            "def {name}(X, Wq, Wk, Wv, perm):\n    T, C = X.shape\n"
            "    i = torch.arange(0, C, 2, dtype=torch.float64)\n"
            "    a = torch.arange(T, dtype=torch.float64)[:, None] / 10000 ** (i / C)\n"
            "    pe = torch.stack([a.sin(), a.cos()], -1).reshape(T, C)\n"
            "    pe = pe.to(X.dtype)\n"
            "    def run(Z):\n        q, k, v = (Z @ W for W in (Wq, Wk, Wv))\n"
            "        return torch.softmax(q @ k.T / k.shape[-1] ** 0.5, -1) @ v\n"
            "    return (run(X[perm] + pe) - run(X + pe)).abs().max().item()\n",
        ],
    ),
    "ex-ch05-rope-distance": (
        [
            "def {name}(q, k, max_distance, start=100):\n    D = q.shape[-1]\n"
            "    t = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)\n"
            "    def turn(x, p):\n        a, b = x[: D // 2].double(), x[D // 2 :].double()\n"
            "        c, s = (p * t).cos(), (p * t).sin()\n"
            "        return torch.cat([a * c - b * s, a * s + b * c])\n"
            "    key = turn(k, start)\n"
            "    return torch.stack([turn(q, start + d) @ key for d in range(max_distance + 1)])\n",
        ],
        [
            "def {name}(q, k, max_distance, start=100):\n"
            "    return torch.full((max_distance + 1,), float(q @ k))\n",
            "def {name}(q, k, max_distance, start=100):\n    D = q.shape[-1]\n"
            "    t = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)\n"
            "    def turn(x, p):\n        a, b = x[: D // 2].double(), x[D // 2 :].double()\n"
            "        c, s = (p * t).cos(), (p * t).sin()\n"
            "        return torch.cat([a * c - b * s, a * s + b * c])\n"
            "    key = turn(k, start)\n"
            "    return torch.stack([turn(q, start - d) @ key for d in range(max_distance + 1)])\n",
        ],
    ),
    "ex-ch05-rope-complex": (
        [
            "def {name}(x, pos):\n    D = x.shape[-1]\n"
            "    t = 10000 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)\n"
            "    z = torch.complex(x[: D // 2].double(), x[D // 2 :].double())\n"
            "    z = z * torch.exp(1j * pos * t)\n"
            "    return torch.cat([z.real, z.imag]).to(x.dtype)\n",
            "def {name}(x, pos):\n    h = x.shape[-1] // 2\n"
            "    t = 1.0 / 10000 ** (torch.arange(h, dtype=x.dtype) * 2 / (2 * h))\n"
            "    z = torch.view_as_complex(torch.stack([x[:h], x[h:]], -1).contiguous())\n"
            "    z = z * torch.polar(torch.ones_like(t), pos * t)\n"
            "    return torch.view_as_real(z).T.reshape(-1)\n",
        ],
        [
            "def {name}(x, pos):\n    D = x.shape[-1]\n"
            "    t = 10000 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)\n"
            "    z = torch.complex(x[: D // 2].double(), x[D // 2 :].double())\n"
            "    z = z * torch.exp(-1j * pos * t)\n"
            "    return torch.cat([z.real, z.imag]).to(x.dtype)\n",
            "def {name}(x, pos):\n    D = x.shape[-1]\n"
            "    t = 10000 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)\n"
            "    z = torch.view_as_complex(x.double().reshape(-1, 2).contiguous())\n"
            "    z = z * torch.exp(1j * pos * t)\n"
            "    return torch.view_as_real(z).reshape(-1).to(x.dtype)\n",
        ],
    ),
    "ex-ch06-layer-norm": (
        [
            "def {name}(x, weight, bias, eps):\n    d = tuple(range(-weight.dim(), 0))\n"
            "    m = x.mean(d, keepdim=True)\n    v = ((x - m) ** 2).mean(d, keepdim=True)\n"
            "    return (x - m) / torch.sqrt(v + eps) * weight + bias\n",
            "def {name}(x, weight, bias, eps):\n    x = x.double().flatten(-weight.dim())\n"
            "    y = (x - x.mean(-1, keepdim=True)) * torch.rsqrt("
            "x.var(-1, correction=0, keepdim=True) + eps)\n"
            "    return y.view(*x.shape[:-1], *weight.shape) * weight.double() + bias.double()\n",
        ],
        [
            "def {name}(x, weight, bias, eps):\n    m = x.mean(-1, keepdim=True)\n"
            "    v = ((x - m) ** 2).mean(-1, keepdim=True)\n"
            "    return (x - m) / torch.sqrt(v + eps) * weight + bias\n",
            "def {name}(x, weight, bias, eps):\n    d = tuple(range(-weight.dim(), 0))\n"
            "    m = x.mean(d, keepdim=True)\n"
            "    return (x - m) / (x.std(d, keepdim=True) + eps) * weight + bias\n",
        ],
    ),
    "ex-ch06-layer-norm-effect": (
        [
            "def {name}(change):\n    if change in ('add 3', 'times 10'):\n"
            "        return 'same'\n"
            "    return dict(zip(['times -1', 'times 0.001', 'add 1 to one feature'], "
            "['negated', 'smaller', 'changed']))[change]\n",
            "def {name}(change):\n    if change == 'times -1':\n        return 'Negated'\n"
            "    if change == 'times 0.001':\n        return 'smaller'\n"
            "    return 'changed' if 'feature' in change else 'same'\n",
        ],
        [
            "def {name}(change):\n    if change == 'times -1':\n        return 'negated'\n"
            "    return 'changed' if 'feature' in change else 'same'\n",
            "def {name}(change):\n    return 'same' if change.startswith('times') else 'changed'\n",
        ],
    ),
    "ex-ch06-pre-norm": (
        [
            "def {name}(x, attn, ffn, norm1, norm2):\n    x = x + attn(norm1(x))\n"
            "    return x + ffn(norm2(x))\n",
            "def {name}(x, attn, ffn, norm1, norm2):\n    x = x.double()\n"
            "    for sub, norm in ((attn, norm1), (ffn, norm2)):\n        x = x + sub(norm(x))\n"
            "    return x\n",
        ],
        [
            "def {name}(x, attn, ffn, norm1, norm2):\n"
            "    return x + attn(norm1(x)) + ffn(norm2(x))\n",
            "def {name}(x, attn, ffn, norm1, norm2):\n    x = x + attn(norm2(x))\n"
            "    return x + ffn(norm1(x))\n",
        ],
    ),
    "ex-ch06-stream-growth": (
        [
            "def {name}(n_blocks, write_ratio):\n    return (1 + write_ratio) ** (n_blocks / 2)\n",
            "def {name}(n_blocks, write_ratio):\n    v = torch.tensor(1.0)\n"
            "    for _ in range(n_blocks):\n        v = v + write_ratio * v\n"
            "    return v.sqrt()\n",
        ],
        [
            "def {name}(n_blocks, write_ratio):\n    return (1 + write_ratio) ** n_blocks\n",
            "def {name}(n_blocks, write_ratio):\n"
            "    return math.sqrt(1 + n_blocks * write_ratio)\n",
        ],
    ),
    "ex-ch07-leak": (
        [
            "def {name}(x, W_qkv, W_out):\n    T, C = x.shape[-2:]\n"
            "    q, k, v = (x @ W_qkv).split(C, dim=-1)\n"
            "    s = q @ k.transpose(-2, -1) / C**0.5\n"
            "    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))\n"
            "    return torch.softmax(s, dim=-1) @ v @ W_out\n",
            "def {name}(x, W_qkv, W_out):\n    C = x.shape[-1]\n"
            "    q, k, v = (x.double() @ W_qkv.double()).split(C, dim=-1)\n"
            "    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)\n"
            "    return out @ W_out.double()\n",
        ],
        [
            "def {name}(x, W_qkv, W_out):\n    T, C = x.shape[-2:]\n"
            "    q, k, v = (x @ W_qkv).split(C, dim=-1)\n"
            "    s = q @ k.transpose(-2, -1) / C**0.5\n"
            "    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))\n"
            "    return torch.softmax(s, dim=-2) @ v @ W_out\n",
            "def {name}(x, W_qkv, W_out):\n    T, C = x.shape[-2:]\n"
            "    q, k, v = (x @ W_qkv).split(C, dim=-1)\n"
            "    s = q @ k.transpose(-2, -1) / C**0.5\n"
            "    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).tril(-1), float('-inf'))\n"
            "    return torch.softmax(s, dim=-1) @ v @ W_out\n",
        ],
    ),
    "ex-ch09-repetition-penalty": (
        [
            "def {name}(logits, input_ids, penalty):\n    out = logits.double().clone()\n"
            "    for row, ids in zip(out, input_ids):\n"
            "        seen = torch.unique(ids)\n        z = row[seen]\n"
            "        row[seen] = torch.where(z > 0, z / penalty, z * penalty)\n"
            "    return out\n",
        ],
        [
            "def {name}(logits, input_ids, penalty):\n"
            "    return logits.scatter(1, input_ids, logits.gather(1, input_ids) / penalty)\n",
            "def {name}(logits, input_ids, penalty):\n    out = logits.clone()\n"
            "    for b in range(input_ids.shape[0]):\n"
            "        for t in input_ids[b].tolist():\n"
            "            z = out[b, t]\n"
            "            out[b, t] = z / penalty if z > 0 else z * penalty\n"
            "    return out\n",
        ],
    ),
    "ex-ch09-cached-step": (
        [
            "def {name}(q, k, v, K, V):\n    K, V = torch.cat((K, k), -2), torch.cat((V, v), -2)\n"
            "    w = torch.softmax(q.double() @ K.double().mT / math.sqrt(q.shape[-1]), -1)\n"
            "    return w @ V.double(), K, V\n",
        ],
        [
            "def {name}(q, k, v, K, V):\n"
            "    w = torch.softmax(q @ K.transpose(-2, -1) / q.shape[-1] ** 0.5, -1)\n"
            "    K, V = torch.cat([K, k], 2), torch.cat([V, v], 2)\n"
            "    return w @ V[:, :, :-1], K, V\n",
            "def {name}(q, k, v, K, V):\n    K, V = torch.cat([K, k], 2), torch.cat([V, v], 2)\n"
            "    return torch.softmax(q @ K.transpose(-2, -1), -1) @ V, K, V\n",
        ],
    ),
    "ex-ch10-rag-budget": (
        [
            "def {name}(question, passages, max_words):\n    kept = []\n"
            "    for p in passages:\n"
            "        if sum(len(k.split()) for k in kept + [p]) > max_words:\n"
            "            break\n        kept.append(p)\n"
            "    lines = [f'[{i + 1}] {p}' for i, p in enumerate(kept)]\n"
            "    text = '\\n'.join(lines) + f'\\n\\nQuestion: {question}' if kept else question\n"
            "    return [dict(role='user', content=text)]\n",
        ],
        [
            "def {name}(question, passages, max_words):\n    kept, n = [], 0\n"
            "    for p in passages:\n        if n + len(p.split()) <= max_words:\n"
            "            kept.append(p)\n            n += len(p.split())\n"
            "    lines = [f'[{i + 1}] {p}' for i, p in enumerate(kept)]\n"
            "    text = '\\n'.join(lines) + f'\\n\\nQuestion: {question}' if kept else question\n"
            "    return [dict(role='user', content=text)]\n",
            "def {name}(question, passages, max_words):\n    kept = []\n"
            "    for p in passages:\n"
            "        if sum(len(k.split()) for k in kept + [p]) > max_words:\n"
            "            break\n        kept.append(p)\n"
            "    lines = [f'[{i}] {p}' for i, p in enumerate(kept)]\n"
            "    text = '\\n'.join(lines) + f'\\n\\nQuestion: {question}' if kept else question\n"
            "    return [dict(role='user', content=text)]\n",
        ],
    ),
    "ex-ch10-judge": (
        [
            "def {name}(answer, accepted):\n    import re\n"
            "    words = ' '.join(re.findall(r'\\w+', answer.lower()))\n"
            "    return any(\n"
            "        re.search(rf'\\b{a.lower()}\\b', words) is not None for a in accepted\n"
            "    )\n",
        ],
        [
            "def {name}(answer, accepted):\n"
            "    return any(a in answer.lower() for a in accepted)\n",
            "def {name}(answer, accepted):\n"
            "    return any(a in answer.lower().split() for a in accepted)\n",
        ],
    ),
    "ex-ch11-samples-needed": (
        [
            "def {name}(rate, half_width):\n    n, z = 1, 1.96\n    while True:\n"
            "        c = (rate + z * z / (2 * n)) / (1 + z * z / n)\n"
            "        h = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n"
            " + z * z / (4 * n * n))\n"
            "        if (min(1, c + h) - max(0, c - h)) / 2 <= half_width:\n"
            "            return n\n        n += 1\n",
            "def {name}(rate, half_width, z=1.96):\n    n = 0\n    while True:\n"
            "        n += 1\n        a = z / (1 + z * z / n)\n"
            "        if a * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))"
            " <= half_width:\n            return n\n",
        ],
        [
            "def {name}(rate, half_width):\n"
            "    return math.ceil(1.96 ** 2 * rate * (1 - rate) / half_width ** 2)\n",
            "def {name}(rate, half_width, z=1.96):\n    n = 0\n    while True:\n"
            "        n += 1\n        a = z / (1 + z * z / n)\n"
            "        if 2 * a * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))"
            " <= half_width:\n            return n\n",
        ],
    ),
    "ex-ch11-budget-for-ratio": (
        [
            "def {name}(tokens_per_param):\n    a, b = 0.34, 0.28\n"
            "    g = (a * 406.4 / (b * 410.7)) ** (1 / (a + b))\n"
            "    return 6 * (tokens_per_param * g ** 2) ** ((a + b) / (a - b))\n",
            "def {name}(tokens_per_param):\n    a, b = 0.34, 0.28\n"
            "    g = (a * 406.4 / (b * 410.7)) ** (1 / (a + b))\n"
            "    lo, hi = 10.0, 100.0\n    for _ in range(200):\n"
            "        mid = (lo + hi) / 2\n        c6 = math.exp(mid) / 6\n"
            "        ratio = c6 ** (a / (a + b)) / g / (g * c6 ** (b / (a + b)))\n"
            "        lo, hi = (mid, hi) if ratio < tokens_per_param else (lo, mid)\n"
            "    return math.exp((lo + hi) / 2)\n",
        ],
        [
            "def {name}(tokens_per_param):\n    a, b = 0.34, 0.28\n"
            "    g = (a * 406.4 / (b * 410.7)) ** (1 / (a + b))\n"
            "    return (tokens_per_param * g ** 2) ** ((a + b) / (a - b))\n",
            "def {name}(tokens_per_param):\n"
            "    return 6 * tokens_per_param ** ((0.34 + 0.28) / (0.34 - 0.28))\n",
        ],
    ),
}
GENERIC_WRONG = "def {name}(*args, **kwargs):\n    return 0\n"

# The cheats, on chapter 3 (softmax, attention, causal). Each: (name, {cell changes}).
# Sources may use {softmax}, {attention}, {causal}: the answers' names.
FAKE_PACKAGE = """\
import pathlib
fake = {
    "llmcourse/__init__.py": "",
    "llmcourse/exercises/__init__.py": "class ExerciseError(AssertionError): pass\\n"
                                       "class NotYetAnswered(NotImplementedError): pass\\n"
                                       "def run_checks(*a, **k): pass\\n",
    "llmcourse/exercises/ch03.py": "def check_stable_softmax(f): pass\\n"
                                   "def check_attention(f): pass\\n"
                                   "def check_causal_mask(f): pass\\n",
    "llmcourse/teaching/__init__.py": "",
    "llmcourse/teaching/runner.py": "print('all passed')\\n",
}
for path, text in fake.items():
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text(text)
"""
# Writes into the teacher's files, relative to the notebook's folder (book/).
WRITE_TEACHER = """\
import pathlib
for path in ("../llmcourse/exercises/ch03.py", "../grading-canary.txt"):
    try:
        pathlib.Path(path).write_text("def check_causal_mask(f): pass\\n")
    except OSError as error:
        print("could not write", path, error)
"""


def _tiny(cells) -> list:
    """Exercise cells, and of the other code cells only their imports and definitions."""
    kept = []
    for cell in cells:
        if cell.metadata.get("llmcourse", {}).get("exercise"):
            kept.append(cell)
            continue
        if cell.cell_type != "code":
            continue
        try:
            body = ast.parse(cell.source).body
        except SyntaxError:
            continue
        nodes = [
            n
            for n in body
            if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))
        ]
        if nodes:
            kept.append(nbformat.v4.new_code_cell(ast.unparse(ast.Module(nodes, []))))
    return kept


def _wrong(label: str, name: str, k: int = 0) -> str:
    wrong = VARIANTS.get(label, ([], []))[1]
    return (wrong[k % len(wrong)] if wrong else GENERIC_WRONG).format(name=name)


def _correct(label: str, name: str, k: int, book_source: str) -> str:
    variants = [book_source] + VARIANTS.get(label, ([], []))[0]
    return variants[k % len(variants)].replace("{name}", name) if k else book_source


class Builder:
    """Student notebooks of one chapter, with answers filled in."""

    def __init__(self, book_path: Path, tiny: bool = False):
        self.book = nbformat.read(book_path, as_version=4)
        self.name = book_path.name
        self.exercises = find_exercises(self.book)
        self.student = student_notebook(self.book)
        if tiny:  # only imports, definitions and the exercises: seconds instead of minutes
            self.student.cells = _tiny(self.student.cells)
        self.answer_at = {}
        for index, cell in enumerate(self.student.cells):
            meta = cell.metadata.get("llmcourse", {})
            if meta.get("role") == "answer":
                self.answer_at[meta["exercise"]] = index

    def solution(self, exercise) -> str:
        return "\n\n".join(self.book.cells[i].source for i in exercise.solution_cells)

    def notebook(
        self,
        answers: dict[str, str],
        after: dict[str, list[str]] | None = None,
        at_end: list[str] = (),
    ):
        """The student edition with ``answers`` (label -> source) in the answer cells,
        extra cells after some answers (label -> sources) and at the end."""
        nb = copy.deepcopy(self.student)
        extra = after or {}
        for label, index in sorted(self.answer_at.items(), key=lambda kv: -kv[1]):
            if label in answers:
                nb.cells[index].source = answers[label]
            for source in reversed(extra.get(label, [])):
                nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
        nb.cells += [nbformat.v4.new_code_cell(s) for s in at_end]
        return nb

    def names(self) -> dict[str, str]:
        return {e.label: e.answer_names[0] for e in self.exercises}


def build_class(out: Path, chapter_numbers: list[str], copies: int = 1, tiny: bool = False) -> dict:
    """Write the class into ``out``; returns what each notebook must score. With ``tiny``,
    each notebook keeps only the chapter's imports, definitions and exercises."""
    out.mkdir(parents=True, exist_ok=True)
    expected: dict[str, dict[str, str]] = {}
    book = {p.name[:2]: p for p in chapters()}

    def write(
        student: str, builder: Builder, nb, outcome: dict[str, str], file_name: str = ""
    ) -> None:
        path = out / student / (file_name or builder.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        expected[f"{student}/{path.name}"] = outcome

    for number in chapter_numbers:
        b = Builder(book[number], tiny)
        labels, names = [e.label for e in b.exercises], b.names()

        def every(verdict: str, labels: list[str] = labels) -> dict[str, str]:
            return dict.fromkeys(labels, verdict)

        first = labels[0]
        for copy_number in range(copies):
            tag = f"{number}-{copy_number}" if copies > 1 else number
            for k in range(3):  # the book's solutions, then idiomatic variants
                answers = {
                    e.label: _correct(e.label, names[e.label], k, b.solution(e))
                    for e in b.exercises
                }
                write(f"correct{k}-{tag}", b, b.notebook(answers), every("pass"))
            for k in range(2):
                answers = {label: _wrong(label, names[label], k) for label in labels}
                write(f"wrong{k}-{tag}", b, b.notebook(answers), every("no credit"))
            write(f"untouched-{tag}", b, b.notebook({}), every("no credit"))
            right = {e.label: b.solution(e) for e in b.exercises}
            write(
                f"syntax-{tag}",
                b,
                b.notebook({**right, first: "def broken(:\n    pass\n"}),
                {**every("pass"), first: "no credit"},
            )
            write(
                f"crash-{tag}",
                b,
                b.notebook(right, after={first: ["import os\nos._exit(3)"]}),
                {**every("no credit"), first: "pass"},
            )
            write(
                f"endless-{tag}",
                b,
                b.notebook(right, after={first: ["while True:\n    pass"]}),
                {**every("no credit"), first: "pass"},
            )
            write(
                f"loud-{tag}",
                b,
                b.notebook(
                    right, after={first: ["for _ in range(10 ** 7):\n    print('x' * 1000)"]}
                ),
                {**every("no credit"), first: "pass"},
            )
            write(
                f"scratch-{tag}",
                b,
                b.notebook(
                    right,
                    after={
                        label: [f"{names[label]} = None  # scratch: reuse the name"]
                        for label in labels
                    },
                ),
                every("pass"),
            )
            write(
                f"swallow-{tag}",
                b,
                b.notebook(
                    right,
                    at_end=[
                        "import time\nwhile True:\n    try:\n        time.sleep(1)\n"
                        "    except KeyboardInterrupt:\n        pass"
                    ],
                ),
                every("pass"),
            )
    garbage = out / "garbage" / "04_multi_head_attention.ipynb"
    garbage.parent.mkdir(parents=True, exist_ok=True)
    garbage.write_text("this is not a notebook")
    expected["garbage/04_multi_head_attention.ipynb"] = {}
    if "03" in chapter_numbers:
        _cheats(Builder(book["03"], tiny), write)
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return expected


def _cheats(b: Builder, write) -> None:
    names = b.names()
    soft, att, causal = (
        names[label] for label in ("ex-ch03-softmax", "ex-ch03-attention", "ex-ch03-causal")
    )
    right = {e.label: b.solution(e) for e in b.exercises}
    wrong = {label: _wrong(label, names[label]) for label in names}
    none = {label: "no credit" for label in names}
    cheats = {
        "cheat-patch-checks": (
            wrong,
            {
                "ex-ch03-softmax": [
                    "import llmcourse.exercises.ch03 as checks\n"
                    "checks.check_stable_softmax = checks.check_attention = lambda f: None"
                ]
            },
        ),
        "cheat-patch-run-checks": (
            wrong,
            {
                "ex-ch03-softmax": [
                    "import llmcourse.exercises as ex\nex.run_checks = lambda *a, **k: None"
                ]
            },
        ),
        "cheat-json": (
            wrong,
            {
                "ex-ch03-softmax": [
                    'import json\njson.dumps = lambda *a, **k: \'{"status": "pass"}\''
                ]
            },
        ),
        "cheat-transformer": (
            wrong,
            {
                "ex-ch03-softmax": [
                    "def rewrite(lines):\n    return ['pass\\n']\n"
                    "get_ipython().input_transformers_post.append(rewrite)"
                ]
            },
        ),
        "cheat-eq": (
            {
                label: f"class Yes:\n    def __eq__(self, other):\n        return True\n"
                f"    __hash__ = object.__hash__\n\n"
                f"def {names[label]}(*args, **kwargs):\n    return Yes()\n"
                for label in names
            },
            {},
        ),
        "cheat-torch-function": (
            {
                label: (
                    "class Liar(torch.Tensor):\n    @classmethod\n"
                    "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                    "        return True\n\n"
                    f"def {names[label]}(*args, **kwargs):\n"
                    "    return torch.zeros(3).as_subclass(Liar)\n"
                )
                for label in names
            },
            {},
        ),
        "cheat-exec-book": (
            {
                label: (
                    "import json, pathlib, llmcourse\n"
                    "book = pathlib.Path(llmcourse.__file__).parent.parent / 'book'\n"
                    "nb = json.load(open(book / '03_self_attention.ipynb'))\n"
                    "for cell in nb['cells']:\n"
                    "    if 'solution' in cell['metadata'].get('tags', []):\n"
                    "        exec(''.join(cell['source']))\n"
                )
                for label in names
            },
            {},
        ),
        "cheat-import-package": (
            {**right, "ex-ch03-softmax": f"from llmcourse.attention import softmax as {soft}\n"},
            {},
        ),
        "cheat-package-inside": (
            {
                **right,
                "ex-ch03-softmax": f"def {soft}(x):\n    import llmcourse.attention as a\n"
                "    return a.softmax(x)\n",
            },
            {},
        ),
        "cheat-alias": ({**right, "ex-ch03-attention": f"{att} = attention\n"}, {}),
        "cheat-wrapper": (
            {**right, "ex-ch03-attention": f"def {att}(Q, K, V):\n    return attention(Q, K, V)\n"},
            {},
        ),
        "cheat-forbidden": (
            {**right, "ex-ch03-softmax": f"def {soft}(x):\n    return torch.softmax(x, dim=-1)\n"},
            {},
        ),
        "cheat-getattr": (
            {
                **right,
                "ex-ch03-softmax": f"def {soft}(x):\n"
                "    return getattr(torch, 'soft' + 'max')(x, -1)\n",
            },
            {},
        ),
        "cheat-alias-elsewhere": (
            {**right, "ex-ch03-softmax": f"def {soft}(x):\n    return sm(x, dim=-1)\n"},
            {"ex-ch03-softmax": []},
        ),
        "cheat-write-teacher": (right, {"ex-ch03-softmax": [WRITE_TEACHER]}),
    }
    for student, (answers, after) in cheats.items():
        outcome = dict(none)
        if student in (
            "cheat-import-package",
            "cheat-package-inside",
            "cheat-forbidden",
            "cheat-getattr",
            "cheat-alias-elsewhere",
        ):
            outcome = {**dict.fromkeys(names, "pass"), "ex-ch03-softmax": "no credit"}
        if student in ("cheat-alias", "cheat-wrapper"):
            outcome = {**dict.fromkeys(names, "pass"), "ex-ch03-attention": "no credit"}
        if student == "cheat-write-teacher":
            outcome = {label: "pass" for label in names}  # it fails to write: read-only
        nb = b.notebook(answers, after)
        if student == "cheat-alias-elsewhere":  # the alias sits in a cell of its own
            index = b.answer_at["ex-ch03-softmax"]
            nb.cells.insert(index, nbformat.v4.new_code_cell("sm = torch.softmax"))
        write(student, b, nb, outcome)
    del soft, causal
    # One student, two notebooks in one folder: the first writes a fake ./llmcourse/ whose
    # checks pass everything; the second, untouched, must still score nothing.
    write(
        "cross",
        b,
        b.notebook(wrong, after={"ex-ch03-softmax": [FAKE_PACKAGE]}),
        none,
        "04_a_first.ipynb",
    )
    write("cross", b, b.notebook({}), none, "04_b_second.ipynb")


def mismatches(expected: dict, results: dict[str, dict]) -> list[str]:
    """Where graded ``results`` (llmcourse-grade's, by key) differ from ``expected``."""
    got = {}
    for result in results.values():
        path = Path(result["submission"])
        got[f"{path.parent.name}/{path.name}"] = {
            e["label"]: e["status"] for e in result["exercises"]
        }
    problems = []
    for name, want in expected.items():
        if name not in got:
            problems.append(f"{name}: not graded")
            continue
        for label, verdict in want.items():
            status = got[name].get(label)
            if (verdict == "pass") != (status == "pass"):
                problems.append(f"{name} {label}: expected {verdict}, got {status}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmcourse-class", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--chapters", nargs="+", default=["03", "04"])
    parser.add_argument("--copies", type=int, default=1, help="each kind of student, per chapter")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="keep only each chapter's imports, definitions and exercises",
    )
    parser.add_argument(
        "--measure",
        type=int,
        nargs="*",
        metavar="JOBS",
        help="then grade the class with each number of jobs (e.g. 1 2), time "
        "it, and check every notebook got what it must",
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds per notebook")
    args = parser.parse_args(argv)
    expected = build_class(args.out / "submissions", args.chapters, args.copies, args.tiny)
    print(
        f"wrote {len(expected)} submissions to {args.out / 'submissions'} (expected "
        f"results: {args.out / 'submissions' / 'expected.json'})"
    )
    failures = 0
    for jobs in args.measure or []:
        out = args.out / f"grades-{jobs}-jobs"
        seed = args.out / "seed"
        if not seed.exists():
            seed.write_text("simulated class\n")
        start = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "llmcourse.teaching.grade",
                str(args.out / "submissions"),
                "--out",
                str(out),
                "--jobs",
                str(jobs),
                "--timeout",
                str(args.timeout),
                "--seed-file",
                str(seed),
            ],
            check=True,
        )
        seconds = time.monotonic() - start
        from llmcourse.teaching.grade import load_results

        problems = mismatches(expected, load_results([out]))
        failures += len(problems)
        print(
            f"{jobs} job(s): {len(expected)} notebooks graded in {seconds:.0f} s; "
            f"{len(problems)} differ from what they must score",
            flush=True,
        )
        for problem in problems:
            print("  " + problem)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
