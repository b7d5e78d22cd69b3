"""The Elman RNN against torch.nn.RNN, and the character language model's helpers."""

import numpy as np
import pytest
import torch
from torch import nn

from llmcourse.ngram import perplexity
from llmcourse.rnn import CharRNN, ElmanRNN, rnn_log_probs, train_char_rnn


def copied_reference(ours: ElmanRNN) -> nn.RNN:
    ref = nn.RNN(ours.weight_ih.shape[1], ours.hidden_size, batch_first=True)
    ref.load_state_dict({f"{name}_l0": p for name, p in ours.state_dict().items()})
    return ref


@pytest.mark.parametrize("batch, time, features, hidden",
                         [(1, 1, 3, 5), (4, 17, 7, 9), (2, 50, 16, 32)])
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
    history = train_char_rnn(model, ids, steps=200, batch_size=8, seq_len=10, lr=1e-2,
                             log_every=50)
    assert history[-1][1] < 0.1 < history[0][1]
    assert perplexity(rnn_log_probs(model, ids[:101], streams=2)) < 1.2


def test_training_is_deterministic():
    ids = np.random.default_rng(1).integers(0, 6, size=500)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = CharRNN(6, embed_size=4, hidden_size=8)
        runs.append(train_char_rnn(model, ids, steps=20, batch_size=4, seq_len=8, seed=5,
                                   log_every=10))
    assert runs[0] == runs[1]
