"""Benchmark: chapter 12's Llama-style decoder against Hugging Face's LlamaForCausalLM.

    python benchmarks/llama_vs_hf.py            # about a minute on 2 quiet CPU cores
    python benchmarks/llama_vs_hf.py --random-weights   # the same shapes, no download needed

Both models hold the same SmolLM2-135M-Instruct weights (llmcourse.offline.smollm2_path()).
Each generates greedily, with its KV cache, the same number of new tokens after the same
chat-formatted prompt: ours with llmcourse.generation.generate, Hugging Face's with
model.generate(do_sample=False) (given the prompt's attention mask, so that no prompt token is
taken for padding). After a warm-up run of each, the two alternate for several repetitions
(so that both see the same machine load) and the median time of each gives its tokens per
second. The script checks that both produced the same tokens, prints the ratio and writes
benchmarks/results/llama_vs_hf.json. Target: ours >= Hugging Face's tokens/s.

Both ask the model for the last position's logits only (transformers' generate, and
llmcourse.generation.generate through the model's logits_to_keep argument): on the prompt,
only that position's logits choose the next token. What is measured is CPU generation in
float32, batch 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from llmcourse.generation import generate
from llmcourse.llama import LlamaConfig, LlamaForCausalLM, load_llama_state_dict

RESULTS = Path(__file__).resolve().parent / "results" / "llama_vs_hf.json"
PROMPT = "Explain how attention mechanism works in Transformers."


def load_models(random_weights: bool):
    """(ours, Hugging Face's, prompt ids), the two models holding the same weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM as HFLlama

    if random_weights:  # SmolLM2's shapes, random values: speed does not depend on them
        torch.manual_seed(0)
        cfg = LlamaConfig()
        hf = HFLlama(
            HFConfig(
                vocab_size=cfg.vocab_size,
                hidden_size=cfg.hidden_size,
                intermediate_size=cfg.intermediate_size,
                num_hidden_layers=cfg.num_hidden_layers,
                num_attention_heads=cfg.num_attention_heads,
                num_key_value_heads=cfg.num_key_value_heads,
                head_dim=cfg.head_dim,
                rms_norm_eps=cfg.rms_norm_eps,
                rope_theta=cfg.rope_theta,
                tie_word_embeddings=True,
            )
        ).eval()
        ours = LlamaForCausalLM(cfg).eval()
        load_llama_state_dict(ours, hf.state_dict())
        ids = torch.randint(0, cfg.vocab_size, (1, 39))
        return ours, hf, ids
    from llmcourse.offline import smollm2_path

    path = smollm2_path()
    ours = LlamaForCausalLM.from_pretrained(path)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    return ours, hf, ids


def run(new_tokens: int = 32, repeats: int = 5, random_weights: bool = False) -> dict:
    load_before = os.getloadavg()[0]  # how busy the machine was: other work slows both models
    ours, hf, ids = load_models(random_weights)
    hf.generation_config.eos_token_id = None  # both produce exactly new_tokens tokens
    mask = torch.ones_like(ids)  # one unpadded prompt: every token is real

    def ours_fn():
        return generate(ours, ids, new_tokens, use_cache=True)

    def hf_fn():
        return hf.generate(
            ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, use_cache=True
        )

    want = hf_fn()  # the warm-up runs double as the check that both produce the same tokens
    same = bool(torch.equal(ours_fn(), want))
    times = {"ours": [], "hf": []}
    for _ in range(repeats):  # alternate, so that both see the same machine load
        for name, fn in (("ours", ours_fn), ("hf", hf_fn)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    result = {
        name: {
            "median_s": statistics.median(t),
            "times_s": t,
            "tokens_per_s": new_tokens / statistics.median(t),
        }
        for name, t in times.items()
    }
    result["ratio"] = result["ours"]["tokens_per_s"] / result["hf"]["tokens_per_s"]
    result["same_tokens"] = same
    result["setup"] = dict(
        model="SmolLM2-135M-Instruct",
        random_weights=random_weights,
        prompt_tokens=ids.shape[1],
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

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="SmolLM2's shapes with random weights (no model files needed)",
    )
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    result = run(args.new_tokens, args.repeats, args.random_weights)
    result["setup"]["transformers"] = transformers.__version__
    result["command"] = (
        "python benchmarks/llama_vs_hf.py"
        + (" --random-weights" if args.random_weights else "")
        + (f" --new-tokens {args.new_tokens}" if args.new_tokens != 32 else "")
        + (f" --repeats {args.repeats}" if args.repeats != 5 else "")
    )
    s = result["setup"]
    print(
        f"SmolLM2-135M, greedy with KV cache, {s['prompt_tokens']} prompt tokens + "
        f"{s['new_tokens']} new, {s['threads']} threads, median of {s['repeats']}; load "
        f"average {s['load_average_1min'][0]} -> {s['load_average_1min'][1]} on "
        f"{s['cpu_count']} CPUs"
    )
    for name, label in (("ours", "llmcourse.llama"), ("hf", "transformers")):
        row = result[name]
        print(f"{label:<17}{row['median_s']:>8.2f} s {row['tokens_per_s']:>8.1f} tokens/s")
    print(
        f"ours / HF tokens per second: {result['ratio']:.2f}   same tokens: {result['same_tokens']}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to benchmarks/results/{RESULTS.name}")


if __name__ == "__main__":
    main()
