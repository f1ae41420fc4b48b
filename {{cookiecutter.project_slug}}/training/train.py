"""Train the model described by llm.config.js on the data made by `make data`.

    make train                                    # = python -m training.train
    make train ARGS="--training.max_steps 300"    # any config key, for this run only
    make resume                                   # = python -m training.train --resume auto
    python -m training.train --resume checkpoints/step_000500.pt
    python -m training.train --fresh              # archive the previous run, start over

Ctrl+C (or SIGTERM) finishes the current step, saves a checkpoint and exits; `make resume`
continues exactly where it stopped. Checkpoints go to checkpoints/, metrics to logs/metrics.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import torch

from config import Config, add_config_arguments, config_from_args
from data.dataset import TrainBatches, check_enough_tokens, load_split, read_meta
from errors import TrainingError, run_cli
from models.architectures.gpt import GPT
from training import checkpoints
from training.callbacks.base import Callback
from training.callbacks.checkpoint import CheckpointCallback
from training.callbacks.logging import LoggingCallback
from training.device import describe, pick_device, pick_precision, set_threads
from training.trainer import Trainer

# Keys that change the shape of the weights: a checkpoint must agree on all of them to resume.
ARCHITECTURE_KEYS = ("architecture", "layers", "heads", "kv_heads", "dim", "mlp_dim",
                     "vocab_size", "tie_embeddings")


def archive_previous_run(cfg: Config) -> Path:
    """Move the previous run's checkpoints and metrics aside (never delete a user's work)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    archive = Path(cfg.checkpoints.dir) / "previous" / stamp
    archive.mkdir(parents=True)
    for path in Path(cfg.checkpoints.dir).iterdir():
        if path.is_file():
            shutil.move(str(path), archive / path.name)
    metrics = Path(cfg.logging.dir) / "metrics.jsonl"
    if metrics.exists():
        shutil.move(str(metrics), archive / "metrics.jsonl")
    return archive


def check_resumable(state: dict, model_config: dict, tok_hash: str, path: Path) -> None:
    """Refuse a checkpoint from another architecture or tokenizer, saying which key differs."""
    saved = state.get("model_config", {})
    if state.get("tokenizer_hash") != tok_hash:
        vocab = (f" ({saved.get('vocab_size')} tokens; the current one has "
                 f"{model_config['vocab_size']})"
                 if saved.get("vocab_size") != model_config["vocab_size"] else "")
        raise TrainingError(
            f"cannot resume from {path}: it was trained with a different tokenizer{vocab}",
            "restore the tokenizer it was trained with (tokenizer/tokenizer.json, then "
            "`make data`), or start a new run with `make train ARGS=--fresh`",
        )
    for key in ARCHITECTURE_KEYS:
        if saved.get(key) != model_config[key]:
            raise TrainingError(
                f"cannot resume from {path}: it has model.{key} = {saved.get(key)}, "
                f"the current config has {model_config[key]}",
                "restore the old value in llm.config.js, or start a new run with "
                "`make train ARGS=--fresh`",
            )


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
    t = cfg.training

    threads = set_threads(t.threads)
    device = pick_device(t.device)
    precision = pick_precision(t.precision, device, cfg.model.dim)

    meta = read_meta(cfg.data.processed_dir, cfg.tokenizer.path)
    tok_hash = meta["tokenizer_hash"]
    model_config = dataclasses.replace(cfg.model, vocab_size=meta["vocab_size"])
    if meta["vocab_size"] != cfg.tokenizer.vocab_size:
        print(f"vocabulary: {meta['vocab_size']} tokens, from the trained tokenizer "
              f"(tokenizer.vocab_size in llm.config.js asks for {cfg.tokenizer.vocab_size}; "
              "the tokenizer wins)")
    train_tokens = load_split(cfg.data.processed_dir, "train")
    val_tokens = load_split(cfg.data.processed_dir, "val")
    bytes_per_token = meta["train_bytes"] / max(1, meta["train_tokens"])
    check_enough_tokens(len(train_tokens), t.batch_size, model_config.max_length, "train",
                        bytes_per_token)
    check_enough_tokens(len(val_tokens), 1, model_config.max_length, "val", bytes_per_token)

    # Never overwrite a previous run by accident.
    folder = Path(cfg.checkpoints.dir)
    has_run = bool(checkpoints.list_step_checkpoints(folder)) or (folder / "best.pt").exists()
    if has_run and not args.resume:
        if not args.fresh:
            latest = checkpoints.list_step_checkpoints(folder)
            where = f" (up to step {latest[-1][0]})" if latest else ""
            raise TrainingError(
                f"{folder}/ already holds a training run{where}",
                "continue it with `make resume`, or start over with "
                "`make train ARGS=--fresh` (the old run is moved to checkpoints/previous/)",
            )
        print(f"Moved the previous run to {archive_previous_run(cfg)}")
    checkpoints.check_writable(folder)
    leftovers = checkpoints.remove_stale_temp_files(folder)
    if leftovers:
        print(f"Removed {len(leftovers)} half-written checkpoint file(s) of an interrupted run")

    torch.manual_seed(t.seed)
    model = GPT(model_config)
    model.gradient_checkpointing = t.gradient_checkpointing
    model.to(device)
    batches = TrainBatches(train_tokens, t.batch_size, model_config.max_length, t.seed)
    callbacks = [
        LoggingCallback(cfg.logging.dir, cfg.logging.progress_bar, cfg.logging.tensorboard),
        CheckpointCallback(cfg.checkpoints.dir, cfg.checkpoints.save_interval,
                           cfg.checkpoints.save_total_limit, cfg.checkpoints.keep_best),
        *(extra_callbacks or []),
    ]
    trainer = Trainer(cfg, model, batches, val_tokens, meta, device, precision, callbacks,
                      tok_hash)
    if t.compile:
        trainer.forward_model = compile_model(model)

    if args.resume:
        path = checkpoints.find_checkpoint(args.resume, folder, prefer="latest")
        state = checkpoints.load_checkpoint(path, map_location=device)
        check_resumable(state, dataclasses.asdict(model_config), tok_hash, path)
        trainer.load_state(state)
        print(f"Resuming from {path} (step {trainer.step})")
        if trainer.step >= t.max_steps:
            print(f"Already trained for {trainer.step} steps (training.max_steps = "
                  f"{t.max_steps}). To train longer: make resume ARGS=\"--training.max_steps "
                  f"{t.max_steps * 2}\"")
            return 0

    tokens_per_step = t.batch_size * t.gradient_accumulation * model_config.max_length
    print(f"model: {model_config.architecture} '{model_config.preset}' with "
          f"{model.num_parameters() / 1e6:.2f}M parameters | context {model_config.max_length} "
          f"| vocabulary {model_config.vocab_size}")
    print(f"data: {meta['train_tokens']:,} training tokens, {meta['val_tokens']:,} validation "
          f"tokens | {tokens_per_step:,} tokens per step")
    print(describe(device, precision, threads, t.compile, t.gradient_checkpointing))
    trainer.fit()

    if trainer.stop_reason:
        print(f"Stopped at step {trainer.step} ({trainer.stop_reason}). "
              "Continue with: make resume")
        return 0
    m = trainer.last_metrics
    print(f"Done: {trainer.step} steps in {trainer.elapsed():.0f}s | val loss "
          f"{m.get('val_loss', float('nan')):.4f} | {m.get('val_bpb', float('nan')):.4f} "
          f"bits/byte | best val loss {trainer.best_val_loss:.4f}")
    print("Next: make generate   (or make eval, make chat)")
    return 0


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile, or the plain model with a one-line warning where compiling does not work.

    torch.compile is lazy: nothing is compiled before the first forward pass, so a missing
    compiler would only show up as a long traceback at step 1. So first compile a tiny function
    on the model's device, forward and backward, which needs the same toolchain (a C++ compiler
    for CPUs, Triton for GPUs). If that fails, say why in one line and train uncompiled. The model
    itself is compiled during the first training step, which is therefore slow.
    """
    device = next(model.parameters()).device
    try:
        probe = torch.compile(lambda x: torch.nn.functional.silu(x * 2.0))
        probe(torch.randn(8, 8, device=device))
    except Exception as error:  # compile support varies by platform, torch build and toolchain
        cause = getattr(error, "inner_exception", None) or error  # what the backend raised
        reason = (str(cause).strip().splitlines() or [""])[0][:150]
        print(f"Warning: training.compile is on, but torch.compile does not work here "
              f"({type(cause).__name__}: {reason}); training uncompiled", file=sys.stderr)
        return model
    return torch.compile(model)


if __name__ == "__main__":
    run_cli(main)
