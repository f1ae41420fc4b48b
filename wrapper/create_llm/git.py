"""`git init` and a first commit in the new project — best effort, like create-next-app.

It runs before the install, so .venv can never end up in the commit. Any git failure is a
warning, not an error: the project is fine without a repository.
"""

import shutil
import subprocess
from pathlib import Path

COMMIT_MESSAGE = "Initial commit from create-llm"


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def _identity(project_dir: Path) -> list[str]:
    """`-c user.name=... -c user.email=...` only when the user has none configured, so theirs
    is always used."""
    identity = []
    for key, fallback in (("user.name", "create-llm"), ("user.email", "create-llm@localhost")):
        if _git(["config", "--get", key], project_dir).returncode != 0:
            identity += ["-c", f"{key}={fallback}"]
    return identity


def init_repository(project_dir: Path) -> str | None:
    """Create the repository and commit every file. Returns a warning, or None on success."""
    if shutil.which("git") is None:
        return "git is not installed; skipped `git init`."
    inside = _git(["rev-parse", "--is-inside-work-tree"], project_dir.parent)
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        return "the project is inside another git repository; skipped `git init`."
    identity = _identity(project_dir)
    commands = {
        "init": ["init", "-q"],
        "add": ["add", "-A"],
        "commit": [*identity, "commit", "-q", "-m", COMMIT_MESSAGE],
    }
    for name, args in commands.items():
        result = _git(args, project_dir)
        if result.returncode != 0:
            shutil.rmtree(project_dir / ".git", ignore_errors=True)
            detail = (result.stderr or result.stdout).strip().splitlines()
            reason = f": {detail[-1]}" if detail else ""
            return f"`git {name}` failed{reason}; the project has no git repository."
    return None


def commit_all(project_dir: Path, message: str) -> None:
    """Commit what changed since, when init_repository made the repository (`create-llm --from`:
    the import's llm.config.js and tokenizer files; checkpoints/ is ignored). Best effort."""
    if shutil.which("git") is None or not (project_dir / ".git").is_dir():
        return
    if _git(["add", "-A"], project_dir).returncode == 0:
        _git([*_identity(project_dir), "commit", "-q", "-m", message], project_dir)
