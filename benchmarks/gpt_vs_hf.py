"""Benchmark: llmcourse's GPT against Hugging Face's GPT2LMHeadModel on the same weights.

    python benchmarks/gpt_vs_hf.py            # about a minute on 2 CPU cores

Times one forward pass over a prompt, and greedy generation with and without the KV cache,
for both models (same random GPT-2-small-sized weights, fixed seed), checks that both
generate the same tokens, prints a table and writes benchmarks/results/gpt_vs_hf.json.
After a warm-up, the two models alternate for several repetitions (so that both see the
same machine load) and each time is the median of its repetitions; the load average before
and after is recorded. Target: ours takes at most Hugging Face's time.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from llmcourse.generation import generate
from llmcourse.gpt import GPT, GPTConfig, gpt_param_count

RESULTS = Path(__file__).resolve().parent / "results" / "gpt_vs_hf.json"


@torch.no_grad()
def run(
    config: GPTConfig, prompt_len: int = 32, new_tokens: int = 16, repeats: int = 7, seed: int = 0
) -> dict:
    """Time both models on one random prompt; returns seconds, ratios and tokens/s."""
    torch.manual_seed(seed)
    ours = GPT(config).eval()
    hf = ours.to_hf(bos_token_id=None, eos_token_id=None, pad_token_id=0).eval()
    hf.generation_config.eos_token_id = None
    ids = torch.randint(0, config.vocab_size, (1, prompt_len))
    mask = torch.ones_like(ids)  # pad_token_id is 0, a real token here: say nothing is padding
    tasks = {
        "forward": (lambda: ours(ids), lambda: hf(ids).logits),
        "generate_cached": (
            lambda: generate(ours, ids, new_tokens, use_cache=True),
            lambda: hf.generate(
                ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, use_cache=True
            ),
        ),
        "generate_uncached": (
            lambda: generate(ours, ids, new_tokens, use_cache=False),
            lambda: hf.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                do_sample=False,
                use_cache=False,
            ),
        ),
    }
    load_before = os.getloadavg()[0]  # how busy the machine was: other work slows both models
    result = {}
    for name, (ours_fn, hf_fn) in tasks.items():
        ours_fn(), hf_fn()  # warm-up
        times = {"ours": [], "hf": []}
        for _ in range(repeats):  # alternate so that both see the same machine load
            for who, fn in (("ours", ours_fn), ("hf", hf_fn)):
                start = time.perf_counter()
                fn()
                times[who].append(time.perf_counter() - start)
        t_ours, t_hf = statistics.median(times["ours"]), statistics.median(times["hf"])
        row = {"ours_s": t_ours, "hf_s": t_hf, "ratio": t_ours / t_hf, "times_s": times}
        if name.startswith("generate"):
            row.update(ours_tokens_per_s=new_tokens / t_ours, hf_tokens_per_s=new_tokens / t_hf)
        result[name] = row
    result["same_tokens"] = bool(
        torch.equal(
            generate(ours, ids, new_tokens),
            hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False),
        )
    )
    result["setup"] = dict(
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_embd=config.n_embd,
        vocab_size=config.vocab_size,
        parameters=gpt_param_count(config),
        prompt_len=prompt_len,
        new_tokens=new_tokens,
        repeats=repeats,
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        load_average_1min=[round(load_before, 1), round(os.getloadavg()[0], 1)],
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        torch=torch.__version__,
        machine=platform.machine(),
    )
    return result


def main() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    result = run(GPTConfig.gpt2(), prompt_len=32, new_tokens=16)
    result["setup"]["transformers"] = transformers.__version__
    result["command"] = "python benchmarks/gpt_vs_hf.py"
    print(
        f"GPT-2 small ({result['setup']['parameters']:,} parameters), "
        f"{torch.get_num_threads()} threads, median of {result['setup']['repeats']}; load "
        f"average {result['setup']['load_average_1min']} on {os.cpu_count()} CPUs"
    )
    print(f"{'task':<20}{'ours (s)':>10}{'HF (s)':>10}{'ours/HF':>9}")
    for name in ("forward", "generate_cached", "generate_uncached"):
        row = result[name]
        print(f"{name:<20}{row['ours_s']:>10.3f}{row['hf_s']:>10.3f}{row['ratio']:>9.2f}")
    print(f"same greedy tokens: {result['same_tokens']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to benchmarks/results/{RESULTS.name}")


if __name__ == "__main__":
    main()
