"""When to save: every save_interval steps (rotating old ones), on a new best validation loss, and
at the end of training (including Ctrl+C / SIGTERM). How to save lives in runtime/checkpoints.py.

With several processes this callback runs in every one of them, at the same steps. Under DDP the
model is the same everywhere, so rank 0 writes the usual single file while the others wait; under
FSDP each process holds only shards, so all write a sharded checkpoint together
(runtime/sharded_checkpoints.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime import checkpoints, sharded_checkpoints
from training.callbacks.base import Callback


class CheckpointCallback(Callback):
    def __init__(self, folder: str, save_interval: int, save_total_limit: int,
                 keep_best: bool = True) -> None:
        self.folder = Path(folder)
        self.save_interval = save_interval
        self.save_total_limit = save_total_limit
        self.keep_best = keep_best
        self.last_saved_step = -1

    def _save(self, trainer: Any, stem: str, kind: str) -> Path:
        if trainer.parallelism == "fsdp":
            path = self.folder / f"{stem}{checkpoints.SHARDED_SUFFIX}"
            trainer.check_finite_weights()
            sharded_checkpoints.save_sharded(path, trainer.model, trainer.optimizer,
                                             trainer.training_state(), trainer.checkpoint_info(),
                                             trainer.world)
        else:
            path = self.folder / f"{stem}.pt"
            if trainer.world.is_main:
                checkpoints.save_checkpoint(path, trainer.checkpoint_state(),
                                            trainer.checkpoint_info())
            trainer.world.barrier()  # the others go on once the file is in place
        record = {"type": "checkpoint", "step": trainer.step, "path": str(path), "kind": kind}
        if kind == "best":  # what made it the best
            record["val_loss"] = trainer.last_metrics.get("val_loss")
        trainer.log(record)
        return path

    def save_step(self, trainer: Any) -> Path | None:
        if trainer.step == self.last_saved_step:
            return None
        path = self._save(trainer, f"step_{trainer.step:06d}", "step")
        self.last_saved_step = trainer.step
        if trainer.world.is_main:
            checkpoints.rotate(self.folder, self.save_total_limit)
        return path

    def on_train_begin(self, trainer: Any) -> None:
        # Resumed and stopped before a step: the checkpoint of this step is the one just loaded.
        if trainer.step in [step for step, _ in checkpoints.list_step_checkpoints(self.folder)]:
            self.last_saved_step = trainer.step

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        # The best is chosen by validation loss, never by a noisy training batch. A sharded best
        # gets a new folder each time (best.json names the current one): one folder cannot be
        # replaced atomically, so the old one is deleted only once the new one is complete.
        if self.keep_best and metrics["is_best"]:
            sharded = trainer.parallelism == "fsdp"
            self._save(trainer, f"best_{trainer.step:06d}" if sharded else "best", "best")
            if trainer.world.is_main:
                checkpoints.prune_best(self.folder)

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if trainer.step % self.save_interval == 0:
            self.save_step(trainer)

    def on_train_end(self, trainer: Any) -> None:
        if trainer.step > 0:
            path = self.save_step(trainer)
            if path is not None and trainer.stop_reason:
                print(f"Saved {path}")
