"""Put a sharded checkpoint (from an FSDP run) together into one ordinary .pt file.

    make consolidate               # the best (else newest) -> checkpoints/consolidated/
    make consolidate ARGS="--checkpoint checkpoints/step_000500.dcp --output my-model.pt"

The result is a checkpoint like the ones one process writes: model, optimizer, step, random
states, data position (so `make resume` can continue from it in one process), with its .json
sidecar. You rarely need it: evaluate, generate, chat, compare, export and resume all read
sharded checkpoints as they are. It is for carrying one file elsewhere, and for sharing: it loads
with weights_only=True, while a sharded checkpoint's index is a pickle (runtime/
sharded_checkpoints.py). Runs in one process, whatever number of processes wrote the checkpoint.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
from pathlib import Path

from config import add_config_arguments, config_from_args
from errors import run_cli
from runtime import checkpoints, sharded_checkpoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.consolidate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="auto",
                        help="'auto' (best, else latest), 'best', 'latest' or a .dcp folder")
    parser.add_argument("--output", help="the .pt file to write (default: "
                        "<checkpoints.dir>/consolidated/<best|step_N>.pt)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    folder = Path(cfg.checkpoints.dir)
    path = checkpoints.find_checkpoint(args.checkpoint, folder, prefer="best")
    if not checkpoints.is_sharded(path):
        print(f"{path} is already a single file: nothing to consolidate")
        return 0
    name = "best" if path.name.startswith("best_") else path.stem
    output = Path(args.output or folder / "consolidated" / f"{name}.pt")
    state = sharded_checkpoints.consolidate(path)
    sidecar = checkpoints.save_checkpoint(output, state, sharded_checkpoints.sidecar_facts(path))
    print(f"Wrote {output} ({sidecar['size'] / 1e6:.1f} MB, step {state['step']}) from {path}")
    print(f"Use it with e.g. `make generate ARGS=\"--checkpoint {output}\"`")
    return 0


if __name__ == "__main__":
    run_cli(main)
