"""Shared helpers for the root test suite: the template, rendered hooks, baked-project checks.

    make test        # the everyday tier: not slow, browser or distributed, with -n auto
    make test-rest   # the rest: slow bakes, the browser test, torchrun (CI: make test, then this)
    make test-all    # both in one run
"""

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = REPO_ROOT / "{{cookiecutter.project_slug}}"
HOOKS_DIR = REPO_ROOT / "hooks"
# Tool caches a developer may leave inside the template; they are not template content.
CACHE_DIRS = {"__pycache__", ".ruff_cache", ".pytest_cache", ".mypy_cache"}


def pytest_configure(config: pytest.Config) -> None:
    # pytest-cookies bakes the template named by --template (default "."): the repository root,
    # wherever pytest was started from.
    config.option.template = str(REPO_ROOT)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """No test reads the user's ~/.cookiecutterrc or writes replay files into their home, and
    no variable from the calling shell (CI=true in CI) changes prompting or debugging."""
    home = tmp_path_factory.mktemp("cookiecutter-home")
    config = home / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(home / 'templates'))}\n"
        f"replay_dir: {json.dumps(str(home / 'replay'))}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
    for name in ("CI", "CREATE_LLM_DEBUG", "CREATE_LLM_WRAPPER", "CREATE_LLM_ERROR_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def baked(cookies_session) -> Callable[..., Path]:
    """baked(**answers): the project cookiecutter makes from these answers, baked once per test
    run (per pytest-xdist worker) and shared. Read only: a test that writes into its project
    (runs its tests, trains) bakes its own with the `cookies` fixture."""
    defaults = {key: value[0] for key, value in cookiecutter_json().items()
                if isinstance(value, list)}  # a choice's default is its first option
    projects: dict[str, Path] = {}

    def bake(**answers: Any) -> Path:
        key = json.dumps({**defaults, **answers}, sort_keys=True)
        if key not in projects:
            result = cookies_session.bake(extra_context=answers)
            assert result.exception is None, result.exception
            assert result.exit_code == 0
            projects[key] = result.project_path
        return projects[key]

    return bake


def cookiecutter_json() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "cookiecutter.json").read_text(encoding="utf-8"))


def rendered_context(**extra: Any) -> dict[str, Any]:
    """The `cookiecutter` dict exactly as cookiecutter builds it for hooks with --no-input."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(context_file=str(REPO_ROOT / "cookiecutter.json"),
                               extra_context=extra or None)
    answers = dict(prompt_for_config(context, no_input=True))
    answers.update(_template=str(REPO_ROOT), _output_dir="/tmp/out", _repo_dir=str(REPO_ROOT),
                   _checkout=None)
    return answers


def render_hook(name: str, context: dict[str, Any], directory: Path) -> ModuleType:
    """Render hooks/<name>.py with Jinja the way cookiecutter does, and import the result."""
    from cookiecutter.utils import create_env_with_context

    full_context = {"cookiecutter": context}
    env = create_env_with_context(full_context)
    source = (HOOKS_DIR / f"{name}.py").read_text(encoding="utf-8")
    path = directory / f"{name}.py"
    path.write_text(env.from_string(source).render(**full_context), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"rendered_{name}_{id(path)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree_files(root: Path) -> set[str]:
    """Every file under root, as '/'-separated relative paths, caches left out."""
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and not CACHE_DIRS & set(path.relative_to(root).parts)
    }


def tree_contents(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in tree_files(root)}


def makefile_targets(makefile: Path) -> set[str]:
    """Rule names of a Makefile (`name: ...`, not `NAME := value`)."""
    pattern = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", re.MULTILINE)
    return {name for name in pattern.findall(makefile.read_text(encoding="utf-8"))
            if not name.startswith(".")}


def printed_commands(output: str) -> list[str]:
    """Shell commands a summary tells the user to run: `cd X` and `make X` at a line start,
    plus any `make X` quoted in backticks."""
    commands = re.findall(r"^\s+((?:cd|make) \S+)", output, re.MULTILINE)
    commands += re.findall(r"`(make \S+?)`", output)
    return commands


def parse_llm_config(path: Path) -> dict[str, Any]:
    """llm.config.js the way the project reads it: strip `module.exports =` and `;`, JSON5."""
    import json5

    text = path.read_text(encoding="utf-8")
    # The statement, not the mention of it in the header comment: it starts a line.
    body = re.split(r"^module\.exports\s*=", text, maxsplit=1, flags=re.MULTILINE)[1]
    return json5.loads(body.strip().removesuffix(";"))
