"""The huggingface plugin against a fake Hub on this machine (conftest.FakeHub): training ends,
the model is exported and pushed; a missing repository id or token is said at the start and the
training still runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FakeHub, read_records, run_project_module

TOKEN = "hf_plugintokenthatmustneverbeprinted42"
PLUGIN = ("--plugins.enabled", "huggingface")


def train(folder: Path, hub: FakeHub, *args: str, token: str | None = TOKEN):
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(folder / ".hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1,localhost",
           "HF_TOKEN": token or ""}
    return run_project_module(folder, "training.train", *PLUGIN, *args, env=env)


def commits(hub: FakeHub) -> int:
    return sum("/commit/" in r["path"] for r in hub.requests)


def test_the_trained_model_is_pushed_when_training_ends(micro_project: Path,
                                                        fake_hub: FakeHub) -> None:
    result = train(micro_project, fake_hub, "--deployment.repo_id", "me/micro-llm")
    assert result.returncode == 0, result.stdout + result.stderr
    export = micro_project / "export" / "hf"
    sent = {name: content for name, content in fake_hub.files.items()}
    assert sent == {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(sent)
    assert fake_hub.created()["name"] == "micro-llm" and commits(fake_hub) == 1
    assert "pushing the trained model to me/micro-llm" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.slow
def test_push_on_best_pushes_during_training_too(micro_project: Path, fake_hub: FakeHub) -> None:
    result = train(micro_project, fake_hub, "--deployment.repo_id", "me/micro-llm",
                   "--huggingface.push_on_best", "true")
    assert result.returncode == 0, result.stdout + result.stderr
    bests = [r for r in read_records(micro_project)
             if r["type"] == "checkpoint" and r["kind"] == "best"]
    # each new best (or the newest of those that came during an upload), then the final push
    assert 2 <= commits(fake_hub) <= len(bests) + 1


@pytest.mark.slow
def test_without_a_repository_training_goes_on_and_nothing_is_sent(micro_project: Path,
                                                                   fake_hub: FakeHub) -> None:
    result = train(micro_project, fake_hub)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plugin 'huggingface' failed to start" in result.stderr
    assert "deployment.repo_id" in result.stderr
    assert result.stderr.count("Warning:") == 1
    assert (micro_project / "checkpoints" / "best.pt").exists() and fake_hub.requests == []


@pytest.mark.slow
def test_without_a_token_training_goes_on_and_nothing_is_sent(micro_project: Path,
                                                              fake_hub: FakeHub) -> None:
    result = train(micro_project, fake_hub, "--deployment.repo_id", "me/micro-llm", token=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no Hugging Face token" in result.stderr and "hf auth login" in result.stderr
    assert fake_hub.requests == []
