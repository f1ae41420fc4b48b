"""One writer at a time: the lock that `make train`, `make resume`, `make data` and
`make tokenizer` hold while they write the project's shared state.

    with project_lock("make train", run_folder="checkpoints"):
        ...                      # a second writer is refused at once, naming this one

Two trainings in one project would write the same checkpoints/ and logs/metrics.jsonl, and
`make data` during a training would replace the data and tokenizer it reads. So each of these
commands locks the project folder (the folder of llm.config.js) and keeps the lock until it
exits. A training also locks its checkpoints folder: two projects whose checkpoints.dir is the
same folder cannot train into it at once. Readers (`make eval`, `generate`, `chat`, `compare`)
take no lock and never wait: every file they read is written to a temporary name and renamed into
place, so they see the old file or the new one, never half of one.

The lock is the operating system's (`fcntl.flock`) on the folder itself, not a PID file and not a
file inside it: the kernel releases it when the process ends in any way, so a run killed with
`kill -9`, or a machine that crashed, never leaves a lock that blocks the next command; and
deleting a file cannot take it away. The file `.llm.lock` in the folder only records who holds
the lock (command, PID, start time) for the message the next writer gets. Standard library only;
on Windows, which has no flock, commands run unlocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from errors import CreateLLMError

LOCK_FILE = ".llm.lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class LockedError(CreateLLMError):
    """Another command is writing this project."""


def _holder(fd: int) -> str:
    """Who holds the lock, from what they wrote into the file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"`{info['command']}` (PID {info['pid']}, started {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):  # written by nobody yet, or unreadable
        return "another command"


def _open(path: Path) -> tuple[int, bool]:
    """The lock file's descriptor, and whether we may write who we are into it."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644), True
    except PermissionError:
        if path.is_file():  # a read-only folder or file: flock works on a read-only descriptor
            return os.open(path, os.O_RDONLY), False
        raise CreateLLMError(
            f"cannot create the lock file {path}: the folder {path.parent.resolve()} is not "
            "writable",
            f"make it writable (`chmod u+w {path.parent}`), or work in a copy of the project "
            "that you can write to",
        ) from None
    except OSError as error:  # a read-only file system, or the folder is gone
        raise CreateLLMError(
            f"cannot create the lock file {path}: {error.strerror or error}",
            "run the command from a project folder you can write to",
        ) from None


@contextlib.contextmanager
def project_lock(command: str, folder: str | Path = ".",
                 run_folder: str | Path | None = None) -> Iterator[None]:
    """Hold the project's write lock (and, for a training, its checkpoints folder's: `run_folder`)
    for the duration of the block; LockedError at once if another command holds either.
    `command` is what the next writer is told ("make train")."""
    if fcntl is None:
        yield
        return
    folder = Path(folder)
    with _folder_lock(command, folder, "this project"):
        if run_folder is None or Path(run_folder).resolve() == folder.resolve():
            yield
            return
        run_folder = Path(run_folder)
        try:
            run_folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CreateLLMError(
                f"cannot write checkpoints to {run_folder}/: {error.strerror or error}",
                "make that folder writable, or point checkpoints.dir in llm.config.js at a "
                "writable folder",
            ) from None
        with _folder_lock(command, run_folder, "its checkpoints folder"):
            yield


@contextlib.contextmanager
def _folder_lock(command: str, folder: Path, what: str) -> Iterator[None]:
    fd, writable = _open(folder / LOCK_FILE)
    try:
        # The lock is on the folder (a descriptor of the directory itself), so that deleting the
        # lock file cannot let a second writer in; the file only says who holds it.
        folder_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened: lock the file, as before
        folder_fd = None
    try:
        try:
            fcntl.flock(folder_fd if folder_fd is not None else fd,
                        fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"{_holder(fd)} is already writing {what} ({folder.resolve()})",
                "wait for it to finish, or stop it (Ctrl+C in its terminal saves a checkpoint); "
                "to run two trainings side by side, give each its own copy of the project "
                "folder (and its own checkpoints.dir)",
            ) from None
        if writable:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            record = {"command": command, "pid": os.getpid(), "started": started,
                      "argv": sys.argv}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        yield
    finally:
        if folder_fd is not None:
            os.close(folder_fd)  # closing the descriptor releases the lock
        os.close(fd)
