"""Train the model described by llm.config.js on the data made by `make data`.

    make train                                    # = python -m training.train
    make train ARGS="--training.max_steps 300"    # any config key, for this run only
    make resume                                   # = python -m training.train --resume auto
    python -m training.train --resume checkpoints/step_000500.pt
    python -m training.train --fresh              # archive the previous run, start over

    make train NPROC=4                            # 4 processes (GPUs) on this machine:
        # torchrun --standalone --nproc_per_node=4 -m training.train
    make train NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC=8    # machine 0 of 2
    make train NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 NPROC=8    # machine 1 of 2

Ctrl+C (or SIGTERM) finishes the current step, saves a checkpoint and exits; `make resume`
continues exactly where it stopped (with any NPROC). Checkpoints go to checkpoints/, metrics to
logs/metrics.jsonl. While it trains it holds the project's write lock (project_lock.py): a second
`make train`, or `make data`, is refused at once. The run itself is training/run.py.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from config import add_config_arguments, config_from_args
from errors import run_cli
from plugins.manager import PluginManager
from project_lock import project_lock

if TYPE_CHECKING:
    from training.callbacks.base import Callback


def main(argv: list[str] | None = None, extra_callbacks: list[Callback] | None = None) -> int:
    """Train. `extra_callbacks` run after the built-in ones (add your own here)."""
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", nargs="?", const="auto", metavar="auto|PATH",
                        help="continue a run: 'auto' = the newest good checkpoint, or a file")
    parser.add_argument("--fresh", action="store_true",
                        help="move the previous run's checkpoints to checkpoints/previous/ "
                             "and start a new one")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    command = "make resume" if args.resume else "make train"
    # Under torchrun the processes of one run share the lock: rank 0 holds it for all of them
    # (a second run's rank 0 is refused, and torchrun then stops that run's other processes).
    main_process = os.environ.get("RANK", "0") == "0"
    lock = project_lock(command, Path(cfg.path).parent, run_folder=cfg.checkpoints.dir) \
        if main_process else contextlib.nullcontext()
    with lock:
        # Imported here, under the lock: loading torch takes seconds, and a second `make train`
        # should be refused at once, before that.
        from training.run import run

        # The plugins (plugins.enabled) report, so rank 0 alone runs them; each one that fails
        # to load warns and training goes on (plugins/manager.py).
        plugins = [PluginManager.from_config(cfg)] if cfg.plugins.enabled and main_process \
            else []
        return run(cfg, args.resume, args.fresh, plugins, extra_callbacks)


if __name__ == "__main__":
    run_cli(main)
