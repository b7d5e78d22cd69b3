"""Benchmark: BPE training speed, llmcourse's trainer against Hugging Face ``tokenizers``.

    python benchmarks/bpe_training.py            # a minute or two on 2 CPU cores

Trains byte-level BPE on the full Shakespeare training set (every play but Hamlet) with the
same settings in both (the course's pre-tokenization pattern, all 256 bytes as the initial
alphabet, the same tie rule), checks that both learn the same merges, and reports merges
per second for each, side by side in one run; also the chapter's teaching trainer (which
recounts every pair after every merge) on a few merges, to show what the incremental pair
counts buy. Writes benchmarks/results/bpe_training.json. Times are wall-clock seconds,
including pre-tokenization and the first count; Rust and Python are not expected to tie.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from llmcourse.offline import shakespeare_text
from llmcourse.tokenization import (
    PRETOKENIZE_PATTERN,
    BPETokenizer,
    bytes_to_unicode,
    merge_pair,
    pretokenize,
)

RESULTS = Path(__file__).resolve().parent / "results" / "bpe_training.json"
NUM_MERGES = 5000
NAIVE_MERGES = 20


def train_hf(text: str, num_merges: int):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=256 + num_merges,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text], trainer=trainer)
    return [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]


def train_naive(text: str, num_merges: int):
    """The chapter's teaching trainer: recount every pair of every word after each merge."""
    table = bytes_to_unicode()
    words = Counter(tuple(table[b] for b in w.encode("utf-8")) for w in pretokenize(text))
    order = {c: ord(c) for c in table.values()}
    merges = []
    for _ in range(num_merges):
        counts = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                counts[pair] += n
        best = min(counts, key=lambda p: (-counts[p], order[p[0]], order[p[1]]))
        merges.append(best)
        order.setdefault(best[0] + best[1], 1000 + len(merges))
        words = Counter({tuple(merge_pair(list(w), best)): n for w, n in words.items()})
    return merges


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> dict:
    text = shakespeare_text("train")
    ours, ours_s = timed(lambda: BPETokenizer(text, NUM_MERGES).merges)
    theirs, theirs_s = timed(lambda: train_hf(text, NUM_MERGES))
    naive, naive_s = timed(lambda: train_naive(text, NAIVE_MERGES))
    assert ours == theirs, "our trainer and tokenizers' learned different merges"
    assert naive == ours[:NAIVE_MERGES]
    result = {
        "corpus": "shakespeare_text('train')",
        "characters": len(text),
        "num_merges": NUM_MERGES,
        "same_merges": ours == theirs,
        "llmcourse_seconds": round(ours_s, 2),
        "llmcourse_merges_per_s": round(NUM_MERGES / ours_s, 1),
        "tokenizers_seconds": round(theirs_s, 2),
        "tokenizers_merges_per_s": round(NUM_MERGES / theirs_s, 1),
        "tokenizers_speedup": round(ours_s / theirs_s, 1),
        "naive_merges": NAIVE_MERGES,
        "naive_seconds": round(naive_s, 2),
        "naive_merges_per_s": round(NAIVE_MERGES / naive_s, 2),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    print(f"{'trainer':<28}{'merges':>8}{'seconds':>10}{'merges/s':>11}")
    for name, key, n in [
        ("llmcourse (incremental)", "llmcourse", NUM_MERGES),
        ("tokenizers (Rust)", "tokenizers", NUM_MERGES),
        ("chapter 2 (recount all)", "naive", NAIVE_MERGES),
    ]:
        print(f"{name:<28}{n:>8}{result[key + '_seconds']:>10}{result[key + '_merges_per_s']:>11}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
