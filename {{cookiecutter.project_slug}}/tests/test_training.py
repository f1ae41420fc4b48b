"""Training end to end on a microscopic config: the loss falls, checkpoints are safe, and a
resumed run is bit-for-bit the same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from config import load_config
from conftest import ARCHITECTURE, StopAt, prepare_project
from errors import TrainingError
from runtime import checkpoints
from training.optimizer import lr_at

PROJECT = Path(__file__).resolve().parents[1]

# 2 layers, width 32, vocab ~300, context 32: trains in seconds on 2 CPU cores.
TINY = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 96, "max_length": 32},
    "tokenizer": {"vocab_size": 320},
    "data": {"sample_size_mb": 0.3, "stride": 32},
    "training": {"batch_size": 8, "max_steps": 40, "warmup_steps": 5, "learning_rate": 3e-3,
                 "min_lr": 3e-4, "eval_interval": 20, "eval_batches": 4, "log_interval": 1,
                 "threads": 1, "precision": "fp32"},
    "checkpoints": {"save_interval": 10, "save_total_limit": 2},
    "logging": {"progress_bar": False},
}


def run_module(module: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with llm.config.js, a trained tokenizer and prepared data (built-in corpus)."""
    return prepare_project(tmp_path_factory.mktemp("project"), TINY)


@pytest.fixture
def project(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the prepared folder, as the working directory."""
    folder = tmp_path / "run"
    subprocess.run(["cp", "-r", str(prepared), str(folder)], check=True)
    monkeypatch.chdir(folder)
    return folder


def train(*args: str, callbacks: list | None = None) -> int:
    from training.train import main

    return main(list(args), extra_callbacks=callbacks)


def metrics(folder: Path) -> list[dict]:
    lines = (folder / "logs" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def train_losses(folder: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in metrics(folder) if "loss" in m}


def test_loss_falls_on_the_built_in_corpus(project: Path) -> None:
    assert train() == 0
    losses = train_losses(project)
    evals = [m for m in metrics(project) if "val_loss" in m]
    first, last = sum(list(losses.values())[:5]) / 5, sum(list(losses.values())[-5:]) / 5
    # 40 steps: a next-token loss falls fastest (every token is a target; bert scores 15%)
    assert last < first - {"gpt": 1.0, "bert": 0.3, "t5": 0.5}[ARCHITECTURE], (first, last)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] + 1e-9
    if ARCHITECTURE == "gpt":  # (bert and t5 measure other things: tests/test_bert.py, ...)
        assert 0 < evals[-1]["val_bpb"] < 8
    assert (project / "checkpoints" / "best.pt").exists()
    # save_total_limit 2: only the two newest step checkpoints remain
    assert [s for s, _ in checkpoints.list_step_checkpoints(project / "checkpoints")] == [30, 40]


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_equals_an_uninterrupted_run(project: Path, tmp_path: Path, optimizer: str) -> None:
    other = tmp_path / "other"
    subprocess.run(["cp", "-r", str(project), str(other)], check=True)
    chosen = ("--training.optimizer", optimizer)

    assert train(*chosen) == 0
    uninterrupted = train_losses(project)

    os.chdir(other)
    assert train(*chosen, callbacks=[StopAt(17)]) == 0  # stops after step 17 and saves
    saved = [s for s, _ in checkpoints.list_step_checkpoints(other / "checkpoints")]
    assert saved[-1] == 17
    assert train("--resume", "auto", *chosen) == 0
    resumed = train_losses(other)

    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, 41))
    assert resumed == uninterrupted  # bitwise: the same floats at every step


def test_a_second_run_never_overwrites_the_first(project: Path) -> None:
    assert train("--training.max_steps", "10") == 0
    with pytest.raises(TrainingError, match="already holds a training run"):
        train("--training.max_steps", "10")
    assert train("--training.max_steps", "10", "--fresh") == 0
    assert list((project / "checkpoints" / "previous").glob("*/step_000010.pt"))


def test_a_fresh_run_moves_only_what_a_run_wrote(project: Path) -> None:
    """--fresh sets the earlier run aside; a user's own files beside the checkpoints stay."""
    assert train("--training.max_steps", "10") == 0
    folder = project / "checkpoints"
    (folder / "notes.txt").write_text("my notes")
    (folder / "mine").mkdir()
    (folder / "mine" / "step_000010.pt").write_text("not a run's file: inside a folder of mine")
    (folder / "best.pt.txt").write_text("a name close to a run's file")
    written = {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
               } - {"notes.txt", "best.pt.txt"}  # (.llm.lock: who holds the folder's lock)
    assert {"step_000010.pt", "step_000010.json", "best.pt", "best.json"} <= written
    assert train("--training.max_steps", "10", "--fresh") == 0
    archive = next((folder / "previous").iterdir())
    assert {p.name for p in archive.iterdir()} == written | {"metrics.jsonl", "tensorboard"}
    assert (folder / "notes.txt").read_text() == "my notes"
    assert (folder / "best.pt.txt").is_file() and (folder / "mine" / "step_000010.pt").is_file()


def test_resume_refuses_another_architecture(project: Path) -> None:
    assert train("--training.max_steps", "10") == 0
    with pytest.raises(TrainingError, match="model.layers"):
        train("--resume", "auto", "--model.layers", "3", "--training.max_steps", "20")


def test_resume_refuses_another_optimizer(project: Path) -> None:
    assert train("--training.max_steps", "10", "--training.optimizer", "muon") == 0
    with pytest.raises(TrainingError, match="training.optimizer 'muon'"):
        train("--resume", "auto", "--training.optimizer", "adamw", "--training.max_steps", "20")


def test_corrupt_checkpoint_is_skipped_on_resume(project: Path, capsys) -> None:
    assert train("--training.max_steps", "20") == 0
    newest = project / "checkpoints" / "step_000020.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a full disk
    assert train("--resume", "auto", "--training.max_steps", "20") == 0
    out = capsys.readouterr().out
    assert "Skipping" in out and "step_000020.pt" in out
    assert "Resuming from" in out and "step_000010.pt" in out


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "step_000001.pt"
    # (what load_checkpoint takes as a checkpoint of this project: weights, model_config, step)
    checkpoints.save_checkpoint(path, {"model": {"w": torch.ones(3)}, "model_config": {},
                                       "step": 1}, {"step": 1})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(TrainingError, match="No space left"):
        checkpoints.save_checkpoint(path, {"model": {"w": torch.zeros(3)}}, {"step": 2})
    assert checkpoints.verify_checkpoint(path) is None
    assert torch.equal(checkpoints.load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert not list(tmp_path.glob(".*tmp*"))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(TrainingError, match="refused"):
        checkpoints.load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_warmup_then_cosine() -> None:
    cfg = load_config(PROJECT / "llm.config.js").training
    cfg.warmup_steps, cfg.max_steps, cfg.learning_rate, cfg.min_lr = 10, 110, 1.0, 0.1
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)
