"""The training loop. One class, read top to bottom: a step, an evaluation, a checkpoint.

Everything else (progress bars, metric files, checkpoint timing) is a callback, so this loop stays
short. The trainer also owns the full training state (model, optimizer, step, RNGs, data
position), which is what a checkpoint holds: a resumed run continues bit for bit.

With several processes (`make train NPROC=N`) every process runs this same loop on its share of
each batch (training/parallelize.py sets the model up for DDP or FSDP); they agree on when to
stop, and the logged loss is their mean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from config import Config, ModelConfig, TrainingConfig
from data.dataset import TrainBatches
from errors import TrainingError
from models.build import build_model as new_model
from runtime import sharded_checkpoints
from runtime.device import autocast
from runtime.distributed import ONE_PROCESS, World
from runtime.objectives import Objective, objective_for
from training.callbacks.base import Callback
from training.optimizer import build_optimizer, lr_at
from training.parallelize import no_gradient_sync, parallelize, root_weights_gathered

OOM_SUGGESTION = (
    "lower training.batch_size (and raise training.gradient_accumulation to keep the same "
    "tokens per step), lower model.max_length, set training.gradient_checkpointing: true, "
    "or pick a smaller preset"
)
DIVERGED_SUGGESTION = (
    "the learning rate is probably too high (lower training.learning_rate by 3-10x, or raise "
    "warmup_steps), or fp16 overflowed (use training.precision 'bf16' or 'fp32'); the last good "
    "checkpoint is kept: `make resume ARGS=\"--training.learning_rate ...\"` continues from it"
)


def no_timer(phase: str) -> AbstractContextManager:
    """The default `timer` of a Trainer: times nothing (bench.py passes a real one)."""
    return contextlib.nullcontext()


class Trainer:
    def __init__(self, cfg: Config, model: torch.nn.Module, objective: Objective,
                 batches: TrainBatches, val_tokens: np.ndarray, meta: dict[str, Any],
                 device: torch.device, precision: str, callbacks: list[Callback],
                 tokenizer_hash: str,
                 timer: Callable[[str], AbstractContextManager] = no_timer,
                 forward_model: torch.nn.Module | None = None, world: World = ONE_PROCESS,
                 parallelism: str = "none", extra_state: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.objective = objective  # what the model learns; how it is scored (evaluate)
        self.model = model  # the plain module: its state_dict is what checkpoints hold
        # What computes (parallelize() made it): the same module, its torch.compile wrapper or
        # DDP's wrapper, all on the same weights. Evaluation needs no gradient averaging.
        self.forward_model = forward_model or model
        self.eval_model = getattr(self.forward_model, "module", self.forward_model) \
            if parallelism == "ddp" else self.forward_model
        self.world = world  # this process among those of the run (one: rank 0 of 1)
        self.parallelism = parallelism  # 'none', 'ddp' or 'fsdp'
        self.timer = timer  # `with self.timer("forward"):` marks the phases of a step
        self.batches = batches
        self.val_tokens = val_tokens
        self.meta = meta
        self.device = device
        self.precision = precision
        self.callbacks = callbacks
        self.tokenizer_hash = tokenizer_hash
        # What a stage adds to every checkpoint (finetune: its base model and chat template).
        self.extra_state = dict(extra_state or {})
        self.optimizer = build_optimizer(model, cfg.training)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.step = 0
        self.start_step = 0
        self.tokens_seen = 0
        self.best_val_loss = math.inf
        self.last_metrics: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stop_error: Exception | None = None  # why a callback stopped the run (see stop())
        self.pending_records: list[dict[str, Any]] | None = None  # see log()
        # With several processes a stop is first requested here, and becomes stop_reason on all
        # processes together at the top of the next step (see _agree_on_stop).
        self.stop_request: str | None = None
        self.start_time = time.perf_counter()

    # ---- state (what a checkpoint holds) ----

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly here: tensors and plain Python values only.

        Weights that are no longer finite are refused (TrainingError): the loss is only read at
        log steps, so a step's update may have diverged unseen, and a checkpoint of NaN weights
        must never replace (or rotate away) a good one.
        """
        self.check_finite_weights()
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                **self.training_state()}

    def training_state(self) -> dict[str, Any]:
        """The checkpoint without the model and optimizer tensors (a sharded checkpoint holds
        those in its shards)."""
        np_state = np.random.get_state()
        t = self.cfg.training
        return {
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "best_val_loss": self.best_val_loss,
            "metrics": dict(self.last_metrics),
            "data": self.batches.state_dict(),
            "rng": {
                "python": random.getstate(),
                # numpy's state holds an ndarray, which weights_only loading refuses: store a list
                "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "config": self.cfg.to_dict(),
            "model_config": dataclasses.asdict(self.model.config),
            "tokenizer_hash": self.tokenizer_hash,
            # Informational: resuming with another number of processes changes the global batch.
            "processes": self.world.size,
            "global_batch": t.batch_size * t.gradient_accumulation * self.world.size,
            **self.extra_state,
        }

    def checkpoint_info(self) -> dict[str, Any]:
        """The small summary written next to each checkpoint (its .json sidecar)."""
        return {"step": self.step, "tokens_seen": self.tokens_seen,
                "val_loss": self.last_metrics.get("val_loss"),
                "val_bpb": self.last_metrics.get("val_bpb"),
                "preset": self.model.config.preset, "tokenizer_hash": self.tokenizer_hash}

    def load_state(self, state: dict[str, Any], path: str | None = None) -> None:
        """Restore a checkpoint_state() dict (see run.py for the compatibility checks).

        A sharded checkpoint's dict has no "model": its tensors are read from its folder `path`.
        """
        saved = state.get("config", {}).get("training", {}).get("optimizer", "adamw")
        if saved != self.cfg.training.optimizer:  # another optimizer has other moments
            raise TrainingError(
                f"cannot resume from {path or 'this checkpoint'}: it was trained with "
                f"training.optimizer '{saved}', the current config has "
                f"'{self.cfg.training.optimizer}'",
                f"set training.optimizer: '{saved}' in llm.config.js to resume, or start a new "
                "run with `make train ARGS=--fresh`")
        if "model" not in state:  # sharded: each process reads its part, FSDP or not
            sharded_checkpoints.load_sharded(Path(path or ""), self.model, self.optimizer,
                                             state["optimizer_param_groups"])
        elif self.parallelism == "fsdp":  # one file, cut into this process's shards
            sharded_checkpoints.load_full(self.model, self.optimizer, state["model"],
                                          state["optimizer"])
        else:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state.get("scaler", {}))
        self.step = self.start_step = state["step"]
        self.tokens_seen = state["tokens_seen"]
        self.best_val_loss = state.get("best_val_loss", math.inf)
        self.last_metrics = dict(state.get("metrics", {}))
        self.batches.load_state_dict(state["data"])
        rng = state["rng"]
        random.setstate(_as_tuple(rng["python"]))
        np.random.set_state((rng["numpy"][0], np.array(rng["numpy"][1], dtype=np.uint32),
                             *rng["numpy"][2:]))
        torch.set_rng_state(rng["torch"].cpu())
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])

    def stop(self, reason: str, error: Exception | None = None) -> None:
        """Finish the current step, save (the callbacks' on_train_end) and stop; `error` is
        raised by train.py after that (e.g. a logging disk that filled up)."""
        self.request_stop(reason)
        self.stop_error = error

    def request_stop(self, reason: str) -> None:
        """Stop after this step. With several processes, after the step at which all of them
        have heard of it (any process may ask: all stop at the same step, and all save it)."""
        if self.world.distributed:
            self.stop_request = self.stop_request or reason
        else:
            self.stop_reason = reason

    def _agree_on_stop(self) -> bool:
        """True when the run stops now. Several processes: one tiny all-reduce per step, at the
        same point of every process's loop, so that all leave the loop after the same step."""
        if self.world.distributed and self.stop_reason is None and self.world.any(
                self.stop_request is not None, self.device):
            self.stop_reason = self.stop_request or "stopped by another process"
        return self.stop_reason is not None

    def log(self, record: dict[str, Any]) -> None:
        """Hand one record (a line of logs/metrics.jsonl) to every callback's on_log.

        Records logged while the callbacks are starting (in their on_train_begin) wait until all
        of them have started, so none misses a record for having started later than another.
        """
        if self.pending_records is not None:
            self.pending_records.append(record)
            return
        for cb in self.callbacks:
            cb.on_log(self, record)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    # ---- one optimizer step ----

    def train_step(self, lr: float) -> torch.Tensor:
        """Forward/backward over gradient_accumulation micro-batches, then one update.

        Returns the mean loss as a tensor on the device: reading it (.item()) would wait for the
        device, so the loop only does that at log intervals.
        """
        t = self.cfg.training
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=self.device)
        for micro in range(t.gradient_accumulation):
            with self.timer("data"):
                batch = self.batches.next_batch()  # the model's keyword arguments
                if self.device.type == "cuda":  # overlap the copy with compute
                    batch = {name: tensor.pin_memory().to(self.device, non_blocking=True)
                             for name, tensor in batch.items()}
                else:
                    batch = {name: tensor.to(self.device) for name, tensor in batch.items()}
            # Several processes average gradients once per step, after the last micro-batch.
            last = micro == t.gradient_accumulation - 1
            with contextlib.nullcontext() if last else no_gradient_sync(self.forward_model):
                with self.timer("forward"), autocast(self.device, self.precision):
                    _, loss = self.forward_model(**batch)
                with self.timer("backward"):
                    loss = loss / t.gradient_accumulation
                    self.scaler.scale(loss).backward()
            total += loss.detach()
        with self.timer("optimizer"):  # gradient clipping included
            if t.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        return total

    # ---- evaluation ----

    def evaluate(self) -> dict[str, Any]:
        """The objective's validation metrics (val_loss first) on the same data every time."""
        t = self.cfg.training
        size = (self.meta["val_tokens"], self.meta["val_bytes"]) if "val_bytes" in self.meta \
            else None  # the text's size, for bits per byte
        with self._out_of_memory_as_error(f"the evaluation of step {self.step}"):
            # Every process scores the same data (FSDP needs all of them in each forward pass
            # anyway): eval_batches batches of the global batch size, run batch_size at a time.
            with root_weights_gathered(self.eval_model):
                result = self.objective.evaluate(
                    self.eval_model, self.val_tokens, t.batch_size * self.world.size,
                    t.eval_batches, self.device,
                    autocast_ctx=lambda: autocast(self.device, self.precision), text_size=size,
                    forward_batch_size=t.batch_size)
        loss = result["val_loss"]
        if not math.isfinite(loss):
            raise TrainingError(
                f"validation loss is {loss} at step {self.step}: the model has diverged",
                "lower training.learning_rate (e.g. by 3x) or use training.precision 'fp32'; "
                "resume from the last good checkpoint with `make resume`",
            )
        is_best = loss < self.best_val_loss
        self.best_val_loss = min(self.best_val_loss, loss)
        metrics = {name: value for name, value in result.items() if name.startswith("val_")}
        return {**metrics, "is_best": is_best}

    # ---- the loop ----

    def fit(self) -> None:
        t = self.cfg.training
        tokens_per_step = (t.batch_size * t.gradient_accumulation * self.world.size
                           * self.objective.tokens_per_row)  # over all processes
        self.start_time = time.perf_counter()
        self.model.train()
        self.pending_records = []
        for cb in self.callbacks:
            cb.on_train_begin(self)
        pending, self.pending_records = self.pending_records, None
        for record in pending:
            self.log(record)
        # Inside the signal handlers to the end of on_train_end: a second SIGTERM (torchrun's and
        # pkill's, or one per process) must not end the process in the middle of its last save.
        with _stop_on_signals(self):
            try:
                while self.step < t.max_steps and not self._agree_on_stop():
                    lr = lr_at(self.step, t)
                    loss = self._guarded_step(lr)
                    self.step += 1
                    self.tokens_seen += tokens_per_step
                    metrics: dict[str, Any] = {"lr": lr}
                    last = self.step == t.max_steps or self.stop_reason is not None
                    if (self.step % t.log_interval == 0 or last
                            or self.step % self.cfg.checkpoints.save_interval == 0):
                        # The mean over all processes (with one: the loss itself).
                        metrics["loss"] = self._check_finite(self.world.mean(loss).item())
                        self.last_metrics["train_loss"] = metrics["loss"]
                    if self.step % t.eval_interval == 0 or self.step == t.max_steps:
                        evaluation = self.evaluate()
                        self.last_metrics.update(
                            {k: v for k, v in evaluation.items() if k != "is_best"})
                        for cb in self.callbacks:
                            cb.on_evaluate(self, evaluation)
                    for cb in self.callbacks:
                        cb.on_step_end(self, metrics)
            finally:
                # Runs on normal ends and on Ctrl+C / SIGTERM, not after a TrainingError
                # (a diverged model must not overwrite the last good checkpoint).
                if sys.exc_info()[0] is None:
                    for cb in self.callbacks:
                        cb.on_train_end(self)

    def _guarded_step(self, lr: float) -> torch.Tensor:
        with self._out_of_memory_as_error(f"step {self.step + 1}"):
            return self.train_step(lr)

    @contextlib.contextmanager
    def _out_of_memory_as_error(self, where: str) -> Iterator[None]:
        """Out of memory (GPU: torch.OutOfMemoryError; CPU: a RuntimeError) -> the knobs to turn."""
        sizes = (f"batch_size {self.cfg.training.batch_size}, max_length "
                 f"{self.model.config.max_length}")
        try:
            yield
        except torch.OutOfMemoryError:
            raise TrainingError(f"out of GPU memory at {where} ({sizes})",
                                OOM_SUGGESTION) from None
        except RuntimeError as error:
            text = str(error)
            if "out of memory" in text or "can't allocate memory" in text:
                raise TrainingError(f"out of memory at {where} ({sizes}): "
                                    f"{text.splitlines()[0][:160]}", OOM_SUGGESTION) from None
            raise

    def _check_finite(self, loss: float) -> float:
        if not math.isfinite(loss):
            raise TrainingError(f"the training loss became {loss} at step {self.step}",
                                DIVERGED_SUGGESTION)
        return loss

    def check_finite_weights(self) -> None:
        """TrainingError if a weight is NaN or infinite (called before every save)."""
        # An FSDP parameter is a DTensor: check this process's shard, then ask the others.
        finite = torch.stack([(p.to_local() if hasattr(p, "to_local") else p).detach()
                              .isfinite().all() for p in self.model.parameters()]).all()
        ok = bool(finite)
        if self.parallelism == "fsdp":
            ok = self.world.all(ok, self.device)
        if not ok:
            raise TrainingError(f"the model's weights became NaN or infinite at step "
                                f"{self.step}; that state was not saved", DIVERGED_SUGGESTION)


class _stop_on_signals:
    """Ctrl+C / SIGTERM ask the loop to stop after the current step (and save).

    A second Ctrl+C stops at once. Only possible in the main thread (signals are delivered
    there), so elsewhere (e.g. tests running in threads) this does nothing.

    Under torchrun (`make train NPROC=...`), torchrun gets the Ctrl+C or SIGTERM and passes it on
    to every process; each asks for a stop, and all stop after the same step (the one at which
    they all know of it) and save it once. A signal sent to the processes themselves as well
    (e.g. `pkill -f training.train`) may arrive twice: a repeat within REPEAT_SECONDS counts once.
    torchrun kills processes that are not done within its shutdown timeout (30 s by default; the
    TORCH_ELASTIC_SHUTDOWN_TIMEOUT variable), then exits with a traceback of its own.
    """

    REPEAT_SECONDS = 2.0

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}
        self.first_signal = 0.0

    def _handle(self, signum: int, frame: Any) -> None:
        trainer, name = self.trainer, signal.Signals(signum).name
        if trainer.world.distributed and trainer.stop_request is None:
            self.first_signal = time.monotonic()
            if trainer.world.is_main:
                print(f"\n{name} received: every process finishes step {trainer.step + 1}, "
                      "then the run saves a checkpoint", file=sys.stderr, flush=True)
            trainer.request_stop(name)
            return
        if trainer.world.distributed:
            if signum == signal.SIGINT and \
                    time.monotonic() - self.first_signal > self.REPEAT_SECONDS:
                raise KeyboardInterrupt
            return
        if trainer.stop_reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.request_stop(name)
        print(f"\n{name} received: finishing step {trainer.step + 1} "
              "and saving a checkpoint (press Ctrl+C again to quit at once)",
              file=sys.stderr, flush=True)

    def __enter__(self) -> _stop_on_signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _as_tuple(value: Any) -> Any:
    """random.setstate wants tuples where a checkpoint round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---- set-up: from a config to a ready Trainer (train.py, bench.py and the tests use it) ----


def build_model(model_config: ModelConfig, cfg: TrainingConfig,
                device: torch.device) -> torch.nn.Module:
    """A freshly initialised model (seeded by training.seed: the same on every process) on
    `device`."""
    torch.manual_seed(cfg.seed)
    model = new_model(model_config)
    return model.to(device)


def build_trainer(cfg: Config, model_config: ModelConfig, train_tokens: np.ndarray,
                  val_tokens: np.ndarray, meta: dict[str, Any], device: torch.device,
                  precision: str, callbacks: list[Callback] | None = None,
                  tokenizer_hash: str = "",
                  timer: Callable[[str], AbstractContextManager] = no_timer,
                  world: World = ONE_PROCESS, parallelism: str = "none",
                  tokenizer: Tokenizer | None = None) -> Trainer:
    """The model, its objective, its batches and the Trainer, set up the way `make train` runs
    them.

    `meta` is data/processed/meta.json (token and byte counts, for bits per byte); `timer`
    marks the phases of each step (bench.py times them); `world` and `parallelism` say how
    this process shares the run with others (training/parallelize.py); `tokenizer` gives the
    objective its special tokens (default: cfg.tokenizer.path).
    """
    t = cfg.training
    objective = objective_for(cfg, model_config, tokenizer)
    model = build_model(model_config, t, device)
    batches = TrainBatches(train_tokens, t.batch_size, objective.window, t.seed,
                           objective.make_batch, rank=world.rank, world_size=world.size)
    return assemble_trainer(cfg, model, objective, batches, val_tokens, meta, device, precision,
                            callbacks, tokenizer_hash, timer, world, parallelism)


def assemble_trainer(cfg: Config, model: torch.nn.Module, objective: Objective,
                     batches: Any, val_data: Any, meta: dict[str, Any], device: torch.device,
                     precision: str, callbacks: list[Callback] | None = None,
                     tokenizer_hash: str = "",
                     timer: Callable[[str], AbstractContextManager] = no_timer,
                     world: World = ONE_PROCESS, parallelism: str = "none",
                     extra_state: dict[str, Any] | None = None) -> Trainer:
    """A Trainer for a model that exists (fresh, or loaded for a later stage such as
    training/finetune.py), with any batches that have next_batch/state_dict/load_state_dict."""
    # Before the optimizer is built: FSDP replaces the parameters by their shards.
    forward_model = parallelize(model, cfg.training, parallelism, world, device, precision)
    return Trainer(cfg, model, objective, batches, val_data, meta, device, precision,
                   callbacks or [], tokenizer_hash, timer, forward_model, world, parallelism,
                   extra_state)
