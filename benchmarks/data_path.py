"""Benchmark: the data path, from text to batches, on a corpus of 50 million tokens.

    python benchmarks/data_path.py            # a few minutes on 2 CPU cores; 100 MB in /tmp

1. Streams the Shakespeare training text from a file through GPT-2's tokenizer
   (``encode_iterable``) into a uint16 token file, measuring the memory that streaming adds
   (peak resident size, as in 3.); then, with a fresh tokenizer, a file of three copies of
   the text: flat memory means the same figure (it is mostly the tokenizer's word cache,
   capped at 100,000 words), not three times as much.
2. Repeats those tokens into a token file of at least 50 million tokens (no larger text is
   at hand offline), memory-mapped.
3. Times ``get_batch`` (32 x 256) on that memory map and measures the memory it adds (the
   process's peak resident size, reset before each measurement through
   ``/proc/self/clear_refs``), against the previous ``get_batch``, which converted the whole
   corpus to int64 on every call.
Writes benchmarks/results/data_path.json.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from llmcourse.offline import shakespeare_text
from llmcourse.tokenization import gpt2_tokenizer
from llmcourse.training import get_batch, write_token_file

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")  # the old path
RESULTS = Path(__file__).resolve().parent / "results" / "data_path.json"
TARGET_TOKENS = 50_000_000
BATCH, BLOCK = 32, 256
MiB = 2**20


def get_batch_before(ids, batch_size, block_size, generator=None):
    """``get_batch`` before this change: the whole corpus converted to int64 on every call."""
    data = torch.as_tensor(np.asarray(ids)).long()
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    windows = data[starts[:, None] + torch.arange(block_size + 1)]
    return windows[:, :-1], windows[:, 1:]


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_added_memory(fn) -> int:
    """Bytes by which the process's peak resident size exceeds its size before ``fn()``."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
    before = _status("VmRSS")
    fn()
    return _status("VmHWM") - before


def time_batches(fn, data, repeats: int) -> float:
    generator = torch.Generator().manual_seed(0)
    fn(data, BATCH, BLOCK, generator)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn(data, BATCH, BLOCK, generator)
    return (time.perf_counter() - start) / repeats


def main() -> dict:
    tokenizer = gpt2_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "train.txt"
        text_file.write_text(shakespeare_text("train"), encoding="utf-8")
        start = time.perf_counter()
        with open(text_file, encoding="utf-8") as f:
            stream_peak = peak_added_memory(
                lambda: write_token_file(tokenizer.encode_iterable(f), Path(tmp) / "once.bin")
            )
        encode_s = time.perf_counter() - start
        play_ids = np.memmap(Path(tmp) / "once.bin", dtype=np.uint16, mode="r")
        # Spot check: the streamed ids begin with encode's ids of the first 200,000 or so
        # characters, cut where a line ends after a word and the next begins with a letter
        # (so the cut changes no piece).
        text = shakespeare_text("train")
        cut = next(
            k
            for k in range(200_000, len(text))
            if text[k] == "\n" and not text[k - 1].isspace() and text[k + 1].isalpha()
        )
        head_ids = tokenizer.encode(text[: cut + 1])
        assert np.array_equal(play_ids[: len(head_ids)], head_ids)

        # Flat memory: a fresh tokenizer (empty word cache) streams three copies of the text.
        triple = Path(tmp) / "train3.txt"
        triple.write_text(shakespeare_text("train") * 3, encoding="utf-8")
        fresh = gpt2_tokenizer()
        with open(triple, encoding="utf-8") as f:
            triple_peak = peak_added_memory(lambda: sum(1 for _ in fresh.encode_iterable(f)))

        copies = -(-TARGET_TOKENS // len(play_ids))
        big = Path(tmp) / "big.bin"
        with open(big, "wb") as f:
            for _ in range(copies):
                np.asarray(play_ids).tofile(f)
        ids = np.memmap(big, dtype=np.uint16, mode="r")
        x, y = get_batch(ids, BATCH, BLOCK, torch.Generator().manual_seed(1))
        x_ref, y_ref = get_batch_before(ids, BATCH, BLOCK, torch.Generator().manual_seed(1))
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)

        new_s = time_batches(get_batch, ids, 200)
        new_mem = peak_added_memory(lambda: [get_batch(ids, BATCH, BLOCK) for _ in range(100)])
        old_s = time_batches(get_batch_before, ids, 3)
        old_mem = peak_added_memory(lambda: get_batch_before(ids, BATCH, BLOCK))
        result = {
            "tokenizer": "GPT-2 (llmcourse.tokenization.gpt2_tokenizer)",
            "text_bytes": text_file.stat().st_size,
            "text_tokens": int(len(play_ids)),
            "encode_iterable_seconds": round(encode_s, 1),
            "encode_iterable_peak_added_MiB": round(stream_peak / MiB, 2),
            "encode_iterable_3x_text_bytes": triple.stat().st_size,
            "encode_iterable_3x_peak_added_MiB": round(triple_peak / MiB, 2),
            "corpus_tokens": int(len(ids)),
            "corpus_copies": copies,
            "token_file_MiB": round(big.stat().st_size / MiB, 1),
            "batch": [BATCH, BLOCK],
            "get_batch_ms": round(1000 * new_s, 3),
            "get_batch_peak_added_MiB_100_batches": round(new_mem / MiB, 2),
            "before_get_batch_ms": round(1000 * old_s, 1),
            "before_get_batch_peak_added_MiB": round(old_mem / MiB, 1),
            "machine": f"{platform.machine()}, {platform.python_version()}",
        }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
