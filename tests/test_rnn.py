"""The Elman RNN against torch.nn.RNN, and the character language model's helpers."""

import numpy as np
import pytest
import torch
from torch import nn

from llmcourse.ngram import perplexity
from llmcourse.rnn import CharRNN, ElmanRNN, rnn_log_probs, train_char_rnn, train_char_rnn_tbptt


def copied_reference(ours: ElmanRNN) -> nn.RNN:
    ref = nn.RNN(ours.weight_ih.shape[1], ours.hidden_size, batch_first=True)
    ref.load_state_dict({f"{name}_l0": p for name, p in ours.state_dict().items()})
    return ref


@pytest.mark.parametrize(
    "batch, time, features, hidden", [(1, 1, 3, 5), (4, 17, 7, 9), (2, 50, 16, 32)]
)
def test_elman_rnn_equals_torch_rnn(batch, time, features, hidden):
    torch.manual_seed(batch + time)
    ours = ElmanRNN(features, hidden)
    ref = copied_reference(ours)
    x, h0 = torch.randn(batch, time, features), torch.randn(batch, hidden)
    out, h = ours(x, h0)
    ref_out, ref_h = ref(x, h0[None])
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, ref_h[0], atol=1e-6, rtol=1e-5)


def test_elman_rnn_gradients_equal_torch_rnn():
    torch.manual_seed(0)
    ours = ElmanRNN(4, 6)
    ref = copied_reference(ours)
    x = torch.randn(3, 10, 4)
    ours(x)[0].square().sum().backward()
    ref(x)[0].square().sum().backward()
    torch.testing.assert_close(ours.weight_hh.grad, ref.weight_hh_l0.grad, atol=1e-5, rtol=1e-5)


def test_rnn_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, time, 4\)"):
        ElmanRNN(4, 6)(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"expected ids of shape \(batch, time\)"):
        CharRNN(10)(torch.zeros(5, dtype=torch.long))


def test_log_probs_equal_step_by_step_scoring():
    torch.manual_seed(0)
    model = CharRNN(7, embed_size=4, hidden_size=8).eval()
    ids = np.random.default_rng(0).integers(0, 7, size=41)
    got = rnn_log_probs(model, ids, streams=4)
    assert got.shape == (40,)
    # Stream 0 covers ids[0:11] and predicts ids[1:11] from a zero state.
    logits, _ = model(torch.tensor(ids[None, :10]))
    want = torch.log_softmax(logits[0], -1)[torch.arange(10), torch.tensor(ids[1:11])]
    np.testing.assert_allclose(got[:10], want.detach().double().numpy(), rtol=1e-5)


def test_training_learns_a_repeating_pattern():
    ids = np.tile(np.arange(5), 200)
    model = CharRNN(5, embed_size=8, hidden_size=16)
    history = train_char_rnn(model, ids, steps=200, batch_size=8, seq_len=10, lr=1e-2, log_every=50)
    assert history[-1][1] < 0.1 < history[0][1]
    assert perplexity(rnn_log_probs(model, ids[:101], streams=2)) < 1.2


def test_training_is_deterministic():
    ids = np.random.default_rng(1).integers(0, 6, size=500)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = CharRNN(6, embed_size=4, hidden_size=8)
        runs.append(
            train_char_rnn(model, ids, steps=20, batch_size=4, seq_len=8, seed=5, log_every=10)
        )
    assert runs[0] == runs[1]


def test_tbptt_learns_a_pattern_longer_than_its_window():
    # Period 12 with windows of 4: only a state carried across windows can predict it all.
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 4, size=12)
    ids = np.tile(pattern, 400)
    torch.manual_seed(0)
    model = CharRNN(4, embed_size=8, hidden_size=32)
    history = train_char_rnn_tbptt(
        model, ids, steps=400, batch_size=4, seq_len=4, lr=1e-2, log_every=100
    )
    assert history[-1][1] < 0.1 < history[0][1]


def test_tbptt_carries_the_state_and_cuts_the_gradient():
    ids = np.random.default_rng(1).integers(0, 6, size=2 * 3 * 5 + 1)  # 2 streams, 3 windows
    torch.manual_seed(0)
    model = CharRNN(6, embed_size=4, hidden_size=8)
    seen = []
    original = model.forward

    def spy(x, h=None):
        carried = None if h is None else h.clone()
        seen.append((x.clone(), carried, h is not None and h.requires_grad))
        return original(x, h)

    model.forward = spy
    train_char_rnn_tbptt(model, ids, steps=4, batch_size=2, seq_len=5, log_every=1)
    streams = torch.from_numpy(ids[:30]).view(2, 15)
    assert [s[1] is None for s in seen] == [True, False, False, True]  # restart after 3 windows
    assert not any(s[2] for s in seen)  # the carried state is detached
    for step, (x, _, _) in enumerate(seen):
        w = step % 3
        assert torch.equal(x, streams[:, 5 * w : 5 * w + 5])


def test_tbptt_is_deterministic_and_rejects_bad_input():
    ids = np.random.default_rng(1).integers(0, 6, size=500)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = CharRNN(6, embed_size=4, hidden_size=8)
        runs.append(
            train_char_rnn_tbptt(model, ids, steps=20, batch_size=4, seq_len=8, log_every=10)
        )
    assert runs[0] == runs[1]
    with pytest.raises(ValueError, match="need at least"):
        train_char_rnn_tbptt(CharRNN(6), ids[:20], steps=1, batch_size=4, seq_len=8)
    with pytest.raises(ValueError, match="1-D"):
        train_char_rnn_tbptt(CharRNN(6), ids.reshape(2, -1), steps=1)
