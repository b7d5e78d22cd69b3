"""Checks for the exercises of chapter 15, beyond one machine.

check_largest_model(largest_model)          the largest model a GPU trains, per ZeRO stage
check_shard_indices(shard_indices)          DistributedSampler's shard of an epoch
check_fixed_step(fixed_step)                gradient accumulation with one all-reduce
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from llmcourse.exercises import expect, run_checks
from llmcourse.memory import zero_bytes_per_gpu

__all__ = ["SyncCounter", "check_fixed_step", "check_largest_model", "check_shard_indices"]


# --- the largest model per ZeRO stage ---------------------------------------------------------


def _largest(gpu_bytes, n_gpus, stage):
    """The model answer, from the package's per-GPU bytes of one parameter."""
    return math.floor(gpu_bytes / zero_bytes_per_gpu(1, n_gpus, stage))


def check_largest_model(largest_model) -> None:
    """``largest_model(gpu_bytes, n_gpus, stage)``: most parameters whose state fits a GPU."""
    gb80 = 80 * 10**9
    cases = [
        (gb80, 8, 0),
        (gb80, 8, 1),
        (gb80, 8, 2),
        (gb80, 8, 3),
        (gb80, 64, 2),
        (24 * 10**9, 4, 3),
        (gb80, 1, 3),
    ]

    def an_int(f):
        got = f(gb80, 8, 0)
        expect(
            isinstance(got, int) and not isinstance(got, bool),
            f"return a whole number of parameters (an int), got {type(got).__name__} "
            f"{got!r}: round down with math.floor or //",
        )

    def stage_0(f):
        got = f(gb80, 8, 0)
        expect(
            got != gb80 // 12,
            "12 bytes per parameter is only the optimizer state: add the "
            "16-bit weights and gradients (2 + 2 bytes)",
        )
        expect(
            got != gb80 // 2,
            "2 bytes per parameter is what inference needs; training "
            "also keeps gradients and AdamW's state: 16 bytes",
        )
        expect(
            got == gb80 // 16,
            "without sharding every GPU holds 2 + 2 + 12 = 16 bytes per "
            f"parameter: 80e9 / 16 = {gb80 // 16:,}, got {got:,}",
        )
        expect(
            f(gb80, 64, 0) == gb80 // 16,
            "stage 0 is plain data parallelism: more GPUs do not make room for a larger model",
        )

    def stages(f):
        for gpu, n, stage in cases:
            got, want = f(gpu, n, stage), _largest(gpu, n, stage)
            if n > 1 and stage == 1 and got == math.floor(gpu / (16 / n)):
                expect(
                    False,
                    "stage 1 shards only the optimizer state (12 bytes per "
                    "parameter): the 16-bit weights and gradients stay whole",
                )
            if n > 1 and stage == 2 and got == _largest(gpu, n, 1):
                expect(False, "stage 2 also shards the gradients: 2 + (2 + 12) / N bytes")
            if n > 1 and stage == 3 and got == _largest(gpu, n, 2):
                expect(False, "stage 3 shards the weights too: 16 / N bytes per parameter")
            expect(
                abs(got - want) <= 1,
                f"{gpu / 1e9:g} GB, {n} GPUs, stage {stage}: expected "
                f"{want:,} parameters, got {got:,}",
            )

    return run_checks(
        "Exercise: the largest model per ZeRO stage", largest_model, [an_int, stage_0, stages]
    )


# --- DistributedSampler's shard -----------------------------------------------------------


def check_shard_indices(shard_indices) -> None:
    """``shard_indices(n, rank, world_size, epoch, seed)``: this rank's dataset indices."""

    def want(n, rank, world, epoch, seed):
        sampler = DistributedSampler(
            range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed
        )
        sampler.set_epoch(epoch)
        return list(sampler)

    def as_list(got):
        return [int(i) for i in got]

    def disjoint(f):
        shards = [as_list(f(12, r, 3, 0, 0)) for r in range(3)]
        expect(
            sorted(i for shard in shards for i in shard) == list(range(12)),
            "the shards of 12 items over 3 ranks must together hold every index exactly "
            "once: did every rank shuffle with the same seed?",
        )

    def order(f):
        got = as_list(f(12, 1, 3, 0, 0))
        perm = torch.randperm(12, generator=torch.Generator().manual_seed(0)).tolist()
        expect(
            got != perm[4:8],
            "contiguous blocks: DistributedSampler takes every W-th index "
            "of the shuffled list, starting at the rank (indices[rank::W])",
        )
        expect(
            got == want(12, 1, 3, 0, 0),
            "shuffle with torch.randperm(n) from a generator "
            "seeded with seed + epoch, then take [rank::W]",
        )

    def epochs(f):
        expect(
            as_list(f(12, 0, 3, 1, 0)) != as_list(f(12, 0, 3, 0, 0)),
            "epoch 1 gives the same order as epoch 0: seed the shuffle with seed + epoch "
            "(this is why training loops call sampler.set_epoch(epoch))",
        )
        expect(as_list(f(12, 2, 3, 4, 7)) == want(12, 2, 3, 4, 7), "wrong shard at epoch 4, seed 7")

    def padding(f):
        shards = [as_list(f(10, r, 4, 0, 0)) for r in range(4)]
        expect(
            all(len(s) == 3 for s in shards),
            "10 items over 4 ranks: every rank must get ceil(10 / 4) = 3 indices (repeat the "
            "first indices of the shuffled list to pad it to 12), or the ranks would run "
            f"different numbers of steps and wait for each other forever; got lengths "
            f"{[len(s) for s in shards]}",
        )
        expect(
            shards == [want(10, r, 4, 0, 0) for r in range(4)],
            "pad by appending the first indices of the shuffled list",
        )

    return run_checks(
        "Exercise: DistributedSampler's shard", shard_indices, [disjoint, order, epochs, padding]
    )


# --- gradient accumulation with one all-reduce ----------------------------------------------


class SyncCounter(nn.Module):
    """A stand-in for DistributedDataParallel on one process that counts its all-reduces.

    Like DDP, it decides in ``forward`` whether the coming backward all-reduces: yes, unless
    the forward runs inside ``no_sync()``. It records each forward's decision in ``syncs``.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.require_backward_grad_sync = True
        self.syncs: list[bool] = []

    @contextlib.contextmanager
    def no_sync(self):
        old, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def forward(self, x):
        self.syncs.append(self.require_backward_grad_sync)
        return self.module(x)


def _problem(dtype, n_micro=4, rows=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = nn.Linear(5, 2).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    batches = [
        (
            torch.randn(rows, 5, generator=gen, dtype=dtype),
            torch.randn(rows, 2, generator=gen, dtype=dtype),
        )
        for _ in range(n_micro)
    ]
    return net, batches


def check_fixed_step(fixed_step) -> None:
    """``fixed_step(model, micro_batches, optimizer)``: one step, gradients all-reduced once.

    The loss is ``F.mse_loss(model(x), y)``; the step must equal one step on all the
    micro-batches at once.
    """

    def run(dtype, n_micro=4, stale_grads=True):
        net, batches = _problem(dtype, n_micro)
        start = [p.detach().clone() for p in net.parameters()]
        full = nn.functional.mse_loss(
            net(torch.cat([x for x, _ in batches])), torch.cat([y for _, y in batches])
        )
        want = torch.autograd.grad(full, list(net.parameters()))
        model = SyncCounter(net)
        if stale_grads:  # left over from the previous step
            for p in net.parameters():
                p.grad = torch.ones_like(p)
        optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
        calls = {"step": 0}
        step = optimizer.step

        def counted_step(*args, **kwargs):
            calls["step"] += 1
            return step(*args, **kwargs)

        optimizer.step = counted_step
        fixed_step(model, batches, optimizer)
        moved = [s - p.detach() for s, p in zip(start, net.parameters())]  # = lr * gradient
        return model.syncs, calls["step"], moved, want

    def one_sync(f):
        syncs, _, _, _ = run(torch.float64)
        expect(len(syncs) == 4, f"expected one forward per micro-batch (4), got {len(syncs)}")
        expect(
            sum(syncs) != len(syncs),
            "every micro-batch all-reduces: run the forward and backward of all but the "
            "last micro-batch inside model.no_sync()",
        )
        expect(
            sum(syncs) != 0,
            "no micro-batch all-reduces: the replicas would never "
            "exchange gradients and silently drift apart. The last "
            "micro-batch must run outside no_sync()",
        )
        expect(
            syncs == [False, False, False, True],
            f"all-reduce exactly once, on the LAST micro-batch (no_sync on the others); "
            f"the forwards' sync flags were {syncs}",
        )

    def one_update(f):
        _, steps, _, _ = run(torch.float64)
        expect(
            steps == 1, f"optimizer.step() ran {steps} times: step once, after the last micro-batch"
        )

    def gradient(f):
        for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
            _, _, moved, want = run(dtype)
            ratio = float(
                sum((m * w).sum() for m, w in zip(moved, want)) / sum((w * w).sum() for w in want)
            )
            expect(
                not math.isclose(ratio, 4.0, rel_tol=1e-3),
                "the update is 4 times too large: divide each micro-batch's loss by the "
                "number of micro-batches, so the summed gradient is the mean",
            )
            ok = all(torch.allclose(m, w, atol=tol, rtol=tol) for m, w in zip(moved, want))
            if not ok:
                _, _, fresh, _ = run(dtype, stale_grads=False)
                expect(
                    not all(torch.allclose(m, w, atol=tol, rtol=tol) for m, w in zip(fresh, want)),
                    "gradients left from the previous step were added in: zero them "
                    "(optimizer.zero_grad()) before the first backward",
                )
            expect(ok, "the update is not one step on the mean gradient of all micro-batches")
        _, _, moved, want = run(torch.float64, n_micro=1)
        expect(
            all(torch.allclose(m, w, atol=1e-10) for m, w in zip(moved, want)),
            "with a single micro-batch the step must equal a plain training step",
        )

    return run_checks(
        "Exercise: accumulation with one all-reduce", fixed_step, [one_sync, one_update, gradient]
    )
