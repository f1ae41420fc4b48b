"""Create <project>/.venv and install PyTorch, then requirements.txt, into it.

PyTorch goes first, from TORCH_SPEC (default `torch`; e.g. `torch==2.13.0`, or
`torch --index-url https://download.pytorch.org/whl/cpu` — it is split like a shell line), so
the user picks the build (CPU, CUDA version) once. requirements.txt is then installed with a
constraint pinning the torch that is already there: pip/uv can never swap it for another.

uv is used when it is on PATH (much faster); otherwise `python -m venv` and pip.
"""

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from create_llm.errors import CreateLLMError

CONSTRAINTS_FILE = "create-llm-constraints.txt"  # inside .venv, so it never clutters the project


@dataclass
class Step:
    """One command of the install, with what to show while it runs and after it succeeds."""

    running: str
    done: str
    argv: list[str]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_steps(project_dir: Path, torch_spec: str, python: str, uv: str | None) -> list[Step]:
    """The commands, in order. Run them with cwd=project_dir."""
    venv = project_dir / ".venv"
    vpy = str(venv_python(venv))
    torch_args = shlex.split(torch_spec)
    constraints = str(venv / CONSTRAINTS_FILE)
    if uv:
        # --seed puts pip in the venv too, so `.venv/bin/python -m pip` works later.
        create = [uv, "venv", "--seed", "--python", python, str(venv)]
        pip = [uv, "pip", "install", "--python", vpy]
    else:
        create = [python, "-m", "venv", str(venv)]
        pip = [vpy, "-m", "pip", "install", "--disable-pip-version-check"]
    return [
        Step("Creating .venv", "Created .venv", create),
        Step(f"Installing {torch_spec}", f"Installed {torch_spec}", [*pip, *torch_args]),
        Step("Installing requirements.txt", "Installed requirements.txt",
             [*pip, "-r", "requirements.txt", "-c", constraints]),
    ]


def pin_installed_torch(venv: Path) -> None:
    """Write a constraints file holding the exact torch now in the venv."""
    probe = "import importlib.metadata as m; print(m.version('torch'))"
    result = subprocess.run([str(venv_python(venv)), "-c", probe], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise CreateLLMError(
            f"torch is not importable in {venv} after installing it.",
            "Check TORCH_SPEC; then run `make setup` in the project.",
        )
    (venv / CONSTRAINTS_FILE).write_text(f"torch=={result.stdout.strip()}\n", encoding="utf-8")


def run_step(step: Step, cwd: Path) -> None:
    result = subprocess.run(step.argv, cwd=cwd, capture_output=True, text=True, check=False,
                            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise CreateLLMError(
            f"{step.running.lower()} failed: {shlex.join(step.argv)}\n{tail}",
            f"The project is complete; fix the problem above, then run `cd {cwd.name} && "
            "make setup`.",
        )


def install(project_dir: Path, torch_spec: str,
            report: Callable[[str], None] = print) -> None:
    """Run every step with a spinner, printing one line per finished step.

    Ctrl+C removes the half-made .venv (the project itself is complete) and re-raises.
    """
    from rich.console import Console  # lazy: only installs need it

    uv = shutil.which("uv")
    steps = install_steps(project_dir, torch_spec, sys.executable, uv)
    venv = project_dir / ".venv"
    console = Console(stderr=True)
    try:
        for index, step in enumerate(steps):
            if index == 2:
                pin_installed_torch(venv)
            start = time.monotonic()
            with console.status(f"{step.running} ..."):
                run_step(step, project_dir)
            report(f"  [green]✓[/] {step.done} ({time.monotonic() - start:.0f} s)")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
