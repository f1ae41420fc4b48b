"""Property tests of every entry point: random arguments and damaged files end in success or in
one `Error:` with a `Suggestion:` (errors.run_cli), never an "unexpected" error or a traceback.

    python -m pytest tests/test_any_input.py          # about a minute on 2 CPU cores

The entry points run in this process (run_cli(main, argv), as `python -m ...` calls them), in a
copy of a microscopic trained project, one copy per example; hypothesis picks the arguments
(each command's own options and config overrides, with values from plain to absurd) and which
project file to damage and how. Runs that succeed stay microscopic: the model's size and
training.max_steps are fixed after the random arguments. The cases found by hand are
test_bad_inputs.py's catalogue; the config loader's own property tests are test_safety.py's.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_inputs import trained_project

import dashboard.serve as serve_module
from conftest import ARCHITECTURE
from errors import run_cli

# Few examples each: every one runs a real command (a second or two).
EXAMPLES = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# Values as a user (or a script gone wrong) types them. No absolute paths: a run that accepts
# one would write there.
VALUES = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "2", "nan", "inf", "-inf", "1e400", "true", "off",
                     "auto", "best", "latest", "cpu", "cuda", "..", ".", "checkpoints",
                     "checkpoints/best.pt", "checkpoints/step_000010.pt", "llm.config.js",
                     "data/raw", "logs", "x" * 300, "caf\u00e9", "[MASK]", "<|endoftext|>",
                     "[1, 2]", "{a: 1}", "hf", "gguf", "127.0.0.1", "no-such-host.invalid"]),
    st.integers(-10**9, 10**9).map(str),
    st.text(max_size=12).filter(lambda v: not v.startswith(("/", "~")) and "\x00" not in v),
)
# Options every command takes (config.add_config_arguments), with keys that are safe to vary.
CONFIG_OPTIONS = ["--config", "--generation.prompt", "--generation.temperature",
                  "--generation.top_k", "--tokenizer.path", "--data.processed_dir",
                  "--checkpoints.dir", "--logging.dir", "--training.device",
                  "--training.precision", "--deployment.checkpoint", "--model.heads",
                  "--no-such.option", "--help"]
# Last, so that a run that goes ahead stays microscopic (these are test_safety.py's to vary).
SMALL = ["--training.max_steps", "2", "--training.eval_interval", "2",
         "--training.threads", "1"]

# What can happen to a file: (name, function of its bytes -> new bytes, or None: delete it).
DAMAGE: dict[str, Callable[[bytes], bytes | None]] = {
    "truncate": lambda data: data[: len(data) // 3],
    "empty": lambda data: b"",
    "flip a byte": lambda data: data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF])
    + data[len(data) // 2 + 1:] if data else b"\xff",
    "binary": lambda data: bytes(range(256)) * 4,
    "text": lambda data: b"module.exports = {model: {layers: 2, model: 3}};\n",
    "delete": lambda data: None,
}
SERVE = serve_module.serve  # (the tests below make it stop after two polls)
FILES = ["llm.config.js", "checkpoints/best.pt", "checkpoints/step_000010.pt",
         "checkpoints/best.json", "data/processed/meta.json", "data/processed/val.bin",
         "tokenizer/tokenizer.json", "logs/metrics.jsonl", "data/raw/notes.txt"]


def argv_of(own: list[str]) -> st.SearchStrategy[list[str]]:
    """Up to 4 options (the command's `own` and the config's), each with a random value, or a
    lone random word."""
    option = st.tuples(st.sampled_from(own + CONFIG_OPTIONS), VALUES).map(list)
    word = VALUES.map(lambda value: [value])
    return st.lists(st.one_of(option, word), max_size=4).map(
        lambda parts: [token for part in parts for token in part])


DAMAGED = st.one_of(st.none(), st.tuples(st.sampled_from(FILES), st.sampled_from(list(DAMAGE))))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_project(tmp_path_factory.mktemp("any-input"))


@contextlib.contextmanager
def copy_of(trained: Path, damaged: tuple[str, str] | None) -> Iterator[Path]:
    """A fresh copy of the project (test_bad_inputs.py's: a tokenizer, data, a 10-step run) as
    the working directory, with one file damaged."""
    before = Path.cwd()
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "my-llm"
        shutil.copytree(trained, folder)
        if damaged is not None:
            path = folder / damaged[0]
            data = path.read_bytes() if path.is_file() else b""
            new = DAMAGE[damaged[1]](data)
            if new is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(new)
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(before)


def check(main: Callable, argv: list[str], capsys: pytest.CaptureFixture,
          stdin: str = "") -> None:
    """Run `main` as `python -m ...` does; success, or one Error: with its Suggestion:."""
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8", "surrogatepass")))
    try:
        with pytest.raises(SystemExit) as exit_:
            run_cli(main, argv)
    finally:
        sys.stdin = old_stdin
    out, err = capsys.readouterr()
    output = out + err
    assert "Traceback" not in output and "Error: unexpected" not in output, (argv, output)
    assert exit_.value.code in (0, 1, None), (argv, exit_.value.code, output)
    if exit_.value.code == 1:
        errors = [line for line in err.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, (argv, output)
        assert any(line.startswith("Suggestion: ") for line in err.splitlines()), (argv, output)


@EXAMPLES
@given(argv=argv_of(["--resume", "--fresh"]), damaged=DAMAGED)
def test_train(trained: Path, capsys, argv: list[str], damaged) -> None:
    from training.train import main

    with copy_of(trained, damaged):
        check(main, [*argv, *SMALL], capsys)


@EXAMPLES
@given(argv=argv_of(["--workers"]), damaged=DAMAGED)
def test_data(trained: Path, capsys, argv: list[str], damaged) -> None:
    from data.prepare import main

    with copy_of(trained, damaged):
        check(main, argv, capsys)


@EXAMPLES
@given(argv=argv_of(["--format", "--checkpoint", "--dtype", "--gguf-type"]),
       action=st.sampled_from(["export", "deploy", "publish"]), damaged=DAMAGED)
def test_export(trained: Path, capsys, argv: list[str], action: str, damaged) -> None:
    from deploy import main

    argv = [action, *argv]
    if action == "deploy":  # nothing may leave the machine: only the checks before an upload
        argv += ["--target", "replicate"]
    with copy_of(trained, damaged):
        check(main, argv, capsys)


@EXAMPLES
@given(argv=argv_of(["--checkpoint", "--prompt", "--max-new-tokens", "--temperature",
                     "--top-k", "--top-p", "--seed"]), damaged=DAMAGED)
def test_generate(trained: Path, capsys, argv: list[str], damaged) -> None:
    from evaluation.generate import main

    with copy_of(trained, damaged):
        check(main, [*argv, "--max-new-tokens", "3"] if "--max-new-tokens" not in argv
              else argv, capsys)


@pytest.mark.skipif(ARCHITECTURE == "bert", reason="a bert project has no chat (an encoder)")
@EXAMPLES
@given(argv=argv_of(["--checkpoint", "--temperature", "--max-tokens", "--seed"]),
       damaged=DAMAGED, lines=st.lists(st.one_of(
           st.sampled_from(["/save chat.txt", "/save! Makefile", "/save! logs/metrics.jsonl",
                            "/temperature nan", "/top_k -3", "/max_tokens 2", "/reset",
                            "/save ../x.md", "/quit"]),
           st.text(max_size=20).filter(lambda line: "\x00" not in line)), max_size=4))
def test_chat(trained: Path, capsys, argv: list[str], damaged, lines: list[str]) -> None:
    from chat import main

    with copy_of(trained, damaged) as folder:
        makefile = folder / "Makefile"
        makefile.write_text("help:\n")
        check(main, [*argv, "--max-tokens", "3"], capsys, stdin="\n".join(lines) + "\n")
        assert makefile.read_text() == "help:\n"  # /save never replaced it


@EXAMPLES
@given(argv=argv_of(["--text", "--max-bytes", "--prompt", "--max-new-tokens", "--seed",
                     "--plot", "--markdown", "--json", "--no-plot"]), damaged=DAMAGED)
def test_compare(trained: Path, capsys, argv: list[str], damaged) -> None:
    from compare import main

    with copy_of(trained, damaged):
        check(main, [".", *argv, "--max-new-tokens", "3", "--max-bytes", "3000"], capsys)


@EXAMPLES
@given(argv=argv_of(["--port", "--host"]), damaged=DAMAGED)
def test_dashboard(trained: Path, capsys, monkeypatch, argv: list[str], damaged) -> None:
    monkeypatch.setattr(serve_module, "POLL_SECONDS", 0.01)
    # Serve for two polls instead of until Ctrl+C.
    monkeypatch.setattr(serve_module, "serve", functools.partial(SERVE, polls=2))
    with copy_of(trained, damaged):
        check(serve_module.main, argv, capsys)
