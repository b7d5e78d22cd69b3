"""Chapter 11: how big published language models are, and how loss falls with size.

Two ideas live here.

**Parameter counts from a configuration.** A Transformer's size follows from a handful of
numbers: ``n_layer`` blocks of width ``d_model``, a feed-forward width ``d_ff`` (4 d_model in
GPT-2, BERT and GPT-3), a vocabulary of ``vocab_size`` tokens and ``n_positions`` learned
positions. With every weight, bias and LayerNorm counted, one block of GPT-2 or BERT holds

    attention  4 d_model^2 + 4 d_model      (query, key, value and output projections)
    MLP        2 d_model d_ff + d_ff + d_model
    2 LayerNorms                4 d_model

which is ``12 d_model^2 + 13 d_model`` when ``d_ff = 4 d_model``. ``gpt2_param_count`` and
``bert_param_count`` add the embeddings and the final pieces, and agree exactly with the
Hugging Face models (``GPT2LMHeadModel``, ``BertModel``); ``PUBLISHED`` holds the published
configurations (Radford et al., 2019; Devlin et al., 2019; Brown et al., 2020), the
figures the papers quote and, for GPT-2, the sizes in the released checkpoints' names (the
paper's counts were wrong, as OpenAI's gpt-2 repository notes: 117M, 345M, 762M and 1542M in
the paper; 124M, 355M, 774M and 1558M on release). Kaplan et al. (2020) approximate the
non-embedding count by ``12 n_layer d_model^2``.

**Power laws.** Kaplan et al. (2020) found that test loss falls as a power of the number of
non-embedding parameters N, ``L(N) = (N_c / N)^alpha_N`` with ``alpha_N ~ 0.076`` and
``N_c ~ 8.8e13``, and that for a compute budget C the best model grows as ``N_opt ~ C^0.73``.
Hoffmann et al. (2022, "Chinchilla") found instead that N and the number D of training tokens
should grow about equally (``C^0.5`` each), about 20 tokens per parameter, with training
compute ``C ~ 6 N D`` floating-point operations (``chinchilla_optimal``). Their "approach 3"
fits ``L(N, D) = E + A / N^alpha + B / D^beta`` (``LossFit``, ``CHINCHILLA_FIT``), whose
minimum under ``6 N D = C`` has a closed form (``LossFit.optimal``). ``fit_power_law`` fits
``y = coefficient * x^exponent`` by least squares on log-log axes.

**A toy scaling experiment.** ``run_scaling_experiment`` trains a series of small GPTs
(``llmcourse.gpt``) of growing size with the same data, steps, batches and schedule
(``llmcourse.training``), and returns each one's validation loss; ``scripts/
scaling_experiment.py`` runs it on the Shakespeare corpus and saves the result for chapter 11.

Letters: N parameters, D training tokens, C training compute (FLOPs), L loss (nats/token).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from llmcourse.validation import positive_int

__all__ = [
    "load_scaling_results",
    "ModelShape",
    "PUBLISHED",
    "transformer_block_params",
    "gpt2_param_count",
    "bert_param_count",
    "param_count",
    "kaplan_approx_params",
    "PowerLaw",
    "fit_power_law",
    "kaplan_loss",
    "training_flops",
    "chinchilla_optimal",
    "CHINCHILLA_TOKENS_PER_PARAM",
    "LossFit",
    "CHINCHILLA_FIT",
    "KAPLAN_N_OPT_EXPONENT",
    "KAPLAN_ALPHA_N",
    "KAPLAN_N_C",
    "ExperimentSize",
    "run_scaling_experiment",
]

CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. (2022), table 3: about 20 tokens per parameter
KAPLAN_ALPHA_N = 0.076  # Kaplan et al. (2020), equation 1.1
KAPLAN_N_C = 8.8e13  # non-embedding parameters
KAPLAN_N_OPT_EXPONENT = 0.73  # Kaplan et al. (2020): the compute-optimal N grows as C^0.73


@dataclass(frozen=True)
class ModelShape:
    """The configuration numbers that fix a GPT-2- or BERT-style model's size."""

    name: str  # how the paper calls it
    family: str  # "gpt2" (decoder, tied lm_head) or "bert" (encoder, with pooler)
    n_layer: int  # number of Transformer blocks
    d_model: int  # width of the residual stream
    vocab_size: int  # token embedding rows
    n_positions: int  # learned position embedding rows (the context length)
    published: float  # the size the paper quotes, in parameters
    n_token_types: int = 0  # BERT's segment embeddings (sentence A / B); 0 for GPT
    d_ff: int | None = None  # feed-forward width; None means 4 * d_model
    released: float | None = None  # the size in the released checkpoint's name, if different

    def __post_init__(self):
        if self.family not in ("gpt2", "bert"):
            raise ValueError(f"family must be 'gpt2' or 'bert', got {self.family!r}")


# The published configurations. GPT-2's are those of its released checkpoints (config.json
# of gpt2, gpt2-medium, gpt2-large, gpt2-xl), with the sizes of the paper's table 2 and of the
# checkpoints' names (openai/gpt-2's download_model.py); GPT-3's is table 2.1 of Brown et al.
PUBLISHED = {
    "GPT-2 small": ModelShape("GPT-2 small", "gpt2", 12, 768, 50257, 1024, 117e6, released=124e6),
    "GPT-2 medium": ModelShape(
        "GPT-2 medium", "gpt2", 24, 1024, 50257, 1024, 345e6, released=355e6
    ),
    "GPT-2 large": ModelShape("GPT-2 large", "gpt2", 36, 1280, 50257, 1024, 762e6, released=774e6),
    "GPT-2 XL": ModelShape("GPT-2 XL", "gpt2", 48, 1600, 50257, 1024, 1542e6, released=1558e6),
    "BERT-base": ModelShape("BERT-base", "bert", 12, 768, 30522, 512, 110e6, n_token_types=2),
    "GPT-3 175B": ModelShape("GPT-3 175B", "gpt2", 96, 12288, 50257, 2048, 175e9),
}


def transformer_block_params(d_model: int, d_ff: int | None = None, bias: bool = True) -> int:
    """Weights and biases of one GPT-2/BERT block: attention, MLP and two LayerNorms.
    Without biases (``bias=False``, as nanoGPT allows) the LayerNorms keep only their gains."""
    d_model = positive_int("d_model", d_model)
    d_ff = 4 * d_model if d_ff is None else positive_int("d_ff", d_ff)
    attention = 4 * d_model * d_model + (4 * d_model if bias else 0)  # W_q, W_k, W_v, W_o
    mlp = 2 * d_model * d_ff + (d_ff + d_model if bias else 0)
    norms = 2 * (2 if bias else 1) * d_model  # two LayerNorms: a gain (and a shift)
    return attention + mlp + norms


def gpt2_param_count(
    n_layer: int,
    d_model: int,
    vocab_size: int = 50257,
    n_positions: int = 1024,
    d_ff: int | None = None,
    bias: bool = True,
) -> int:
    """Parameters of ``GPT2LMHeadModel``: embeddings, blocks, final LayerNorm; tied lm_head.

    The output layer reuses the token embedding matrix (weight tying), so it adds nothing.
    ``bias=False`` counts the bias-free variant (``llmcourse.gpt.GPTConfig(bias=False)``).
    """
    for name, value in (
        ("n_layer", n_layer),
        ("vocab_size", vocab_size),
        ("n_positions", n_positions),
    ):
        positive_int(name, value)
    embeddings = vocab_size * d_model + n_positions * d_model  # wte + wpe
    final_norm = (2 if bias else 1) * d_model  # ln_f
    return embeddings + n_layer * transformer_block_params(d_model, d_ff, bias) + final_norm


def bert_param_count(
    n_layer: int,
    d_model: int,
    vocab_size: int = 30522,
    n_positions: int = 512,
    n_token_types: int = 2,
    d_ff: int | None = None,
    pooler: bool = True,
) -> int:
    """Parameters of ``BertModel``: three embeddings and their LayerNorm, blocks, pooler."""
    for name, value in (
        ("n_layer", n_layer),
        ("vocab_size", vocab_size),
        ("n_positions", n_positions),
        ("n_token_types", n_token_types),
    ):
        positive_int(name, value)
    embeddings = (vocab_size + n_positions + n_token_types) * d_model + 2 * d_model
    pooler_params = d_model * d_model + d_model if pooler else 0  # dense layer on [CLS]
    return embeddings + n_layer * transformer_block_params(d_model, d_ff) + pooler_params


def param_count(shape: ModelShape) -> int:
    """The exact parameter count of a published configuration (see ``PUBLISHED``)."""
    if not isinstance(shape, ModelShape):
        raise ValueError(f"expected a ModelShape, got {type(shape).__name__}")
    if shape.family == "bert":
        return bert_param_count(
            shape.n_layer,
            shape.d_model,
            shape.vocab_size,
            shape.n_positions,
            shape.n_token_types,
            shape.d_ff,
        )
    return gpt2_param_count(
        shape.n_layer, shape.d_model, shape.vocab_size, shape.n_positions, shape.d_ff
    )


def kaplan_approx_params(n_layer: int, d_model: int) -> int:
    """Kaplan et al.'s (2020) approximation of the non-embedding count: 12 n_layer d_model^2."""
    return 12 * positive_int("n_layer", n_layer) * positive_int("d_model", d_model) ** 2


@dataclass(frozen=True)
class PowerLaw:
    """``y = coefficient * x ** exponent``, a straight line on log-log axes."""

    coefficient: float
    exponent: float

    def __call__(self, x):
        return self.coefficient * x**self.exponent


def _positive_floats(name: str, values) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if any(not math.isfinite(v) or v <= 0 for v in out):
        raise ValueError(f"{name} must hold positive finite numbers (logs are taken), got {out}")
    return out


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """Least-squares fit of ``log y = log coefficient + exponent * log x``.

    The fit is done on log-log axes, where a power law is a straight line, so every point
    counts by its relative error, not its absolute one.
    """
    xs, ys = _positive_floats("x", x), _positive_floats("y", y)
    if len(xs) != len(ys):
        raise ValueError(f"x and y must have the same length, got {len(xs)} and {len(ys)}")
    if len(xs) < 2 or len(set(xs)) < 2:
        raise ValueError("fitting a power law needs at least two distinct x values")
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)
    return PowerLaw(coefficient=math.exp(my - slope * mx), exponent=slope)


def kaplan_loss(n_params: float) -> float:
    """Kaplan et al.'s (2020) fit L(N) = (N_c / N)^0.076, in nats per token on WebText2."""
    if isinstance(n_params, bool) or not isinstance(n_params, (int, float)) or n_params <= 0:
        raise ValueError(f"n_params must be a positive number, got {n_params!r}")
    return (KAPLAN_N_C / n_params) ** KAPLAN_ALPHA_N


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training compute C ~ 6 N D: 2 N FLOPs per token forward, 4 N backward (Kaplan, 2020)."""
    for name, value in (("n_params", n_params), ("n_tokens", n_tokens)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    return 6.0 * n_params * n_tokens


def chinchilla_optimal(
    compute_flops: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM
) -> tuple[float, float]:
    """The compute-optimal (N, D) for a budget C, with D = 20 N and C = 6 N D.

    Then C = 6 * 20 * N^2, so N = sqrt(C / 120) and D = 20 N (Hoffmann et al., 2022).
    """
    for name, value in (("compute_flops", compute_flops), ("tokens_per_param", tokens_per_param)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    n_params = math.sqrt(compute_flops / (6.0 * tokens_per_param))
    return n_params, tokens_per_param * n_params


@dataclass(frozen=True)
class LossFit:
    """Hoffmann et al.'s (2022) parametric loss ``L(N, D) = E + A / N^alpha + B / D^beta``.

    E is the loss no model removes (the entropy of text); the two power laws are what a finite
    model (N parameters) and finite data (D tokens) add to it.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(self, n_params, n_tokens):
        return self.E + self.A / n_params**self.alpha + self.B / n_tokens**self.beta

    def optimal(self, compute_flops: float) -> tuple[float, float]:
        """The (N, D) that minimise L(N, D) subject to 6 N D = C.

        Setting dL/dN = 0 along D = C / (6 N) gives ``N = G (C/6)^a`` and ``D = (C/6)^b / G``
        with ``G = (alpha A / (beta B))^(1 / (alpha + beta))``, ``a = beta / (alpha + beta)`` and
        ``b = alpha / (alpha + beta)`` (Hoffmann et al., 2022, section 3.3).
        """
        if (
            isinstance(compute_flops, bool)
            or not isinstance(compute_flops, (int, float))
            or not compute_flops > 0
        ):
            raise ValueError(f"compute_flops must be a positive number, got {compute_flops!r}")
        total = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / total)
        c6 = compute_flops / 6
        return g * c6 ** (self.beta / total), c6 ** (self.alpha / total) / g


# Approach 3 of Hoffmann et al. (2022), section 3.3, with the constants as printed there
# (Besiroglu et al., 2024, found them rounded, and the fit stopped early; see chapter 11).
CHINCHILLA_FIT = LossFit(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


@dataclass(frozen=True)
class ExperimentSize:
    """One model of the scaling experiment: depth, heads and width of a small GPT."""

    n_layer: int  # Transformer blocks
    n_head: int  # attention heads; must divide n_embd
    n_embd: int  # model width C


def run_scaling_experiment(
    train_ids, val_ids, vocab_size: int, sizes: Sequence[ExperimentSize], train_config
) -> list[dict]:
    """Train one GPT per size on the same data and budget; return what each one measured.

    Every model sees the very same batches, in the same order, for the same number of steps
    (``train_config``, a ``llmcourse.training.TrainConfig``), and starts from weights seeded
    with ``train_config.seed``. Each result holds the model's shape, its total and
    non-embedding parameter counts (Kaplan et al. count the latter), and its train and
    validation loss curves (nats per token) at ``eval_steps``.
    """
    import torch

    from llmcourse.gpt import GPT, GPTConfig, gpt_param_count
    from llmcourse.training import train

    if len(sizes) == 0 or not all(isinstance(s, ExperimentSize) for s in sizes):
        raise ValueError("sizes must be a non-empty sequence of ExperimentSize")
    results = []
    for size in sizes:
        config = GPTConfig(
            vocab_size=vocab_size,
            block_size=train_config.block_size,
            n_layer=size.n_layer,
            n_head=size.n_head,
            n_embd=size.n_embd,
        )
        torch.manual_seed(train_config.seed)  # the same initialisation seed for every size
        model = GPT(config)
        n_params = gpt_param_count(config)
        embedding = (config.vocab_size + config.block_size) * config.n_embd  # wte + wpe
        history = train(model, train_ids, val_ids, train_config, progress=False)
        results.append(
            {
                "n_layer": size.n_layer,
                "n_head": size.n_head,
                "n_embd": size.n_embd,
                "params": n_params,
                "non_embedding_params": n_params - embedding,
                "eval_steps": history.eval_steps,
                "train_loss": [round(v, 6) for v in history.train_loss],
                "val_loss": [round(v, 6) for v in history.val_loss],
            }
        )
    return results


def load_scaling_results() -> dict:
    """The results of ``scripts/scaling_experiment.py``, saved in the package's data folder
    (``llmcourse/data/scaling_results.json``), so they load wherever the package is installed."""
    path = resources.files("llmcourse").joinpath("data/scaling_results.json")
    return json.loads(path.read_text())
