"""llmcourse.quantization against the gguf library and against direct formulas."""

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

from llmcourse import llama
from llmcourse import quantization as Q


def _weights(rows=6, cols=64, seed=0):
    return np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)


@pytest.mark.parametrize(
    "kind, decode",
    [(GGMLQuantizationType.Q4_1, Q.decode_q4_1), (GGMLQuantizationType.Q8_0, Q.decode_q8_0)],
)
def test_decoders_equal_the_gguf_library_bit_for_bit(kind, decode):
    raw = quantize(_weights(), kind)  # the library's own encoder: (rows, blocks * bytes)
    ours, theirs = decode(raw), dequantize(raw, kind)
    assert ours.dtype == np.float32 and ours.shape == (6, 64)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_q4_1_layout_by_hand():
    # One block: d = 0.5, m = -1, byte j holds code j (low nibble) and code 15 - j (high).
    codes = np.arange(16, dtype=np.uint8)
    block = np.concatenate(
        [np.array([0.5, -1.0], dtype=np.float16).view(np.uint8), codes | ((15 - codes) << 4)]
    )
    got = Q.decode_q4_1(block[None])
    want = np.concatenate([codes, 15 - codes]) * 0.5 - 1.0
    np.testing.assert_array_equal(got[0], want.astype(np.float32))
    assert Q.Q4_1_BYTES == 20 and Q.Q8_0_BYTES == 34


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 19), np.uint8),
        np.zeros(40, np.uint8),
        np.zeros((2, 20), np.float32),
        [[0] * 20],
    ],
)
def test_decoder_rejects_malformed_data(bad):
    with pytest.raises(ValueError, match="uint8 data of shape"):
        Q.decode_q4_1(bad)


def test_float_fields():
    assert Q.float_fields(1.0, torch.float32) == ("0", "01111111", "0" * 23)
    assert Q.float_fields(-2.0, torch.bfloat16) == ("1", "10000000", "0" * 7)
    assert Q.float_fields(1.0, torch.float16) == ("0", "01111", "0" * 10)
    assert Q.float_fields(0.1, torch.bfloat16) == ("0", "01111011", "1001101")  # 0.10009765625
    with pytest.raises(ValueError, match="dtype must be"):
        Q.float_fields(1.0, torch.int8)


def test_gguf_names_and_rope_rows():
    assert Q.gguf_to_hf_name("blk.12.ffn_down.weight") == "model.layers.12.mlp.down_proj.weight"
    assert Q.gguf_to_hf_name("token_embd.weight") == "model.embed_tokens.weight"
    with pytest.raises(ValueError, match="not a Llama GGUF tensor name"):
        Q.gguf_to_hf_name("blk.0.mystery.weight")
    # llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute), then our inverse.
    w = torch.arange(2 * 8 * 3, dtype=torch.float32).reshape(16, 3)
    n_head = 2
    permuted = w.reshape(n_head, 2, 16 // n_head // 2, 3).swapaxes(1, 2).reshape(16, 3)
    assert torch.equal(Q.unpermute_rope_rows(permuted, n_head), w)
    assert not torch.equal(permuted, w)


def test_int8_per_channel():
    w = torch.randn(5, 40, dtype=torch.float64) * torch.tensor([[1], [10], [0.1], [3], [0]])
    codes, scale = Q.quantize_int8_per_channel(w)
    assert codes.dtype == torch.int8 and scale.shape == (5, 1, 1)
    scale = scale[:, :, 0]
    assert codes[:4].abs().amax(dim=1).tolist() == [127] * 4  # each row uses the full range
    assert torch.equal(codes[4], torch.zeros(40, dtype=torch.int8))  # an all-zero row
    assert ((codes * scale - w).abs() <= scale / 2 + 1e-12).all()  # round to nearest


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_blockwise(bits):
    w = torch.randn(3, 64)
    codes, scale = Q.quantize_blockwise(w, bits, block=16)
    limit = 2 ** (bits - 1) - 1
    assert scale.shape == (3, 4, 1) and int(codes.abs().max()) == limit
    back = Q.dequantize_blockwise(codes, scale)
    assert ((back - w).abs().reshape(3, 4, 16) <= scale / 2 + 1e-6).all()


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.randn(4, 30), 4, 32), "block must"),
        ((torch.randn(4, 32), 4, 0), "block must"),
        ((torch.randn(4, 32), 1, 32), "bits must"),
        ((torch.randn(4, 32), 9, 32), "bits must"),
        ((torch.randn(32), 4, 32), "weight matrix"),
    ],
)
def test_blockwise_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        Q.quantize_blockwise(*args)


def test_quantize_model_weights_counts_tied_matrix_once():
    torch.manual_seed(0)
    config = llama.LlamaConfig.tiny(vocab_size=64, hidden_size=32, intermediate_size=64)
    model = llama.LlamaForCausalLM(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    size = Q.quantize_model_weights(model, "absmax", bits=4, block=32)
    matrices = sum(p.numel() for p in model.parameters() if p.ndim == 2)
    vectors = sum(p.numel() for p in model.parameters() if p.ndim == 1)
    assert size.quantized_weights == matrices and size.other_weights == vectors
    assert size.bits_per_weight == pytest.approx(4 + 16 / 32)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    after = model.state_dict()
    assert torch.equal(after["model.norm.weight"], before["model.norm.weight"])
    w = before["model.layers.0.mlp.up_proj.weight"]
    want = Q.dequantize_blockwise(*Q.quantize_blockwise(w, 4, 32))
    assert torch.equal(after["model.layers.0.mlp.up_proj.weight"], want)
    per_row = llama.LlamaForCausalLM(config)
    size = Q.quantize_model_weights(per_row, "absmax", bits=8, block=None)
    rows = sum(p.shape[0] for p in per_row.parameters() if p.ndim == 2)
    assert size.bits == 8 * matrices + 16 * rows
    with pytest.raises(ValueError, match="method must be"):
        Q.quantize_model_weights(model, "int4")


def _write_tiny_gguf(path):
    """A GGUF file with one Llama block's worth of tensor kinds: Q4_1, Q8_0 and F32."""
    from gguf import GGUFWriter

    rng = np.random.default_rng(1)
    tensors = {
        "blk.0.attn_q.weight": (rng.normal(size=(8, 64)), GGMLQuantizationType.Q4_1),
        "blk.0.attn_k.weight": (rng.normal(size=(4, 64)), GGMLQuantizationType.Q8_0),
        "blk.0.ffn_up.weight": (rng.normal(size=(3, 64)), GGMLQuantizationType.Q4_1),
        "blk.0.attn_norm.weight": (rng.normal(size=64), None),
    }
    writer = GGUFWriter(str(path), "llama")
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    for name, (w, kind) in tensors.items():
        w = w.astype(np.float32)
        if kind is None:
            writer.add_tensor(name, w)
        else:
            writer.add_tensor(name, quantize(w, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {name: (w.astype(np.float32), kind) for name, (w, kind) in tensors.items()}


def test_read_gguf_llama_from_a_path_or_an_open_reader(tmp_path):
    from gguf import GGUFReader

    path = tmp_path / "tiny.gguf"
    written = _write_tiny_gguf(path)
    state, types = Q.read_gguf_llama(path)
    again, _ = Q.read_gguf_llama(GGUFReader(str(path)))  # the same, without re-parsing
    assert sorted(state) == sorted(again) == sorted(Q.gguf_to_hf_name(n) for n in written)
    assert all(torch.equal(state[k], again[k]) for k in state)
    for name, (w, kind) in written.items():
        hf = Q.gguf_to_hf_name(name)
        want = w if kind is None else dequantize(quantize(w, kind), kind)
        want = torch.from_numpy(want)
        if name == "blk.0.attn_q.weight":  # 2 heads: rows put back in Hugging Face's order
            want = Q.unpermute_rope_rows(want, 2)
        elif name == "blk.0.attn_k.weight":  # 1 key-value head
            want = Q.unpermute_rope_rows(want, 1)
        assert torch.equal(state[hf], want), name
        assert types[hf] == ("F32" if kind is None else kind.name)
    with pytest.raises(ValueError, match="path to a GGUF file or a gguf.GGUFReader"):
        Q.read_gguf_llama(42)
