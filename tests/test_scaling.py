"""llmcourse.scaling: parameter counts equal Hugging Face's models; power-law fits; Chinchilla."""

import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from llmcourse.scaling import (
    CHINCHILLA_FIT,
    PUBLISHED,
    LossFit,
    ModelShape,
    PowerLaw,
    bert_param_count,
    chinchilla_optimal,
    fit_power_law,
    gpt2_param_count,
    kaplan_approx_params,
    kaplan_loss,
    param_count,
    training_flops,
    transformer_block_params,
)


def count(model):
    return sum(p.numel() for p in model.parameters())  # tied weights are listed once


def hf_gpt2(**kwargs):
    with torch.device("meta"):  # shapes only, no memory
        return GPT2LMHeadModel(GPT2Config(bos_token_id=0, eos_token_id=0, **kwargs))


@pytest.mark.parametrize(
    "L, d, heads, V, P, d_ff",
    [
        (12, 768, 12, 50257, 1024, None),  # GPT-2 small
        (3, 40, 4, 101, 17, None),
        (1, 6, 2, 7, 5, 10),  # odd sizes, d_ff not 4 d_model
        (2, 8, 1, 3, 1, 1),
    ],
)
def test_gpt2_count_equals_hugging_face(L, d, heads, V, P, d_ff):
    model = hf_gpt2(n_layer=L, n_embd=d, n_head=heads, vocab_size=V, n_positions=P, n_inner=d_ff)
    assert gpt2_param_count(L, d, V, P, d_ff) == count(model)


@pytest.mark.parametrize(
    "L, d, heads, V, P, T, d_ff",
    [
        (12, 768, 12, 30522, 512, 2, None),  # BERT-base
        (2, 12, 3, 50, 9, 1, 7),
        (1, 4, 1, 5, 3, 3, None),
    ],
)
def test_bert_count_equals_hugging_face(L, d, heads, V, P, T, d_ff):
    config = BertConfig(
        num_hidden_layers=L,
        hidden_size=d,
        num_attention_heads=heads,
        vocab_size=V,
        max_position_embeddings=P,
        type_vocab_size=T,
        intermediate_size=d_ff or 4 * d,
        pad_token_id=0,
    )
    with torch.device("meta"):
        model = BertModel(config)
    assert bert_param_count(L, d, V, P, T, d_ff) == count(model)
    with torch.device("meta"):
        bare = BertModel(config, add_pooling_layer=False)
    assert bert_param_count(L, d, V, P, T, d_ff, pooler=False) == count(bare)


def test_published_shapes_close_to_quoted_sizes():
    exact = {name: param_count(shape) for name, shape in PUBLISHED.items()}
    assert exact["GPT-2 small"] == 124_439_808
    assert exact["BERT-base"] == 109_482_240
    for name, shape in PUBLISHED.items():
        # The released GPT-2 checkpoints are named by their (rounded) exact counts; the GPT-2
        # paper's own figures are 1-6 % too low. BERT's and GPT-3's quoted sizes are within 0.5 %.
        quoted = shape.released or shape.published
        assert abs(exact[name] / quoted - 1) < 0.005, name
        if shape.released:
            assert 1.0 < exact[name] / shape.published < 1.07, name
    assert exact["GPT-2 small"] < exact["GPT-2 medium"] < exact["GPT-2 large"] < exact["GPT-2 XL"]


def test_block_and_kaplan_approximation():
    assert transformer_block_params(768) == 12 * 768**2 + 13 * 768
    assert transformer_block_params(10, 7) == 4 * 110 + 2 * 70 + 7 + 10 + 40
    gpt3 = PUBLISHED["GPT-3 175B"]
    approx = kaplan_approx_params(gpt3.n_layer, gpt3.d_model)
    assert 0.99 < approx / param_count(gpt3) < 1.0  # embeddings are under 1 % of GPT-3


def test_fit_power_law_recovers_exact_law_and_matches_numpy():
    x = [1e3, 3e3, 1e4, 1e5]
    law = fit_power_law(x, [2.5 * v**-0.2 for v in x])
    assert isinstance(law, PowerLaw)
    assert law.exponent == pytest.approx(-0.2, rel=1e-12)
    assert law.coefficient == pytest.approx(2.5, rel=1e-12)
    assert law(1e6) == pytest.approx(2.5 * 1e6**-0.2, rel=1e-12)
    y = [3.0, 2.1, 1.9, 1.2]
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    fitted = fit_power_law(x, y)
    assert fitted.exponent == pytest.approx(slope, rel=1e-10)
    assert fitted.coefficient == pytest.approx(math.exp(intercept), rel=1e-10)


def test_chinchilla_and_flops():
    n, d = chinchilla_optimal(5.76e23)
    assert n == pytest.approx(69.28e9, rel=1e-3) and d == pytest.approx(20 * n)
    assert training_flops(n, d) == pytest.approx(5.76e23)
    n2, _ = chinchilla_optimal(4 * 5.76e23)
    assert n2 == pytest.approx(2 * n)
    assert training_flops(1e9, 1e10) == 6e19


def test_chinchilla_fit_optimum_is_the_constrained_minimum():
    for compute in (1e18, 5.76e23, 1e26):
        n, d = CHINCHILLA_FIT.optimal(compute)
        assert training_flops(n, d) == pytest.approx(compute, rel=1e-12)
        # along 6 N D = C, the loss is lowest at the closed form: check on a fine grid
        grid = np.geomspace(n / 3, n * 3, 2001)
        losses = CHINCHILLA_FIT(grid, compute / (6 * grid))
        assert grid[losses.argmin()] == pytest.approx(n, rel=2e-3)
    # a = beta / (alpha + beta): N grows a bit slower than sqrt(C), so D / N grows with C
    n1, d1 = CHINCHILLA_FIT.optimal(1e21)
    n2, d2 = CHINCHILLA_FIT.optimal(1e23)
    assert n2 / n1 == pytest.approx(100 ** (0.28 / 0.62), rel=1e-9) and d2 / n2 > d1 / n1
    symmetric = LossFit(E=1.0, A=1.0, B=1.0, alpha=0.5, beta=0.5)
    assert symmetric.optimal(6e10) == pytest.approx((1e5, 1e5))  # N = D = sqrt(C / 6)
    assert symmetric(1e4, 1e4) == pytest.approx(1.02)
    with pytest.raises(ValueError, match="compute_flops must be a positive number"):
        CHINCHILLA_FIT.optimal(-1.0)


def test_kaplan_loss():
    assert kaplan_loss(8.8e13) == pytest.approx(1.0)
    assert kaplan_loss(1e9) == pytest.approx((8.8e13 / 1e9) ** 0.076)
    assert kaplan_loss(1e9) > kaplan_loss(1e10)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: gpt2_param_count(0, 768), "n_layer must be a positive int, got 0"),
        (lambda: gpt2_param_count(12, 768.0), "d_model must be a positive int, got 768.0"),
        (lambda: gpt2_param_count(12, 768, vocab_size=-1), "vocab_size must be a positive int"),
        (lambda: gpt2_param_count(12, 768, n_positions=True), "n_positions must be a positive int"),
        (lambda: transformer_block_params(8, 0), "d_ff must be a positive int, got 0"),
        (lambda: bert_param_count(2, 8, n_token_types=0), "n_token_types must be a positive int"),
        (lambda: param_count({"n_layer": 12}), "expected a ModelShape, got dict"),
        (lambda: ModelShape("x", "t5", 1, 1, 1, 1, 1.0), "family must be 'gpt2' or 'bert'"),
        (lambda: kaplan_approx_params(12, -1), "d_model must be a positive int"),
        (lambda: fit_power_law([1, 2], [1, 2, 3]), "same length, got 2 and 3"),
        (lambda: fit_power_law([1, 1], [1, 2]), "at least two distinct x values"),
        (lambda: fit_power_law([1, 2], [0, 1]), "y must hold positive finite numbers"),
        (lambda: fit_power_law(["a"], [1]), "x must be a sequence of numbers"),
        (lambda: kaplan_loss(0), "n_params must be a positive number, got 0"),
        (lambda: training_flops(1e9, -1), "n_tokens must be a positive number"),
        (lambda: chinchilla_optimal("1e21"), "compute_flops must be a positive number"),
        (
            lambda: chinchilla_optimal(1e21, tokens_per_param=0),
            "tokens_per_param must be a positive",
        ),
    ],
)
def test_input_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the toy scaling experiment ---------------------------------------------------------------


def test_scaling_experiment_core_on_tiny_models():
    from llmcourse.gpt import GPT, GPTConfig, gpt_param_count
    from llmcourse.scaling import ExperimentSize, run_scaling_experiment
    from llmcourse.training import TrainConfig

    ids = torch.arange(400) % 7  # a periodic text: easy to learn
    sizes = [ExperimentSize(1, 1, 8), ExperimentSize(2, 2, 16)]
    config = TrainConfig(
        steps=30,
        batch_size=4,
        block_size=8,
        warmup_steps=2,
        eval_every=10,
        eval_batches=1,
        max_lr=1e-2,
        min_lr=1e-3,
    )
    first = run_scaling_experiment(ids, ids, 7, sizes, config)
    again = run_scaling_experiment(ids, ids, 7, sizes, config)
    assert first == again  # seeded: the same numbers on a rerun
    assert [r["n_embd"] for r in first] == [8, 16]
    for r, size in zip(first, sizes):
        cfg = GPTConfig(
            vocab_size=7, block_size=8, n_layer=size.n_layer, n_head=size.n_head, n_embd=size.n_embd
        )
        assert r["params"] == gpt_param_count(cfg) == count(GPT(cfg))
        assert r["non_embedding_params"] == r["params"] - (7 + 8) * size.n_embd
        assert r["eval_steps"] == [0, 10, 20, 30]
        assert len(r["val_loss"]) == 4 and r["val_loss"][-1] < r["val_loss"][0] - 0.3
    with pytest.raises(ValueError, match="non-empty sequence of ExperimentSize"):
        run_scaling_experiment(ids, ids, 7, [], config)


def test_scaling_experiment_script_writes_json(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "scaling_experiment.py"
    spec = importlib.util.spec_from_file_location("scaling_experiment", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "results.json"
    result = script.main(["--steps", "2", "--sizes", "1", "--eval-batches", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["models"] == result["models"] and len(saved["models"]) == 1
    assert saved["train_config"]["steps"] == 2 and saved["train_config"]["eval_batches"] == 1
    assert saved["tokens_per_model"] == 2 * 32 * 64
    assert 3.0 < saved["unigram_val_loss"] < 3.5  # character frequencies of Shakespeare
