"""The interactive explorers (llmcourse.explorers): self-contained, deterministic HTML that
carries its data, and a sampling filter in JavaScript that equals llmcourse.generation's.

The JavaScript is run with Node.js where it is installed (``node`` on the PATH, or
LLMCOURSE_NODE); without it those tests are skipped. The browser test (tests/test_website.py)
checks that the explorers respond to input on the built pages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from llmcourse import explorers
from llmcourse.explorers import (
    SAMPLING_JS,
    attention_explorer,
    pack,
    sampling_explorer,
    sampling_filter,
    unpack,
)
from llmcourse.generation import process_logits

ROOT = Path(__file__).resolve().parent.parent
NODE = os.environ.get("LLMCOURSE_NODE") or shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

TOKENS = ["The", "cat", "sat", "<on>", "the", "mat"]


def causal_weights(layers=3, heads=2, T=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(layers, heads, T, T, generator=gen, dtype=torch.float64)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(-1)


def vocab_logits(V=300, seed=0):
    """Logits with 3 decimals (so the explorer's rounding changes nothing), no ties."""
    rng = np.random.default_rng(seed)
    thousandths = rng.choice(np.arange(-12_000, 12_000), size=V, replace=False)
    return np.sort(thousandths)[np.argsort(rng.normal(size=V))] / 1000  # shuffled, distinct


def embedded(html_text: str) -> dict:
    found = re.search(
        r'<script type="application/json" data-llmc="data">(.*?)</script>', html_text, re.S
    )
    assert found, "no embedded data"
    return json.loads(found[1])


def fresh(build):
    """Build an explorer as the first one of a fresh process (ids count repeats per process)."""
    explorers._shown_digests.clear()
    return build()


# --- packing ------------------------------------------------------------------------------


def test_pack_round_trips_and_uses_no_digits():
    values = [0, 1, 51, 52, 1000, 2703, 2704, 140607]
    text, width = pack(values)
    assert width == 3 and len(text) == 3 * len(values)
    assert not re.search(r"\d", text)
    assert unpack(text, width) == values
    assert pack([0, 1000])[1] == 2 and pack([5])[1] == 1


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        pack([3, -1])
    with pytest.raises(ValueError, match="cannot hold"):
        unpack("ABC", 2)


# --- the attention explorer --------------------------------------------------------------


def test_attention_html_is_self_contained_and_holds_the_data():
    w = causal_weights()
    html_text = fresh(lambda: attention_explorer(TOKENS, w, layer=1, head=1, query="sat"))
    html_text = html_text._repr_html_()
    assert "<script>" in html_text and "<style>" in html_text
    assert not re.search(r"https?:|//[a-z]|\bsrc=|\bhref=|@import|url\(", html_text), (
        "an explorer must not load anything from elsewhere"
    )
    data = embedded(html_text)
    assert data["tokens"] == TOKENS and (data["layers"], data["heads"]) == (3, 2)
    assert data["causal"] is True and data["query"] == 2
    assert len(data["weights"]) == 2  # 216 numbers, 128 to a string
    q = np.array(unpack("".join(data["weights"]), data["width"])).reshape(3, 2, 6, 6)
    assert np.array_equal(q, np.rint(w.numpy() * 1000))  # rounded to 3 decimals
    assert not re.search(r"\d", "".join(data["weights"]))  # no value reads as a printed number
    assert "&lt;on&gt;" in html_text and "<on>" not in html_text.split("<script")[0]
    # the default view is drawn without JavaScript: layer 1, head 1, query "sat"
    assert '<option value="1" selected>' in html_text
    row = w[1, 1, 2]
    for j in range(3):
        assert f'<span class="llmc-w">{row[j]:.3f}</span>' in html_text
    assert html_text.count('<span class="llmc-w">\u00b7</span>') == 3  # later tokens
    assert "<noscript>" in html_text


def test_no_long_unbroken_runs_for_nbval_sanitising_regexes():
    """nbval's sanitising regexes ([^\\s"'(]*/site-packages/) are quadratic in the length of
    a run without a space or quote: a 60,000-letter run took minutes. Runs stay short (the
    longest is the list of token ids of a sampling explorer, about 5 characters a token)."""
    big = attention_explorer([f"t{i}" for i in range(30)], causal_weights(12, 12, 30))
    samp = sampling_explorer(vocab_logits(3000), str, shown=100, top_k=40)
    for out in (big, samp):
        longest = max(len(run) for run in re.findall(r"[^\s\"'(]+", out.html))
        assert longest < 600, longest  # the ids of the tokens shown


def test_attention_html_is_deterministic_and_ids_are_unique():
    w = causal_weights()
    first = fresh(lambda: attention_explorer(TOKENS, w))._repr_html_()
    again = fresh(lambda: attention_explorer(TOKENS, w))._repr_html_()
    assert first == again
    ids = re.findall(r'id="(llmc-attn-[\w-]+)"', first)
    assert len(ids) == 1 and f'getElementById("{ids[0]}")' in first
    second_copy = attention_explorer(TOKENS, w)._repr_html_()  # the same data twice: new id
    other = attention_explorer(TOKENS, causal_weights(seed=1))._repr_html_()
    all_ids = {
        ids[0],
        re.search(r'id="(llmc-attn-[\w-]+)"', second_copy)[1],
        re.search(r'id="(llmc-attn-[\w-]+)"', other)[1],
    }
    assert len(all_ids) == 3


def test_explorers_give_the_same_bytes_in_separate_processes():
    """No hash-seed, time or address dependence: two fresh interpreters print the same HTML."""
    script = textwrap.dedent("""
        import hashlib, numpy as np, torch
        from llmcourse.explorers import attention_explorer, sampling_explorer
        g = torch.Generator().manual_seed(0)
        w = torch.randn(2, 2, 4, 4, generator=g).softmax(-1)
        z = torch.randn(500, generator=g)
        a = attention_explorer(["a", "b", "c", "d"], w)._repr_html_()
        s = sampling_explorer(z, lambda i: f"t{i}", top_p=0.9)._repr_html_()
        print(hashlib.sha256((a + s).encode()).hexdigest())
    """)
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_attention_bidirectional_weights_are_not_drawn_as_causal():
    w = torch.full((1, 1, 3, 3), 1 / 3)
    out = attention_explorer(["a", "b", "c"], w, query=0)
    assert out.data["causal"] is False and 'class="llmc-future"' not in out.html
    assert 'llmc-future"' not in out.html.split("<script")[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(tokens=["a", "b"], weights=np.ones((1, 1, 3, 3)) / 3),
            r"shape \(layers, heads, 2, 2\)",
        ),
        (dict(tokens=["a"], weights=np.ones((1, 1)) / 3), "shape"),
        (dict(tokens="ab", weights=np.ones((1, 1, 2, 2)) / 2), "list of strings"),
        (dict(tokens=["a", "b"], weights=np.full((1, 1, 2, 2), 2.0)), "between 0 and 1"),
        (dict(tokens=["a", "b"], weights=np.full((1, 1, 2, 2), np.nan)), "between 0 and 1"),
        (dict(tokens=["a", "b"], weights=np.ones((1, 1, 2, 2)) / 2, layer=1), "layer must be"),
        (dict(tokens=["a", "b"], weights=np.ones((1, 1, 2, 2)) / 2, head=-1), "head must be"),
        (dict(tokens=["a", "b"], weights=np.ones((1, 1, 2, 2)) / 2, query="z"), "not one of"),
        (dict(tokens=["a", "b"], weights="weights"), "array of numbers"),
    ],
)
def test_attention_explorer_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        attention_explorer(**kwargs)


# --- the sampling explorer ---------------------------------------------------------------


def test_sampling_html_is_self_contained_and_holds_the_top_tokens():
    z = vocab_logits()
    out = fresh(
        lambda: sampling_explorer(
            z, lambda i: f"tok{i}", prompt="Once <upon>", temperature=0.7, top_k=30, top_p=0.9
        )
    )
    html_text = out._repr_html_()
    assert not re.search(r"https?:|//[a-z]|\bsrc=|\bhref=|@import|url\(", html_text)
    assert SAMPLING_JS in html_text  # the filter the tests below run
    data = embedded(html_text)
    top = np.argsort(-z)[:40]
    assert data["ids"] == top.tolist()
    assert data["tokens"] == [f"tok{i}" for i in top]
    gaps = np.array(unpack("".join(data["gaps"]), data["width"]))
    assert np.allclose(-gaps / 1000, z[top] - z[top[0]], atol=5e-4)
    assert not re.search(r"\d", "".join(data["gaps"]))
    assert "&lt;upon&gt;" in html_text and 'value="0.7"' in html_text
    # the default view, drawn in Python with llmcourse.generation, before any script runs
    kept_k, kept, probs = sampling_filter(-gaps / 1000, 0.7, 30, 0.9)
    assert f"{int(kept.sum())} of the 40 tokens survive" in html_text
    assert html_text.count('class="llmc-num">top-k<') == 40 - int(kept_k.sum()) > 0
    assert html_text.count('class="llmc-num">top-p<') == int(kept_k.sum() - kept.sum()) > 0
    assert f">{probs.max():.3f}<" in html_text
    assert (
        fresh(
            lambda: sampling_explorer(
                z, lambda i: f"tok{i}", prompt="Once <upon>", temperature=0.7, top_k=30, top_p=0.9
            )
        )._repr_html_()
        == html_text
    )


def test_sampling_explorer_accepts_a_list_of_labels_and_orders_rounding_ties_by_id():
    z = np.array([1.0, 3.00001, 3.0, 2.0, -1.0])  # ids 1 and 2 round to the same logit
    out = sampling_explorer(torch.tensor(z), ["a", "b", "c", "d", "e"], shown=4)
    assert out.data["ids"] == [1, 2, 3, 0] and out.data["tokens"] == ["b", "c", "d", "a"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(logits=np.zeros((2, 5))), r"shape \(V,\)"),
        (dict(logits=np.arange(50.0), shown=1), "shown must be"),
        (dict(logits=np.arange(50.0), shown=60), "shown must be"),
        (dict(logits=np.arange(50.0), top_k=41), "top_k must be"),
        (dict(logits=np.arange(50.0), temperature=0.0), "temperature must be"),
        (dict(logits=np.arange(50.0), top_p=1.5), "top_p must be"),
        (dict(logits=np.r_[np.arange(39.0) + 10, 5.0, 5.0, 0.0]), "tie at the edge"),
        (dict(logits=np.r_[np.arange(39.0), -np.inf, -np.inf]), "must be finite"),
    ],
)
def test_sampling_explorer_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sampling_explorer(labels=str, **kwargs)


def run_js_filter(cases: list[dict], source: str = SAMPLING_JS) -> list[dict]:
    driver = source + textwrap.dedent("""
        const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
        console.log(JSON.stringify(cases.map(c => llmcSampling(c.logits, c.t, c.k, c.p))));
    """)
    done = subprocess.run(
        [NODE, "-e", driver], input=json.dumps(cases), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


SETTINGS = [
    (1.0, 40, 1.0),
    (1.0, 40, 0.9),
    (0.7, 40, 0.9),
    (0.7, 10, 1.0),
    (1.5, 25, 0.5),
    (0.1, 40, 0.95),
    (2.0, 3, 0.99),
    (1.0, 1, 0.3),
    (0.35, 40, 0.05),
    (1.25, 17, 0.8),
]


@needs_node
def test_js_filter_equals_llmcourse_generation_on_the_whole_vocabulary():
    """The explorer's 40 tokens and JS arithmetic give what process_logits gives on all V."""
    z = vocab_logits()
    out = sampling_explorer(z, str)
    ids = np.array(out.data["ids"])
    gaps = unpack("".join(out.data["gaps"]), out.data["width"])
    shown_logits = (-np.array(gaps) / 1000).tolist()
    results = run_js_filter([dict(logits=shown_logits, t=t, k=k, p=p) for t, k, p in SETTINGS])
    full = torch.tensor(z)[None]
    for (t, k, p), js in zip(SETTINGS, results):
        processed = process_logits(
            full,
            torch.zeros(1, 1, dtype=torch.long),
            do_sample=True,
            temperature=t,
            top_k=k,
            top_p=p,
        )[0]
        survivors = set(torch.isfinite(processed).nonzero()[:, 0].tolist())
        assert survivors == set(ids[js["kept"]].tolist()), (t, k, p)
        probs = processed.softmax(-1)
        np.testing.assert_allclose(js["probs"], probs[ids].numpy(), rtol=0, atol=1e-12)
        assert abs(sum(js["probs"]) - 1) < 1e-12
        after_k = process_logits(
            full, torch.zeros(1, 1, dtype=torch.long), do_sample=True, temperature=t, top_k=k
        )[0]
        assert set(ids[js["keptByTopK"]].tolist()) == set(
            torch.isfinite(after_k).nonzero()[:, 0].tolist()
        )
    assert len({sum(js["kept"]) for js in results}) > 5  # the settings do filter differently


@needs_node
def test_js_filter_equals_the_python_one_with_ties():
    """Ties: top-k keeps every token tied with the k-th; top-p breaks ties by position."""
    rows = [[2.0, 1.0, 1.0, 1.0, 0.0, -1.0], [0.5, 0.5, 0.5, 0.5], [3.0, 1.0, 1.0, 0.2, 0.2]]
    cases, expected = [], []
    for row in rows:
        for t, k, p in [
            (1.0, 2, 1.0),
            (1.0, 3, 0.7),
            (0.5, len(row), 0.6),
            (1.0, len(row), 0.5),
            (1.3, 1, 0.9),
            (1.0, len(row), 0.74),
        ]:
            cases.append(dict(logits=row, t=t, k=k, p=p))
            expected.append(sampling_filter(row, t, k, p))
    for case, js, (kept_k, kept, probs) in zip(cases, run_js_filter(cases), expected):
        assert js["keptByTopK"] == kept_k.astype(bool).tolist(), case
        assert js["kept"] == kept.astype(bool).tolist(), case
        np.testing.assert_allclose(js["probs"], probs, rtol=0, atol=1e-12)


@needs_node
@pytest.mark.parametrize(
    "mutation",
    [
        ("z[i] >= kth", "z[i] > kth"),  # top-k drops the k-th itself
        ("cum <= 1 - topP", "cum < 1 - topP"),  # top-p keeps one token too many
        (
            "return za < zb ? -1 : za > zb ? 1 : a - b;",
            "return za < zb ? -1 : za > zb ? 1 : b - a;",
        ),
        ("logits[i] / temperature", "logits[i] * temperature"),
    ],
)
def test_the_comparison_catches_a_wrong_filter(mutation):
    """The test above can fail: each small slip in the JavaScript changes some result."""
    old, new = mutation
    assert old in SAMPLING_JS
    rows = [
        [2.0, 1.0, 1.0, 1.0, 0.0, -1.0],
        [0.5, 0.5, 0.5, 0.5],
        [3.0, 1.0, 1.0, 0.2, 0.2],
        [1.0, 0.0, -1.0],
    ]
    cases = [
        dict(logits=r, t=t, k=k, p=p)
        for r in rows
        for t, k, p in [
            (1.0, 2, 1.0),
            (0.5, len(r), 0.6),
            (1.0, len(r), 0.5),
            (2.0, len(r), 1.0),
            (1.0, len(r), 1 - 0.2689414213699951),
        ]
    ]
    mutated = run_js_filter(cases, SAMPLING_JS.replace(old, new))
    differs = False
    for case, js in zip(cases, mutated):
        kept_k, kept, probs = sampling_filter(case["logits"], case["t"], case["k"], case["p"])
        differs |= js["kept"] != kept.astype(bool).tolist() or not np.allclose(
            js["probs"], probs, rtol=0, atol=1e-12
        )
    assert differs, f"the mutation {new!r} went unnoticed"
