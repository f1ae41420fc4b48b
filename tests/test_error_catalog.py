"""Bad inputs to the `create-llm` command, run as a user runs it (`python -m create_llm`, a real
process): each prints one `Error:` line and a `Suggestion:` line, exits non-zero, shows no
traceback, and writes nothing. (The generated project's own catalogue is
{{cookiecutter.project_slug}}/tests/test_bad_inputs.py.)

    .venv/bin/python -m pytest tests/test_error_catalog.py -q
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

QUICK = ["--yes", "--skip-install", "--no-git"]


def create_llm(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "wrapper")}
    return subprocess.run([sys.executable, "-m", "create_llm", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


def make_non_empty_target(here: Path) -> None:
    (here / "my-llm").mkdir()
    (here / "my-llm" / "notes.txt").write_text("my own notes\n")


def make_file_output_dir(here: Path) -> None:
    (here / "out").write_text("not a folder\n")


def nothing(here: Path) -> None:
    pass


# (setup, arguments, exit status, fragment of the Error: line)
CASES = [
    pytest.param(nothing, ["my-llm", "--template", "huge"], 2,
                 "'huge' is not one of 'tiny', 'nano', 'small', 'base', 'custom'",
                 id="unknown-template"),
    pytest.param(nothing, ["my-llm", "preset=huge"], 2, "'huge' is not a valid preset",
                 id="unknown-template-as-key-value"),
    pytest.param(nothing, ["my-llm", "--tokenizer", "sentencepiece"], 2,
                 "'sentencepiece' is not one of", id="unknown-tokenizer"),
    pytest.param(nothing, ["my-llm", "--bogus"], 2, "No such option: --bogus",
                 id="unknown-option"),
    pytest.param(nothing, ["my-llm", "licence=MIT"], 2, "Did you mean license?",
                 id="unknown-answer-key"),
    pytest.param(nothing, ["Bad!Name"], 1, "'bad!name' cannot be the project folder name",
                 id="invalid-project-name"),
    pytest.param(nothing, ["9lives"], 1, "starting with a letter", id="name-starts-with-digit"),
    pytest.param(nothing, ["../escape"], 1, "the project name '../escape' is a path",
                 id="dot-dot-in-name"),
    pytest.param(nothing, ["x/../../y"], 1, "is a path", id="path-in-name"),
    pytest.param(nothing, [".."], 1, "is a path", id="name-is-dot-dot"),
    pytest.param(nothing, ["my-llm", "project_slug=../up"], 1, "cannot be the project folder",
                 id="dot-dot-in-slug"),
    pytest.param(nothing, ["my-llm", "author={{ 7 * 7 }}"], 1, "template braces",
                 id="template-code-in-an-answer"),
    pytest.param(make_non_empty_target, ["my-llm"], 1,
                 "./my-llm already exists and is not empty (notes.txt)",
                 id="non-empty-target-folder"),
    pytest.param(make_file_output_dir, ["my-llm", "-o", "out"], 1,
                 "--output-dir out is a file", id="output-dir-is-a-file"),
    pytest.param(make_file_output_dir, ["my-llm", "-o", "out/inside"], 1,
                 "--output-dir out/inside is inside", id="output-dir-under-a-file"),
    pytest.param(nothing, ["my-llm", "-t", "custom", "--layers", "2", "--heads", "5", "--dim",
                           "7"], 1, "dim 7 is not divisible by heads 5",
                 id="custom-dim-not-divisible"),
    pytest.param(nothing, ["my-llm", "-t", "custom", "--heads", "4", "--dim", "36"], 1,
                 "head size dim / heads = 9 is odd", id="custom-odd-head-size"),
    pytest.param(nothing, ["my-llm", "-t", "custom", "--vocab-size", "100"], 1,
                 "vocab_size 100 is outside", id="custom-vocab-too-small"),
    pytest.param(nothing, ["my-llm", "-t", "custom", "--max-length", "4"], 1,
                 "max_length 4 is outside", id="custom-context-too-short"),
    pytest.param(nothing, ["my-llm", "-t", "custom", "--layers", "0"], 1,
                 "layers must be a positive whole number", id="custom-zero-layers"),
    pytest.param(nothing, ["my-llm", "-t", "small", "--layers", "8"], 1,
                 "--layers sets a custom size, but the template is small",
                 id="custom-size-with-another-template"),
    pytest.param(nothing, ["my-llm", "--plugins", "wandb,tensorbord"], 1,
                 "'tensorbord' is not a plugin", id="unknown-plugin"),
    pytest.param(nothing, ["my-llm", "plugins=synthex,synthex"], 1,
                 "names a plugin twice", id="plugin-named-twice"),
]


@pytest.mark.parametrize(("setup", "args", "status", "fragment"), CASES)
def test_bad_input_is_refused_clearly_and_writes_nothing(tmp_path, setup, args, status,
                                                         fragment):
    setup(tmp_path)
    before = tree(tmp_path)
    result = create_llm(tmp_path, *args, *QUICK)
    output = result.stdout + result.stderr
    assert result.returncode == status, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and fragment in errors[0], output
    assert any(line.startswith("Suggestion: ") for line in result.stderr.splitlines()), output
    assert tree(tmp_path) == before, "something was written"
    assert not (tmp_path.parent / "escape").exists() and not (tmp_path.parent / "up").exists()


def test_debug_shows_the_traceback(tmp_path):
    result = create_llm(tmp_path, "Bad!Name", "--debug", *QUICK)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert tree(tmp_path) == {}
