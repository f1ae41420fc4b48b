"""Training never loses work: `kill -9` at any moment (even in the middle of a save), Ctrl+C and
SIGTERM, a second Ctrl+C, a loss or weights that become NaN, and running out of memory.

    python -m pytest tests/test_interrupts.py          # about a minute on 2 CPU cores

The kill and signal tests run real training subprocesses on a microscopic model, the way a
user's run (or a pre-empted cloud job) meets them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import torch

from conftest import first_everyday, prepare_project
from errors import TrainingError, run_cli
from runtime import checkpoints
from training.callbacks.base import Callback

PROJECT = Path(__file__).resolve().parents[1]

MICRO = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 96, "max_length": 32},
    "tokenizer": {"vocab_size": 320},
    "data": {"sample_size_mb": 0.3, "stride": 32},
    "training": {"batch_size": 8, "max_steps": 100_000, "warmup_steps": 2, "eval_interval": 100_000,
                 "eval_batches": 2, "log_interval": 1, "threads": 1, "device": "cpu",
                 "precision": "fp32"},
    "checkpoints": {"save_interval": 2, "save_total_limit": 3},
    "logging": {"progress_bar": False},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """llm.config.js (MICRO: training runs until stopped), a tokenizer and prepared data."""
    return prepare_project(tmp_path_factory.mktemp("prepared"), MICRO, env=environment())


@pytest.fixture
def project(prepared: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "my-llm"
    shutil.copytree(prepared, folder)
    return folder


def environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "PYTHONUNBUFFERED": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CREATE_LLM_DEBUG", None)
    return env


def start_training(folder: Path, *args: str, output: Any = subprocess.PIPE) -> subprocess.Popen:
    """`python -m training.train ARGS` in the background, stdout and stderr together."""
    return subprocess.Popen([sys.executable, "-m", "training.train", *args], cwd=folder,
                            env=environment(), stdout=output, stderr=subprocess.STDOUT,
                            text=True)


def wait_until(condition: Callable[[], bool], process: subprocess.Popen,
               timeout: float = 60.0, poll: float = 0.001) -> bool:
    """Poll `condition` until it holds (True), the process ends or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(poll)
    return False


def read_until(process: subprocess.Popen, pattern: str, timeout: float = 60.0) -> list[str]:
    """Lines of output up to (and including) the first that matches `pattern`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no line matching {pattern!r}:\n{''.join(lines)}")


def step_files(folder: Path) -> dict[int, Path]:
    return dict(checkpoints.list_step_checkpoints(folder / "checkpoints"))


def good_steps(folder: Path) -> list[int]:
    """Steps whose checkpoint verifies, loads with weights_only and holds finite weights."""
    good = []
    for step, path in step_files(folder).items():
        if checkpoints.verify_checkpoint(path) is None:
            state = checkpoints.load_checkpoint(path)
            assert state["step"] == step
            assert all(torch.isfinite(v).all() for v in state["model"].values())
            good.append(step)
    return good


# ---- kill -9 ----


def temp_file_of(process: subprocess.Popen, folder: Path) -> Callable[[], bool]:
    """True while `process` is writing a step checkpoint (its hidden temporary file exists)."""
    return lambda: any((folder / "checkpoints").glob(f".step_*.pt.tmp-{process.pid}"))


def renamed_before_sidecar(folder: Path, known: set[int]) -> Callable[[], bool]:
    """True between the two renames of a save: a new step_N.pt whose step_N.json is not there
    yet (a narrow window: caught only sometimes, which is fine)."""
    def condition() -> bool:
        new = set(step_files(folder)) - known
        return any(not (folder / "checkpoints" / f"step_{s:06d}.json").exists() for s in new)
    return condition


@pytest.mark.slow  # ~30 s: five training processes
def test_kill_9_at_any_moment_leaves_a_checkpoint_to_resume_from(project: Path) -> None:
    rng = random.Random(0)
    moments = ["while writing", "at random", "between the renames", "while writing", "at random"]
    newest_good: int | None = None
    left_temp_files = ever_left_temp_files = False
    log = project / "kill.log"  # a file, not a pipe: nobody reads while it runs
    for moment in moments:
        resume = ("--resume",) if newest_good is not None else ()
        before = set(step_files(project))
        with open(log, "w") as output:
            process = start_training(project, *resume, output=output)
        # Wait until this run has saved something of its own, so the kill can hurt.
        saved_something = lambda known=before: bool(set(step_files(project)) - known)  # noqa: E731
        assert wait_until(saved_something, process), log.read_text()
        if moment == "while writing":
            assert wait_until(temp_file_of(process, project), process, timeout=30), \
                "never saw a checkpoint being written"
        elif moment == "between the renames":
            wait_until(renamed_before_sidecar(project, set(step_files(project))), process,
                       timeout=10)
        else:
            time.sleep(rng.uniform(0.0, 0.5))
        process.kill()  # SIGKILL: no handler, no cleanup, no finally
        process.wait()
        output = log.read_text()

        if newest_good is not None:  # this run resumed from the newest good checkpoint
            assert f"Resuming from checkpoints/step_{newest_good:06d}.pt" in output, output
            if left_temp_files:  # ... after deleting what the killed save had half written
                assert "half-written checkpoint file(s) of an interrupted run" in output, output
            for step, path in step_files(project).items():  # anything newer was skipped, named
                if step > newest_good and step in before:
                    assert f"Skipping {path.relative_to(project)}" in output, output
        left_temp_files = any((project / "checkpoints").glob(".*.tmp-*"))
        ever_left_temp_files |= left_temp_files
        good = good_steps(project)
        assert good, f"no loadable checkpoint left after a kill {moment}"
        # Every checkpoint file either verifies or is one that resuming will skip.
        newest_good = max(good)

    assert ever_left_temp_files, "no kill landed in the middle of a save"
    # The last kill's leftovers are cleaned up and the run continues to its end.
    final = subprocess.run([sys.executable, "-m", "training.train", "--resume",
                            "--training.max_steps", str(newest_good + 2)], cwd=project,
                           env=environment(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    assert f"Resuming from checkpoints/step_{newest_good:06d}.pt" in final.stdout
    assert max(good_steps(project)) == newest_good + 2
    assert not list((project / "checkpoints").glob(".*.tmp-*")), "half-written files were left"


# ---- Ctrl+C and SIGTERM ----


def logged_train_steps(folder: Path) -> list[int]:
    """The steps of the train records in logs/metrics.jsonl (log_interval 1: every step)."""
    lines = (folder / "logs" / "metrics.jsonl").read_text().splitlines()
    return [record["step"] for record in map(json.loads, lines) if record["type"] == "train"]


def printed_steps(output: str) -> list[int]:
    return [int(n) for n in re.findall(r"^step +(\d+)/", output, re.MULTILINE)]


@pytest.mark.parametrize("signum", first_everyday([signal.SIGINT, signal.SIGTERM]),
                         ids=["ctrl-c", "sigterm"])
def test_a_signal_saves_and_says_how_to_resume(project: Path, signum: int) -> None:
    process = start_training(project, "--checkpoints.save_interval", "1000")
    lines = read_until(process, r"^step +3/")
    process.send_signal(signum)
    output = "".join(lines) + process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    name = signal.Signals(signum).name
    assert f"{name} received: finishing step" in output
    stopped = re.search(rf"Stopped at step (\d+) \({name}\)\. Continue with: make resume", output)
    assert stopped, output
    step = int(stopped.group(1))
    assert f"Saved checkpoints/step_{step:06d}.pt" in output
    assert good_steps(project) == [step]  # saved, although save_interval is 1000
    assert "Traceback" not in output
    # Logging is written in the background: the stop waited for every record of every step.
    assert logged_train_steps(project) == list(range(1, step + 1)) == printed_steps(output)
    assert json.loads((project / "logs" / "metrics.jsonl").read_text().splitlines()[-1]) == {
        "type": "end", "step": step, "reason": name, "elapsed": ANY}


@pytest.mark.slow
def test_a_second_ctrl_c_quits_at_once(project: Path) -> None:
    # Big batches make a step take about a second, so both Ctrl+C land inside step 3.
    process = start_training(project, "--checkpoints.save_interval", "1",
                             "--training.batch_size", "2048")
    lines = read_until(process, r"^step +2/")
    time.sleep(0.2)  # step 2 is saved, step 3 is running
    process.send_signal(signal.SIGINT)
    lines += read_until(process, r"SIGINT received: finishing step 3")
    process.send_signal(signal.SIGINT)
    output = "".join(lines) + process.communicate(timeout=60)[0]
    assert process.returncode == 130, output
    assert "Interrupted." in output
    assert "Stopped at step" not in output  # it did not wait to finish the step and save
    assert "Traceback" not in output
    assert good_steps(project)  # what was saved before is intact
    # Quitting at once still wrote the record of every step that finished (at exit).
    assert logged_train_steps(project) == printed_steps(output) == [1, 2]


# ---- two commands at once: the project lock (project_lock.py) ----


def lock_taken(folder: Path, process: subprocess.Popen) -> Callable[[], bool]:
    """True once `process` holds the project lock (it writes its PID into the file)."""

    def taken() -> bool:
        try:
            return json.loads((folder / ".llm.lock").read_text())["pid"] == process.pid
        except (OSError, ValueError, KeyError):
            return False

    return taken


def run_module(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", *args], cwd=folder, env=environment(),
                            capture_output=True, text=True, timeout=300)
    return result, time.monotonic() - start


def run_record(folder: Path) -> tuple[list[dict], dict[str, dict]]:
    """metrics.jsonl without its timings and memory, and every checkpoint's weights."""
    lines = [json.loads(line) for line in (folder / "logs" / "metrics.jsonl").open()]
    measured = ("tokens_per_sec", "elapsed", "eta", "rss_mb", "gpu_mb", "started")
    metrics = [{k: v for k, v in line.items() if k not in measured} for line in lines]
    weights = {path.name: checkpoints.load_checkpoint(path)["model"]
               for path in sorted((folder / "checkpoints").glob("*.pt"))}
    return metrics, weights


def assert_refused(result: subprocess.CompletedProcess, holder: subprocess.Popen,
                   command: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1, result.stderr
    assert re.match(rf"Error: `{command}` \(PID {holder.pid}, started [0-9-]+ [0-9:]+\) is "
                    "already writing this project", error[0]), error
    assert "Suggestion: wait for it to finish, or stop it" in result.stderr


TEN_STEPS = ("--training.max_steps", "30", "--training.eval_interval", "10",
             "--checkpoints.save_interval", "10")


@pytest.mark.slow
def test_a_second_training_is_refused_and_the_first_writes_what_a_lone_run_writes(
        project: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    shutil.copytree(project, lone)
    result, _ = run_module(lone, "training.train", *TEN_STEPS)
    assert result.returncode == 0, result.stdout + result.stderr

    first = start_training(project, *TEN_STEPS)
    assert wait_until(lock_taken(project, first), first, timeout=30)
    second, seconds = run_module(project, "training.train", *TEN_STEPS)
    print(f"the second `make train` was refused after {seconds:.2f} s")
    assert first.poll() is None, "the first run ended before the second was refused"
    assert_refused(second, first, "make train")
    output = first.communicate(timeout=300)[0]
    assert first.returncode == 0, output
    # Exactly what a lone run writes, as if the second had never tried.
    (metrics, weights), (lone_metrics, lone_weights) = run_record(project), run_record(lone)
    assert metrics == lone_metrics and len(metrics) > 30
    assert weights.keys() == lone_weights.keys() and "best.pt" in weights
    for name, state in weights.items():
        assert all(torch.equal(state[key], lone_weights[name][key]) for key in state), name


def test_data_preparation_is_refused_while_a_training_runs(project: Path) -> None:
    data = {path.name: path.read_bytes() for path in (project / "data" / "processed").iterdir()}
    tokenizer = (project / "tokenizer" / "tokenizer.json").read_bytes()
    training = start_training(project)
    try:
        assert wait_until(lock_taken(project, training), training, timeout=30)
        for module in ("data.prepare", "tokenizer.train"):
            result, _ = run_module(project, module, "--data.seed", "7")  # would change the data
            assert_refused(result, training, "make train")
        assert training.poll() is None
    finally:
        training.kill()
        training.wait()
    assert {p.name: p.read_bytes() for p in (project / "data" / "processed").iterdir()} == data
    assert (project / "tokenizer" / "tokenizer.json").read_bytes() == tokenizer


@pytest.mark.slow
def test_a_lock_left_by_kill_9_never_blocks_the_next_run(project: Path) -> None:
    training = start_training(project)
    assert wait_until(lambda: len(step_files(project)) >= 2, training, timeout=60)
    training.kill()  # SIGKILL: the process cannot release anything itself
    training.wait()
    assert json.loads((project / ".llm.lock").read_text())["pid"] == training.pid  # still there
    result, _ = run_module(project, "training.train", "--resume", "--training.max_steps",
                           str(max(good_steps(project)) + 2))
    assert result.returncode == 0, result.stdout + result.stderr  # ... and blocks nothing
    assert "Resuming from checkpoints/step_" in result.stdout


@pytest.mark.slow
def test_readers_keep_working_while_a_training_saves(project: Path) -> None:
    """eval/generate/chat/compare load checkpoints without a lock: every save is a rename, so a
    reader sees the old file or the new one, never half of one (best.pt and a new step
    checkpoint are written at every step here)."""
    training = start_training(project, "--checkpoints.save_interval", "1",
                              "--training.eval_interval", "1")
    loads, seen = 0, set()
    try:
        assert wait_until(lambda: (project / "checkpoints" / "best.pt").is_file(), training)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and training.poll() is None:
            for which in ("best", "latest"):
                _, info = checkpoints.load_trained_model(which, project / "checkpoints")
                seen.add(info["step"])
                loads += 1
    finally:
        training.kill()
        training.wait()
    assert loads > 20 and len(seen) > 5, (loads, seen)


# ---- numerical trouble and memory, in process ----


def train_in(folder: Path, monkeypatch: pytest.MonkeyPatch, *args: str,
             callbacks: list[Callback] | None = None) -> int:
    from training.train import main

    monkeypatch.chdir(folder)
    return main(list(args), extra_callbacks=callbacks)


@pytest.mark.slow
def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(project: Path) -> None:
    """A learning rate of 1e15 with AdamW: the weights overflow within a few steps. (Adafactor,
    t5's optimizer, caps its relative step at 1/sqrt(step), so no learning rate makes it blow
    up this fast; and t5's RMS norms shrug off merely huge weights: hence AdamW and 1e15.)"""
    result = subprocess.run(
        [sys.executable, "-m", "training.train", "--training.max_steps", "40",
         "--training.learning_rate", "1e15", "--training.min_lr", "0", "--training.warmup_steps",
         "0", "--training.grad_clip", "0", "--checkpoints.save_interval", "1",
         "--training.log_interval", "100", "--training.optimizer", "adamw"],
        cwd=project, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr.splitlines()[-2]
    assert re.match(r"Error: the (training loss|model's weights) became .* at step \d+", error)
    assert "Suggestion: the learning rate is probably too high" in result.stderr
    assert "Traceback" not in result.stderr
    # Every checkpoint left verifies and holds finite weights (good_steps checks both).
    assert good_steps(project) == sorted(step_files(project))
    assert not list((project / "checkpoints").glob(".*.tmp-*"))


class PoisonUpdate(Callback):
    """The optimizer update of step `at` turns a weight into NaN, while the loss that step
    reports (computed before the update) is still finite: only a check of the weights sees it."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_begin(self, trainer) -> None:
        step = trainer.optimizer.step

        def poisoned_step(*args, **kwargs):
            result = step(*args, **kwargs)
            if trainer.step + 1 == self.at:
                next(trainer.model.parameters()).data[0] = math.nan
            return result

        trainer.optimizer.step = poisoned_step


def test_nan_weights_are_never_saved(project: Path, monkeypatch) -> None:
    with pytest.raises(TrainingError, match="weights became NaN or infinite at step 4"):
        train_in(project, monkeypatch, "--training.max_steps", "10", "--checkpoints.save_interval",
                 "1", callbacks=[PoisonUpdate(at=4)])
    assert good_steps(project) == [1, 2, 3]  # step 4 was refused, nothing rotated away


@pytest.mark.parametrize("failure", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 21474836480 bytes. Error code 12"),
    RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"),
], ids=["cuda", "cpu", "mps"])
@pytest.mark.parametrize("during", ["training", "evaluation"])
def test_out_of_memory_names_the_knobs(project: Path, monkeypatch, capsys, failure: Exception,
                                       during: str) -> None:
    from config import load_config
    from models.build import build_model

    # The class this project's config builds, whichever architecture (and bert variant) it is.
    model_config = dataclasses.replace(load_config(project / "llm.config.js").model, vocab_size=8)
    with torch.device("meta"):
        model_class = type(build_model(model_config))
    forward = model_class.forward

    def out_of_memory(self, *args, **kwargs):
        if self.training == (during == "training"):
            raise failure
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(model_class, "forward", out_of_memory)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda argv: train_in(project, monkeypatch, *argv),
                ["--training.max_steps", "4", "--training.eval_interval", "2"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    where = "step 1" if during == "training" else "the evaluation of step 2"
    assert re.search(rf"^Error: out of (GPU )?memory at {where} \(batch_size 8, max_length 32\)",
                     err, re.MULTILINE), err
    for knob in ("training.batch_size", "training.gradient_accumulation", "model.max_length",
                 "training.gradient_checkpointing"):
        assert knob in err
    assert "Traceback" not in err
