"""Nothing the user made is lost to an ordinary action, and no value reaches an "unexpected" error.

    python -m pytest tests/test_safety.py          # about a minute on 2 CPU cores

- a resume from an older step never replaces a better best.pt, nor loses the later checkpoints
  or metrics (they are set aside in checkpoints/previous/);
- a disk that fills up under logs/ stops the run after saving the model;
- a second Ctrl+C during a save says the save was interrupted (not that the disk is full);
- unreadable data files get a clear message;
- property tests (hypothesis) throw generated values at the config loader and the command-line
  overrides: every outcome is a config or a ConfigurationError, never another exception. (The
  bad-input catalogue in test_bad_inputs.py runs the real commands on the cases found by hand;
  chat's /save, its commands and the sampling settings are tests/test_chat.py's.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config as config_module
from config import add_config_arguments, build_config
from conftest import write_project_config
from errors import ConfigurationError, DataError, TrainingError
from runtime import checkpoints
from training.callbacks.logging import LoggingCallback

PROJECT = Path(__file__).resolve().parents[1]

MICRO = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 96, "max_length": 32},
    "tokenizer": {"vocab_size": 320},
    "data": {"sample_size_mb": 0.3, "stride": 32},
    "training": {"batch_size": 8, "max_steps": 60, "warmup_steps": 2, "learning_rate": 3e-3,
                 "min_lr": 3e-4, "eval_interval": 20, "eval_batches": 4, "log_interval": 5,
                 "threads": 1, "device": "cpu", "precision": "fp32"},
    "checkpoints": {"save_interval": 20, "save_total_limit": 5},
    "logging": {"progress_bar": False},
}


def run(folder: Path, *args: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, *args], cwd=folder, env=env, input=stdin,
                            capture_output=True, timeout=300)
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project trained for 60 steps (checkpoints at 20, 40, 60; best.pt at the lowest loss)."""
    folder = tmp_path_factory.mktemp("trained")
    write_project_config(folder, MICRO)
    (folder / "data" / "raw").mkdir(parents=True)
    for args in (("-m", "tokenizer.train"), ("-m", "data.prepare"), ("-m", "training.train")):
        result = run(folder, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "my-llm"
    shutil.copytree(trained, folder)
    return folder


# ---- 1. a resume from an older step is a branch: what came later is kept ----


@pytest.mark.slow
def test_resuming_from_an_older_step_keeps_the_better_best_and_the_later_work(
        project: Path) -> None:
    folder = project / "checkpoints"
    best_before = checkpoints.read_sidecar(folder / "best.pt")
    later = {name: (folder / name).read_bytes() for name in ("step_000040.pt", "step_000060.pt")}
    metrics_before = (project / "logs" / "metrics.jsonl").read_text()
    assert best_before["step"] == 60  # the loss still falls at step 60 of this run

    result = run(project, "-m", "training.train", "--resume", "checkpoints/step_000020.pt",
                 "--training.max_steps", "40")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "This run had gone on past step 20: moved step_000040.pt, step_000060.pt" in \
        result.stdout
    # best.pt is still the best model this folder has seen (the branch did worse at step 40).
    best_after = checkpoints.read_sidecar(folder / "best.pt")
    assert best_after["val_loss"] <= best_before["val_loss"]
    assert best_after == best_before
    # The later checkpoints and the whole metrics history are in checkpoints/previous/.
    [archive] = (folder / "previous").iterdir()
    assert archive.name.endswith("-after-step-20")
    for name, content in later.items():
        assert (archive / name).read_bytes() == content
        assert checkpoints.verify_checkpoint(archive / name) is None
    assert (archive / "metrics.jsonl").read_text() == metrics_before
    # The working folder holds the branch: its own step 40, and its metrics up to step 40.
    assert [step for step, _ in checkpoints.list_step_checkpoints(folder)] == [20, 40]
    steps = [json.loads(line)["step"] for line in (project / "logs" / "metrics.jsonl").open()]
    assert max(steps) == 40 and steps == sorted(steps)


@pytest.mark.slow
def test_a_plain_resume_moves_nothing(project: Path) -> None:
    result = run(project, "-m", "training.train", "--resume", "--training.max_steps", "70")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gone on past" not in result.stdout
    assert not (project / "checkpoints" / "previous").exists()


# ---- 3. a full disk under logs/ ----


class FullAfter:
    """A metrics.jsonl that accepts `lines` lines, then fails as a full disk does."""

    def __init__(self, file, lines: int) -> None:
        self.file, self.left = file, lines

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise OSError(28, "No space left on device")
        self.left -= 1
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def test_a_full_log_disk_saves_the_model_then_stops_clearly(trained: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    project = tmp_path / "p"
    shutil.copytree(trained, project)
    shutil.rmtree(project / "checkpoints")
    shutil.rmtree(project / "logs")
    original = LoggingCallback.on_train_begin

    def begin(self, trainer) -> None:
        original(self, trainer)
        # the run's facts, steps 5, 10, 15; 20 fails
        self.writer.file = FullAfter(self.writer.file, lines=4)

    monkeypatch.setattr(LoggingCallback, "on_train_begin", begin)
    monkeypatch.chdir(project)
    from training.train import main

    with pytest.raises(TrainingError) as error:
        main(["--checkpoints.save_interval", "1000"])
    # The writer thread notices within a quarter of a second: the run stops at that step.
    stopped = re.match(r"could not write logs/metrics.jsonl: No space left on device; training "
                       r"stopped at step (\d+) after saving a checkpoint$", error.value.message)
    assert stopped, error.value.message
    assert "make resume" in error.value.suggestion
    step = int(stopped.group(1))
    assert step >= 20
    saved = project / "checkpoints" / f"step_{step:06d}.pt"  # save_interval 1000: on the stop
    assert checkpoints.verify_checkpoint(saved) is None


# ---- 4. a second Ctrl+C during a save ----


def test_an_interrupted_save_says_so_and_keeps_the_old_file(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    path = tmp_path / "step_000010.pt"
    checkpoints.save_checkpoint(path, {"model": {"w": torch.ones(3)}}, {"step": 10})
    before = path.read_bytes()
    real_write = checkpoints._HashingWriter.write

    class CtrlC:  # the file, as a second Ctrl+C meets it halfway through the save
        def write(self, data: bytes) -> int:
            raise KeyboardInterrupt

    def interrupted(self, data: bytes) -> int:
        if self.size > 100:
            self.file = CtrlC()
        return real_write(self, data)

    monkeypatch.setattr(checkpoints._HashingWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(path, {"model": {"w": torch.zeros(10_000)}}, {"step": 20})
    err = capsys.readouterr().err
    assert f"Interrupted while writing {path}" in err and "disk" not in err
    assert path.read_bytes() == before and checkpoints.verify_checkpoint(path) is None
    assert not list(tmp_path.glob(".*tmp*"))


# ---- 5. text that cannot be read ----


def test_an_unreadable_data_file_is_named(tmp_path: Path, monkeypatch) -> None:
    from corpus import sources

    (tmp_path / "notes.txt").write_text("hello")

    def denied(path: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sources, "is_utf8_text", denied)
    with pytest.raises(DataError) as error:
        sources.find_text_files(tmp_path)
    assert error.value.message == f"cannot read {tmp_path / 'notes.txt'}: Permission denied"
    assert "chmod u+r" in error.value.suggestion


# ---- 6. property tests: generated values never reach an unexpected error ----

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                              max_size=3),
    max_leaves=5)
KEYS = [(section, f.name) for section, cls in config_module.SECTIONS.items()
        for f in dataclasses.fields(cls) if (section, f.name) not in config_module.INTERNAL_KEYS]
BASE = config_module.parse_config_text((PROJECT / "llm.config.js").read_text())


@FUZZ
@given(key=st.sampled_from(KEYS), value=ANY_VALUE)
def test_any_value_in_the_config_file_is_a_config_or_a_configuration_error(key, value) -> None:
    section, name = key
    data = json.loads(json.dumps(BASE))
    data.setdefault(section, {})[name] = value  # optional sections may be absent from the file
    try:
        cfg = build_config(data)
    except ConfigurationError as error:
        assert error.message and error.suggestion
        assert f"{section}." in error.message or "data.stride" in error.message
        return
    values = dataclasses.asdict(getattr(cfg, section)).values()
    assert all(math.isfinite(v) for v in values if isinstance(v, float))


@pytest.mark.slow
@FUZZ
@given(key=st.sampled_from(KEYS), raw=st.text(max_size=30))
def test_any_command_line_override_is_a_config_or_a_configuration_error(key, raw) -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    section, name = key
    try:
        args = parser.parse_args(["--config", str(PROJECT / "llm.config.js"),
                                  f"--{section}.{name}", raw])
        config_module.config_from_args(args)
    except ConfigurationError as error:
        assert error.message and error.suggestion
