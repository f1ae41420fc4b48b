"""One training run, from a checked config to checkpoints: what `make train` does under its lock.

training/train.py parses the command line, takes the project's write lock and calls `run`, which
checks the prepared data, makes sure no earlier run is overwritten, builds the Trainer
(training/trainer.py), resumes it if asked, and trains.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path

import numpy as np

from config import Config, ModelConfig
from data.splits import check_enough_tokens, load_split, read_meta
from errors import TrainingError
from runtime import checkpoints
from runtime.device import describe, pick_device, pick_precision, set_threads
from tokenizer.load import keep_copy
from training.callbacks.base import Callback
from training.callbacks.checkpoint import CheckpointCallback
from training.callbacks.logging import LoggingCallback
from training.trainer import Trainer, build_trainer

# Keys that change the shape of the weights: a checkpoint must agree on all of them to resume.
ARCHITECTURE_KEYS = ("architecture", "layers", "heads", "kv_heads", "dim", "mlp_dim",
                     "vocab_size", "tie_embeddings", "relative_attention_buckets")


def new_archive(folder: Path, suffix: str = "") -> Path:
    """A new, empty checkpoints/previous/<date-time><suffix>/ folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + suffix
    archive, n = folder / "previous" / stamp, 1
    while archive.exists():  # two archives in one second
        n += 1
        archive = folder / "previous" / f"{stamp}-{n}"
    archive.mkdir(parents=True)
    return archive


def archive_previous_run(cfg: Config) -> Path:
    """Move the previous run's checkpoints and metrics aside (never delete a user's work)."""
    archive = new_archive(Path(cfg.checkpoints.dir))
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
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    for key in ARCHITECTURE_KEYS:
        # A key a checkpoint predates had its default value then (e.g. t5's buckets).
        if saved.get(key, defaults[key]) != model_config[key]:
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
    set_aside_later_work(folder, Path(trainer.cfg.logging.dir), trainer.step)
    trainer.best_val_loss = min(trainer.best_val_loss, best_on_disk(folder))


def set_aside_later_work(folder: Path, logs: Path, step: int) -> Path | None:
    """Resuming from an older checkpoint starts a branch of the run. Move the step checkpoints
    the run made after `step`, and a copy of metrics.jsonl, to checkpoints/previous/, so the
    branch can never overwrite them (best.pt stays: see best_on_disk). None when nothing is
    later."""
    later = [path for saved, path in checkpoints.list_step_checkpoints(folder) if saved > step]
    if not later:
        return None
    archive = new_archive(folder, f"-after-step-{step}")
    for path in later:
        for part in (path, checkpoints.sidecar_path(path)):
            if part.exists():
                shutil.move(str(part), archive / part.name)
    metrics = logs / "metrics.jsonl"
    if metrics.exists():
        shutil.copy2(metrics, archive / "metrics.jsonl")  # the working copy is cut at `step`
    print(f"This run had gone on past step {step}: moved {', '.join(p.name for p in later)} "
          f"and a copy of {metrics} to {archive}/ (nothing is deleted)")
    return archive


def best_on_disk(folder: Path) -> float:
    """The validation loss of checkpoints/best.pt (inf if none): a resumed run replaces best.pt
    only with a better model, even when it branches from an older step than best.pt's."""
    info = checkpoints.read_sidecar(folder / "best.pt") if (folder / "best.pt").exists() else None
    loss = (info or {}).get("val_loss")
    return loss if isinstance(loss, (int, float)) else math.inf


def print_summary(trainer: Trainer, meta: dict, threads: int) -> None:
    """What is about to be trained, on what, how."""
    t, m = trainer.cfg.training, trainer.model.config
    tokens_per_step = t.batch_size * t.gradient_accumulation * trainer.objective.tokens_per_row
    print(f"model: {m.architecture} '{m.preset}' with {trainer.model.num_parameters() / 1e6:.2f}M "
          f"parameters | context {m.max_length} | vocabulary {m.vocab_size} | objective "
          f"{trainer.objective.name}")
    print(f"data: {meta['train_tokens']:,} training tokens, {meta['val_tokens']:,} validation "
          f"tokens | {tokens_per_step:,} tokens per step")
    print(describe(trainer.device, trainer.precision, threads, t.compile,
                   t.gradient_checkpointing))


def run(cfg: Config, resume: str | None, fresh: bool,
        extra_callbacks: list[Callback] | None = None) -> int:
    """Train as configured; `resume` is None, 'auto' or a checkpoint path."""
    t = cfg.training
    threads = set_threads(t.threads)
    device = pick_device(t.device)
    precision = pick_precision(t.precision, device, cfg.model.dim)
    meta, model_config, train_tokens, val_tokens = load_data(cfg)
    callbacks = [
        LoggingCallback(cfg.logging.dir, cfg.logging.progress_bar, cfg.logging.tensorboard),
        CheckpointCallback(cfg.checkpoints.dir, cfg.checkpoints.save_interval,
                           cfg.checkpoints.save_total_limit, cfg.checkpoints.keep_best),
        *(extra_callbacks or []),
    ]
    # The trainer first: whatever it refuses (a tokenizer without the objective's special
    # tokens, ...) is refused before a previous run is moved aside.
    trainer = build_trainer(cfg, model_config, train_tokens, val_tokens, meta, device,
                            precision, callbacks, meta["tokenizer_hash"])
    folder = prepare_checkpoint_folder(cfg, resume is not None, fresh)
    if resume is not None:
        resume_from(trainer, resume, folder)
        if trainer.step >= t.max_steps:
            print(f"Already trained for {trainer.step} steps (training.max_steps = "
                  f"{t.max_steps}). To train longer: make resume ARGS=\"--training.max_steps "
                  f"{t.max_steps * 2}\"")
            return 0

    keep_copy(cfg.tokenizer.path, folder)  # the exact tokenizer, next to the checkpoints
    print_summary(trainer, meta, threads)
    trainer.fit()
    if trainer.stop_error is not None:  # the model was saved first
        raise trainer.stop_error
    if trainer.stop_reason:
        print(f"Stopped at step {trainer.step} ({trainer.stop_reason}). "
              "Continue with: make resume")
        return 0
    m = trainer.last_metrics
    extra = "".join(f" | {m[key]:.4f} bits/byte" if key == "val_bpb" else
                    f" | {key.removeprefix('val_').replace('_', ' ')} {100 * m[key]:.1f}%"
                    for key in ("val_bpb", "val_mlm_accuracy", "val_span_match") if key in m)
    print(f"Done: {trainer.step} steps in {trainer.elapsed():.0f}s | val loss "
          f"{m.get('val_loss', float('nan')):.4f}{extra} | best val loss "
          f"{trainer.best_val_loss:.4f}")
    print("Next: make generate   (or make eval" +
          (", make chat)" if trainer.model.config.architecture != "bert" else ")"))
    return 0
