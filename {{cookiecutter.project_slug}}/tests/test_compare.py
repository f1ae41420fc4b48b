"""compare.py: models with different tokenizers are scored on the same bytes, the better one wins
by bits per byte, and the report (table, generations, PNG, Markdown, JSON) is complete.

    python -m pytest tests/test_compare.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compare import pick_winner, ranking, resolve_run, side_by_side, winner_line
from config import ARCHITECTURES, ModelConfig
from conftest import ARCHITECTURE, write_project_config
from errors import ConfigurationError
from models.presets import count_parameters
from runtime import checkpoints

OTHER_ARCHITECTURE = next(a for a in ARCHITECTURES if a != ARCHITECTURE)

PROJECT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 64, "max_length": 64},
    "data": {"sample_size_mb": 0.2, "stride": 64},
    "training": {"batch_size": 16, "warmup_steps": 3, "eval_batches": 2, "log_interval": 5,
                 "threads": 1, "precision": "fp32", "device": "cpu"},
    "logging": {"progress_bar": False},
}


def run_python(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Run this project's code (PYTHONPATH) inside another folder holding an llm.config.js."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)


def make_project(folder: Path, tokenizer: dict, steps: int, learning_rate: float) -> Path:
    """A project folder with its own tokenizer, data and a `steps`-step training run."""
    write_project_config(folder, TINY, {
        "tokenizer": tokenizer,
        "training": {"max_steps": steps, "eval_interval": max(1, steps // 2),
                     "learning_rate": learning_rate, "min_lr": learning_rate / 10},
        "checkpoints": {"save_interval": max(1, steps // 2)},
    })
    (folder / "data" / "raw").mkdir(parents=True)
    for module in ("tokenizer.train", "data.prepare", "training.train"):
        result = run_python(folder, "-m", module)
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`good`: bpe, 200 steps. `weak`: unigram with another vocabulary size, 4 steps.

    At 4 steps a model knows little more than how frequent each token is; unigram's longer
    pieces make that worth ~3.9 bits per byte, so `good` needs real training to beat it.
    """
    root = tmp_path_factory.mktemp("compare")
    vocab = 448 if ARCHITECTURE == "t5" else 320  # t5's 100 sentinels need room of their own
    good = make_project(root / "good", {"type": "bpe", "vocab_size": vocab}, 200, 1e-2)
    weak = make_project(root / "weak", {"type": "unigram", "vocab_size": vocab - 40}, 4, 3e-3)
    return good, weak


@pytest.mark.skipif(ARCHITECTURE != "gpt", reason="bits per byte: gpt's measure (bert and t5 "
                    "are ranked by loss, one tokenizer only: the test below)")
@pytest.mark.slow
def test_compare_two_tokenizers_names_the_better_model(projects: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    good, weak = projects
    step_file = sorted((good / "checkpoints").glob("step_*.pt"))[0]  # a file: its project's
    result = run_python(
        good, str(PROJECT / "compare.py"), str(weak), ".", str(step_file),
        "--prompt", "Once upon a time", "--prompt", "The dog", "--max-new-tokens", "12",
        "--plot", str(tmp_path / "curves.png"), "--markdown", str(tmp_path / "report.md"),
        "--json", str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    report = json.loads((tmp_path / "report.json").read_text())
    runs = {r["label"]: r for r in report["runs"]}
    assert set(runs) == {"weak", "good", f"good/{step_file.stem}"}
    assert runs["good"]["tokenizer"].startswith("bpe")
    assert runs["weak"]["tokenizer"].startswith("unigram")
    # The text was the first project's (weak's) validation split, scored by both tokenizers.
    assert report["text"]["source"] == "weak's validation split" and report["text"]["bytes"] > 0
    assert runs["good"]["eval_tokens"] != runs["weak"]["eval_tokens"]
    assert runs["good"]["steps"] == 200 and runs["weak"]["steps"] == 4
    assert runs["good"]["bits_per_byte"] < runs["weak"]["bits_per_byte"]
    assert report["winner"] == "good"
    for r in runs.values():
        assert r["parameters"] > 0 and r["tokens_seen"] > 0 and r["perplexity"] > 1
        assert r["generation_tokens_per_sec"] > 0
        assert r["generations"][0].startswith("Once upon a time")
        assert r["generations"][1].startswith("The dog")

    # The printed table and verdict.
    for column in ("parameters", "steps", "tokens seen", "val loss", "perplexity", "bits/byte",
                   "gen tok/s"):
        assert column in out
    assert "good *" in out and "Winner (*): good" in out
    assert "Prompt: 'Once upon a time'" in out and "Prompt: 'The dog'" in out

    # A real PNG that matplotlib reads back.
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[0] > 100

    markdown = (tmp_path / "report.md").read_text()
    assert "| run | parameters |" in markdown and "Winner (*): good" in markdown
    assert "![loss curves](curves.png)" in markdown and "## Prompt: The dog" in markdown


@pytest.mark.slow
def test_another_project_is_read_as_data_and_its_code_never_runs(projects: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    """Issue 30: `compare.py . ../other` ran ../other/compare.py (which could do anything, or
    hang). Another project is data: its config parsed, its checkpoint loaded with weights_only,
    its logs read. Here every file of its code would leave a marker and hang; and its model is
    of an architecture this project has no code for, so it is shown from its files alone."""
    good, weak = projects
    other = tmp_path / "other"
    shutil.copytree(weak, other)
    marker = tmp_path / "pwned"
    hostile = f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('ran')\n" \
        "time.sleep(600)\n"
    for name in ("compare.py", "config.py", "sitecustomize.py", "models/__init__.py",
                 "runtime/__init__.py"):
        (other / name).parent.mkdir(exist_ok=True)
        (other / name).write_text(hostile)
    best = other / "checkpoints" / "best.pt"
    state = checkpoints.load_checkpoint(best)
    state["model_config"]["architecture"] = OTHER_ARCHITECTURE
    facts = {k: v for k, v in checkpoints.read_sidecar(best).items()
             if k not in ("file", "size", "sha256", "saved_at", "format_version")}
    checkpoints.save_checkpoint(best, state, facts)
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    result = subprocess.run([sys.executable, str(PROJECT / "compare.py"), ".", str(other),
                             "--max-new-tokens", "4", "--no-plot", "--json",
                             str(tmp_path / "report.json")], cwd=good, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists(), "the other project's code ran"
    runs = {r["label"]: r for r in json.loads((tmp_path / "report.json").read_text())["runs"]}
    shown = runs["other"]
    assert shown["architecture"] == OTHER_ARCHITECTURE and shown["scored_here"] is False
    # Counted from its weights' shapes (the tied embedding once): what the model reports.
    assert shown["parameters"] == count_parameters(ModelConfig(**{**state["model_config"],
                                                                   "architecture": ARCHITECTURE}))
    assert shown["steps"] == state["step"] and shown["val_loss"] == pytest.approx(
        state["metrics"]["val_loss"])
    assert shown["generations"][0].startswith(
        f"(no generations: it is a {OTHER_ARCHITECTURE} model, and this project has the code of "
        f"{ARCHITECTURE} only; comparing never runs another project's code")
    assert runs["good"]["scored_here"] is True
    assert "Not ranked: other could not be scored on the same text here" in result.stdout
    assert f"{state['metrics']['val_loss']:.4f}+" in result.stdout  # its own numbers, marked


def test_the_winner_is_chosen_by_bits_per_byte_not_loss() -> None:
    # Same text, different tokenizers: "a" has the lower loss per token but uses many more
    # tokens for the text, so it needs more bits per byte.
    a = {"label": "a", "val_loss": 1.0, "bits_per_byte": 2.0, "objective": "next-token"}
    b = {"label": "b", "val_loss": 3.0, "bits_per_byte": 1.5, "objective": "next-token"}
    assert pick_winner([a, b]) is b
    assert pick_winner([a]) is None


def test_models_of_different_objectives_or_masks_are_never_ranked_by_loss() -> None:
    gpt = {"label": "g", "val_loss": 1.0, "bits_per_byte": 1.5, "objective": "next-token",
           "tokenizer_hash": "x"}
    bert = {"label": "b", "val_loss": 0.5, "bits_per_byte": None, "objective": "masked-lm",
            "tokenizer_hash": "x"}
    t5 = {**bert, "label": "t", "objective": "span-corruption"}
    key, why = ranking([gpt, bert, t5])
    assert key is None and pick_winner([gpt, bert, t5]) is None
    assert "different objectives (masked-lm, next-token, span-corruption)" in why
    assert "measure different tasks" in winner_line([gpt, bert, t5], None)
    other = {**bert, "label": "b2", "val_loss": 0.4, "tokenizer_hash": "y"}
    assert ranking([bert, other])[0] is None and "different tokenizers" in ranking(
        [bert, other])[1]  # they hide different tokens: not comparable
    same = {**other, "tokenizer_hash": "x"}
    assert pick_winner([bert, same]) is same  # one tokenizer: the same tokens hidden
    assert "validation masked-lm loss" in winner_line([bert, same], same)


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_run(str(tmp_path / "nope"))
    with pytest.raises(ConfigurationError, match="not a project folder"):
        resolve_run(str(tmp_path))
    result = run_python(tmp_path, str(PROJECT / "compare.py"))
    assert result.returncode == 1 and "Error: no models to compare" in result.stderr


def test_side_by_side_uses_columns_when_there_is_room() -> None:
    text = side_by_side(["a", "b"], ["one two three " * 8, "four\nfive"], width=100)
    first_line = text.splitlines()[0]
    assert first_line.startswith("a") and " b" in first_line
    assert all(len(line) <= 100 for line in text.splitlines())
    narrow = side_by_side(["a", "b"], ["x", "y"], width=40)
    assert narrow == "[a]\n  x\n\n[b]\n  y"


@pytest.mark.slow
@pytest.mark.skipif(ARCHITECTURE == "bert", reason="bert is not tuned to chat")
def test_a_tuned_project_is_compared_with_its_answer_accuracy(projects: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    """A project that ran `make finetune` is compared by its tuned model (as make chat uses it),
    with the share of held-out questions its tuning measured."""
    good, _ = projects
    tuned = tmp_path / "tuned"
    shutil.copytree(good, tuned)
    # The built-in instruction set (no data/finetune/): its held-out questions are scored.
    result = run_python(tuned, "-m", "training.finetune", "--finetune.max_steps", "4",
                        "--finetune.eval_interval", "4", "--finetune.batch_size", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "report.json"
    result = run_python(tuned, str(PROJECT / "compare.py"), ".", str(good), "--json", str(out),
                        "--max-new-tokens", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    rows = {Path(r["checkpoint"]).parent.name: r for r in report["runs"]}
    assert rows["finetune"]["label"] == "tuned (tuned)"
    assert rows["checkpoints"].get("answer_accuracy") is None  # the base model of `good`
    assert "answers" in result.stdout and "Answers (+)" in result.stdout
