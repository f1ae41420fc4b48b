"""When to save: every save_interval steps, whenever validation loss improves, and at the end.

The file format and the atomic write live in runtime/checkpoints.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime import checkpoints
from training.callbacks.base import Callback


class CheckpointCallback(Callback):
    def __init__(self, folder: str, save_interval: int, save_total_limit: int,
                 keep_best: bool = True) -> None:
        self.folder = Path(folder)
        self.save_interval = save_interval
        self.save_total_limit = save_total_limit
        self.keep_best = keep_best
        self.last_saved_step = -1

    def _save(self, trainer: Any, name: str, kind: str) -> Path:
        path = self.folder / name
        checkpoints.save_checkpoint(path, trainer.checkpoint_state(), trainer.checkpoint_info())
        record = {"type": "checkpoint", "step": trainer.step, "path": str(path), "kind": kind}
        if kind == "best":  # what made it the best
            record["val_loss"] = trainer.last_metrics.get("val_loss")
        trainer.log(record)
        return path

    def save_step(self, trainer: Any) -> Path | None:
        if trainer.step == self.last_saved_step:
            return None
        path = self._save(trainer, f"step_{trainer.step:06d}.pt", "step")
        self.last_saved_step = trainer.step
        checkpoints.rotate(self.folder, self.save_total_limit)
        return path

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        # best.pt is chosen by validation loss, never by a noisy training batch.
        if self.keep_best and metrics["is_best"]:
            self._save(trainer, "best.pt", "best")

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if trainer.step % self.save_interval == 0:
            self.save_step(trainer)

    def on_train_end(self, trainer: Any) -> None:
        if trainer.step > 0:
            path = self.save_step(trainer)
            if path is not None and trainer.stop_reason:
                print(f"Saved {path}")
