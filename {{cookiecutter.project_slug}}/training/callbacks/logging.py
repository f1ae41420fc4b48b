"""Logging: a progress bar (or plain lines when not on a terminal), logs/metrics.jsonl, TensorBoard.

metrics.jsonl holds one JSON object per line: training lines {"step", "loss", "lr", "tokens",
"tokens_per_sec", "elapsed"} and evaluation lines {"step", "val_loss", ...}: whatever the
objective measures (gpt: val_ppl, val_bpb; bert: val_ppl, val_mlm_accuracy; t5: val_ppl,
val_span_match).
On resume, lines after the resumed step are dropped, so the curve continues without a seam.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from errors import ConfigurationError, TrainingError
from training.callbacks.base import Callback


def truncate_metrics(path: Path, after_step: int) -> None:
    """Drop metric lines of steps after `after_step` (they belong to work that was not saved)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= after_step:
                kept.append(line)
        except ValueError:
            continue  # a line cut short by a crash
    path.write_text("".join(f"{line}\n" for line in kept))


class LoggingCallback(Callback):
    def __init__(self, folder: str, progress_bar: bool = True, tensorboard: bool = False) -> None:
        self.folder = Path(folder)
        self.use_bar = progress_bar and sys.stderr.isatty()
        self.use_tensorboard = tensorboard
        self.bar: tqdm | None = None
        self.writer = None
        self.file = None
        self.failed = False  # a write failed: log nothing more (the run is stopping)
        self.last_time = 0.0
        self.last_tokens = 0

    def on_train_begin(self, trainer: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "metrics.jsonl"
        if trainer.step > 0:
            truncate_metrics(path, trainer.step)
        elif path.exists():
            path.unlink()  # a fresh run (train.py archived the old logs first)
        self.file = open(path, "a", encoding="utf-8")
        if self.use_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigurationError(
                    "logging.tensorboard is true but the tensorboard package is not installed",
                    "pip install tensorboard (or set logging.tensorboard: false)",
                ) from None
            self.writer = SummaryWriter(str(self.folder / "tensorboard"), purge_step=trainer.step)
        total = trainer.cfg.training.max_steps
        if self.use_bar:
            self.bar = tqdm(total=total, initial=trainer.step, unit="step", dynamic_ncols=True,
                            desc="training")
        self.last_time = time.perf_counter()
        self.last_tokens = trainer.tokens_seen

    def _write(self, trainer: Any, record: dict[str, Any]) -> None:
        """Append a line to metrics.jsonl. If that fails (a full disk), stop the run after this
        step: the checkpoint callback saves the model first, then train.py reports the error."""
        assert self.file is not None
        if self.failed:
            return
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as error:
            self.failed = True
            path = self.folder / "metrics.jsonl"
            trainer.stop("could not write the logs", TrainingError(
                f"could not write {path}: {error.strerror or error}; training stopped at step "
                f"{trainer.step} after saving a checkpoint",
                f"free some disk space where {self.folder}/ is (logging.dir), then `make resume` "
                "continues from that checkpoint"))

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if "loss" not in metrics:
            return
        now = time.perf_counter()
        tokens_per_sec = (trainer.tokens_seen - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_tokens = now, trainer.tokens_seen
        record = {"step": trainer.step, "loss": round(metrics["loss"], 6), "lr": metrics["lr"],
                  "tokens": trainer.tokens_seen, "tokens_per_sec": round(tokens_per_sec, 1),
                  "elapsed": round(trainer.elapsed(), 2)}
        self._write(trainer, record)
        if self.writer is not None:
            self.writer.add_scalar("train/loss", metrics["loss"], trainer.step)
            self.writer.add_scalar("train/lr", metrics["lr"], trainer.step)
            self.writer.add_scalar("train/tokens_per_sec", tokens_per_sec, trainer.step)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}",
                                 tok_s=f"{tokens_per_sec:,.0f}")
        else:
            total = trainer.cfg.training.max_steps
            eta = trainer.elapsed() / max(1, trainer.step - trainer.start_step) * (
                total - trainer.step)
            print(f"step {trainer.step:>6}/{total} | loss {metrics['loss']:.4f} | "
                  f"lr {metrics['lr']:.2e} | {tokens_per_sec:,.0f} tok/s | "
                  f"eta {_duration(eta)}", flush=True)

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        # Whatever the objective measures (runtime/objectives.py): val_loss always; gpt adds
        # val_ppl and val_bpb, bert val_mlm_accuracy, t5 val_span_match.
        values = {key: value for key, value in metrics.items() if key != "is_best"}
        record = {"step": trainer.step,
                  **{key: round(value, 4 if key == "val_ppl" else 6)
                     for key, value in values.items()}}
        self._write(trainer, record)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"val/{key.removeprefix('val_')}", value, trainer.step)
        line = (f"eval step {trainer.step}: " + " | ".join(_describe(k, v)
                                                          for k, v in values.items())
                + (" (best)" if metrics.get("is_best") else ""))
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def on_train_end(self, trainer: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            with contextlib.suppress(OSError):  # already reported by _write
                self.file.close()


def _describe(key: str, value: float) -> str:
    """'val_loss', 2.1 -> 'val loss 2.1000'; shares as percentages ('mlm accuracy 41.2%')."""
    if key == "val_bpb":
        return f"{value:.4f} bits/byte"
    if key == "val_ppl":
        return f"ppl {value:.2f}"
    name = key.removeprefix("val_").replace("_", " ")
    if key.endswith(("accuracy", "match")):
        return f"{name} {100 * value:.1f}%"
    return f"{'val ' if key == 'val_loss' else ''}{name} {value:.4f}"


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
