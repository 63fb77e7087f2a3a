"""Training under `torchrun`: which process this is, the one collective our losses need, per-rank
seeds, and output that only rank 0 writes, published whole or not at all.

torchrun (and the Kubeflow Trainer's `torch-distributed` runtime, which starts torchrun in every
node's pod) gives each process RANK, WORLD_SIZE and LOCAL_RANK in its environment; the
transformers `Trainer` (through accelerate) then joins the process group and wraps the model in
DDP (or FSDP). Nothing here starts processes: one process is the plain case (rank 0 of 1).

    with staged_output(out) as stage:     # rank 0: a sibling `.partial` dir; others: None
        ...train (every rank)...
        if stage: write(stage)            # published as `out` when the block ends without error

torch is imported inside the functions, so this module loads in the CLI without it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"  # a release being written; never read as one


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run (torchrun's RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the adapter, the metrics and the release."""
        return self.rank == 0


def ranks() -> Ranks:
    """This process's ranks from the environment torchrun sets (rank 0 of 1 without it)."""
    env = os.environ
    return Ranks(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def rank_seed(seed: int) -> int:
    """The seed of this rank's own randomness (dropout): `seed + rank`, so ranks do not draw the
    same masks. Data order and initial weights use `seed` itself on every rank (the sampler shards
    one permutation; DDP starts every replica from rank 0's weights)."""
    return seed + ranks().rank


def _group_active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the joined process group (1 when there is none)."""
    import torch.distributed as dist

    return dist.get_world_size() if _group_active() else 1


def global_sum(value: Any) -> Any:
    """The sum of a tensor over every rank (a detached copy; the tensor itself when alone).

    The weighted losses divide by the batch's weight sum; under DDP that sum must be the global
    batch's, or a rank with lighter samples would count as much as one with heavier ones.
    """
    if not _group_active():
        return value
    import torch.distributed as dist

    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def weighted_mean_across_ranks(per_sample: Any, weight: Any, floor: float | None = None) -> Any:
    """Σ wᵢ·lᵢ / Σ wᵢ over the *global* batch, as this rank's share for DDP.

    DDP averages gradients over ranks, so each rank returns `world · Σ_local wᵢ·lᵢ / Σ_global wᵢ`:
    the average of those is the one-process loss of the whole batch, and so are its gradients.
    This is what transformers' `Trainer.compute_loss` does for token-averaged losses
    (`average_tokens_across_devices`: the loss is multiplied by `accelerator.num_processes` after
    dividing by the global item count; transformers/trainer.py, `compute_loss`). A batch of only
    zero-weight samples has nothing to teach: loss 0, gradient 0 (the weight sum is floored at
    `floor`, default the dtype's smallest normal number).
    """
    import torch

    weight = weight.to(per_sample.dtype)
    total = global_sum(weight.sum())
    floor = torch.finfo(weight.dtype).tiny if floor is None else floor
    return (per_sample * weight).sum() * world_size() / total.clamp(min=floor)


@contextmanager
def staged_output(out: str | Path) -> Iterator[Path | None]:
    """Rank 0 writes into `<out>.partial`, published as `out` only when the block ends without an
    error; other ranks get None and write nothing. A run that fails or is killed leaves no
    half-written `out` (a stale `.partial` from a killed run is removed by the next run)."""
    if not ranks().is_main:
        yield None
        return
    out = Path(out)
    stage = out.with_name(out.name + PARTIAL_SUFFIX)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish(stage, out)


def publish(stage: Path, out: Path) -> None:
    """Move a finished stage to `out`: one rename when `out` is absent or empty, else file by file
    (the files of an earlier run at `out` are replaced, others kept)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.replace(stage, out)
        return
    for item in sorted(stage.iterdir()):
        target = out / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    stage.rmdir()
