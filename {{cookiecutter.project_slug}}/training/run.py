"""One training run, from a checked config to checkpoints: what `make train` does under its lock.

training/train.py parses the command line, takes the project's write lock, loads the plugins and
calls `run`, which reads top to bottom: device -> data -> memory plan (one process, DDP or FSDP)
-> callbacks -> the Trainer (training/trainer.py) -> the checkpoints folder
(runtime/checkpoint_folder.py: never overwrite a run, resume from which file) -> fit.

Under torchrun (`make train NPROC=N`) every process runs `run`. They share the work of each step;
rank 0 alone reports (progress, metrics, messages on stdout) and does what must happen once
(moving files, single-file checkpoints), while the others wait for it at a barrier.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from config import Config, ModelConfig
from data.splits import check_enough_tokens, load_split, read_meta
from errors import TrainingError
from models.memory import MemoryEstimate, gigabytes, training_memory
from models.presets import count_parameters
from runtime import checkpoints, distributed, sharded_checkpoints
from runtime.checkpoint_folder import CheckpointFolder
from runtime.device import describe, device_memory, pick_device, pick_precision, set_threads
from runtime.distributed import World
from tokenizer.load import keep_copy
from tokenizer.train import training_record_path
from training.callbacks.base import Callback
from training.callbacks.checkpoint import CheckpointCallback
from training.callbacks.logging import LoggingCallback
from training.callbacks.progress import ProgressCallback
from training.callbacks.samples import SampleCallback
from training.parallelize import choose_parallelism
from training.trainer import Trainer, build_trainer

# Keys that change the shape of the weights: a checkpoint must agree on all of them to resume.
ARCHITECTURE_KEYS = ("architecture", "layers", "heads", "kv_heads", "dim", "mlp_dim",
                     "vocab_size", "tie_embeddings", "relative_attention_buckets", "qkv_bias",
                     "rope_scaling", "rope_scaling_factor", "rope_low_freq_factor",
                     "rope_high_freq_factor", "rope_original_max_length", "variant")


def check_resumable(state: dict, model_config: dict, tok_hash: str, path: Path,
                    training_state: bool = True) -> None:
    """Refuse a checkpoint from another architecture or tokenizer, saying which key differs,
    and (training_state) one without a training state to continue (what Trainer.load_state
    reads)."""
    missing = [key for key in ("tokens_seen", "data", "rng") if key not in state]
    if "optimizer" not in state and "optimizer_param_groups" not in state:
        missing.insert(0, "optimizer")
    if not training_state:
        missing = []
    if missing:
        raise TrainingError(
            f"cannot resume from {path}: it holds a model but no training state to continue "
            f"({', '.join(missing)} missing)",
            "resume from a checkpoint `make train` saved (`make resume` picks the newest), or "
            "start a new run with `make train ARGS=--fresh`")
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


class TrainingData(NamedTuple):
    meta: dict
    """data/processed/meta.json: token and byte counts, the tokenizer's hash."""
    model_config: ModelConfig
    """cfg.model with the trained tokenizer's vocabulary."""
    train: np.memmap
    val: np.memmap


def load_data(cfg: Config, processes: int = 1) -> TrainingData:
    """meta.json, the model config with the trained tokenizer's vocabulary, and both splits,
    checked for the tokenizer and for enough tokens (a global batch of `processes` shares)."""
    meta = read_meta(cfg.data.processed_dir, cfg.tokenizer.path)
    # The embedding has a row per token, or more where an imported model padded it.
    rows = max(meta["vocab_size"], embedding_rows(cfg.tokenizer.path))
    model_config = dataclasses.replace(cfg.model, vocab_size=rows)
    if meta["vocab_size"] != cfg.tokenizer.vocab_size:
        print(f"vocabulary: {meta['vocab_size']} tokens, from the trained tokenizer "
              f"(tokenizer.vocab_size in llm.config.js asks for {cfg.tokenizer.vocab_size}; "
              "the tokenizer wins)")
    train_tokens = load_split(cfg.data.processed_dir, "train")
    val_tokens = load_split(cfg.data.processed_dir, "val")
    bytes_per_token = meta["train_bytes"] / max(1, meta["train_tokens"])
    check_enough_tokens(len(train_tokens), cfg.training.batch_size * processes,
                        model_config.max_length, "train", bytes_per_token)
    check_enough_tokens(len(val_tokens), 1, model_config.max_length, "val", bytes_per_token)
    return TrainingData(meta, model_config, train_tokens, val_tokens)


def embedding_rows(tokenizer_path: str | Path) -> int:
    """The embedding rows an imported model came with (tokenizer/tokenizer.training.json), else
    0."""
    try:
        record = json.loads(training_record_path(tokenizer_path).read_text())
        return int(record.get("embedding_rows", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def start_from_weights(trainer: Trainer, path: Path) -> None:
    """Begin a new run from the weights of `path` (an imported model's step 0): a fresh
    optimizer and schedule, step 0, the model's own weights instead of random ones."""
    state = checkpoints.load_checkpoint(path, map_location="cpu")
    check_resumable(state, dataclasses.asdict(trainer.model.config), trainer.tokenizer_hash,
                    path, training_state=False)
    if trainer.parallelism == "fsdp":  # each process keeps its shards of the whole tensors
        sharded_checkpoints.load_full_weights(trainer.model, state["model"])
    else:
        trainer.model.load_state_dict(state["model"])
    source = state.get("imported_from")
    if source:  # carried on in every checkpoint of the run (the model card names it)
        trainer.extra_state["imported_from"] = source
    print(f"Starting from the weights of {path}" + (f" (imported from {source})" if source else "")
          + ": a fresh optimizer, from step 0")


def resume_trainer(trainer: Trainer, folder: CheckpointFolder, which: str) -> bool:
    """Load the checkpoint `which` ('auto' = the newest good one) into the trainer, after
    checking that it fits this model and tokenizer. False when it has nothing left to train."""
    path = folder.resume_point(which)
    fsdp = trainer.parallelism == "fsdp"  # each process keeps a slice: read the file lazily
    state = checkpoints.load_checkpoint(path, map_location="cpu" if fsdp else trainer.device,
                                        weights=False, mmap=fsdp)
    if state.get("imported_from") and "optimizer" not in state:  # `make import`'s step 0
        start_from_weights(trainer, path)
        return True
    check_resumable(state, dataclasses.asdict(trainer.model.config), trainer.tokenizer_hash,
                    path)
    trainer.load_state(state, str(path))
    if state.get("imported_from"):
        trainer.extra_state["imported_from"] = state["imported_from"]
    print(f"Resuming from {path} (step {trainer.step})")
    note_other_world_size(state, trainer)
    folder.set_aside_later(trainer.step)
    trainer.best_val_loss = min(trainer.best_val_loss, folder.best_val_loss())
    t = trainer.cfg.training
    if trainer.step >= t.max_steps:
        print(f"Already trained for {trainer.step} steps (training.max_steps = {t.max_steps}). "
              f"To train longer: make resume ARGS=\"--training.max_steps {t.max_steps * 2}\"")
        return False
    return True


def note_other_world_size(state: dict, trainer: Trainer) -> None:
    """Say so when a run resumes with another number of processes: the weights, optimizer and
    data position carry over exactly, but the global batch follows the new number."""
    saved, now = state.get("processes", 1), trainer.world.size
    if saved == now:
        return
    t = trainer.cfg.training
    batch, was = t.batch_size * t.gradient_accumulation * now, state.get("global_batch")
    print(f"This checkpoint was trained by {saved} process(es), this run has {now}: a step is "
          f"now {batch} sequences (it was {was}).")
    per_process = t.gradient_accumulation * now
    if isinstance(was, int) and was != batch and was % per_process == 0:
        print(f"  For the same batches as before: --training.batch_size {was // per_process}")


def print_summary(trainer: Trainer, meta: dict, threads: int) -> None:
    """What is about to be trained, on what, how."""
    t, m, world = trainer.cfg.training, trainer.model.config, trainer.world
    sequences = t.batch_size * t.gradient_accumulation * world.size
    print(f"model: {m.architecture} '{m.preset}' with {count_parameters(m) / 1e6:.2f}M "
          f"parameters | context {m.max_length} | vocabulary {m.vocab_size} | objective "
          f"{trainer.objective.name}")
    print(f"data: {meta['train_tokens']:,} training tokens, {meta['val_tokens']:,} validation "
          f"tokens | {sequences * trainer.objective.tokens_per_row:,} tokens per step")
    if world.distributed:
        print(f"processes: {world.size} ({trainer.parallelism.upper()}) | global batch "
              f"{sequences} sequences = batch_size {t.batch_size} x gradient_accumulation "
              f"{t.gradient_accumulation} x {world.size} processes")
    print(describe(trainer.device, trainer.precision, threads, t.compile,
                   t.gradient_checkpointing))


def plan_parallelism(cfg: Config, model_config: ModelConfig, precision: str, world: World,
                     device: torch.device) -> str:
    """'none', 'ddp' or 'fsdp' (training.parallelism, 'auto' decided by the memory estimate of
    models/memory.py); warns before training when the estimate exceeds the device's memory."""
    t = cfg.training
    params = count_parameters(model_config)

    def need(parallelism: str) -> MemoryEstimate:
        return training_memory(model_config, params, t.batch_size, precision, parallelism,
                               world.size, t.gradient_checkpointing)

    available = device_memory(device, world.local_size)
    parallelism = choose_parallelism(t.parallelism, world, precision, lambda p: need(p).total,
                                     available, t.optimizer)
    warning = memory_warning(need(parallelism), available, cfg, parallelism, world, device)
    if warning and world.is_main:
        print(warning, file=sys.stderr)
    return parallelism


def memory_warning(need: MemoryEstimate, available: int | None, cfg: Config,
                   parallelism: str, world: World, device: torch.device) -> str | None:
    """What to say before training when the estimate (models/memory.py) exceeds the memory of
    the device, naming the fixes; None when it fits (or the device's memory is unknown)."""
    if available is None or need.total <= available:
        return None
    t = cfg.training
    where = (f"this GPU has {gigabytes(available)} GB" if device.type == "cuda"
             else f"this process's share of the memory is {gigabytes(available)} GB")
    fixes = []
    if parallelism != "fsdp":
        fixes.append(f"several GPUs with FSDP, which splits the {gigabytes(need.state)} GB of "
                     "weights, gradients and optimizer state between them: `make train "
                     "NPROC=8` (training.parallelism 'auto' or 'fsdp')")
    else:
        fixes.append("more GPUs (`make train NPROC=...`, or several machines: NNODES=...)")
    if t.batch_size > 1:
        fixes.append(f"a smaller training.batch_size (now {t.batch_size}), with a larger "
                     "training.gradient_accumulation to keep the tokens per step")
    if not t.gradient_checkpointing:
        fixes.append("training.gradient_checkpointing: true (recomputes activations)")
    fixes.append("a smaller preset (`make summary` lists them, with their memory)")
    return (f"Warning: training this model needs about {gigabytes(need.total)} GB per device "
            f"(weights, gradients and AdamW state {gigabytes(need.state)} GB, activations of "
            f"{t.batch_size} x {cfg.model.max_length} tokens {gigabytes(need.activations)} GB; an "
            f"estimate), but {where}. It will probably run out of memory. To fit it:\n"
            + "\n".join(f"  - {fix}" for fix in fixes))


def build_callbacks(cfg: Config, plugins: list[Callback], extra: list[Callback],
                    world: World = distributed.ONE_PROCESS,
                    parallelism: str = "none") -> list[Callback]:
    """The callbacks of a run, in the order each event reaches them (training/callbacks/base.py).

    Checkpoints come first, so the final save is done before the run's "end" record; logging
    comes last, so metrics.jsonl is closed after every other callback's last record. The
    checkpoint callback (and yours, `extra`) run in every process: FSDP saves are collective, and
    DDP waits for rank 0's file. Reporting (progress, samples, `plugins`, the dashboard, logs)
    happens in rank 0 alone: those callbacks are made there and nowhere else (the entry point
    loads the plugins in rank 0 only).
    """
    checkpoint = CheckpointCallback(cfg.checkpoints.dir, cfg.checkpoints.save_interval,
                                    cfg.checkpoints.save_total_limit, cfg.checkpoints.keep_best)
    if not world.is_main:
        return [checkpoint, *extra]
    callbacks: list[Callback] = [checkpoint, ProgressCallback(cfg.logging.progress_bar)]
    if cfg.logging.sample_tokens > 0 and parallelism == "fsdp":
        # Generating runs the model, and under FSDP rank 0 alone cannot: each forward pass
        # gathers the weights from every process, which are busy training.
        print("(No sample generations under FSDP: logging.sample_tokens is ignored; "
              "`make generate` works on any checkpoint.)")
    elif cfg.logging.sample_tokens > 0:
        callbacks.append(SampleCallback(cfg))
    callbacks += plugins
    callbacks += extra
    if cfg.logging.dashboard:
        callbacks += dashboard_callback(cfg)
    callbacks.append(LoggingCallback(cfg.logging.dir, cfg.logging.tensorboard))
    return callbacks


def dashboard_callback(cfg: Config) -> list[Callback]:
    """[DashboardCallback], or [] with a warning when its packages are missing: the dashboard
    is never a reason for a run to fail."""
    try:
        from training.callbacks.dashboard import DashboardCallback
    except ImportError as error:
        print(f"Warning: logging.dashboard is on, but {error.name or 'flask-socketio'} is not "
              "installed (pip install -r requirements.txt); training goes on without it",
              file=sys.stderr)
        return []
    title = Path(cfg.path).resolve().parent.name
    return [DashboardCallback(cfg.logging.dashboard_host, cfg.logging.dashboard_port, title,
                              cfg.logging.dir)]


def run(cfg: Config, resume: str | None, fresh: bool, plugins: list[Callback] | None = None,
        extra_callbacks: list[Callback] | None = None) -> int:
    """Train as configured; `resume` is None, 'auto' or a checkpoint path. `plugins` (rank 0's,
    from the entry point) and `extra_callbacks` (yours) see every event of the run."""
    with processes(cfg) as (world, device, precision, threads):
        data = load_data(cfg, world.size)
        parallelism = plan_parallelism(cfg, data.model_config, precision, world, device)
        callbacks = build_callbacks(cfg, plugins or [], extra_callbacks or [], world,
                                    parallelism)
        # The trainer first: whatever it refuses (a tokenizer without the objective's special
        # tokens, ...) is refused before a previous run is moved aside.
        trainer = build_trainer(cfg, data.model_config, data.train, data.val, data.meta, device,
                                precision, callbacks, data.meta["tokenizer_hash"], world=world,
                                parallelism=parallelism)
        folder = CheckpointFolder(cfg.checkpoints.dir, cfg.logging.dir, world)
        fit(trainer, folder, resume, fresh, cfg.tokenizer.path,
            lambda: print_summary(trainer, data.meta, threads))
    return 0


@contextlib.contextmanager
def processes(cfg: Config) -> Iterator[tuple[World, torch.device, str, int]]:
    """(world, device, precision, threads) of this process of the run (one, or one of
    torchrun's), with the process group started for the block and finished after it."""
    world = distributed.world_from_env()
    if not world.is_main:
        # Rank 0 reports for all: the others' output would repeat it. Errors still show
        # (stderr; errors.py prints the first one of the run once).
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
    threads = set_threads(cfg.training.threads, world.local_size)
    device = distributed.device_for(world, pick_device(cfg.training.device))
    precision = pick_precision(cfg.training.precision, device, cfg.model.dim)
    distributed.start(world, device)
    with distributed.peers_lost_as_error(world):
        yield world, device, precision, threads
    distributed.finish()


def fit(trainer: Trainer, folder: CheckpointFolder, resume: str | None, fresh: bool,
        tokenizer_path: str | Path, summary: Callable[[], None]) -> None:
    """The checkpoints folder's rules (never overwrite a run; resume from which file), then
    train, then say how it ended. Every stage (make train, make finetune) ends here."""
    folder.prepare(resume=resume is not None, fresh=fresh)
    if resume is not None and not resume_trainer(trainer, folder, resume):
        return
    imported = folder.imported_start() if resume is None and not fresh else None
    if imported is not None:  # `make import` put a published model here: continue from it
        start_from_weights(trainer, imported)
    if trainer.world.is_main:
        keep_copy(tokenizer_path, folder.path)  # the exact tokenizer, beside the checkpoints
    summary()
    trainer.fit()
    report_end(trainer)


def report_end(trainer: Trainer) -> None:
    """How the run ended, and what to do next (an error that stopped it, after its save)."""
    if trainer.stop_error is not None:  # the model was saved first
        raise trainer.stop_error
    stage = trainer.extra_state.get("stage", "train")
    if trainer.stop_reason:
        print(f"Stopped at step {trainer.step} ({trainer.stop_reason}). Continue with: "
              + ("make resume" if stage == "train" else "make finetune ARGS=--resume"))
        return
    m = trainer.last_metrics
    extra = "".join(f" | {m[key]:.4f} bits/byte" if key == "val_bpb" else
                    f" | {key.removeprefix('val_').replace('_', ' ')} {100 * m[key]:.1f}%"
                    for key in ("val_bpb", "val_mlm_accuracy", "val_span_match",
                                "val_answer_accuracy") if key in m)
    print(f"Done: {trainer.step} steps in {trainer.elapsed():.0f}s | val loss "
          f"{m.get('val_loss', float('nan')):.4f}{extra} | best val loss "
          f"{trainer.best_val_loss:.4f}")
    architecture = trainer.model.config.architecture
    if stage == "finetune":
        print("Next: make chat   (or make eval ARGS=--chat)")
    elif architecture == "bert":
        print("Next: make generate   (or make eval)")
    else:
        print("Next: make finetune (teach it to answer), make chat, make generate or make eval")
