"""Many processes, one job: ``torch.distributed`` under ``torchrun`` (one rank per device, many nodes).

Under torchrun (its RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR environment) the CLI opens a process group
for the command (``launched``): ``nccl`` when this node has a GPU for every local rank, ``gloo`` otherwise.
Each rank computes on ``cuda:LOCAL_RANK`` (or the CPU) with a fixed number of CPU threads (``OMP_NUM_THREADS``,
1 by torchrun's default), so its arithmetic is that of a single process run with the same thread count.

Work is split by chunk index, chunk c to rank c % world_size, and every rank writes its chunk files into the
shared folder; nothing but small control messages travels through the process group:
- ``rank0_first(fn)``: rank 0 runs ``fn`` first (pins or trains the interpreter), the others after it;
- ``share(value)``: rank 0 hands a value (where to score) to the others, which wait for it;
- ``wait_for_all()``: every rank has written its chunks; rank 0 then merges / selects alone;
- ``Tally``: a job-wide count of finished units (in torchrun's key-value store), so rank 0's progress bar
  counts every rank's work.

Failures: each meeting point is a barrier followed by an exchange of outcomes. A rank that fails inside
``launched()`` takes part in the others' next meeting with its error and re-raises it (the CLI prints it as
one line); the other ranks then raise ``PeerFailed``, which the CLI turns into a non-zero exit without a
message of its own. An error every rank hit alike (a bad option) is printed once, by rank 0.

Without torchrun ``current()`` is None and every helper is the plain single-process path.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from dgan_al.errors import UserError
from dgan_al.progress import ProgressCallback

# How long a rank waits at a meeting point: rank 0 may train an interpreter while the others wait.
TIMEOUT = timedelta(hours=12)
T = TypeVar("T")
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class PeerFailed(Exception):
    """Another rank failed (and printed its own error); this rank stops too, with that rank's exit code."""

    def __init__(self, rank: int, message: str, exit_code: int):
        self.rank, self.exit_code = rank, exit_code
        super().__init__(f"rank {rank} failed: {message}")


@dataclass
class Job:
    """This process's place in the job, and the meeting points of its ranks."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    store: Any  # torchrun's key-value store (prefixed): the progress counters
    open: bool = True  # False once some rank has left the protocol: no more meetings
    counters: int = 0

    def meet(self, value: Any = None, *, final: bool = False, tick: Callable[[], None] | None = None) -> list:
        """Wait for every rank (calling ``tick`` meanwhile); every rank's ``value``. ``final``: the last meeting."""
        return self._exchange((None, 0), value, final, tick)

    def _exchange(self, error: tuple[str | None, int], value: Any, closing: bool, tick=None) -> list:
        if not self.open:  # some rank has left: there is nobody to meet
            return [None] * self.world_size
        self.open = False  # an exception inside the collectives leaves the protocol closed
        work = dist.barrier(async_op=True)
        while not work.is_completed():
            if tick is not None:
                tick()
            time.sleep(0.2)
        work.wait()
        outcomes: list = [None] * self.world_size
        dist.all_gather_object(outcomes, (error, value, closing))
        self.open = not any(e[0] is not None or c for e, _, c in outcomes)
        failed = [(rank, e) for rank, (e, _, _) in enumerate(outcomes) if e[0] is not None]
        if failed and (error[0] is None or (self.rank > 0 and outcomes[0][0] == error)):
            rank, (message, code) = failed[0]
            raise PeerFailed(rank, message, code)
        return [v for _, v, _ in outcomes]


_job: Job | None = None


def under_torchrun() -> bool:
    """True in a process started by torchrun (or with the same environment)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def current() -> Job | None:
    """The job this process is a rank of, or None (a single process)."""
    return _job


def rank() -> int:
    return _job.rank if _job is not None else 0


def threads_per_rank() -> int:
    """CPU threads of each rank: ``OMP_NUM_THREADS`` (torchrun sets 1 unless told otherwise)."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def init() -> Job:
    """Join torchrun's job: process group (nccl with a GPU per local rank, else gloo), device, threads."""
    global _job
    if _job is not None:
        return _job
    store, rank_, world = next(dist.rendezvous("env://"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(threads_per_rank())
    backend = "gloo"
    if torch.cuda.is_available() and local_world <= torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    dist.init_process_group(backend, store=store, rank=rank_, world_size=world, timeout=TIMEOUT)
    prefix = f"dgan-al/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
    _job = Job(rank_, world, local_rank, local_world, dist.PrefixStore(prefix, store))
    return _job


def shutdown() -> None:
    global _job
    if _job is not None:
        _job = None
        dist.destroy_process_group()


@contextmanager
def launched() -> Iterator[Job | None]:
    """Around a command: under torchrun, its job (else None, and nothing happens).

    A rank's failure in the block reaches the others at their next meeting point, so all stop: this rank
    re-raises its own error, the others raise ``PeerFailed``. A rank that leaves early without an error
    (rank 0: nothing to do) releases the ranks waiting for it. The process group is closed at the end.
    """
    if not under_torchrun():
        yield None
        return
    job = init()
    try:
        yield job
    except PeerFailed:
        raise
    except BaseException as err:
        if job.open:
            message = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            code = getattr(err, "exit_code", 130 if isinstance(err, KeyboardInterrupt) else 1)
            job._exchange((message, code), None, True)
        raise
    else:
        job._exchange((None, 0), None, True)  # a no-op once the last meeting is behind
    finally:
        shutdown()


def rank0_first(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 first, then on the other ranks (which find what rank 0 wrote); alone just ``fn()``."""
    if _job is not None and _job.rank > 0:
        _job.meet()
    value = fn()
    if _job is not None and _job.rank == 0:
        _job.meet()
    return value


def share(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (the others wait for it); None if rank 0 finished without one."""
    return _job.meet(value)[0] if _job is not None else value


def wait_for_all(tick: Callable[[], None], value: Any = None) -> list:
    """The last meeting: every rank has written its chunks. Rank 0 calls ``tick`` while it waits and once
    after; every rank's ``value`` comes back (alone: ``[value]``)."""
    if _job is None:
        return [value]
    values = _job.meet(value, final=True, tick=tick if _job.rank == 0 else None)
    if _job.rank == 0:
        tick()
    return values


def my_chunks(n_chunks: int) -> range:
    """The chunk indices this rank computes: all alone, c % world_size == rank under torchrun."""
    return range(n_chunks) if _job is None else range(_job.rank, n_chunks, _job.world_size)


def rank_shard(shard: tuple[int, int] | None) -> tuple[int, int] | None:
    """This rank's part of shard i/n (or of everything): (i + n * rank, n * world_size), chunk c % n == i."""
    if _job is None:
        return shard
    i, n = shard or (0, 1)
    return i + n * _job.rank, n * _job.world_size


def rank_device(device: torch.device) -> torch.device:
    """``cuda`` without an index becomes ``cuda:LOCAL_RANK`` under torchrun; anything else is kept."""
    device = torch.device(device)
    if _job is None or device.type != "cuda" or device.index is not None:
        return device
    if _job.local_rank >= torch.cuda.device_count():
        raise UserError(f"{_job.local_world_size} ranks on this node but {torch.cuda.device_count()} GPU(s)",
                        fix="start torchrun with --nproc-per-node at most the number of GPUs, or use device cpu")
    return torch.device("cuda", _job.local_rank)


class Tally:
    """Units done over all ranks, reported as ``progress(task, done, total)``: rank 0's bar counts the job."""

    def __init__(self, progress: ProgressCallback, task: str, total: int):
        self.progress, self.task, self.total, self.done = progress, task, total, 0
        self.key = None
        if _job is not None:
            _job.counters += 1  # every rank makes the same tallies in the same order
            self.key = f"{_job.counters}/{task}"

    def add(self, n: int) -> None:
        self.done += n
        self.progress(self.task, self.done if self.key is None else _job.store.add(self.key, n), self.total)

    def tick(self) -> None:
        """Report what the other ranks finished meanwhile."""
        if self.key is not None:
            self.progress(self.task, _job.store.add(self.key, 0), self.total)
