"""Interactive explorers for the book's pages: attention weights and sampling settings.

Each function returns an object whose ``_repr_html_`` is one self-contained piece of HTML:
its data, an inline ``<style>`` and an inline ``<script>``, no external URL. So it works in
Jupyter and Colab (as the output of a cell) and on the static website built from the stored
outputs, with no server and no network.

- ``attention_explorer(tokens, weights)``: the tokens of a sentence; pick a layer and a head,
  hover over (or click, or tab to) a token, and every token is shaded by the weight that this
  query gives it; a small grid shows the whole head.
- ``sampling_explorer(logits, labels)``: the most likely next tokens of a real distribution,
  with temperature, top-k and top-p sliders; it shows which tokens survive and their
  renormalised probabilities, computed as ``llmcourse.generation`` does (temperature, then
  top-k keeping ties, then top-p keeping the token that crosses ``p`` and the most likely
  one). ``SAMPLING_JS`` is that filter in JavaScript; tests/test_explorers.py runs it with
  ``node`` against ``llmcourse.generation.process_logits``.

The page shows the default view before any script runs: the HTML is rendered here, in
Python, and the script only updates it. Where JavaScript is off (or a notebook is not
trusted) the reader sees that default view, a static figure, and a note saying so.

The output is deterministic: the same arguments give the same bytes in every run. Element
ids come from a hash of the data (plus a count when the same data is shown twice in one
process), never from a random number or the time. The numbers are rounded before they are
embedded (attention weights to 3 decimals, logits to 3 decimals relative to the largest) and
packed into strings of letters, two or three per number, 128 numbers to a string (a longer
unbroken run makes nbval's sanitising regexes slow). Packing halves the size, and keeps
thousands of data values out of the numbers that tests/test_prose.py accepts as printed by
a chapter (it reads every compared output, HTML included).
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "Explorer",
    "attention_explorer",
    "sampling_explorer",
    "sampling_filter",
    "pack",
    "unpack",
    "SAMPLING_JS",
]

# 52 letters, no digit: a packed number is a fixed number of letters in base 52.
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_shown_digests: Counter = Counter()


class Explorer:
    """An interactive HTML view: Jupyter shows ``_repr_html_``, a terminal ``repr``."""

    def __init__(self, html_text: str, summary: str, data: dict, values: dict | None = None):
        self.html = html_text
        self.summary = summary
        self.data = data  # what the page embeds (packed), for tests and curious readers
        self.values = values or {}  # the embedded numbers, unpacked (rounded as on the page)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.summary


def pack(values: Sequence[int]) -> tuple[str, int]:
    """Non-negative ints -> (a string of letters, letters per number); see ``unpack``."""
    values = [int(v) for v in values]
    if any(v < 0 for v in values):
        raise ValueError("pack() takes non-negative integers")
    width = 1
    while max(values, default=0) >= len(ALPHABET) ** width:
        width += 1
    out = []
    for v in values:
        digits = []
        for _ in range(width):
            v, r = divmod(v, len(ALPHABET))
            digits.append(ALPHABET[r])
        out.append("".join(reversed(digits)))
    return "".join(out), width


def unpack(text: str, width: int) -> list[int]:
    """The inverse of ``pack``: the ints that ``text`` holds, ``width`` letters each."""
    if width < 1 or len(text) % width:
        raise ValueError(
            f"a packed string of length {len(text)} cannot hold numbers of {width} letters"
        )
    index = {c: i for i, c in enumerate(ALPHABET)}
    values = []
    for start in range(0, len(text), width):
        v = 0
        for c in text[start : start + width]:
            v = v * len(ALPHABET) + index[c]
        values.append(v)
    return values


_UNPACK_JS = """
function llmcUnpack(text, width) {
  var A = "ALPHABET", out = new Array(text.length / width);
  for (var i = 0; i < out.length; i++) {
    var v = 0;
    for (var c = 0; c < width; c++) v = v * 52 + A.indexOf(text.charAt(i * width + c));
    out[i] = v;
  }
  return out;
}
""".replace("ALPHABET", ALPHABET)


def _chunks(text: str, size: int) -> list[str]:
    """A long packed string cut into a list: no unbroken run of thousands of letters, on which
    the sanitising regexes of nbval (tests/nbval_sanitize.cfg) would take quadratic time."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _element_id(kind: str, payload: str) -> str:
    digest = hashlib.sha1(payload.encode()).hexdigest()[:10]
    _shown_digests[digest] += 1
    n = _shown_digests[digest]
    return f"llmc-{kind}-{digest}" + (f"-{n}" if n > 1 else "")


def _json_for_script(data: dict) -> str:
    """JSON that is safe inside <script>: no '<', so no '</script>' can end it early."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")


def _milli(q: int) -> str:
    """An int of thousandths as a decimal, '0.786' for 786: the same text in Python and JS."""
    return f"{q // 1000}.{q % 1000:03d}"


def _as_array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().double().numpy()
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}") from None
    return array


def _check_index(name: str, value, size: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < size:
        raise ValueError(f"{name} must be an int in 0..{size - 1}, got {value!r}")
    return int(value)


_STYLE = """<style>
.llmc-x{border:1px solid #d0d7de;border-radius:6px;padding:.6em .8em;margin:.5em 0;
 font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:.92em;line-height:1.35;
 color:#1f2328;background:#fff;max-width:100%;box-sizing:border-box}
.llmc-x .llmc-title{font-weight:600;margin:0 0 .4em}
.llmc-x .llmc-controls{display:flex;flex-wrap:wrap;gap:.4em 1.2em;align-items:center;
 margin:0 0 .5em}
.llmc-x label{display:inline-flex;gap:.35em;align-items:center;white-space:nowrap}
.llmc-x select,.llmc-x input{font:inherit}
.llmc-x output{font-variant-numeric:tabular-nums;min-width:2.6em}
.llmc-x .llmc-note{color:#57606a;font-size:.9em;margin:.3em 0}
.llmc-x .llmc-toks{display:flex;flex-wrap:wrap;gap:.25em;margin:.3em 0 .5em}
.llmc-x .llmc-tok{display:inline-flex;flex-direction:column;align-items:center;
 border:1px solid #d0d7de;border-radius:4px;padding:.15em .35em;cursor:pointer;
 font:inherit;color:#1f2328;background:#fff;min-width:2.4em}
.llmc-x .llmc-tok .llmc-w{font-size:.78em;font-variant-numeric:tabular-nums}
.llmc-x .llmc-tok.llmc-q{outline:3px solid #d1242f;outline-offset:1px}
.llmc-x .llmc-tok.llmc-future{border-style:dashed;color:#8c959f;background:#f6f8fa}
.llmc-x .llmc-gridwrap{overflow-x:auto;max-width:100%}
.llmc-x table.llmc-grid{border-collapse:collapse;margin:.2em 0;font-size:.8em;width:auto}
.llmc-x table.llmc-grid th,.llmc-x table.llmc-grid td{padding:0;border:1px solid #fff}
.llmc-x table.llmc-grid td{width:1.45em;height:1.45em;min-width:1.45em}
.llmc-x table.llmc-grid th{font-weight:normal;white-space:nowrap;color:#57606a}
.llmc-x table.llmc-grid th.llmc-col{writing-mode:vertical-rl;transform:rotate(180deg);
 text-align:left;padding:.2em 0}
.llmc-x table.llmc-grid th.llmc-row{text-align:right;padding-right:.4em;cursor:pointer}
.llmc-x table.llmc-grid tr.llmc-q th.llmc-row{color:#d1242f;font-weight:600}
.llmc-x table.llmc-grid td.llmc-future{background:#f6f8fa}
.llmc-x .llmc-barswrap{max-height:26em;overflow-y:auto;overflow-x:hidden}
.llmc-x table.llmc-bars{border-collapse:collapse;width:100%;font-size:.88em;margin:0}
.llmc-x table.llmc-bars th,.llmc-x table.llmc-bars td{padding:.05em .4em;border:none;
 text-align:left;white-space:nowrap;font-variant-numeric:tabular-nums}
.llmc-x table.llmc-bars td.llmc-num{text-align:right}
.llmc-x table.llmc-bars td.llmc-bar{width:45%}
.llmc-x .llmc-bar span{display:block;height:.8em;background:#1f77b4;border-radius:2px}
.llmc-x tr.llmc-out{color:#8c959f}
.llmc-x tr.llmc-out td.llmc-token{text-decoration:line-through}
.llmc-x code{font-size:.95em}
</style>"""


def _weight_style(q: int) -> str:
    """The shading of a token or cell with weight q/1000 (same text as the script makes)."""
    return f"background:rgba(31,119,180,{_milli(q)});color:{'#fff' if q >= 500 else '#1f2328'}"


# ---------------------------------------------------------------------------------------------
# Attention

_ATTENTION_JS = """
(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.getAttribute("data-ready")) return;
  root.setAttribute("data-ready", "1");
  %(unpack)s
  var data = JSON.parse(root.querySelector('script[data-llmc="data"]').textContent);
  var W = llmcUnpack(data.weights.join(""), data.width), T = data.tokens.length;
  var layerSel = root.querySelector('select[data-llmc="layer"]');
  var headSel = root.querySelector('select[data-llmc="head"]');
  var toks = root.querySelectorAll(".llmc-tok"), rows = root.querySelectorAll("tr[data-q]");
  var caption = root.querySelector('[data-llmc="caption"]');
  var query = data.query;
  function milli(q) { var s = String(q %% 1000); while (s.length < 3) s = "0" + s;
                      return Math.floor(q / 1000) + "." + s; }
  function style(q) { return "background:rgba(31,119,180," + milli(q) + ");color:" +
                             (q >= 500 ? "#fff" : "#1f2328"); }
  function w(l, h, i, j) { return W[((l * data.heads + h) * T + i) * T + j]; }
  function show() {
    var l = +layerSel.value, h = +headSel.value;
    for (var j = 0; j < T; j++) {
      var tok = toks[j], future = data.causal && j > query, q = w(l, h, query, j);
      tok.className = "llmc-tok" + (j === query ? " llmc-q" : "") + (future ? " llmc-future" : "");
      tok.setAttribute("style", future ? "" : style(q));
      tok.setAttribute("aria-pressed", j === query ? "true" : "false");
      tok.querySelector(".llmc-w").textContent = future ? "\\u00b7" : milli(q);
    }
    for (var i = 0; i < T; i++) {
      rows[i].className = i === query ? "llmc-q" : "";
      var cells = rows[i].querySelectorAll("td");
      for (var k = 0; k < T; k++) {
        var fut = data.causal && k > i;
        cells[k].className = fut ? "llmc-future" : "";
        cells[k].setAttribute("style", fut ? "" : style(w(l, h, i, k)));
        cells[k].title = fut ? "" : data.tokens[i] + " \\u2192 " + data.tokens[k] + ": " +
                                    milli(w(l, h, i, k));
      }
    }
    caption.textContent = "Layer " + l + ", head " + h + ". Query: \\u201c" +
      data.tokens[query] + "\\u201d (outlined); each token is shaded by the weight the query " +
      "gives it" + (data.causal ? " (dashed: later tokens, which it cannot see)" : "") +
      ". The grid shows every query of this head, one row each.";
  }
  function pick(i) { return function () { query = i; show(); }; }
  for (var i = 0; i < T; i++) {
    toks[i].addEventListener("mouseenter", pick(i));
    toks[i].addEventListener("focus", pick(i));
    toks[i].addEventListener("click", pick(i));
    rows[i].querySelector("th").addEventListener("click", pick(i));
  }
  layerSel.addEventListener("change", show);
  headSel.addEventListener("change", show);
  layerSel.disabled = false; headSel.disabled = false;
  show();
})();
"""


def attention_explorer(
    tokens: Sequence[str],
    weights,
    *,
    layer: int = 0,
    head: int = 0,
    query: int | str | None = None,
    title: str | None = None,
) -> Explorer:
    """An explorer of attention weights: pick a layer and a head, hover over a token.

    ``tokens``: the T tokens of one sentence, as they should be shown. ``weights``: the
    attention weights, shape (layers, heads, T, T), row i the weights that query i gives
    each key (a tensor or an array, values between 0 and 1; Hugging Face's
    ``torch.stack(out.attentions)[:, 0]`` for one sentence). ``layer``, ``head`` and
    ``query`` (an index or a token's text, by default the last token) set the view shown
    first, which is also what a reader without JavaScript sees. Weights are rounded to 3
    decimals; if every weight above the diagonal is 0 the model is taken to be causal and
    later tokens are drawn dashed.
    """
    if (
        isinstance(tokens, str)
        or not isinstance(tokens, Sequence)
        or not all(isinstance(t, str) for t in tokens)
        or not tokens
    ):
        raise ValueError("tokens must be a non-empty list of strings")
    tokens = list(tokens)
    w = _as_array(weights, "weights")
    T = len(tokens)
    if w.ndim != 4 or w.shape[2:] != (T, T):
        raise ValueError(
            f"weights must have shape (layers, heads, {T}, {T}) for {T} tokens, got {w.shape}"
        )
    if not np.isfinite(w).all() or w.min() < -1e-6 or w.max() > 1 + 1e-6:
        raise ValueError("attention weights must be finite numbers between 0 and 1")
    n_layers, n_heads = w.shape[:2]
    layer = _check_index("layer", layer, n_layers)
    head = _check_index("head", head, n_heads)
    if query is None:
        query = T - 1
    elif isinstance(query, str):
        if query not in tokens:
            raise ValueError(f"query {query!r} is not one of the tokens {tokens}")
        query = tokens.index(query)
    query = _check_index("query", query, T)
    q = np.clip(np.rint(w * 1000), 0, 1000).astype(np.int64)  # thousandths
    causal = bool((np.triu(q, k=1) == 0).all())
    packed, width = pack(q.reshape(-1).tolist())
    data = {
        "tokens": tokens,
        "layers": n_layers,
        "heads": n_heads,
        "causal": causal,
        "query": query,
        "width": width,
        "weights": _chunks(packed, 128 * width),
    }
    payload = _json_for_script(data)
    eid = _element_id("attn", payload)

    def options(n, selected):
        return "".join(
            f'<option value="{i}"{" selected" if i == selected else ""}>{i}</option>'
            for i in range(n)
        )

    toks = []
    for j, t in enumerate(tokens):
        future = causal and j > query
        cls = "llmc-tok" + (" llmc-q" if j == query else "") + (" llmc-future" if future else "")
        style = "" if future else _weight_style(int(q[layer, head, query, j]))
        label = "\u00b7" if future else _milli(int(q[layer, head, query, j]))
        toks.append(
            f'<button type="button" class="{cls}" style="{style}" '
            f'aria-pressed="{"true" if j == query else "false"}">'
            f'<span class="llmc-t">{html.escape(t)}</span>'
            f'<span class="llmc-w">{label}</span></button>'
        )
    head_row = (
        "<tr><th></th>"
        + "".join(f'<th class="llmc-col">{html.escape(t)}</th>' for t in tokens)
        + "</tr>"
    )
    grid = [head_row]
    for i, t in enumerate(tokens):
        cells = []
        for k in range(T):
            if causal and k > i:
                cells.append('<td class="llmc-future"></td>')
            else:
                cells.append(f'<td style="{_weight_style(int(q[layer, head, i, k]))}"></td>')
        grid.append(
            f'<tr data-q="{i}"{" class=llmc-q" if i == query else ""}>'
            f'<th class="llmc-row">{html.escape(t)}</th>{"".join(cells)}</tr>'
        )
    caption = (
        f"Layer {layer}, head {head}. Query: \u201c{html.escape(tokens[query])}\u201d "
        "(outlined); each token is shaded by the weight the query gives it"
        + (" (dashed: later tokens, which it cannot see)" if causal else "")
        + ". The grid shows every query of this head, one row each."
    )
    heading = f'<p class="llmc-title">{html.escape(title)}</p>' if title else ""
    body = (
        f'<div class="llmc-x llmc-attn" id="{eid}">{_STYLE}{heading}'
        '<div class="llmc-controls">'
        f'<label>Layer <select data-llmc="layer" disabled>{options(n_layers, layer)}</select>'
        "</label>"
        f'<label>Head <select data-llmc="head" disabled>{options(n_heads, head)}</select></label>'
        '<span class="llmc-note">Hover over, click or tab to a token: it becomes the query.'
        "</span></div>"
        f'<div class="llmc-toks">{"".join(toks)}</div>'
        f'<p class="llmc-note" data-llmc="caption">{caption}</p>'
        f'<div class="llmc-gridwrap"><table class="llmc-grid">{"".join(grid)}</table></div>'
        '<noscript><p class="llmc-note">JavaScript is off, so this is a still picture of the '
        f"view above (layer {layer}, head {head}); run the notebook to explore.</p></noscript>"
        f'<script type="application/json" data-llmc="data">{payload}</script>'
        f"<script>{_ATTENTION_JS % {'id': eid, 'unpack': _UNPACK_JS}}</script></div>"
    )
    summary = (
        f"<attention explorer: {n_layers} layers x {n_heads} heads, {T} tokens; "
        f"shown: layer {layer}, head {head}, query {tokens[query]!r}>"
    )
    return Explorer(body, summary, data, {"weights": q / 1000.0})


# ---------------------------------------------------------------------------------------------
# Sampling

SAMPLING_JS = """
function llmcSampling(logits, temperature, topK, topP) {
  // llmcourse.generation.process_logits, for one row: temperature, then top-k (ties with
  // the k-th largest kept), then top-p (the most likely tokens whose probabilities reach
  // p: sort ascending, drop those whose cumulative probability from the bottom is <= 1 - p;
  // the most likely token always stays). Returns which tokens survive top-k, which survive
  // both, and the renormalised probabilities (0 for the dropped ones).
  var n = logits.length, z = new Array(n), i;
  for (i = 0; i < n; i++) z[i] = temperature === 1 ? logits[i] : logits[i] / temperature;
  var sorted = z.slice().sort(function (a, b) { return b - a; });
  var kth = sorted[Math.min(topK, n) - 1];
  var keepK = new Array(n), keep = new Array(n);
  for (i = 0; i < n; i++) { keepK[i] = z[i] >= kth; keep[i] = keepK[i]; }
  function softmax(mask) {
    var m = -Infinity, s = 0, p = new Array(n), j;
    for (j = 0; j < n; j++) if (mask[j] && z[j] > m) m = z[j];
    for (j = 0; j < n; j++) { p[j] = mask[j] ? Math.exp(z[j] - m) : 0; s += p[j]; }
    for (j = 0; j < n; j++) p[j] = p[j] / s;
    return p;
  }
  if (topP < 1) {
    var p = softmax(keepK), order = [];
    for (i = 0; i < n; i++) order.push(i);
    // ascending, dropped tokens (-inf) first, ties in index order (a stable sort)
    order.sort(function (a, b) {
      var za = keepK[a] ? z[a] : -Infinity, zb = keepK[b] ? z[b] : -Infinity;
      return za < zb ? -1 : za > zb ? 1 : a - b;
    });
    var cum = 0;
    for (i = 0; i < n; i++) {
      cum += p[order[i]];
      if (cum <= 1 - topP) keep[order[i]] = false;
    }
    keep[order[n - 1]] = keepK[order[n - 1]];
  }
  var all = new Array(n);
  for (i = 0; i < n; i++) all[i] = true;
  return {keptByTopK: keepK, kept: keep, probs: softmax(keep), tempered: softmax(all)};
}
"""

_SAMPLING_UI_JS = """
(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.getAttribute("data-ready")) return;
  root.setAttribute("data-ready", "1");
  %(unpack)s
  %(filter)s
  var data = JSON.parse(root.querySelector('script[data-llmc="data"]').textContent);
  var gaps = llmcUnpack(data.gaps.join(""), data.width), logits = gaps.map(function (g) {
    return -g / 1000; });
  var n = logits.length;
  var inputs = {t: root.querySelector('input[data-llmc="temperature"]'),
                k: root.querySelector('input[data-llmc="top_k"]'),
                p: root.querySelector('input[data-llmc="top_p"]')};
  var rows = root.querySelectorAll("tr[data-rank]");
  var summary = root.querySelector('[data-llmc="summary"]');
  function show() {
    var t = parseFloat(inputs.t.value), k = parseInt(inputs.k.value, 10),
        p = parseFloat(inputs.p.value);
    root.querySelector('output[data-llmc="temperature"]').textContent = t.toFixed(2);
    root.querySelector('output[data-llmc="top_k"]').textContent = String(k);
    root.querySelector('output[data-llmc="top_p"]').textContent = p.toFixed(2);
    var r = llmcSampling(logits, t, k, p), alive = 0, best = 0;
    for (var i = 0; i < n; i++) {
      var cells = rows[i].querySelectorAll("td");
      rows[i].className = r.kept[i] ? "" : "llmc-out";
      cells[2].textContent = r.tempered[i].toFixed(3);
      cells[3].textContent = r.kept[i] ? r.probs[i].toFixed(3) :
        (r.keptByTopK[i] ? "top-p" : "top-k");
      cells[4].firstChild.style.width = (100 * r.probs[i]).toFixed(1) + "%%";
      if (r.kept[i]) { alive++; if (r.probs[i] > r.probs[best]) best = i; }
    }
    summary.textContent = alive + " of the " + n + " tokens survive; the most likely, " +
      data.tokens[best] + ", is sampled with probability " + r.probs[best].toFixed(3) + ".";
  }
  ["t", "k", "p"].forEach(function (key) {
    inputs[key].addEventListener("input", show);
    inputs[key].addEventListener("change", show);
    inputs[key].disabled = false;
  });
  show();
})();
"""


def sampling_filter(
    logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
):
    """``llmcourse.generation.process_logits`` on one row of logits, as the explorer shows it.

    Returns three float64 arrays: which tokens survive top-k (1.0 or 0.0), which survive
    top-k and top-p, and the renormalised probabilities of the survivors (0 elsewhere).
    """
    import torch

    from llmcourse.generation import process_logits

    row = torch.as_tensor(_as_array(logits, "logits"))[None]  # (1, n)
    ids = torch.zeros(1, 1, dtype=torch.long)  # no repetition penalty: never read
    after_k = process_logits(row, ids, do_sample=True, temperature=temperature, top_k=top_k)
    after = process_logits(
        row, ids, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p
    )
    return (
        torch.isfinite(after_k)[0].double().numpy(),
        torch.isfinite(after)[0].double().numpy(),
        after.softmax(-1)[0].numpy(),
    )


def sampling_explorer(
    logits,
    labels: Callable[[int], str] | Sequence[str],
    *,
    shown: int = 40,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    prompt: str | None = None,
) -> Explorer:
    """An explorer of sampling settings over a real next-token distribution.

    ``logits``: the model's next-token logits over the whole vocabulary, shape (V,).
    ``labels``: how to show token id i, a function (``tokenizer.convert_ids_to_tokens``) or
    a list indexed by id. The ``shown`` most likely tokens are embedded (their logits minus
    the largest, rounded to 3 decimals), most likely first, ties in id order; the top-k
    slider runs from 1 to ``shown``, so what survives and the renormalised probabilities
    are exactly those of ``llmcourse.generation`` on the whole vocabulary (for the rounded
    logits). ``temperature``, ``top_k`` (default ``shown``) and ``top_p`` set the view shown
    first. The sliders: temperature 0.1 to 2, top-k 1 to ``shown``, top-p 0.05 to 1.
    """
    z = _as_array(logits, "logits")
    if z.ndim != 1 or z.size < 2:
        raise ValueError(f"logits must be one row over the vocabulary, shape (V,), got {z.shape}")
    if not isinstance(shown, int) or isinstance(shown, bool) or not 2 <= shown <= z.size:
        raise ValueError(f"shown must be an int in 2..{z.size}, got {shown!r}")
    top_k = shown if top_k is None else top_k
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= shown:
        raise ValueError(f"top_k must be an int in 1..{shown} (the tokens shown), got {top_k!r}")
    if not isinstance(temperature, (int, float)) or not 0.1 <= temperature <= 2:
        raise ValueError(f"temperature must be a number in [0.1, 2], got {temperature!r}")
    if not isinstance(top_p, (int, float)) or not 0.05 <= top_p <= 1:
        raise ValueError(f"top_p must be a number in [0.05, 1], got {top_p!r}")
    order = np.lexsort((np.arange(z.size), -z))  # most likely first, ties by id
    if not np.isfinite(z[order[:shown]]).all():
        raise ValueError(f"the {shown} most likely logits must be finite")
    if shown < z.size and z[order[shown - 1]] == z[order[shown]]:
        raise ValueError(
            f"tokens {order[shown - 1]} and {order[shown]} tie at the edge of the "
            f"{shown} shown: choose another number of tokens to show"
        )
    ids = order[:shown]
    gaps = np.rint((z[ids[0]] - z[ids]) * 1000).astype(np.int64)  # thousandths below the top
    resort = np.lexsort((ids, gaps))  # rounding can tie neighbours: ties by id again
    ids, gaps = ids[resort], gaps[resort]
    if callable(labels):
        tokens = [str(labels(int(i))) for i in ids]
    else:
        tokens = [str(labels[int(i)]) for i in ids]
    packed, width = pack(gaps.tolist())
    data = {
        "tokens": tokens,
        "ids": [int(i) for i in ids],
        "width": width,
        "gaps": _chunks(packed, 128 * width),
    }
    payload = _json_for_script(data)
    eid = _element_id("samp", payload)

    rounded = -gaps / 1000.0
    _, _, tempered = sampling_filter(rounded, temperature, None, None)
    kept_k, kept, probs = sampling_filter(rounded, temperature, top_k, top_p)
    rows = []
    for r, (tok, pk, pp, pt, p) in enumerate(zip(tokens, kept_k, kept, tempered, probs)):
        status = f"{p:.3f}" if pp else ("top-p" if pk else "top-k")
        rows.append(
            f'<tr data-rank="{r}"{"" if pp else " class=llmc-out"}>'
            f'<td class="llmc-num">{r + 1}</td>'
            f'<td class="llmc-token"><code>{html.escape(tok)}</code></td>'
            f'<td class="llmc-num">{pt:.3f}</td><td class="llmc-num">{status}</td>'
            f'<td class="llmc-bar"><span style="width:{100 * p:.1f}%"></span></td></tr>'
        )
    best = int(np.argmax(probs))
    alive = int(kept.sum())

    def slider(name, label, lo, hi, step, value, text):
        return (
            f'<label>{label} <input type="range" data-llmc="{name}" min="{lo}" max="{hi}" '
            f'step="{step}" value="{value}" disabled>'
            f'<output data-llmc="{name}">{text}</output></label>'
        )

    heading = (
        f'<p class="llmc-title">Next token after \u201c{html.escape(prompt)}\u201d</p>'
        if prompt
        else ""
    )
    body = (
        f'<div class="llmc-x llmc-samp" id="{eid}">{_STYLE}{heading}'
        '<div class="llmc-controls">'
        + slider(
            "temperature",
            "temperature",
            "0.1",
            "2",
            "0.05",
            f"{temperature:g}",
            f"{temperature:.2f}",
        )
        + slider("top_k", "top-k", "1", str(shown), "1", str(top_k), str(top_k))
        + slider("top_p", "top-p", "0.05", "1", "0.01", f"{top_p:g}", f"{top_p:.2f}")
        + "</div>"
        f'<p data-llmc="summary">{alive} of the {shown} tokens survive; the most likely, '
        f"{html.escape(tokens[best])}, is sampled with probability {probs[best]:.3f}.</p>"
        '<div class="llmc-barswrap"><table class="llmc-bars"><thead><tr><th>#</th>'
        "<th>token</th><th>temperature only</th><th>sampled</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="llmc-note">The {shown} most likely tokens, renormalised among themselves '
        "(the top-k slider stops there). \u201ctemperature only\u201d: softmax(z / T); "
        "\u201csampled\u201d: after top-k, then top-p, renormalised, or which filter dropped the "
        "token.</p>"
        '<noscript><p class="llmc-note">JavaScript is off, so this is a still picture for '
        f"temperature {temperature:g}, top-k {top_k}, top-p {top_p:g}; run the notebook to "
        "explore.</p></noscript>"
        f'<script type="application/json" data-llmc="data">{payload}</script>'
        f"<script>{_SAMPLING_UI_JS % {'id': eid, 'unpack': _UNPACK_JS, 'filter': SAMPLING_JS}}"
        "</script></div>"
    )
    summary = (
        f"<sampling explorer: the {shown} most likely next tokens; shown: temperature "
        f"{temperature:g}, top-k {top_k}, top-p {top_p:g}: {alive} survive>"
    )
    return Explorer(body, summary, data, {"ids": ids, "tokens": tokens, "logits": rounded})
