"""Logging: every record of the run goes to logs/metrics.jsonl and to TensorBoard.

Records come from `trainer.log(record)` (progress.py makes the run/train/eval/end records, the
checkpoint and sample callbacks theirs); this callback sees each in `on_log` and appends it as
one JSON line. metrics.jsonl is the run's history: `make dashboard` and `make compare` read it,
and it survives the process. On resume, lines after the resumed step are dropped, so the curves
continue without a seam.

TensorBoard (logging.tensorboard, on by default) gets the same numbers as scalars (train/loss,
val/loss, ...) and the samples as text, in logs/tensorboard/: `make tensorboard` shows them.

This callback goes last in the trainer's list, so it closes the file after every other
callback's last record.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from errors import TrainingError
from training.callbacks.base import Callback

# Numbers of a train record that TensorBoard shows (the others are bookkeeping).
TRAIN_SCALARS = ("loss", "lr", "tokens_per_sec", "rss_mb", "gpu_mb")


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
    # A new file renamed into place: a reader following the old one (`make dashboard`) sees a
    # new file and starts over, instead of reading on from the middle of the rewritten one.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    os.replace(tmp, path)


def tensorboard_writer(folder: Path, purge_step: int) -> Any:
    """A SummaryWriter for folder/tensorboard, or None (with one warning) when the tensorboard
    package is missing: it is in requirements.txt, and a run never fails for its charts."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("Warning: logging.tensorboard is on but the tensorboard package is not installed "
              "(pip install tensorboard, or set logging.tensorboard: false); training goes on "
              "without it", file=sys.stderr)
        return None
    # purge_step: a resumed run first hides the events after its step (they were not saved).
    return SummaryWriter(str(folder / "tensorboard"), purge_step=purge_step or None)


class LoggingCallback(Callback):
    def __init__(self, folder: str, tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.use_tensorboard = tensorboard
        self.writer = None
        self.file = None
        self.failed = False  # a write failed: log nothing more (the run is stopping)

    def on_train_begin(self, trainer: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "metrics.jsonl"
        if trainer.step > 0:
            truncate_metrics(path, trainer.step)
        elif path.exists():
            path.unlink()  # a fresh run (train.py archived the old logs first)
        self.file = open(path, "a", encoding="utf-8")
        if self.use_tensorboard:
            self.writer = tensorboard_writer(self.folder, trainer.step)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.file is None:  # a record after on_train_end: nothing to write it to
            return
        self._write(trainer, record)
        if self.writer is not None:
            self._tensorboard(record)

    def _write(self, trainer: Any, record: dict[str, Any]) -> None:
        """Append a line to metrics.jsonl. If that fails (a full disk), stop the run after this
        step: the checkpoint callback saves the model first, then train.py reports the error."""
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

    def _tensorboard(self, record: dict[str, Any]) -> None:
        kind, step = record.get("type"), record.get("step", 0)
        if kind == "train":
            for key in TRAIN_SCALARS:
                if key in record:
                    self.writer.add_scalar(f"train/{key}", record[key], step)
        elif kind == "eval":
            for key, value in record.items():
                if key.startswith("val_"):
                    self.writer.add_scalar(f"val/{key[4:]}", value, step)
        elif kind == "sample":
            shown = record["prompt"] + record["text"] if record["continues"] else record["text"]
            self.writer.add_text("samples", shown, step)
        elif kind == "run":
            facts = "\n".join(f"| {key} | {value} |" for key, value in record.items()
                              if key != "type")
            self.writer.add_text("run", "| fact | value |\n|---|---|\n" + facts, step)

    def on_train_end(self, trainer: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.file is not None:
            with contextlib.suppress(OSError):  # already reported by _write
                self.file.close()
            self.file = None
