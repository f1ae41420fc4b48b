"""The size presets as model shapes and parameter counts, without torch: one source for all.

cookiecutter.json's `_presets` holds the numbers. This module turns a set of answers into the
model shape that the generated llm.config.js gets (a preset's numbers, or the custom_* answers)
and counts that model's parameters. Its readers:
- cookiecutter, which renders llm.config.js and README.md with the filters below (cookiecutter.json
  names this module in `_extensions`; cookiecutter puts the template folder on sys.path);
- the create-llm wrapper, which loads this file for `--list-templates` and its summary;
- the tests, which check every count against the generated project's real model (built on
  torch's meta device), so the formula cannot drift from the architecture.

Standard library and Jinja only (cookiecutter brings Jinja).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

SHAPE_KEYS = ("layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length", "vocab_size")
CUSTOM_KEYS = ("layers", "heads", "dim", "vocab_size", "max_length")  # the custom_<key> answers


def custom_mlp_dim(dim: int) -> int:
    """SwiGLU hidden width for a custom model: 8/3 * dim (the usual ratio) rounded up to a
    multiple of 32, which keeps matrix multiplications on efficient sizes."""
    return (dim * 8 // 3 + 31) // 32 * 32


def model_shape(answers: dict[str, Any]) -> dict[str, int]:
    """The model sizes that a set of answers gives: the preset's, or the custom_* answers (with
    plain multi-head attention and the rounded SwiGLU width). `answers` is cookiecutter's
    context: it holds `preset`, `_presets` and the custom_* answers."""
    preset = answers["preset"]
    if preset != "custom":
        return {key: int(answers["_presets"][preset][key]) for key in SHAPE_KEYS}
    sizes = {key: int(answers[f"custom_{key}"]) for key in CUSTOM_KEYS}
    return {**sizes, "kv_heads": sizes["heads"], "mlp_dim": custom_mlp_dim(sizes["dim"])}


def parameter_count(shape: dict[str, int]) -> int:
    """Parameters of the generated project's GPT (models/architectures/gpt.py): a tied embedding,
    then per block the q/k/v/o projections, SwiGLU's gate/up/down and two RMSNorm weights, and a
    final RMSNorm. No biases."""
    dim, heads, kv_heads = shape["dim"], shape["heads"], shape["kv_heads"]
    head_dim = dim // heads
    attention = dim * head_dim * (heads + 2 * kv_heads) + heads * head_dim * dim
    block = attention + 3 * dim * shape["mlp_dim"] + 2 * dim
    return shape["vocab_size"] * dim + shape["layers"] * block + dim


def format_count(n: int) -> str:
    """1066112 -> '1.07M', 10059840 -> '10.1M', 990453888 -> '990M', 1.2e9 -> '1.2B'."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            value = n / scale
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)


class PresetFilters(Extension):
    """`{{ cookiecutter | model_shape }}`, `{{ shape | parameter_count | format_count }}`."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(model_shape=model_shape, parameter_count=parameter_count,
                                   format_count=format_count)
