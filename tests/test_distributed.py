"""Chapter 15: memory arithmetic, the memory tracker, data parallelism and the training script.

The torchrun tests start 2 gloo processes on the CPU (a few seconds each on a quiet machine)
and check that DDP and FSDP training equal single-process training on the same batches.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from llmcourse import memory
from llmcourse.distributed import (
    Dist,
    accumulate_gradients,
    init_distributed,
    launch,
    rank_rows,
    wrap_model,
)
from llmcourse.gpt import GPT, GPTConfig
from llmcourse.train import RunConfig, enable_activation_checkpointing, local_batches, main
from llmcourse.training import next_token_loss

TINY = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16)


def test_state_bytes_per_param():
    assert memory.state_bytes_per_param(False) == {"weights": 4, "gradients": 4, "optimizer": 8}
    assert memory.state_bytes_per_param(True) == {"weights": 2, "gradients": 2, "optimizer": 12}
    assert sum(memory.state_bytes_per_param(False, "sgd").values()) == 8
    assert sum(memory.state_bytes_per_param(True, "sgd").values()) == 8  # 2 + 2 + master 4


def test_zero_stages_by_hand():
    n = 7 * 10**9  # Rajbhandari et al. (2020): 16 P, then 4 P + 12 P / N, 2 P + 14 P / N, 16 P / N
    assert [memory.zero_bytes_per_gpu(n, 8, s) / 1e9 for s in range(4)] == [
        112.0,
        38.5,
        26.25,
        14.0,
    ]
    assert {memory.zero_bytes_per_gpu(n, 1, s) for s in range(4)} == {16 * n}


def test_activation_formulas():
    # Korthikanti et al. (2022): s b h (34 + 5 a s / h) per layer
    assert memory.transformer_activation_bytes(
        1, 8, 2, 3, 5, fused_attention=False
    ) == 5 * 3 * 8 * (34 + 5 * 2 * 5 / 8)
    assert memory.transformer_activation_bytes(2, 8, 2, 3, 5) == 2 * 5 * 3 * 8 * 34
    per_position = 2 * (16 * 16 + 2 + 4) + 2 * 16 + 20
    assert memory.gpt_activation_bytes(TINY, 3, 5, bytes_per_value=2) == 2 * 3 * 5 * per_position


@pytest.mark.parametrize("batch, seq", [(2, 16), (5, 7)])
def test_saved_activations_match_the_count(batch, seq):
    torch.manual_seed(0)
    model = GPT(TINY)
    x, y = torch.randint(0, 20, (2, batch, seq)).unbind(0)
    saved = memory.saved_activation_bytes(lambda: next_token_loss(model(x), y), model.parameters())
    counted = memory.gpt_activation_bytes(TINY, batch, seq)
    assert abs(saved - counted) / counted < 0.03  # ids and targets are not counted


def test_memory_tracker_counts_storages_and_frees():
    tracker = memory.MemoryTracker()
    with tracker:
        a = torch.ones(1000)  # 4000 bytes
        view = a[10:]  # same storage: not counted again
        b = a * 2
        assert tracker.current == 8000
        del b
        assert tracker.current == 4000
    assert tracker.peak == 8000 and view.numel() == 990


def test_memory_tracker_peak_of_a_training_step():
    torch.manual_seed(0)
    model = GPT(TINY)
    optimizer = torch.optim.AdamW(model.parameters())
    x, y = torch.randint(0, 20, (2, 8, 16)).unbind(0)
    n_params = sum(p.numel() for p in model.parameters())
    tracker = memory.MemoryTracker().track(model.parameters())
    with tracker:
        for _ in range(2):
            tracker.reset_peak()
            optimizer.zero_grad(set_to_none=True)
            next_token_loss(model(x), y).backward()
            optimizer.step()
    assert tracker.peak >= 12 * n_params + memory.gpt_activation_bytes(TINY, 8, 16) * 0.97
    assert 16 * n_params <= tracker.current < 16 * n_params + 4096  # + small buffers


def test_rank_rows_is_distributed_samplers_striding():
    batch = torch.arange(12)[:, None]
    shards = [rank_rows(batch, r, 3).flatten().tolist() for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(12))
    for r in range(3):
        assert shards[r] == list(
            DistributedSampler(range(12), num_replicas=3, rank=r, shuffle=False)
        )


def test_local_batches_and_accumulation_equal_the_full_batch():
    torch.manual_seed(0)
    model = GPT(TINY).double()
    x, y = torch.randint(0, 20, (2, 8, 16)).unbind(0)
    micro = local_batches(x, y, Dist(), grad_accum=4)
    assert len(micro) == 4 and torch.equal(torch.cat([m[0] for m in micro]), x)
    loss = accumulate_gradients(model, micro, next_token_loss)
    accumulated = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    full = next_token_loss(model(x), y)
    full.backward()
    assert loss == pytest.approx(full.item(), rel=1e-12)
    for a, p in zip(accumulated, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-12, atol=1e-14)


def test_checkpointing_keeps_gradients_and_saves_memory():
    torch.manual_seed(0)
    plain, ckpt = GPT(TINY), GPT(TINY)
    ckpt.load_state_dict(plain.state_dict())
    enable_activation_checkpointing(ckpt)
    x, y = torch.randint(0, 20, (2, 4, 16)).unbind(0)
    sizes = [
        memory.saved_activation_bytes(
            lambda m=m: next_token_loss(m(x), y).backward(), m.parameters()
        )
        for m in (plain, ckpt)
    ]
    assert sizes[1] < sizes[0] / 2
    for a, b in zip(plain.parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: memory.state_bytes_per_param(False, "adam"), "optimizer must be"),
        (lambda: memory.zero_bytes_per_gpu(0, 8, 1), "n_params must be a positive int"),
        (lambda: memory.zero_bytes_per_gpu(10, 0, 1), "n_gpus must be a positive int"),
        (lambda: memory.zero_bytes_per_gpu(10, 8, 4), "stage must be 0, 1, 2 or 3"),
        (lambda: memory.transformer_activation_bytes(1, 8, 2, 0, 5), "batch must be"),
        (lambda: memory.gpt_activation_bytes(TINY, 2, 0), "seq_len must be"),
        (lambda: rank_rows(torch.zeros(4, 2), 2, 2), "need 0 <= rank < world_size"),
        (lambda: rank_rows(torch.zeros(5, 2), 0, 2), "does not split evenly"),
        (lambda: local_batches(torch.zeros(6, 2), torch.zeros(6, 2), Dist(), 4), "micro-batches"),
        (lambda: wrap_model(GPT(TINY), "zero", Dist()), "strategy must be"),
        (lambda: RunConfig(strategy="tp"), "strategy must be one of"),
        (lambda: RunConfig(grad_accum=0), "grad_accum must be a positive int"),
        (lambda: RunConfig(dtype="float16"), "dtype must be one of"),
        (lambda: init_distributed("tpu"), "device must be"),
        (lambda: accumulate_gradients(GPT(TINY), [], next_token_loss), "at least one micro-batch"),
        (lambda: launch(["llmcourse.train"], nproc=0), "nproc must be a positive int"),
    ],
)
def test_input_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the script, on one process and under torchrun ----------------------------------------


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokens") / "tokens.bin"
    rng = np.random.default_rng(0)
    np.tile(rng.permutation(20), 300).astype(np.uint16).tofile(path)  # a learnable cycle
    return path


def script_args(token_file, out, *extra):
    return [
        "--data",
        str(token_file),
        "--vocab-size",
        "20",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
        "--block-size",
        "16",
        "--batch-size",
        "4",
        "--steps",
        "4",
        "--eval-every",
        "4",
        "--eval-batches",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "0.5",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def single_run(token_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    torch.set_num_threads(1)
    result = main(script_args(token_file, out))
    return out, result


def test_script_trains_and_writes_its_files(single_run):
    out, result = single_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 1 and metrics["history"]["step"] == [0, 4]
    assert metrics["history"]["val_loss"][1] < metrics["history"]["val_loss"][0]
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=16))
    model.load_state_dict(torch.load(out / "model.pt"))
    assert result["history"] == metrics["history"]


def test_script_refuses_a_missing_token_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no token file"):
        main(["--data", str(tmp_path / "absent.bin"), "--vocab-size", "20"])


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_two_processes_equal_one(strategy, token_file, single_run, tmp_path):
    out = tmp_path / strategy
    output = launch(
        ["llmcourse.train", *script_args(token_file, out, "--strategy", strategy)],
        nproc=2,
        timeout=300,
    )
    assert f"2 process(es) on cpu, strategy {strategy}" in output
    single = torch.load(single_run[0] / "model.pt")
    many = torch.load(out / "model.pt")
    assert single.keys() == many.keys()
    for name in single:
        torch.testing.assert_close(many[name], single[name], rtol=0, atol=1e-6)


def test_launch_reports_a_failing_process(tmp_path):
    with pytest.raises(RuntimeError, match="no token file"):
        launch(
            ["llmcourse.train", "--data", str(tmp_path / "absent.bin"), "--vocab-size", "5"],
            nproc=2,
            timeout=300,
        )


def test_launch_leaves_no_process_behind_on_timeout(tmp_path):
    marker = tmp_path / "marker-of-this-test"
    marker.mkdir()
    with pytest.raises(subprocess.TimeoutExpired):
        launch(
            ["http.server", "0", "--bind", "127.0.0.1", "--directory", str(marker)],
            nproc=1,
            timeout=8,
        )
    alive = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(marker).encode() in (proc / "cmdline").read_bytes():
                    alive.append(proc.name)
            except OSError:
                pass
    assert alive == [], f"processes left behind: {alive}"
    assert os.environ.get("RANK") is None  # launching changed nothing in this process
