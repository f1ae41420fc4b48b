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

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from config import Config, ModelConfig, add_config_arguments, config_from_args
from data.splits import check_enough_tokens, load_split, read_meta
from errors import TrainingError, run_cli
from runtime import checkpoints
from runtime.device import describe, pick_device, pick_precision, set_threads
from training.callbacks.base import Callback
from training.callbacks.checkpoint import CheckpointCallback
from training.callbacks.logging import LoggingCallback
from training.trainer import Trainer, build_trainer

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


def load_data(cfg: Config) -> tuple[dict, ModelConfig, np.memmap, np.memmap]:
    """meta.json, the model config with the trained tokenizer's vocabulary, and both splits,
    checked for the tokenizer and for enough tokens."""
    meta = read_meta(cfg.data.processed_dir, cfg.tokenizer.path)
    model_config = dataclasses.replace(cfg.model, vocab_size=meta["vocab_size"])
    if meta["vocab_size"] != cfg.tokenizer.vocab_size:
        print(f"vocabulary: {meta['vocab_size']} tokens, from the trained tokenizer "
              f"(tokenizer.vocab_size in llm.config.js asks for {cfg.tokenizer.vocab_size}; "
              "the tokenizer wins)")
    train_tokens = load_split(cfg.data.processed_dir, "train")
    val_tokens = load_split(cfg.data.processed_dir, "val")
    bytes_per_token = meta["train_bytes"] / max(1, meta["train_tokens"])
    check_enough_tokens(len(train_tokens), cfg.training.batch_size, model_config.max_length,
                        "train", bytes_per_token)
    check_enough_tokens(len(val_tokens), 1, model_config.max_length, "val", bytes_per_token)
    return meta, model_config, train_tokens, val_tokens


def prepare_checkpoint_folder(cfg: Config, resume: bool, fresh: bool) -> Path:
    """Never overwrite a previous run by accident; clear what an interrupted save left."""
    folder = Path(cfg.checkpoints.dir)
    has_run = bool(checkpoints.list_step_checkpoints(folder)) or (folder / "best.pt").exists()
    if has_run and not resume:
        if not fresh:
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
    return folder


def resume_from(trainer: Trainer, which: str, folder: Path) -> None:
    """Load the checkpoint `which` ('auto' = the newest good one) into the trainer."""
    path = checkpoints.find_checkpoint(which, folder, prefer="latest")
    state = checkpoints.load_checkpoint(path, map_location=trainer.device)
    check_resumable(state, dataclasses.asdict(trainer.model.config), trainer.tokenizer_hash,
                    path)
    trainer.load_state(state)
    print(f"Resuming from {path} (step {trainer.step})")


def print_summary(trainer: Trainer, meta: dict, threads: int) -> None:
    """What is about to be trained, on what, how."""
    t, m = trainer.cfg.training, trainer.model.config
    tokens_per_step = t.batch_size * t.gradient_accumulation * m.max_length
    print(f"model: {m.architecture} '{m.preset}' with {trainer.model.num_parameters() / 1e6:.2f}M "
          f"parameters | context {m.max_length} | vocabulary {m.vocab_size}")
    print(f"data: {meta['train_tokens']:,} training tokens, {meta['val_tokens']:,} validation "
          f"tokens | {tokens_per_step:,} tokens per step")
    print(describe(trainer.device, trainer.precision, threads, t.compile,
                   t.gradient_checkpointing))


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
    meta, model_config, train_tokens, val_tokens = load_data(cfg)
    folder = prepare_checkpoint_folder(cfg, bool(args.resume), args.fresh)
    callbacks = [
        LoggingCallback(cfg.logging.dir, cfg.logging.progress_bar, cfg.logging.tensorboard),
        CheckpointCallback(cfg.checkpoints.dir, cfg.checkpoints.save_interval,
                           cfg.checkpoints.save_total_limit, cfg.checkpoints.keep_best),
        *(extra_callbacks or []),
    ]
    trainer = build_trainer(cfg, model_config, train_tokens, val_tokens, meta, device,
                            precision, callbacks, meta["tokenizer_hash"])
    if args.resume:
        resume_from(trainer, args.resume, folder)
        if trainer.step >= t.max_steps:
            print(f"Already trained for {trainer.step} steps (training.max_steps = "
                  f"{t.max_steps}). To train longer: make resume ARGS=\"--training.max_steps "
                  f"{t.max_steps * 2}\"")
            return 0

    print_summary(trainer, meta, threads)
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


if __name__ == "__main__":
    run_cli(main)
