"""Logging: every record of the run goes to logs/metrics.jsonl and to TensorBoard.

Records come from `trainer.log(record)` (progress.py makes the run/train/eval/end records, the
checkpoint and sample callbacks theirs); this callback sees each in `on_log` and appends it as
one JSON line. metrics.jsonl is the run's history: `make dashboard` and `make compare` read it,
and it survives the process. On resume, lines after the resumed step are dropped, so the curves
continue without a seam.

TensorBoard (logging.tensorboard, on by default) gets the same numbers as scalars (train/loss,
val/loss, ...) and the samples as text, in logs/tensorboard/: `make tensorboard` shows them.

Off the hot path: the training loop only hands each record to a queue; one background thread
(LogWriter) turns the records into JSON lines and TensorBoard events and writes them, a few
times a second (a reader of metrics.jsonl sees each line within a quarter of a second).
`make bench ARGS=--logging` measures what is left of the cost of logging every step. No record
is lost on the way out: the run's end (also after Ctrl+C or SIGTERM) waits for the thread to
write everything, and so does the exit of a process stopped by an error or a second Ctrl+C
(atexit). Only `kill -9` can lose records: those of its last quarter second.

A disk that fills up under logs/ (or a logs folder that cannot be written) stops the run after
the step at which the writer noticed: the checkpoint callback saves the model first (its folder
may be on another disk), then train.py reports the error, naming the folder and the fix.

This callback goes last in the trainer's list, so it closes the file after every other
callback's last record.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

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
            record = json.loads(line)
            if isinstance(record, dict) and record.get("step", 0) <= after_step:
                kept.append(line)
        except (ValueError, TypeError, RecursionError):
            continue  # a line cut short by a crash (or not a record)
    # A new file renamed into place: a reader following the old one (`make dashboard`) sees a
    # new file and starts over, instead of reading on from the middle of the rewritten one.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


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
    # max_queue: room for many records, so that LogWriter's thread never waits for its writer.
    return SummaryWriter(str(folder / "tensorboard"), purge_step=purge_step or None,
                         max_queue=1000)


def add_to_tensorboard(writer: Any, record: dict[str, Any]) -> None:
    """One record as TensorBoard scalars (train/loss, val/loss, ...) or text (samples, run).

    The numbers of a record go into one event: TensorBoard's writer pays per event (a checksum
    computed in Python, a file append), so this costs a third of one add_scalar per number."""
    kind, step = record.get("type"), record.get("step", 0)
    if kind in ("train", "eval"):
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard.summary import scalar

        tags = {f"train/{key}": key for key in TRAIN_SCALARS if key in record} if kind == "train" \
            else {f"val/{key[4:]}": key for key in record if key.startswith("val_")}
        values = [value for tag, key in tags.items() for value in scalar(tag, record[key]).value]
        writer.file_writer.add_summary(Summary(value=values), step)
    elif kind == "sample":
        shown = record["prompt"] + record["text"] if record["continues"] else record["text"]
        writer.add_text("samples", shown, step)
    elif kind == "run":
        facts = "\n".join(f"| {key} | {value} |" for key, value in record.items()
                          if key != "type")
        writer.add_text("run", "| fact | value |\n|---|---|\n" + facts, step)


def _plain(value: Any) -> Any:
    """A value json cannot write (a plugin's tensor or numpy number): its number, else text."""
    return value.item() if hasattr(value, "item") else str(value)


class LogWriter:
    """Writes records to metrics.jsonl and TensorBoard on a thread of its own.

    put() costs the training loop a queue append: the thread is not woken for each record (in
    Python only one thread runs at a time, and every hand-over costs the loop), but wakes every
    WRITE_SECONDS to write all that arrived, and flushes. The first write that fails (a full
    disk) is kept in `error`, and nothing more is written; the callback stops the run on seeing
    it. close() writes whatever is queued and closes the files; it also runs at exit.
    """

    WRITE_SECONDS = 0.25

    def __init__(self, file: IO[str], tensorboard: Any, metrics_path: Path) -> None:
        self.file = file
        self.tensorboard = tensorboard
        self.metrics_path = metrics_path
        self.error: tuple[Path, OSError] | None = None  # (what could not be written, why)
        self.records: collections.deque[dict[str, Any]] = collections.deque()
        self.closing = threading.Event()
        self.closed = False
        # TensorBoard writes its event file on a thread of its own, whose error would print a
        # raw traceback: it reaches us instead (its next add_scalar or flush raises it).
        self.previous_hook = threading.excepthook
        threading.excepthook = self._tensorboard_failed
        self.thread = threading.Thread(target=self._run, name="metrics-writer", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def put(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))  # a copy: the caller may reuse its dict

    def _run(self) -> None:
        while True:
            closing = self.closing.wait(self.WRITE_SECONDS)
            while self.records:  # (deque: appends and pops from two threads are safe)
                self._write(self.records.popleft())
            self._guarded(self.metrics_path, self.file.flush)  # readers see the lines now
            if closing:
                return

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=_plain) + "\n"
        self._guarded(self.metrics_path, lambda: self.file.write(line))
        if self.tensorboard is not None:
            self._guarded(self.metrics_path.parent / "tensorboard",
                          lambda: add_to_tensorboard(self.tensorboard, record))

    def _guarded(self, path: Path, write: Any) -> None:
        if self.error is not None:
            return  # the disk is full: write nothing more (the run is stopping)
        try:
            write()
        except OSError as error:
            self.error = (path, error)

    def _tensorboard_failed(self, args: Any) -> None:
        if args.thread is not None and type(args.thread).__name__ == "_AsyncWriterThread" \
                and issubclass(args.exc_type, OSError):
            return  # kept by TensorBoard's writer: our next call into it raises it
        self.previous_hook(args)

    def close(self) -> None:
        """Write every queued record, then close the files (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self.close)
        self.closing.set()
        self.thread.join()
        if self.tensorboard is not None:
            self._guarded(self.metrics_path.parent / "tensorboard", self.tensorboard.flush)
            try:
                self.tensorboard.close()
            except OSError:
                pass  # its error, if any, was kept by the flush
        try:
            self.file.close()
        except OSError as error:
            self.error = self.error or (self.metrics_path, error)
        if threading.excepthook == self._tensorboard_failed:
            threading.excepthook = self.previous_hook


class LoggingCallback(Callback):
    def __init__(self, folder: str, tensorboard: bool = True) -> None:
        self.folder = Path(folder)
        self.use_tensorboard = tensorboard
        self.writer: LogWriter | None = None
        self.reported = False  # the run was told to stop for a failed write

    def on_train_begin(self, trainer: Any) -> None:
        path = self.folder / "metrics.jsonl"
        file = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if trainer.step > 0:
                truncate_metrics(path, trainer.step)
            elif path.exists():
                path.unlink()  # a fresh run (train.py archived the old logs first)
            file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (LogWriter closes it)
            writer = tensorboard_writer(self.folder, trainer.step) \
                if self.use_tensorboard else None
        except OSError as error:
            if file is not None:
                file.close()
            where = Path(error.filename) if error.filename else path
            raise TrainingError(
                f"cannot write the logs: {where}: {error.strerror or error} (nothing was trained "
                "yet)", self._fix()) from None
        self.writer = LogWriter(file, writer, path)

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.writer is None:  # a record after on_train_end: nothing to write it to
            return
        self.writer.put(record)
        self._stop_if_failed(trainer)

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._stop_if_failed(trainer)

    def _stop_if_failed(self, trainer: Any) -> None:
        """A write failed (the writer thread says so): stop after this step. The checkpoint
        callback saves the model first, then train.py reports the error."""
        if self.writer.error is None or self.reported:
            return
        self.reported = True
        trainer.stop("could not write the logs", self._error(trainer))

    def _error(self, trainer: Any) -> TrainingError:
        path, error = self.writer.error
        return TrainingError(
            f"could not write {path}: {error.strerror or error}; training stopped at step "
            f"{trainer.step} after saving a checkpoint", self._fix() + ", then `make resume` "
            "continues from that checkpoint")

    def _fix(self) -> str:
        return (f"free some disk space where {self.folder}/ is (logging.dir), or point "
                "logging.dir in llm.config.js at a folder with room")

    def on_train_end(self, trainer: Any) -> None:
        if self.writer is None:
            return
        self.writer.close()  # every record is written before the run is reported as over
        if self.writer.error is not None and trainer.stop_error is None:
            trainer.stop_error = self._error(trainer)  # the last records failed: say so
        self.writer = None
