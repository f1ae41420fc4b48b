"""The events a callback can handle. Subclass Callback and override what you need.

The trainer calls, in order:
    on_train_begin(trainer)
    for each optimizer step:
        on_evaluate(trainer, metrics)   every training.eval_interval steps and at the end
        on_step_end(trainer, metrics)   every step (metrics holds 'loss' only at log intervals)
    on_train_end(trainer)               also after Ctrl+C / SIGTERM, before the process exits
and, whenever any callback calls `trainer.log(record)`:
    on_log(trainer, record)             one line of logs/metrics.jsonl (progress.py lists the
                                        record types: run, train, eval, sample, checkpoint, end;
                                        those logged in on_train_begin arrive after every
                                        callback's on_train_begin)
`trainer` exposes step, tokens_seen, model, optimizer, cfg, best_val_loss and stop_reason;
`trainer.stop(reason, error)` ends the run after this step (the checkpoint callback saves first).
"""

from __future__ import annotations

from typing import Any


class Callback:
    def on_train_begin(self, trainer: Any) -> None:
        pass

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        pass

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        pass

    def on_train_end(self, trainer: Any) -> None:
        pass

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        pass
