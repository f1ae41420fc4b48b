"""Training with several processes, the way `make train NPROC=2` runs it: torchrun, 2 processes,
the gloo backend on this CPU, a microscopic model.

    python -m pytest tests/test_distributed.py        # about a minute and a half on 2 CPU cores

What they show:
- DDP and FSDP give the losses of one process with the same global batch, within fp32 rounding
  (TOLERANCE: only the order of the floating-point sums differs);
- a signal to one process stops them all after the same step, saves once, exits 0, and the run
  resumes bit for bit (DDP and FSDP);
- a sharded checkpoint resumes in one process, and a single-file one under FSDP;
- a process that fails stops the run in seconds, with its error printed once;
- sharded checkpoints generate, evaluate and consolidate in one process;
- and, without starting processes: the batch split, the choice between DDP and FSDP, the memory
  estimate and its warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from config import ModelConfig, load_config
from conftest import prepare_project
from data.dataset import TrainBatches
from errors import ConfigurationError, first_failure_of_the_run
from models.memory import gigabytes, training_memory
from models.presets import count_parameters, preset_config
from runtime import checkpoints
from runtime.distributed import World
from runtime.objectives import objective_for
from tokenizer.load import load_tokenizer
from training.parallelize import choose_parallelism

PROJECT = Path(__file__).resolve().parents[1]
# Relative difference allowed between the losses of 2 processes and of 1 (fp32): the gradients are
# averaged in a different order. Seen here: at most 2.2e-7 over 40 steps, DDP and FSDP alike
# (metrics.jsonl rounds losses to 6 decimals).
TOLERANCE = 1e-5

# Global batch 16 = batch_size 4 x gradient_accumulation 2 x 2 processes (one process: 8 x 2).
MICRO = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 96, "max_length": 32},
    "tokenizer": {"vocab_size": 320},
    "data": {"sample_size_mb": 0.3, "stride": 32},
    "training": {"batch_size": 4, "gradient_accumulation": 2, "max_steps": 12, "warmup_steps": 2,
                 "learning_rate": 3e-3, "min_lr": 3e-4, "eval_interval": 6, "eval_batches": 2,
                 "log_interval": 1, "threads": 1, "device": "cpu", "precision": "fp32",
                 # FSDP shards AdamW (t5's Adafactor runs under DDP only: its own test below)
                 "optimizer": "adamw"},
    "checkpoints": {"save_interval": 4, "save_total_limit": 5},
    "logging": {"progress_bar": False, "tensorboard": False},
}

# Run by torchrun instead of `-m training.train`: the real entry point plus one callback that acts
# on rank 1 only (what a pre-empted machine or a crash looks like).
RANK1_SCRIPT = """
import os, signal
import torch_env  # noqa: F401
from errors import TrainingError, run_cli
from training.callbacks.base import Callback
from training.train import main

class OnRank1(Callback):
    def on_step_end(self, trainer, metrics):
        if trainer.world.rank == 1 and trainer.step == {step}:
            {action}

run_cli(lambda argv: main(argv, extra_callbacks=[OnRank1()]))
"""
SIGTERM_ITSELF = "os.kill(os.getpid(), signal.SIGTERM)"
FAIL = "raise TrainingError('rank 1 broke on purpose', 'nothing to do')"


def environment() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    for name in ("CREATE_LLM_DEBUG", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    return env


def python(folder: Path, *args: str) -> subprocess.CompletedProcess:
    # TMPDIR: the first failure's marker file (errors.py) stays in the test's folder.
    return subprocess.run([sys.executable, *args], cwd=folder,
                          env={**environment(), "TMPDIR": str(folder)},
                          capture_output=True, text=True, timeout=600)


def torchrun(folder: Path, *args: str, script: str = "") -> subprocess.CompletedProcess:
    """`make train NPROC=2 ARGS=...`, or torchrun on a script of RANK1_SCRIPT's shape."""
    target = [script] if script else ["-m", "training.train"]
    return python(folder, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                  *target, *args)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def metrics(folder: Path) -> list[dict]:
    lines = (folder / "logs" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def losses(folder: Path, key: str = "loss") -> dict[int, float]:
    return {m["step"]: m[key] for m in metrics(folder) if key in m}


def assert_close(a: dict[int, float], b: dict[int, float], rtol: float = TOLERANCE) -> None:
    assert sorted(a) == sorted(b)
    np.testing.assert_allclose([a[s] for s in sorted(a)], [b[s] for s in sorted(b)], rtol=rtol)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_project(tmp_path_factory.mktemp("prepared"), MICRO, env=environment())


def copy(prepared: Path, folder: Path) -> Path:
    shutil.copytree(prepared, folder)
    return folder


@pytest.fixture(scope="module")
def one_process(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: one process with the global batch (batch_size 8)."""
    folder = copy(prepared, tmp_path_factory.mktemp("one") / "p")
    ok(python(folder, "-m", "training.train", "--training.batch_size", "8"))
    return folder


@pytest.fixture(scope="module")
def ddp(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = copy(prepared, tmp_path_factory.mktemp("ddp") / "p")
    out = ok(torchrun(folder, "--training.parallelism", "ddp"))
    assert "global batch 16 sequences = batch_size 4 x gradient_accumulation 2 x 2 processes" \
        in out
    return folder


@pytest.fixture(scope="module")
def fsdp(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = copy(prepared, tmp_path_factory.mktemp("fsdp") / "p")
    ok(torchrun(folder, "--training.parallelism", "fsdp"))
    return folder


# ---- the same training as one process ----


@pytest.mark.distributed
def test_ddp_and_fsdp_give_the_losses_of_one_process(one_process: Path, ddp: Path,
                                                      fsdp: Path) -> None:
    reference = losses(one_process)
    assert sorted(reference) == list(range(1, 13))
    for run in (ddp, fsdp):
        assert_close(losses(run), reference)
        assert_close(losses(run, "val_loss"), losses(one_process, "val_loss"))
    # DDP keeps single-file checkpoints; FSDP writes sharded ones.
    assert [p.name for _, p in checkpoints.list_step_checkpoints(ddp / "checkpoints")] == \
        ["step_000004.pt", "step_000008.pt", "step_000012.pt"]
    assert [p.name for _, p in checkpoints.list_step_checkpoints(fsdp / "checkpoints")] == \
        ["step_000004.dcp", "step_000008.dcp", "step_000012.dcp"]
    assert checkpoints.best_checkpoint(fsdp / "checkpoints").name == "best_000012.dcp"


@pytest.mark.distributed
@pytest.mark.parametrize("optimizer", ["adafactor", "muon"])
def test_adafactor_and_muon_train_under_ddp_like_one_process(prepared: Path, tmp_path: Path,
                                                             optimizer: str) -> None:
    """t5's optimizer and Muon: DDP hands every process the same averaged gradients, so their
    steps are one process's (FSDP cannot run them: test_auto_uses_ddp_while_...)."""
    adafactor = ("--training.optimizer", optimizer, "--training.learning_rate", "0.01",
                 "--training.min_lr", "0.001")
    one = copy(prepared, tmp_path / "one")
    ok(python(one, "-m", "training.train", "--training.batch_size", "8", *adafactor))
    two = copy(prepared, tmp_path / "two")
    ok(torchrun(two, "--training.parallelism", "ddp", *adafactor))
    assert sorted(losses(one)) == list(range(1, 13))
    # Muon orthogonalises each update in bf16 (torch.optim.Muon's Newton-Schulz steps): the last
    # bits by which DDP's summed gradients differ come out ~1e-5 relative after a few steps.
    assert_close(losses(two), losses(one), rtol=1e-4 if optimizer == "muon" else TOLERANCE)


# ---- stopping, resuming ----


@pytest.mark.distributed
@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_a_signal_to_one_process_stops_all_and_the_run_resumes_exactly(
        parallelism: str, prepared: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    uninterrupted = losses(request.getfixturevalue(parallelism))
    folder = copy(prepared, tmp_path / "p")
    (folder / "stop.py").write_text(RANK1_SCRIPT.format(step=5, action=SIGTERM_ITSELF))
    out = ok(torchrun(folder, "--training.parallelism", parallelism, script="stop.py"))
    # Rank 1 got SIGTERM after step 5: both stopped after step 5, saved it once, exited 0.
    assert out.count("Saved checkpoints/step_000005") == 1, out
    assert "Stopped at step 5" in out
    assert checkpoints.list_step_checkpoints(folder / "checkpoints")[-1][0] == 5

    ok(torchrun(folder, "--training.parallelism", parallelism, "--resume", "auto"))
    assert losses(folder) == uninterrupted  # bitwise: the same floats at every step


@pytest.mark.distributed
def test_sharded_resumes_in_one_process_and_one_file_under_fsdp(
        one_process: Path, fsdp: Path, tmp_path: Path) -> None:
    # FSDP, 2 processes -> 1 process (batch_size 8 keeps the global batch, hence the batches).
    folder = shutil.copytree(fsdp, tmp_path / "to-one")
    out = ok(python(folder, "-m", "training.train", "--resume", "checkpoints/step_000004.dcp",
                    "--training.batch_size", "8"))
    assert "trained by 2 process(es), this run has 1" in out
    assert_close(losses(folder), losses(fsdp))

    # One process -> FSDP, 2 processes (batch_size 4 each).
    folder = shutil.copytree(one_process, tmp_path / "to-two")
    out = ok(torchrun(folder, "--resume", "checkpoints/step_000004.pt",
                      "--training.parallelism", "fsdp", "--training.batch_size", "4"))
    assert "trained by 1 process(es), this run has 2" in out
    assert_close(losses(folder), losses(one_process))
    assert (folder / "checkpoints" / "step_000012.dcp").is_dir()


@pytest.mark.distributed
def test_a_failing_process_stops_the_run_with_one_error(prepared: Path, tmp_path: Path) -> None:
    """Rank 1 raises at step 3 of a run meant to last 100,000 steps: torchrun ends the run at
    once (no waiting for the process group's 10-minute timeout), and the error shows once."""
    folder = copy(prepared, tmp_path / "p")
    (folder / "fail.py").write_text(RANK1_SCRIPT.format(step=3, action=FAIL))
    result = torchrun(folder, "--training.max_steps", "100000", script="fail.py")
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines()
              if line.startswith("Error:")]
    assert errors == ["Error: rank 1 broke on purpose"], result.stdout + result.stderr


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie that nobody reaps has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.distributed
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG)")
def test_kill_9_of_torchrun_stops_its_processes_which_save_and_free_the_lock(
        prepared: Path, tmp_path: Path) -> None:
    """Issue 30: after `kill -9` of the launcher both ranks trained on as orphans, holding the
    project lock. Now they get SIGTERM from the kernel, stop after the same step and save."""
    from project_lock import project_lock

    folder = copy(prepared, tmp_path / "p")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "training.train", "--training.max_steps", "100000", "--training.eval_interval",
         "100000", "--checkpoints.save_interval", "100000"], cwd=folder,
        env={**environment(), "TMPDIR": str(folder), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers: list[int] = []
    try:
        lines = []
        for line in launcher.stdout:  # until the run is training (rank 0 prints each step)
            lines.append(line)
            if line.startswith("step      3/"):
                break
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
        workers = [int(pid) for pid in children.read_text().split()]
        assert len(workers) == 2, "".join(lines)
        launcher.kill()  # kill -9: torchrun can pass nothing on
        launcher.wait()
        deadline = time.monotonic() + 120
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers), "the processes outlived their launcher"
        output = "".join(lines) + launcher.stdout.read()  # (the workers held the pipe open)
    finally:
        for pid in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    # (Each process notices on its own: rank 0 tells of its SIGTERM, or of rank 1's stop.)
    stopped = re.search(r"Stopped at step (\d+) \((SIGTERM|stopped by another process)\)",
                        output)
    assert stopped, output
    step = int(stopped.group(1))
    saved = folder / "checkpoints" / f"step_{step:06d}.pt"
    assert checkpoints.verify_checkpoint(saved) is None and step >= 3
    with project_lock("a test", folder, run_folder=folder / "checkpoints"):
        pass  # free again


def test_the_first_failure_of_a_torchrun_job_is_the_only_one_printed(monkeypatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the marker file goes
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", f"test-{os.getpid()}-{id(monkeypatch)}")
    assert first_failure_of_the_run() is True
    assert first_failure_of_the_run() is False  # the other process of the same job
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert first_failure_of_the_run() is True  # one process: always


# ---- sharded checkpoints downstream ----


@pytest.mark.distributed
def test_sharded_checkpoints_generate_evaluate_and_consolidate(fsdp: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    from evaluation.evaluate import main as evaluate
    from training.consolidate import main as consolidate

    folder = fsdp / "checkpoints"
    sidecar = checkpoints.read_sidecar(folder / "step_000012.dcp")
    assert sidecar["step"] == 12 and sidecar["processes"] == 2
    assert {"trainer.pt", ".metadata", "__0_0.distcp", "__1_0.distcp"} <= set(sidecar["files"])

    sharded, info = checkpoints.load_trained_model("auto", folder)
    assert info["path"].endswith("best_000012.dcp") and info["step"] == 12

    work = shutil.copytree(fsdp, tmp_path / "p")
    monkeypatch.chdir(work)
    assert consolidate([]) == 0
    single, single_info = checkpoints.load_trained_model("checkpoints/consolidated/best.pt",
                                                         "checkpoints")
    state = single.state_dict()
    assert all(torch.equal(tensor, state[name]) for name, tensor in sharded.state_dict().items())
    full = checkpoints.load_checkpoint("checkpoints/consolidated/best.pt")
    assert full["step"] == 12 and len(full["optimizer"]["state"]) == len(list(single.parameters()))

    # What `make generate` does with each (greedy): gpt continues, bert and t5 fill in blanks.
    cfg = load_config("llm.config.js")
    objective = objective_for(cfg, single.config, load_tokenizer(cfg.tokenizer.path))
    greedy = dataclasses.replace(cfg.generation, temperature=0.0, max_new_tokens=12)
    assert objective.sample(sharded, cfg.generation.prompt, greedy, None) == \
        objective.sample(single, cfg.generation.prompt, greedy, None)
    assert evaluate(["--checkpoint", "best"]) == 0


@pytest.mark.distributed
def test_a_damaged_shard_is_skipped(fsdp: Path, tmp_path: Path, capsys) -> None:
    folder = shutil.copytree(fsdp / "checkpoints", tmp_path / "checkpoints")
    shard = folder / "step_000012.dcp" / "__1_0.distcp"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated, as by a full disk
    assert "__1_0.distcp has 100 bytes" in checkpoints.verify_checkpoint(shard.parent)
    assert checkpoints.latest_checkpoint(folder).name == "step_000008.dcp"
    assert "Skipping" in capsys.readouterr().out


# ---- without processes ----


def noisy_batch(windows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """An objective whose batches hold random choices too (as masking and span corruption do)."""
    return {"x": windows, "noise": rng.integers(0, 1000, size=windows.shape)}


@pytest.mark.parametrize("make_batch", [None, noisy_batch])
def test_each_process_reads_its_share_of_one_global_batch(make_batch) -> None:
    tokens = np.arange(10_000, dtype=np.uint16)
    whole = TrainBatches(tokens, 8, 17, seed=3, make_batch=make_batch)
    shares = [TrainBatches(tokens, 4, 17, seed=3, make_batch=make_batch, rank=r, world_size=2)
              for r in (0, 1)]
    for _ in range(3):
        batch = whole.next_batch()
        parts = [share.next_batch() for share in shares]
        for name, tensor in batch.items():
            assert torch.equal(torch.cat([part[name] for part in parts]), tensor), name
        assert not torch.equal(parts[0][next(iter(batch))], parts[1][next(iter(batch))])
    assert shares[0].state_dict() == shares[1].state_dict() == whole.state_dict()


TWO = World(rank=0, local_rank=0, size=2, local_size=2)
GB = 10**9


def test_auto_uses_ddp_while_a_copy_fits_and_fsdp_beyond(capsys) -> None:
    def needs(gb: float):
        return lambda parallelism: int(gb * GB)

    assert choose_parallelism("auto", TWO, "bf16", needs(30), 80 * GB) == "ddp"
    assert choose_parallelism("auto", TWO, "bf16", needs(75), 80 * GB) == "fsdp"
    assert choose_parallelism("auto", TWO, "bf16", needs(75), None) == "ddp"  # unknown memory
    assert choose_parallelism("fsdp", TWO, "fp32", needs(1), 80 * GB) == "fsdp"
    assert choose_parallelism("auto", World(), "bf16", needs(75), 80 * GB) == "none"
    assert choose_parallelism("fsdp", World(), "bf16", needs(1), 80 * GB) == "none"
    assert "this is one process" in capsys.readouterr().out
    with pytest.raises(ConfigurationError, match="each would train its own copy"):
        choose_parallelism("none", TWO, "bf16", needs(1), 80 * GB)
    with pytest.raises(ConfigurationError, match="fp16"):
        choose_parallelism("fsdp", TWO, "fp16", needs(1), 80 * GB)
    # torch's Adafactor (t5's optimizer) cannot update FSDP's shards: ddp, or a clear refusal.
    assert choose_parallelism("auto", TWO, "bf16", needs(30), 80 * GB, "adafactor") == "ddp"
    # Muon orthogonalises whole matrices, which FSDP's shards are not: the same.
    for optimizer in ("adafactor", "muon"):
        assert choose_parallelism("auto", TWO, "bf16", needs(30), 80 * GB, optimizer) == "ddp"
        for requested, gb in (("fsdp", 1), ("auto", 75)):
            with pytest.raises(ConfigurationError, match=f"'{optimizer}' cannot update sharded"):
                choose_parallelism(requested, TWO, "bf16", needs(gb), 80 * GB, optimizer)


def test_the_base_preset_has_1b_parameters_and_the_memory_arithmetic() -> None:
    base = preset_config("base", vocab_size=32000)
    params = count_parameters(base)
    assert 0.95e9 < params < 1.05e9
    one = training_memory(base, params, 4, "bf16", "ddp")
    assert one.weights == 4 * params and one.optimizer == 8 * params  # fp32 weights, 2 moments
    eight = training_memory(base, params, 4, "bf16", "fsdp", devices=8)
    assert eight.state == pytest.approx(one.state / 8, rel=1e-6)
    assert eight.total < one.total
    checkpointed = training_memory(base, params, 4, "bf16", "ddp", checkpointing=True)
    assert checkpointed.activations < 0.75 * one.activations  # the logits stay: not all of it


def test_a_model_too_big_for_the_device_is_named_with_the_fixes(make_tiny_config) -> None:
    from training.run import memory_warning

    cfg = make_tiny_config(**{"training.batch_size": 4})
    base = preset_config("base", vocab_size=32000)
    need = training_memory(base, count_parameters(base), 4, "bf16", "ddp")
    cuda = torch.device("cuda")
    assert memory_warning(need, 80 * GB, cfg, "ddp", World(), cuda) is None
    half = need.total // 2  # a GPU with half the memory the base preset needs
    warning = memory_warning(need, half, cfg, "ddp", World(), cuda)
    for fix in (f"this GPU has {gigabytes(half)} GB", "NPROC=", "fsdp", "training.batch_size",
                "gradient_checkpointing", "smaller preset"):
        assert fix in warning, warning


def test_one_process_starts_no_process_group(tiny_model_config: ModelConfig, tiny_tokenizer,
                                             make_tiny_config) -> None:
    from training.trainer import build_trainer

    cfg = make_tiny_config()
    tokens = np.arange(5000, dtype=np.uint16) % 256
    trainer = build_trainer(cfg, tiny_model_config, tokens, tokens, {}, torch.device("cpu"),
                            "fp32", tokenizer=tiny_tokenizer)
    trainer.train_step(lr=1e-3)
    assert trainer.forward_model is trainer.model and trainer.world.size == 1
    assert not torch.distributed.is_initialized()
