"""Chapter 15: data parallelism on PyTorch's engine, and launching it safely.

Data parallelism runs one process (a *rank*) per device, each with a full copy of the model
(DDP) or a shard of it (FSDP). Every optimizer step, each rank computes the gradient of its
own slice of the global batch and the ranks average their gradients with an all-reduce, so
that every rank takes the same step as one process would on the whole batch:

    grad L(batch) = (1 / W) * sum_r grad L(rows of rank r)      (W ranks, equal slices)

because the loss is a mean over the rows. Pieces here:

    Dist / init_distributed     who am I (rank, world size, device): torchrun's environment
    rank_rows                   the rows of a global batch that belong to one rank
    wrap_model                  DistributedDataParallel, or FSDP2's fully_shard per block
    accumulate_gradients        micro-batches, all-reduced once (no_sync on all but the last)
    launch                      torchrun --standalone on a free port; no process left behind
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as torch_dist
from torch import nn

from llmcourse.validation import positive_int

__all__ = [
    "Dist",
    "accumulate_gradients",
    "init_distributed",
    "launch",
    "rank_rows",
    "set_gradient_sync",
    "unwrap",
    "wrap_model",
]


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0  # 0 .. world_size - 1; rank 0 writes files and prints
    world_size: int = 1  # number of processes training together
    local_rank: int = 0  # rank on this machine: picks the GPU
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Join the process group that torchrun describes in the environment, if any.

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process
    it starts. Without them this is a single process and no group is made. The backend is
    NCCL on GPUs and gloo on CPUs; each process uses GPU number LOCAL_RANK.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' asked for, but torch sees no CUDA GPU")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend="nccl" if device == "cuda" else "gloo",
            device_id=dev if device == "cuda" else None,
        )
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def rank_rows(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rows ``rank, rank + W, rank + 2W, ...`` of a global batch: this rank's slice.

    The same striding as ``torch.utils.data.DistributedSampler``: every rank draws the same
    global batch (same seed) and keeps its own rows, so the ranks never see the same window
    twice and together see exactly what one process would.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if batch.shape[0] % world_size:
        raise ValueError(
            f"a global batch of {batch.shape[0]} rows does not split evenly over "
            f"{world_size} ranks: make the batch size a multiple of the world size"
        )
    return batch[rank::world_size]


def wrap_model(model: nn.Module, strategy: str, dist: Dist) -> nn.Module:
    """``model`` ready for training on ``dist.world_size`` processes.

    "ddp": DistributedDataParallel copies rank 0's weights to every rank, then all-reduces
    gradients in buckets during backward. "fsdp": FSDP2's ``fully_shard`` on every block and
    on the whole model, so each rank stores 1 / W of every parameter and gathers a block's
    full weights only while it computes with them (ZeRO stage 3). One process: unchanged.
    """
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"strategy must be 'ddp' or 'fsdp', got {strategy!r}")
    if not dist.is_distributed:
        return model
    if strategy == "ddp":
        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for block in model.transformer.h:
        fully_shard(block)
    fully_shard(model)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (FSDP2 modules are not wrapped)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@contextlib.contextmanager
def set_gradient_sync(model: nn.Module, sync: bool):
    """Let a backward pass all-reduce (``sync=True``) or only accumulate locally."""
    if sync:
        yield
    elif isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):  # an FSDP2 module
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def accumulate_gradients(model: nn.Module, micro_batches, loss_fn, autocast=None) -> float:
    """Backward over the micro-batches, summing into ``.grad``; return the mean loss.

    Each micro-batch's loss is divided by their number, so the summed gradient is the mean
    over all rows, as one large batch would give. Only the last backward all-reduces: the
    earlier ones run inside ``no_sync`` (DDP) or with FSDP's gradient sync off. All-reducing
    after every micro-batch gives the same numbers for k times the communication; never
    all-reducing leaves each rank with its own gradient, and the copies silently drift apart.
    """
    micro_batches = list(micro_batches)
    if not micro_batches:
        raise ValueError("accumulate_gradients needs at least one micro-batch")
    total = 0.0
    for i, (x, y) in enumerate(micro_batches):
        with set_gradient_sync(model, i == len(micro_batches) - 1):
            with autocast or contextlib.nullcontext():
                loss = loss_fn(model(x), y) / len(micro_batches)
            loss.backward()
        total += loss.item()
    return total


def launch(
    module_args: list[str], nproc: int = 2, timeout: float = 300.0, threads_per_process: int = 1
) -> str:
    """Run ``torchrun --standalone --nproc_per_node=nproc -m <module_args>``; return its output.

    ``--standalone`` lets torchrun pick a free port, so two launches on one machine do not
    collide. If the processes time out or the caller is interrupted, torchrun and every
    process below it are killed, so none is left behind. Raises RuntimeError
    with the end of the output if a process fails.
    """
    positive_int("nproc", nproc)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        *module_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except BaseException:  # timeout, KeyboardInterrupt, anything: take every process down
        _kill_process_tree(process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=30)
        raise
    if process.returncode != 0:
        raise RuntimeError(f"torchrun exited with status {process.returncode}:\n{output[-6000:]}")
    return output


def _kill_process_tree(root: int) -> None:
    """SIGKILL ``root`` and all its descendants, freezing each before looking for its children.

    Killing torchrun's process group is not enough: torchrun starts each worker in a session of
    its own, and a worker that outlives torchrun keeps the output pipe open, so reading it would
    wait forever. Stopping a process first means it cannot start a child we have not seen;
    looking before killing matters because an orphan's parent becomes init.
    """
    seen, frontier = set(), [root]
    while frontier:
        for pid in frontier:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        seen.update(frontier)
        frontier = [pid for pid in _children(frontier) if pid not in seen]
    for pid in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):  # where /proc is missing,
        os.killpg(root, signal.SIGKILL)  # at least the processes of torchrun's own session


def _children(parents: list[int]) -> list[int]:
    """The processes whose parent is in ``parents`` (Linux's /proc; elsewhere, none found)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command name, field 2, may hold spaces: the parent id follows its ')'
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) in parents:
                found.append(int(stat.parent.name))
    return found
