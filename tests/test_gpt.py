"""llmcourse.gpt against Hugging Face's GPT2LMHeadModel, with weights copied across."""

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import assert_equal, hf_gpt2
from transformers import GPT2Config, GPT2LMHeadModel

from llmcourse.attention import causal_mask
from llmcourse.gpt import GPT, GPTConfig, gpt_param_count
from llmcourse.kvcache import KVCache
from llmcourse.norm import layer_norm


@pytest.mark.parametrize("shape", [(1, 1), (1, 24), (3, 7)])
def test_logits_equal_hf(shape):
    hf = hf_gpt2()
    ours = GPT.from_hf(hf)
    ids = torch.randint(0, 97, shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-5, rtol=1e-5)


def test_from_hf_copies_every_tensor_and_ties_head():
    hf = hf_gpt2(n_embd=12, n_head=4, n_layer=2)
    ours = GPT.from_hf(hf)
    assert set(ours.state_dict()) == set(hf.state_dict())
    assert ours.lm_head.weight.data_ptr() == ours.transformer.wte.weight.data_ptr()
    assert not ours.training
    assert_equal(ours.transformer.h[1].attn.c_attn.weight, hf.transformer.h[1].attn.c_attn.weight.T)


def test_kv_cache_gives_the_same_logits_in_chunks():
    ours = GPT.from_hf(hf_gpt2())
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full = ours(ids)
        cache = KVCache(ours.num_layers)
        chunks = [(0, 9), (9, 12), (12, 13), (13, 20)]
        parts = [ours(ids[:, a:b], kv_cache=cache) for a, b in chunks]
    assert len(cache) == 20
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_causal_mask_after_a_cache():
    expected = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(2, 4, past=2), expected)
    with pytest.raises(ValueError, match="past"):
        causal_mask(5, 4, past=-1)


def test_future_tokens_do_not_change_past_logits():
    ours = GPT(GPTConfig.tiny()).eval()
    a = torch.randint(0, 256, (1, 10))
    b = a.clone()
    b[0, 6:] = (b[0, 6:] + 1) % 256
    with torch.no_grad():
        torch.testing.assert_close(ours(a)[:, :6], ours(b)[:, :6], atol=1e-6, rtol=0)
        assert not torch.allclose(ours(a)[:, 6:], ours(b)[:, 6:])


@pytest.mark.parametrize("kw", [dict(), dict(n_embd=12, n_head=3, n_layer=1, vocab_size=5)])
def test_param_count_formula(kw):
    hf = hf_gpt2(**kw)
    ours = GPT.from_hf(hf)
    n = gpt_param_count(ours.config)
    assert n == sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())


def test_param_count_presets_and_no_bias():
    assert gpt_param_count(GPTConfig.gpt2()) == 124_439_808
    assert gpt_param_count(GPTConfig.gpt2_medium()) == 354_823_168
    assert gpt_param_count(GPTConfig.gpt2_large()) == 774_030_080
    assert gpt_param_count(GPTConfig.gpt2_xl()) == 1_557_611_200
    config = GPTConfig.tiny(bias=False, n_layer=3)
    assert gpt_param_count(config) == sum(p.numel() for p in GPT(config).parameters())


def test_config_presets_and_from_hf():
    assert GPTConfig.tiny(vocab_size=65).vocab_size == 65
    assert GPTConfig.gpt2().n_embd == 768 and GPTConfig.gpt2_xl().n_head == 25
    config = GPTConfig.from_hf(GPT2Config(n_embd=24, n_head=4, n_layer=2, n_positions=16))
    assert (config.n_embd, config.n_head, config.n_layer, config.block_size) == (24, 4, 2, 16)
    with pytest.raises(ValueError, match="tanh GELU"):
        GPTConfig.from_hf(GPT2Config(activation_function="relu"))
    with pytest.raises(ValueError, match="n_inner"):
        GPTConfig.from_hf(GPT2Config(n_inner=100))


def test_to_hf_round_trip():
    ours = GPT(GPTConfig.tiny(n_layer=3, n_embd=24, n_head=3)).eval()
    hf = ours.to_hf()
    ids = torch.randint(0, 256, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), atol=1e-5, rtol=1e-5)
    assert hf.config.eos_token_id is None
    assert ours.to_hf(eos_token_id=3).config.eos_token_id == 3


def test_layer_norm_is_chapter_6s():
    ln = GPT(GPTConfig.tiny()).transformer.h[0].ln_1
    torch.nn.init.normal_(ln.weight)
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(ln(x), layer_norm(x, ln.weight, ln.bias, 1e-5), atol=1e-6, rtol=1e-6)


def test_save_pretrained_loads_in_pipeline(tmp_path):
    from transformers import AutoTokenizer, pipeline

    from llmcourse.offline import smollm2_path

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    ours = GPT(GPTConfig.tiny(vocab_size=len(tokenizer), n_embd=16)).eval()
    folder = ours.save_pretrained(tmp_path / "tiny-gpt")
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    generator = pipeline("text-generation", model=str(folder), tokenizer=tokenizer)
    out = generator("Hello", max_new_tokens=3, do_sample=False)[0]["generated_text"]
    assert out.startswith("Hello") and len(out) > len("Hello")
    hf = GPT2LMHeadModel.from_pretrained(folder)
    ids = torch.randint(0, len(tokenizer), (1, 6))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), atol=1e-5, rtol=1e-5)


def test_save_pretrained_is_atomic(tmp_path, monkeypatch):
    ours = GPT(GPTConfig.tiny())
    target = ours.save_pretrained(tmp_path / "ckpt")
    before = (target / "model.safetensors").read_bytes()

    def crash(**kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ours, "to_hf", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        ours.save_pretrained(target)
    with pytest.raises(RuntimeError, match="disk full"):
        ours.save_pretrained(tmp_path / "new")
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    monkeypatch.undo()
    torch.nn.init.zeros_(ours.transformer.wpe.weight)
    ours.save_pretrained(target)  # overwriting replaces the old checkpoint
    assert (target / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_dropout_only_in_training():
    ours = GPT(GPTConfig.tiny(dropout=0.5))
    ids = torch.randint(0, 256, (2, 8))
    assert not torch.allclose(ours(ids), ours(ids))
    ours.eval()
    assert_equal(ours(ids), ours(ids))


def test_validation_messages():
    ours = GPT(GPTConfig.tiny(block_size=8))
    with pytest.raises(ValueError, match="token ids must lie in 0..255"):
        ours(torch.tensor([[1, 256]]))
    with pytest.raises(ValueError, match="token ids must lie in 0..255"):
        ours(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="longer than the model.s 8 positions"):
        ours(torch.zeros(1, 9, dtype=torch.long))
    cache = KVCache(2)
    ours(torch.zeros(1, 6, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match=r"length 9 \(past 6 \+ new 3\) is longer than the model"):
        ours(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match=r"input_ids must be .* \(batch, seq\) .*shape \(4,\)"):
        ours(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="must be an integer tensor .* got torch.float32"):
        ours(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="seq >= 1"):
        ours(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="batch >= 1"):
        ours(torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="kv_cache must be a KVCache with 2 layers"):
        ours(torch.zeros(1, 2, dtype=torch.long), kv_cache=KVCache(3))
    with pytest.raises(ValueError, match="kv_cache must be a KVCache"):
        ours(torch.zeros(1, 2, dtype=torch.long), kv_cache=[])
    batch_of_two = KVCache(2)
    ours(torch.zeros(2, 3, dtype=torch.long), kv_cache=batch_of_two)
    with pytest.raises(
        ValueError, match="kv_cache holds a batch of 2, but input_ids has a batch of 1"
    ):
        ours(torch.zeros(1, 1, dtype=torch.long), kv_cache=batch_of_two)
    with pytest.raises(ValueError, match="n_embd=10 is not divisible by n_head=3"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="n_layer must be a positive int"):
        GPTConfig.tiny(n_layer=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        GPTConfig.tiny(dropout=1.0)
    with pytest.raises(ValueError, match="expected a GPTConfig"):
        GPT({"n_layer": 2})
    with pytest.raises(ValueError, match="expected a GPTConfig"):
        gpt_param_count({"n_layer": 2})
    with pytest.raises(ValueError, match="expected a transformers GPT2LMHeadModel"):
        GPT.from_hf(ours)
    with pytest.raises(ValueError, match="always has biases"):
        GPT(GPTConfig.tiny(bias=False)).to_hf()


def test_benchmark_script_runs_on_a_tiny_config(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpt_vs_hf.py"
    spec = importlib.util.spec_from_file_location("gpt_vs_hf", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(GPTConfig.tiny(), prompt_len=8, new_tokens=4, repeats=1)
    for row in ("forward", "generate_cached", "generate_uncached"):
        assert result[row]["ours_s"] > 0 and result[row]["hf_s"] > 0
        assert result[row]["ratio"] == pytest.approx(result[row]["ours_s"] / result[row]["hf_s"])
    assert result["same_tokens"] is True


def test_logits_to_keep_returns_the_last_positions_only():
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=50)).eval()
    ids = torch.randint(0, 50, (2, 7))
    full = model(ids)
    torch.testing.assert_close(model(ids, logits_to_keep=1), full[:, -1:])
    torch.testing.assert_close(model(ids, logits_to_keep=3), full[:, -3:])
    with pytest.raises(ValueError, match="logits_to_keep must be an int >= 0"):
        model(ids, logits_to_keep=-1)
