"""The live dashboard during training (logging.dashboard: true).

    make train ARGS="--logging.dashboard true"      # prints "Dashboard: http://127.0.0.1:5050/"

Starts dashboard/server.py in this process, in background threads, and hands it every record of
the run (`on_log`). Training never waits for it and never stops because of it: `publish` only
puts the record in a bounded queue; if the server cannot start, or falls behind so the queue is
full, this prints one warning and training goes on at the same speed. A resumed run shows its
earlier history too (read back from logs/metrics.jsonl). When training ends the server ends with
it; `make dashboard` shows the run again at any time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dashboard.server import LOOPBACK_NAMES, DashboardServer
from training.callbacks.base import Callback


def _warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr, flush=True)


def earlier_records(path: Path, until_step: int) -> list[dict[str, Any]]:
    """The records a resumed run keeps from metrics.jsonl (those up to its step)."""
    if until_step <= 0 or not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        step = record.get("step", 0) if isinstance(record, dict) else None
        if isinstance(step, (int, float)) and step <= until_step:
            records.append(record)
    return records


class DashboardCallback(Callback):
    def __init__(self, host: str, port: int, title: str, logs_dir: str) -> None:
        self.host, self.port, self.title = host, port, title
        self.metrics_path = Path(logs_dir) / "metrics.jsonl"
        self.server: DashboardServer | None = None
        self.dropping = False  # said once that updates are being dropped

    def on_train_begin(self, trainer: Any) -> None:
        history = earlier_records(self.metrics_path, trainer.step)
        try:
            self.server = DashboardServer(self.host, self.port, self.title, history)
            url = self.server.start()
        except Exception as error:  # a busy or forbidden port, a broken install: never fatal
            self.server = None
            _warn(f"the dashboard could not start ({type(error).__name__}: {error}); training "
                  "goes on without it (`make dashboard` can show the run later)")
            return
        if self.server.port != self.port:
            print(f"(port {self.port} is busy: the dashboard uses {self.server.port})")
        print(f"Dashboard: {url}", flush=True)
        if self.host not in LOOPBACK_NAMES:
            _warn(f"the dashboard listens on {self.host}, so anyone who can reach this computer "
                  "can watch the run (it is read-only); use logging.dashboard_host '127.0.0.1' "
                  "to keep it to yourself")

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.server is None:
            return
        if not self.server.publish(record) and not self.dropping:
            self.dropping = True
            _warn("the dashboard is not keeping up, so it skips updates from now on; training "
                  "goes on at full speed (`make dashboard` shows the complete history)")

    def on_train_end(self, trainer: Any) -> None:
        if self.server is None:
            return
        self.server.drain()  # the last records (the "end" of the run) reach open pages
        self.server.stop()
        self.server = None
        print("The dashboard closed with the training; `make dashboard` shows this run any time.")
