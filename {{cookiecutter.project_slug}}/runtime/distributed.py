"""Several processes training one model: the process group that torchrun's processes share.

    make train NPROC=4          # = torchrun --standalone --nproc_per_node=4 -m training.train
    make train NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC=8     # on each machine

torchrun starts one process per GPU (or CPU share) and tells each who it is through environment
variables: RANK (0 .. WORLD_SIZE - 1 across all machines), LOCAL_RANK (its GPU on this machine),
WORLD_SIZE and LOCAL_WORLD_SIZE. Plain `make train` sets none of them: then this is rank 0 of 1,
no process group is created and every function here does nothing.

Each process stops with torchrun: if torchrun itself dies (`kill -9`), the processes stop after
the current step and save, as for a Ctrl+C, rather than train on as orphans (die_with_launcher).

The only collectives this project calls itself are here: a barrier, the mean of the logged loss
and "does any process want to stop?". DDP and FSDP (training/parallelize.py) and the sharded
checkpoints (runtime/sharded_checkpoints.py) do their own communication through the same group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import signal
import threading
import time
from collections.abc import Iterator

import torch
import torch.distributed as dist

from errors import ConfigurationError, TrainingError

# How long a process waits for the others at a collective before giving up. Long enough for rank
# 0 to write a checkpoint of a large model while the others wait at the barrier after it; short
# enough that a process that hangs (not one that dies: torchrun stops the others at once then)
# ends the run in minutes rather than torch's default of 30 minutes (gloo) or 10 (NCCL).
TIMEOUT = datetime.timedelta(minutes=10)


@dataclasses.dataclass(frozen=True)
class World:
    """Where this process stands among the processes of one training run."""

    rank: int = 0
    """0 .. size - 1 over all machines; rank 0 logs, prints and writes single-file checkpoints."""
    local_rank: int = 0
    """Index of this process on its machine: the GPU it uses."""
    size: int = 1
    """Number of processes in the run (WORLD_SIZE)."""
    local_size: int = 1
    """Number of processes on this machine (they share its CPU cores)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    # ---- collectives: every process must call them at the same point, or all wait ----

    def barrier(self) -> None:
        """Wait until every process gets here (e.g. until rank 0 has written a checkpoint)."""
        if self.distributed:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of `value` over all processes (e.g. the loss, for the log)."""
        if not self.distributed:
            return value
        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
        return total / self.size

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process if `flag` is True on at least one."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def all(self, flag: bool, device: torch.device) -> bool:
        """True on every process if `flag` is True on all of them."""
        return not self.any(not flag, device)

    def broadcast(self, value: object) -> object:
        """Rank 0's `value` (any picklable object), on every process."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


ONE_PROCESS = World()  # plain `make train`


def world_from_env() -> World:
    """This process's place, from the variables torchrun sets (rank 0 of 1 without torchrun)."""
    try:
        return World(rank=int(os.environ.get("RANK", 0)),
                     local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                     size=int(os.environ.get("WORLD_SIZE", 1)),
                     local_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    except ValueError:
        raise ConfigurationError(
            "RANK, LOCAL_RANK, WORLD_SIZE or LOCAL_WORLD_SIZE is set but is not a number",
            "start several processes with `make train NPROC=N` (torchrun sets them), or unset "
            "these variables for a single process",
        ) from None


def device_for(world: World, device: torch.device) -> torch.device:
    """The device of this process: with several processes on CUDA, GPU number LOCAL_RANK."""
    if not world.distributed or device.type != "cuda":
        return device
    if device.index is not None and world.local_size > 1:
        raise ConfigurationError(
            f"training.device is '{device}', but torchrun started {world.local_size} processes "
            "on this machine and each needs its own GPU",
            "set training.device to 'auto' or 'cuda': process N then uses GPU N",
        )
    if world.local_size > torch.cuda.device_count():
        raise ConfigurationError(
            f"{world.local_size} processes on this machine, but it has "
            f"{torch.cuda.device_count()} GPU(s)",
            f"use at most NPROC={torch.cuda.device_count()} (one process per GPU)",
        )
    torch.cuda.set_device(world.local_rank)
    return torch.device("cuda", world.local_rank)


def start(world: World, device: torch.device) -> None:
    """Join the process group of the run: NCCL between GPUs, gloo between CPU processes.

    torchrun's variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE) say where to meet.
    """
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "mps":
        raise ConfigurationError(
            "several processes cannot share Apple's GPU (mps): PyTorch has no backend for it",
            "train with one process (`make train`, without NPROC)",
        )
    die_with_launcher()
    # device_id binds NCCL's communicator to this GPU at once (and silences a warning).
    options = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(backend, timeout=TIMEOUT, **options)


# Once torchrun is gone, how long a process may take to stop and save before it ends anyway: the
# 30 s torchrun itself gives its processes after passing on a signal, before it kills them.
LAUNCHER_GONE_GRACE = 30.0
LAUNCHER_POLL_SECONDS = 0.5


def die_with_launcher() -> None:
    """Stop when torchrun itself dies (`kill -9`, the out-of-memory killer), instead of training
    on as an orphan that holds the project lock and that nothing stops but `kill`.

    A daemon thread watches this process's parent: once torchrun is gone (the process has a new
    parent), it sends the process one SIGTERM, which stops the run after the current step and
    saves a checkpoint, as when torchrun passes on a Ctrl+C (every process notices within
    LAUNCHER_POLL_SECONDS, so all stop after the same step). One that has not ended
    LAUNCHER_GONE_GRACE seconds later (stuck with a peer that is already gone) ends then; an
    interrupted save leaves the earlier checkpoints as they were.

    (Not Linux's prctl(PR_SET_PDEATHSIG): the kernel sends that signal again as each thread of
    torchrun exits, and a late one would end this process in the middle of its save.)"""
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(LAUNCHER_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(LAUNCHER_GONE_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def finish() -> None:
    """Leave the process group after a run that ended normally (NCCL warns otherwise).

    The barrier first: every process leaves together. Without it, a process that tears down
    its gloo connections while another is still finishing its last exchange can make that one
    abort (SIGABRT, seen once in a while at the end of a stopped FSDP run).
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def peers_lost_as_error(world: World) -> Iterator[None]:
    """A collective that fails because another process died or hung -> one plain TrainingError.

    That process printed its own error (errors.py prints the first one of a run, once), and
    torchrun stops the others; what remains to say is that this one cannot go on without it.
    """
    try:
        yield
    except (dist.DistError, RuntimeError) as error:
        text = str(error)
        lost = isinstance(error, dist.DistError) or any(
            sign in text for sign in ("Connection closed by peer", "Connection reset by peer",
                                      "Broken pipe", "Timed out", "NCCL"))
        if not world.distributed or not lost:
            raise
        raise TrainingError(
            f"process {world.rank} of {world.size} stopped: another process of this run failed "
            f"or stopped answering ({text.splitlines()[0][:120]})",
            "look above for that process's error; the checkpoints written so far are intact: "
            "fix the cause, then continue with `make resume NPROC=...`",
        ) from None
