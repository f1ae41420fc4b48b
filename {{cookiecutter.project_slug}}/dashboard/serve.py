"""Show a run in the browser from its logs/metrics.jsonl: finished, running, or not started yet.

    make dashboard                               # = python -m dashboard.serve
    make dashboard ARGS="--port 8080"
    python -m dashboard.serve --logging.dir ../other-llm/logs

It reads the whole file, serves it on 127.0.0.1 (logging.dashboard_host / dashboard_port; a busy
port: the next free one), then follows the file as a training run appends to it, so it works for
runs started without `--logging.dashboard true` and after a restart. When the file is replaced
(a new run, `make train ARGS=--fresh`) or cut back (a resume from an older step) the page starts
over with the new contents. Ctrl+C stops it. It does not load torch, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from config import add_config_arguments, config_from_args
from dashboard.server import LOOPBACK_NAMES, DashboardServer, HostError
from errors import ConfigurationError, run_cli

POLL_SECONDS = 0.5


class MetricsFollower:
    """Reads a metrics.jsonl from its start, then whatever is appended (like `tail -f`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.partial = b""  # a line being written: kept until its newline arrives

    def poll(self) -> tuple[bool, list[dict[str, Any]]]:
        """(started over, new records). `started over` is True when the file was replaced or
        cut back since the last poll: the records returned are then the whole new file."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            gone = self.inode is not None
            self.inode, self.offset, self.partial = None, 0, b""
            return gone, []
        started_over = self.inode is not None and (
            stat.st_ino != self.inode or stat.st_size < self.offset)
        if self.inode is None or started_over:
            self.inode, self.offset, self.partial = stat.st_ino, 0, b""
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            data = file.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # cut short by a crash; absurdly nested
                continue
            if isinstance(record, dict):
                records.append(record)
        return started_over, records


def serve(path: Path, host: str, port: int, title: str, polls: int | None = None) -> None:
    """Serve `path` and follow it until Ctrl+C (or `polls` polls, for tests)."""
    follower = MetricsFollower(path)
    _, history = follower.poll()
    server = DashboardServer(host, port, title, history)
    try:
        url = server.start()
    except HostError as error:
        raise ConfigurationError(
            f"the dashboard cannot listen on logging.dashboard_host: {error}",
            "use 127.0.0.1 (this computer only, the default) or 0.0.0.0 (every network it is "
            "on): make dashboard ARGS=\"--host 127.0.0.1\"") from None
    except OSError as error:
        raise ConfigurationError(
            f"the dashboard could not listen on {host}:{port} or the ports after it ({error})",
            "pick another port: make dashboard ARGS=\"--port 8080\"") from None
    print(f"Dashboard: {url}  (following {path}; Ctrl+C to stop)", flush=True)
    if host not in LOOPBACK_NAMES:
        print(f"Warning: listening on {host}: anyone who can reach this computer can watch "
              "(read-only)", flush=True)
    if not path.exists():
        print(f"{path} does not exist yet: the page fills in once `make train` starts.",
              flush=True)
    try:
        count = 0
        while polls is None or count < polls:
            time.sleep(POLL_SECONDS)
            count += 1
            started_over, records = follower.poll()
            if started_over:
                server.reset(records)
                continue
            for record in records:
                while not server.publish(record):  # not a training loop: waiting is fine here
                    time.sleep(0.05)
    except KeyboardInterrupt:
        print()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dashboard.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", dest="override:logging.dashboard_port", metavar="PORT",
                        help="the port (default: logging.dashboard_port)")
    parser.add_argument("--host", dest="override:logging.dashboard_host", metavar="HOST",
                        help="the address to listen on (default: logging.dashboard_host)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    log = cfg.logging
    title = Path(cfg.path).resolve().parent.name
    serve(Path(log.dir) / "metrics.jsonl", log.dashboard_host, log.dashboard_port, title)


if __name__ == "__main__":
    run_cli(main)
