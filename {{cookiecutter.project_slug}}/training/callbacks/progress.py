"""Progress: turns what the trainer did into records, and shows them on the terminal.

Each record is one line of logs/metrics.jsonl (logging.py writes them; the dashboard and plugins
read them through `on_log`). This callback makes four kinds:

    {"type": "run", "step", "architecture", "preset", "parameters", "device", ...}  at the start
    {"type": "train", "step", "loss", "lr", "tokens", "tokens_per_sec", "elapsed", "eta",
     "rss_mb"(, "gpu_mb")}                                      every training.log_interval steps
    {"type": "eval", "step", "val_loss", "val_ppl", "val_bpb", "best"}   at each evaluation
    {"type": "end", "step", "reason", "elapsed"}                  when the run ends or is stopped

(the checkpoint callback adds {"type": "checkpoint"} and the sample callback {"type": "sample"}).
On a terminal it draws a progress bar; otherwise (a log file, CI) it prints plain lines.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from tqdm import tqdm

from runtime.device import device_name, memory_mb
from training.callbacks.base import Callback


def run_facts(trainer: Any) -> dict[str, Any]:
    """What is being trained, on what: the first record of every run (and of every resume)."""
    t, m = trainer.cfg.training, trainer.model.config
    return {
        "type": "run", "step": trainer.step, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "resumed": trainer.step > 0, "architecture": m.architecture, "preset": m.preset,
        "parameters": trainer.model.num_parameters(), "layers": m.layers, "dim": m.dim,
        "heads": m.heads, "context": m.max_length, "vocab_size": m.vocab_size,
        "device": device_name(trainer.device, torch.get_num_threads()),
        "precision": trainer.precision, "train_tokens": int(trainer.meta["train_tokens"]),
        "val_tokens": int(trainer.meta["val_tokens"]), "max_steps": t.max_steps,
        "processes": trainer.world.size, "parallelism": trainer.parallelism,
        "tokens_per_step": t.batch_size * t.gradient_accumulation * trainer.world.size
        * trainer.objective.tokens_per_row, "objective": trainer.objective.name,
    }


class ProgressCallback(Callback):
    def __init__(self, progress_bar: bool = True) -> None:
        self.use_bar = progress_bar and sys.stderr.isatty()
        self.bar: tqdm | None = None
        self.last_time = 0.0
        self.last_tokens = 0

    def on_train_begin(self, trainer: Any) -> None:
        if self.use_bar:
            self.bar = tqdm(total=trainer.cfg.training.max_steps, initial=trainer.step,
                            unit="step", dynamic_ncols=True, desc="training")
        self.last_time = time.perf_counter()
        self.last_tokens = trainer.tokens_seen
        trainer.log(run_facts(trainer))

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if "loss" not in metrics:
            return
        now = time.perf_counter()
        tokens_per_sec = (trainer.tokens_seen - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_tokens = now, trainer.tokens_seen
        # Steps of this session only: a resumed run's earlier steps took no time here.
        done = max(1, trainer.step - trainer.start_step)
        eta = trainer.elapsed() / done * (trainer.cfg.training.max_steps - trainer.step)
        record = {"type": "train", "step": trainer.step, "loss": round(metrics["loss"], 6),
                  "lr": metrics["lr"], "tokens": trainer.tokens_seen,
                  "tokens_per_sec": round(tokens_per_sec, 1),
                  "elapsed": round(trainer.elapsed(), 2), "eta": round(eta, 1),
                  **memory_mb(trainer.device)}
        trainer.log(record)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}",
                                 tok_s=f"{tokens_per_sec:,.0f}")
        else:
            print(f"step {trainer.step:>6}/{trainer.cfg.training.max_steps} | loss "
                  f"{metrics['loss']:.4f} | lr {metrics['lr']:.2e} | {tokens_per_sec:,.0f} tok/s | "
                  f"eta {_duration(eta)}", flush=True)

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        values = {key: round(value, 6) for key, value in metrics.items()
                  if key != "is_best" and isinstance(value, (int, float))}
        trainer.log({"type": "eval", "step": trainer.step, **values,
                     "best": bool(metrics.get("is_best"))})
        shown = " | ".join(_describe(key, value) for key, value in values.items())
        self._print(f"eval step {trainer.step}: {shown}"
                    + (" (best)" if metrics.get("is_best") else ""))

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if record.get("type") == "sample":
            shown = record["prompt"] + record["text"] if record["continues"] else record["text"]
            text = " ".join(shown.split())  # one line
            self._print(f"sample at step {record['step']}: {text[:160]}")

    def on_train_end(self, trainer: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        trainer.log({"type": "end", "step": trainer.step, "reason": trainer.stop_reason or "done",
                     "elapsed": round(trainer.elapsed(), 2)})

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)


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
