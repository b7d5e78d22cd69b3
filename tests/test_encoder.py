"""llmcourse.encoder against Hugging Face's BertModel: tiny random weights, MiniLM's real ones."""

import pytest
import torch
from conftest import hf_bert
from torch.nn import functional as F
from transformers import AutoModel, AutoTokenizer, BertConfig

from llmcourse.encoder import Encoder, EncoderConfig, mean_pool, padding_mask, sentence_embeddings
from llmcourse.offline import minilm_path


@pytest.fixture(scope="module")
def minilm():
    path = minilm_path()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_tiny_random_equals_hf_with_padding_and_token_types():
    hf = hf_bert()
    ours = Encoder.from_hf(hf)
    ids = torch.randint(0, 71, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 1:] = 0
    types = torch.randint(0, 3, (3, 9))
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], atol=1e-5, rtol=1e-5)


def test_batch_of_one_without_mask():
    hf = hf_bert(1)
    ours = Encoder.from_hf(hf)
    ids = torch.randint(0, 71, (1, 16))
    with torch.no_grad():
        torch.testing.assert_close(
            ours(ids), hf(input_ids=ids).last_hidden_state, atol=1e-5, rtol=1e-5
        )


def test_padding_does_not_change_real_tokens():
    ours = Encoder.from_hf(hf_bert())
    ids = torch.randint(1, 71, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    with torch.no_grad():
        torch.testing.assert_close(ours(padded, mask)[:, :6], ours(ids), atol=1e-5, rtol=1e-5)


def test_bidirectional_later_tokens_change_earlier_ones():
    ours = Encoder.from_hf(hf_bert())
    a = torch.randint(0, 71, (1, 8))
    b = a.clone()
    b[0, -1] = (b[0, -1] + 1) % 71
    with torch.no_grad():
        assert not torch.allclose(ours(a)[:, 0], ours(b)[:, 0])


def test_minilm_hidden_states_and_sentence_embeddings(minilm):
    hf, tokenizer = minilm
    ours = Encoder.from_hf(hf)
    batch = tokenizer(
        [
            "A man is playing a guitar.",
            "Someone plays music.",
            "The stock market fell sharply today after the announcement.",
        ],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        want = hf(**batch).last_hidden_state
        got = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        keep = batch["attention_mask"].bool()
        torch.testing.assert_close(got[keep], want[keep], atol=1e-4, rtol=1e-4)
        # sentence-transformers' recipe (its Pooling with mean tokens, then Normalize)
        m = batch["attention_mask"].unsqueeze(-1).float()
        reference = F.normalize((want * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)
        ours_emb = sentence_embeddings(ours, batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(ours_emb, reference, atol=1e-4, rtol=1e-4)
    sims = ours_emb @ ours_emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the two music sentences are the close pair
    assert sum(p.numel() for p in ours.parameters()) == 22_565_376


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    got = mean_pool(hidden, torch.tensor([[1, 1, 0]]))
    torch.testing.assert_close(got, torch.tensor([[2.0, 3.0]]))
    assert padding_mask(torch.tensor([[1, 0]])).shape == (1, 1, 1, 2)


def test_config_from_hf_and_validation():
    config = EncoderConfig.from_hf(hf_bert().config)
    assert (config.hidden_size, config.type_vocab_size) == (20, 3)
    assert EncoderConfig.minilm().num_hidden_layers == 6
    with pytest.raises(ValueError, match="only the exact GELU"):
        EncoderConfig.from_hf(BertConfig(hidden_act="relu"))
    with pytest.raises(ValueError, match="hidden_size=10 is not divisible by num_attention_heads"):
        EncoderConfig(hidden_size=10, num_attention_heads=4)
    with pytest.raises(ValueError, match="expected an EncoderConfig"):
        Encoder({})
    with pytest.raises(ValueError, match="expected a transformers BertModel"):
        Encoder.from_hf(torch.nn.Linear(2, 2))


def test_input_validation_messages():
    ours = Encoder.from_hf(hf_bert())
    ids = torch.randint(0, 71, (2, 5))
    with pytest.raises(ValueError, match="input_ids must lie in 0..70"):
        ours(ids + 71)
    with pytest.raises(ValueError, match="token_type_ids must lie in 0..2"):
        ours(ids, token_type_ids=torch.full_like(ids, 3))
    with pytest.raises(ValueError, match="longer than max_position_embeddings=16"):
        ours(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected attention_mask of the same shape as input_ids"):
        ours(ids, torch.ones(2, 4))
    with pytest.raises(
        ValueError, match=r"input_ids must be an integer tensor of shape \(batch, seq\)"
    ):
        ours(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected hidden_states of shape \(batch, seq, hidden\)"):
        mean_pool(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"attention_mask of shape \(batch, seq\) = \(2, 3\)"):
        mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 4))
