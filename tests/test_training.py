"""llmcourse.training against PyTorch: loss, batches, schedule, optimizer, a whole short run."""

import math

import numpy as np
import pytest
import torch
from conftest import generator
from torch import nn
from torch.nn import functional as F

from llmcourse.training import (
    History,
    TrainConfig,
    configure_optimizer,
    estimate_loss,
    fixed_batches,
    get_batch,
    lr_schedule,
    next_token_loss,
    sequence_log_probs,
    train,
    unigram_cross_entropy,
)


class Bigram(nn.Module):
    """The smallest language model: logits of the next id from the current id only."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, 16)
        self.ln = nn.LayerNorm(16)
        self.head = nn.Linear(16, vocab_size)

    def forward(self, input_ids):
        return self.head(self.ln(self.wte(input_ids)))


def cyclic_ids(n=2000, period=7):
    return np.arange(n) % period  # perfectly predictable: next = (current + 1) mod period


# --- next_token_loss ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 5), (3, 4, 11), (2, 7, 2)])
def test_next_token_loss_matches_cross_entropy(shape):
    gen = generator(0)
    logits = torch.randn(*shape, generator=gen)
    targets = torch.randint(0, shape[-1], shape[:2], generator=gen)
    manual = -F.log_softmax(logits, -1).gather(-1, targets[..., None]).mean()
    torch.testing.assert_close(next_token_loss(logits, targets), manual, atol=1e-6, rtol=1e-6)
    reference = F.cross_entropy(logits.transpose(1, 2), targets)  # (B, V, T) layout
    torch.testing.assert_close(next_token_loss(logits, targets), reference, atol=1e-6, rtol=1e-6)


def test_next_token_loss_uniform_is_log_v():
    loss = next_token_loss(torch.zeros(2, 3, 13), torch.randint(0, 13, (2, 3)))
    assert math.isclose(loss.item(), math.log(13), rel_tol=1e-6)


def test_next_token_loss_errors():
    with pytest.raises(ValueError, match=r"expected logits of shape \(batch, seq, vocab\)"):
        next_token_loss(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected targets of shape \(2, 3\)"):
        next_token_loss(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))


# --- unigram baseline -----------------------------------------------------------------------


def test_unigram_cross_entropy_by_hand():
    got = unigram_cross_entropy([0, 0, 0, 1], [0, 1, 1], vocab_size=3)
    want = -(math.log(3 / 4) + 2 * math.log(1 / 4)) / 3
    assert math.isclose(got, want, rel_tol=1e-12)


def test_unigram_cross_entropy_equals_f_cross_entropy():
    rng = np.random.default_rng(0)
    train_ids, eval_ids = rng.integers(0, 9, 500), rng.integers(0, 9, 300)
    counts = np.bincount(train_ids, minlength=9)
    logits = torch.log(torch.tensor(counts, dtype=torch.float64)).expand(300, 9)
    want = F.cross_entropy(logits, torch.as_tensor(eval_ids)).item()
    assert math.isclose(unigram_cross_entropy(train_ids, eval_ids, 9), want, rel_tol=1e-10)


def test_unigram_of_uniform_text_is_log_v():
    ids = np.arange(40) % 8
    assert math.isclose(unigram_cross_entropy(ids, ids, 8), math.log(8), rel_tol=1e-12)


def test_unigram_cross_entropy_errors():
    with pytest.raises(ValueError, match="occurs in eval_ids but never in train_ids"):
        unigram_cross_entropy([0, 0, 1], [2], vocab_size=3)
    with pytest.raises(ValueError, match=r"token ids must lie in 0\.\.2"):
        unigram_cross_entropy([0, 3], [0], vocab_size=3)
    with pytest.raises(ValueError, match="must be non-empty"):
        unigram_cross_entropy([], [0], vocab_size=3)
    with pytest.raises(ValueError, match="1-D sequence of integer token ids"):
        unigram_cross_entropy([0.5, 1.0], [0], vocab_size=3)


# --- batches --------------------------------------------------------------------------------


def test_get_batch_targets_are_shifted_windows():
    ids = np.arange(100)
    x, y = get_batch(ids, batch_size=5, block_size=8, generator=generator(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.long
    assert torch.equal(y, x + 1)  # consecutive ids: every target is the next id
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert int(y.max()) <= 99 and int(x.min()) >= 0


def test_get_batch_uses_every_window_start():
    ids = np.arange(12)  # windows of 10 ids can start at 0, 1 or 2
    x, y = get_batch(ids, 300, 9, generator(1))
    assert set(x[:, 0].tolist()) == {0, 1, 2} and int(y.max()) == 11


def test_get_batch_is_reproducible():
    ids = np.arange(1000)
    a = get_batch(ids, 4, 16, generator(3))
    b = get_batch(ids, 4, 16, generator(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    first, second = fixed_batches(ids, 2, 4, 16, seed=5), fixed_batches(ids, 2, 4, 16, seed=5)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(first, second))
    assert not torch.equal(first[0][0], first[1][0])


def test_get_batch_errors():
    with pytest.raises(ValueError, match=r"need at least block_size \+ 1 = 11 ids, got 10"):
        get_batch(np.arange(10), 2, 10)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        get_batch(np.arange(10), 0, 4)
    with pytest.raises(ValueError, match=r"1-D sequence of integer token ids, got shape \(2, 5\)"):
        get_batch(np.zeros((2, 5), dtype=int), 1, 2)


# --- learning-rate schedule -----------------------------------------------------------------


def test_lr_schedule_matches_torch_schedulers():
    max_lr, min_lr, warmup, total = 1e-2, 1e-3, 5, 40
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=max_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(
                opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1
            ),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr),
        ],
        milestones=[warmup],
    )
    torch_lrs = []
    for _ in range(total + 1):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [
        lr_schedule(s, max_lr=max_lr, warmup_steps=warmup, total_steps=total, min_lr=min_lr)
        for s in range(total + 1)
    ]
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(torch_lrs), atol=1e-9, rtol=1e-6)


def test_lr_schedule_key_points():
    kw = dict(max_lr=1.0, warmup_steps=4, total_steps=14, min_lr=0.1)
    assert lr_schedule(0, **kw) == 0.25 and lr_schedule(3, **kw) == 1.0
    assert lr_schedule(4, **kw) == 1.0
    assert math.isclose(lr_schedule(9, **kw), 0.55)  # halfway: the mean of max and min
    assert lr_schedule(14, **kw) == pytest.approx(0.1)
    assert lr_schedule(99, **kw) == pytest.approx(0.1)
    assert lr_schedule(0, max_lr=2.0, warmup_steps=0, total_steps=10) == 2.0  # no warm-up


def test_lr_schedule_errors():
    with pytest.raises(ValueError, match="need 0 <= warmup_steps < total_steps"):
        lr_schedule(0, max_lr=1.0, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="need 0 <= min_lr <= max_lr"):
        lr_schedule(0, max_lr=1.0, warmup_steps=1, total_steps=10, min_lr=2.0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        lr_schedule(-1, max_lr=1.0, warmup_steps=1, total_steps=10)


# --- optimizer, config ----------------------------------------------------------------------


def test_configure_optimizer_decays_matrices_only():
    model = Bigram(7)
    opt = configure_optimizer(model, TrainConfig(weight_decay=0.05))
    assert isinstance(opt, torch.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.wte.weight), id(model.head.weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model.ln.weight),
        id(model.ln.bias),
        id(model.head.bias),
    }


def test_train_config_errors():
    with pytest.raises(ValueError, match="steps must be a positive int"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="need 0 <= warmup_steps < steps"):
        TrainConfig(steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="need 0 <= min_lr <= max_lr"):
        TrainConfig(max_lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="must be >= 0"):
        TrainConfig(grad_clip=-1.0)


# --- the loop -------------------------------------------------------------------------------


def small_config(**overrides):
    values = dict(
        steps=60,
        batch_size=8,
        block_size=12,
        max_lr=3e-2,
        min_lr=3e-3,
        warmup_steps=5,
        eval_every=20,
        eval_batches=2,
        seed=0,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_train_learns_a_predictable_sequence():
    ids = cyclic_ids()
    torch.manual_seed(0)
    model = Bigram(7)
    history = train(model, ids[:1500], ids[1500:], small_config(), progress=False)
    assert isinstance(history, History)
    assert history.eval_steps == [0, 20, 40, 60]
    assert len(history.lr) == len(history.grad_norm) == 60
    assert history.val_loss[0] > 1.5 and history.val_loss[-1] < 0.1  # from ~ln 7 to near 0
    assert not model.training


def test_train_is_deterministic_and_matches_manual_loop():
    ids = cyclic_ids()
    config = small_config(steps=15, eval_every=15)
    torch.manual_seed(1)
    model = Bigram(7)
    manual = Bigram(7)
    manual.load_state_dict(model.state_dict())
    history = train(model, ids, ids, config, progress=False)

    # The same loop written out with plain PyTorch.
    gen = generator(config.seed)
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in manual.parameters() if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in manual.parameters() if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=config.max_lr,
        betas=config.betas,
    )
    data = torch.as_tensor(ids)
    for step in range(config.steps):
        for group in opt.param_groups:
            group["lr"] = lr_schedule(
                step, max_lr=config.max_lr, warmup_steps=5, total_steps=15, min_lr=config.min_lr
            )
        starts = torch.randint(0, len(data) - 12, (8,), generator=gen)
        window = torch.stack([data[s : s + 13] for s in starts.tolist()])
        logits = manual(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 7), window[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(manual.parameters(), 1.0)
        opt.step()
    for (name, p), q in zip(model.named_parameters(), manual.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)

    torch.manual_seed(1)  # the same run twice gives the same numbers
    first, second = Bigram(7), Bigram(7)
    second.load_state_dict(first.state_dict())
    h1 = train(first, ids, ids, config, progress=False)
    h2 = train(second, ids, ids, config, progress=False)
    assert h1.val_loss == h2.val_loss and h1.grad_norm == h2.grad_norm
    assert h1.lr == history.lr


def test_train_progress_bar_prints_first_and_last_state(capsys):
    train(Bigram(7), cyclic_ids(), cyclic_ids(), small_config(steps=30, eval_every=30))
    err = capsys.readouterr().err
    assert "training:" in err and "30/30" in err
    assert err.count("\r") <= 3  # drawn at the start and the end only, not every step


def test_estimate_loss_restores_mode_and_equals_mean():
    model = Bigram(7)
    batches = fixed_batches(cyclic_ids(), 3, 4, 6, seed=0)
    model.train()
    got = estimate_loss(model, batches)
    assert model.training
    with torch.no_grad():
        want = np.mean(
            [F.cross_entropy(model(x).reshape(-1, 7), y.reshape(-1)).item() for x, y in batches]
        )
    assert math.isclose(got, want, rel_tol=1e-9)
    with pytest.raises(ValueError, match="at least one batch"):
        estimate_loss(model, [])


# --- scoring a whole text -------------------------------------------------------------------


class Causal(nn.Module):
    """A model whose prediction depends on the whole prefix (cumulative mean of embeddings)."""

    def __init__(self, vocab_size):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, 8)
        self.head = nn.Linear(8, vocab_size)

    def forward(self, input_ids):
        h = self.wte(input_ids).cumsum(1) / torch.arange(1, input_ids.shape[1] + 1)[:, None]
        return self.head(h)


@pytest.mark.parametrize("n", [2, 11, 12, 13, 50])
def test_sequence_log_probs_scores_each_id_once(n):
    torch.manual_seed(0)
    model = Causal(5)
    ids = torch.randint(0, 5, (n,))
    got = sequence_log_probs(model, ids, block_size=4, batch_size=2)
    assert got.shape == (n - 1,)
    want = []  # by hand: window k covers ids[4k .. 4k + 4], predicting ids[4k + 1 .. 4k + 4]
    for start in range(0, n - 1, 4):
        window = ids[start : start + 5]
        log_p = F.log_softmax(model(window[None, :-1]).double(), -1)[0]
        want.extend(log_p[torch.arange(len(window) - 1), window[1:]].tolist())
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_sequence_log_probs_errors():
    with pytest.raises(ValueError, match="need at least 2 ids"):
        sequence_log_probs(Causal(5), [3], block_size=4)
    with pytest.raises(ValueError, match="block_size must be a positive int, got 0"):
        sequence_log_probs(Causal(5), [3, 1, 2], block_size=0)
