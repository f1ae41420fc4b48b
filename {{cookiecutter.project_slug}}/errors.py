"""Errors a user can fix, and the one place that reports them.

Every entry point (`python -m training.train`, `python -m data.prepare`, ...) ends with

    if __name__ == "__main__":
        run_cli(main)

so a mistake in the config, the data or a checkpoint prints two lines and exits 1:

    Error: training.learning_rate must be > 0 (line 52 of llm.config.js)
    Suggestion: set it to a small positive number such as 0.001

A traceback is shown only with `--debug` or `CREATE_LLM_DEBUG=1`, for bug reports.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path


class CreateLLMError(Exception):
    """A problem the user can fix: what went wrong, and what to do about it."""

    def __init__(self, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


class ConfigurationError(CreateLLMError):
    """llm.config.js or a command-line override is invalid."""


class DataError(CreateLLMError):
    """Raw data, processed data or the tokenizer is missing or unusable."""


class TrainingError(CreateLLMError):
    """Training cannot go on: NaN loss, out of memory, an incompatible checkpoint, ..."""


class DeploymentError(CreateLLMError):
    """Exporting or uploading a trained model failed."""


def debug_enabled(argv: list[str] | None = None) -> bool:
    """True when the user asked for full tracebacks."""
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("CREATE_LLM_DEBUG", "") not in ("", "0")


def print_error(error: CreateLLMError) -> None:
    """Print an error the way every command of this project does."""
    print(f"Error: {error.message}", file=sys.stderr)
    if error.suggestion:
        print(f"Suggestion: {error.suggestion}", file=sys.stderr)


def first_failure_of_the_run() -> bool:
    """False in a process of a torchrun job (`make train NPROC=...`) when another process of the
    same job has already failed; True otherwise.

    Every process of a job may meet the same error (a bad config, missing data) and another
    process's failure makes the rest fail too: so only the first one to fail prints. It claims a
    marker file named after the job (torchrun's run id and its own process id, which the
    processes on one machine share); torchrun then stops the others and names the ranks.
    """
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return True
    job = f"{os.environ.get('TORCHELASTIC_RUN_ID', 'none')}-{os.getppid()}"
    marker = Path(tempfile.gettempdir()) / f"create-llm-failed-{job}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
    except OSError:  # no temporary folder: better twice than never
        return True


def run_cli(main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> None:
    """Run an entry point's `main(argv)` and turn errors into `Error:`/`Suggestion:` lines.

    `--debug` is removed from argv before `main` sees it. Under torchrun only the first process
    of the job to fail prints its error (see first_failure_of_the_run).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != "--debug"]
    try:
        code = main(argv)
    except CreateLLMError as error:
        if debug:
            traceback.print_exc()
        if debug or first_failure_of_the_run():
            print_error(error)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `python deploy.py ... | head`: the reader has gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as error:  # a bug, not a user mistake: say so, keep the output short
        if debug:
            traceback.print_exc()
        if not (debug or first_failure_of_the_run()):
            sys.exit(1)
        print(f"Error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        print(
            "Suggestion: run again with --debug (or CREATE_LLM_DEBUG=1) to see the full "
            "traceback, and report it if it looks like a bug",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(code or 0)
