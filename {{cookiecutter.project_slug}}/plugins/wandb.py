"""The wandb plugin: the run's config, metrics and sample generations to Weights & Biases.

    plugins: { enabled: ['wandb'] },                       // in llm.config.js
    wandb: { project: 'create-llm', mode: 'auto' },

mode 'auto' logs online when you are logged in (WANDB_API_KEY is set, or `wandb login` saved a
key in ~/.netrc) and offline otherwise: an offline run is written to logs/wandb/offline-run-*/ and
`wandb sync logs/wandb/offline-run-...` uploads it later. A WANDB_MODE you set yourself wins.
Each `make train` / `make resume` is one W&B run; the runs of one project share a group.

What is logged: the whole llm.config.js as the run's config (it holds no secrets: keys live in
environment variables), the run's facts (parameters, device, dataset size), every train and eval
record (train/loss, train/lr, val/loss, val/bpb, ...) at its step, the samples as a table, and
the best validation loss in the summary.
"""

from __future__ import annotations

import netrc
import os
import time
from pathlib import Path
from typing import Any

import wandb

from config import Config
from plugins.base import Plugin

WANDB_HOST = "api.wandb.ai"


def logged_in() -> bool:
    """An API key is available without asking: WANDB_API_KEY, or `wandb login`'s netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(WANDB_HOST) is not None
    except (OSError, netrc.NetrcParseError):  # no ~/.netrc, or one we cannot read
        return False


def resolve_mode(mode: str) -> str | None:
    """wandb.init's mode for wandb.mode ('auto' | 'online' | 'offline'); None = WANDB_MODE."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return None  # the user's own choice, read by wandb itself
    return "online" if logged_in() else "offline"


class WandbPlugin(Plugin):
    name = "wandb"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.run: Any = None
        self.samples: list[list[Any]] = []

    def on_train_begin(self, trainer: Any) -> None:
        project = Path(self.cfg.path).resolve().parent.name
        logs = Path(self.cfg.logging.dir).resolve()
        logs.mkdir(parents=True, exist_ok=True)  # wandb looks for the git repository from there
        self.run = wandb.init(
            project=self.cfg.wandb.project, group=project, job_type="train",
            name=f"{project}-{time.strftime('%Y%m%d-%H%M%S')}",
            dir=str(logs),
            mode=resolve_mode(self.cfg.wandb.mode), config=self.cfg.to_dict(),
            # No console capture (it would wrap our progress bar), no banner: we print one line.
            settings=wandb.Settings(console="off", silent=True, init_timeout=60),
        )
        if self.run.offline:
            folder = os.path.relpath(Path(self.run.dir).parent)  # run.dir is its files/ folder
            print(f"wandb: offline run in {folder}; upload it later with `wandb sync {folder}`")
        else:
            print(f"wandb: {self.run.url}")

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.run is None:
            return
        kind, step = record.get("type"), record.get("step", 0)
        if kind == "run":
            facts = {k: v for k, v in record.items() if k not in ("type", "step")}
            self.run.config.update({"run": facts}, allow_val_change=True)
        elif kind == "train":
            self.run.log({f"train/{key}": record[key] for key in
                          ("loss", "lr", "tokens", "tokens_per_sec", "rss_mb", "gpu_mb")
                          if key in record}, step=step)
        elif kind == "eval":
            self.run.log({f"val/{key[4:]}": value for key, value in record.items()
                          if key.startswith("val_")}, step=step)
        elif kind == "sample":
            self.samples.append([step, record["prompt"], record["text"]])
            # A table is immutable once logged: log the whole growing table each time.
            answer = "continuation" if record["continues"] else "answer"
            table = wandb.Table(columns=["step", "prompt", answer], data=list(self.samples))
            self.run.log({"samples": table}, step=step)
        elif kind == "checkpoint" and record.get("kind") == "best":
            self.run.summary["best_val_loss"] = record.get("val_loss")
            self.run.summary["best_step"] = step

    def on_train_end(self, trainer: Any) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def load(cfg: Config) -> WandbPlugin:
    return WandbPlugin(cfg)
