"""The data path: token files on disk, memory-mapped, and ``get_batch`` reading only the rows
it samples. For in-memory ids it gives the same batches as before the change (chapter 8's
outputs rest on them)."""

import tracemalloc

import numpy as np
import pytest
import torch

from llmcourse.training import get_batch, open_token_file, write_token_file


def get_batch_before(ids, batch_size, block_size, generator=None):
    """``get_batch`` as it was: the whole corpus converted to int64 on every call."""
    data = torch.as_tensor(np.asarray(ids)).long()
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    windows = data[starts[:, None] + torch.arange(block_size + 1)]
    return windows[:, :-1], windows[:, 1:]


@pytest.mark.parametrize("kind", ["list", "int64", "uint16", "int32 tensor", "long tensor"])
def test_same_batches_as_before(kind):
    ids = np.random.default_rng(0).integers(0, 50_000, 5_000)
    data = {
        "list": ids.tolist(),
        "int64": ids,
        "uint16": ids.astype(np.uint16),
        "int32 tensor": torch.from_numpy(ids).int(),
        "long tensor": torch.from_numpy(ids),
    }
    for seed in range(3):
        new = get_batch(data[kind], 6, 32, torch.Generator().manual_seed(seed))
        old = get_batch_before(ids, 6, 32, torch.Generator().manual_seed(seed))
        for a, b in zip(new, old):
            assert a.dtype == torch.long and a.shape == (6, 32)
            assert torch.equal(a, b)


def test_token_file_round_trip_and_batches(tmp_path):
    ids = np.random.default_rng(1).integers(0, 50_257, 100_000)
    stream = (int(i) for i in ids)  # written from a generator, a chunk at a time
    mapped = write_token_file(stream, tmp_path / "train.bin", chunk_size=7_777)
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.uint16
    assert (tmp_path / "train.bin").stat().st_size == 2 * len(ids)
    assert np.array_equal(open_token_file(tmp_path / "train.bin"), ids)
    assert not (tmp_path / "train.bin.partial").exists()
    x, y = get_batch(mapped, 8, 64, torch.Generator().manual_seed(4))
    x_ref, y_ref = get_batch(ids, 8, 64, torch.Generator().manual_seed(4))
    assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    again = write_token_file(torch.from_numpy(ids), tmp_path / "from_tensor.bin")
    assert np.array_equal(again, ids)


def test_get_batch_on_a_memory_map_copies_only_the_batch(tmp_path):
    n = 4_000_000  # 8 MB on disk; an int64 copy would be 32 MB
    mapped = write_token_file(np.arange(n) % 50_000, tmp_path / "big.bin")
    generator = torch.Generator().manual_seed(0)
    get_batch(mapped, 32, 256, generator)  # first call: imports, caches
    tracemalloc.start()
    x, y = get_batch(mapped, 32, 256, generator)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000, f"get_batch allocated {peak:,} bytes"  # 32 x 257 ids, not 4M
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal((x[:, 1:] - x[:, :-1]) % 50_000, torch.ones(32, 255, dtype=torch.long))


def test_device_argument():
    ids = np.arange(1_000)
    x, y = get_batch(ids, 2, 8, torch.Generator().manual_seed(0), device="cpu")
    assert x.device.type == "cpu"
    x_meta, _ = get_batch(ids, 2, 8, torch.Generator().manual_seed(0), device="meta")
    assert x_meta.device.type == "meta" and x_meta.shape == (2, 8)
    if torch.cuda.is_available():
        x_gpu, y_gpu = get_batch(ids, 2, 8, torch.Generator().manual_seed(0), device="cuda")
        assert x_gpu.is_cuda and torch.equal(x_gpu.cpu(), x) and torch.equal(y_gpu.cpu(), y)


def test_errors(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"token ids must lie in 0..65535 to fit uint16, got "
        r"values from 0 to 70000",
    ):
        write_token_file([0, 70_000], tmp_path / "a.bin")
    with pytest.raises(ValueError, match="from -1"):
        write_token_file(np.array([-1, 3]), tmp_path / "a.bin")
    with pytest.raises(ValueError, match="expected integer token ids"):
        write_token_file([0.5, 1.0], tmp_path / "a.bin")
    with pytest.raises(ValueError, match="dtype must be an integer type"):
        write_token_file([1], tmp_path / "a.bin", dtype=np.float32)
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="not a whole number of uint16 ids"):
        open_token_file(tmp_path / "odd.bin")
    with pytest.raises(FileNotFoundError, match="no token file"):
        open_token_file(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match=r"1-D sequence of integer token ids"):
        get_batch(np.zeros(10), 1, 2)
    with pytest.raises(ValueError, match=r"need at least block_size \+ 1 = 11 ids, got 10"):
        get_batch(np.arange(10, dtype=np.uint16), 2, 10)


def test_train_reads_a_token_file_without_copying_it(tmp_path):
    """train() on a memory-mapped token file gives the same run as on the same ids in memory."""
    from llmcourse.gpt import GPT, GPTConfig
    from llmcourse.training import TrainConfig, train

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=5000)
    mapped = write_token_file(ids, tmp_path / "train.bin")
    config = TrainConfig(
        steps=4, batch_size=4, block_size=8, eval_every=2, eval_batches=2, warmup_steps=1
    )
    runs = []
    for data in (torch.as_tensor(ids), mapped):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=8))
        runs.append(train(model, data, data, config, progress=False))
    assert runs[0].train_loss == runs[1].train_loss and runs[0].val_loss == runs[1].val_loss
