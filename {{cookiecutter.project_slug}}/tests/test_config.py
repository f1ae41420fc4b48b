"""llm.config.js is read as data (never executed), typed, and checked with useful errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from config import add_config_arguments, config_from_args, load_config
from conftest import ARCHITECTURE
from errors import ConfigurationError

PROJECT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llm.config.js"
    path.write_text(text)
    return path


def edited(old: str, new: str) -> str:
    text = (PROJECT / "llm.config.js").read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def test_the_project_config_loads_with_types() -> None:
    cfg = load_config(PROJECT / "llm.config.js")
    assert cfg.model.architecture == ARCHITECTURE  # the one whose code this project has
    assert isinstance(cfg.training.learning_rate, float)
    assert isinstance(cfg.training.batch_size, int)
    # the token that ends every document: gpt's own, bert's [SEP], t5's </s>
    assert cfg.tokenizer.special_tokens[0] == {"gpt": "<|endoftext|>", "bert": "[SEP]",
                                               "t5": "</s>"}[ARCHITECTURE]
    assert cfg.model.dim % cfg.model.heads == 0


def test_overrides_are_typed(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--config", str(PROJECT / "llm.config.js"),
                              "--training.max_steps", "7", "--training.warmup_steps", "2",
                              "--training.compile", "true",
                              "--training.learning_rate", "2e-3"])
    cfg = config_from_args(args)
    assert cfg.training.max_steps == 7
    assert cfg.training.compile is True
    assert cfg.training.learning_rate == pytest.approx(2e-3)


def test_bad_override_type_names_the_flag() -> None:
    with pytest.raises(ConfigurationError, match="--training.max_steps"):
        load_config(PROJECT / "llm.config.js", {"training.max_steps": "lots"})


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, edited("max_steps:", "max_step:"))
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert "training.max_step" in info.value.message
    assert "line" in info.value.message
    assert "max_steps" in info.value.suggestion


def test_line_number_points_at_the_key(tmp_path: Path) -> None:
    text = edited("learning_rate:", "learning_rate: -1, //")
    path = write(tmp_path, text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "learning_rate: -1" in s)
    with pytest.raises(ConfigurationError, match=f"line {line} "):
        load_config(path)


def test_code_in_the_config_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = edited("model: {", f"evil: require('fs').writeFileSync('{marker}', 'x'),\n  model: {{")
    with pytest.raises(ConfigurationError, match="plain"):
        load_config(write(tmp_path, text))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("heads:", "heads: 7, //", "divisible"),
        ("learning_rate:", "learning_rate: 0, //", "learning_rate"),
        ("warmup_steps:", "warmup_steps: 999999, //", "warmup_steps"),
        ("batch_size:", "batch_size: 'big', //", "whole number"),
        ("training: {", "trainning: {", "trainning"),
        ("type: '", "type: 'sentencepiece', //'", "tokenizer.type"),
    ],
)
def test_impossible_values_are_refused(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, edited(old, new)))
    assert fragment in info.value.message
    assert info.value.suggestion


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_config(tmp_path / "nope.js")
    with pytest.raises(ConfigurationError, match="empty"):
        load_config(write(tmp_path, "  \n"))
