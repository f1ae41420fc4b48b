"""The size presets as model shapes and parameter counts, without torch: one source for all.

cookiecutter.json's `_presets` holds the numbers: each preset's values are gpt's, and its `bert`
and `t5` entries hold what differs for those architectures (their shapes, learning rates, ...).
This module turns a set of answers into the values the generated llm.config.js gets (a preset's
numbers for the chosen architecture, or the custom_* answers) and counts that model's
parameters. Its readers:
- cookiecutter, which renders llm.config.js and README.md with the filters below (cookiecutter.json
  names this module in `_extensions`; cookiecutter puts the template folder on sys.path);
- the create-llm wrapper, which loads this file for `--list-templates` and its summary;
- the tests, which check every count against the generated project's real model (built on
  torch's meta device), for every architecture, so the formulas cannot drift from the models.

Standard library and Jinja only (cookiecutter brings Jinja).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

ARCHITECTURES = ("gpt", "bert", "t5")
SHAPE_KEYS = ("layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length", "vocab_size")
CUSTOM_KEYS = ("layers", "heads", "dim", "vocab_size", "max_length")  # the custom_<key> answers
T5_BUCKETS = 32  # model.relative_attention_buckets of every t5 llm.config.js


def answer(answers: dict[str, Any], key: str, default: str) -> str:
    """An answer; for a choice not yet made (cookiecutter.json's list itself), its default,
    the first choice."""
    value = answers.get(key, default)
    return value[0] if isinstance(value, list) else value


# tokenizer "auto": each architecture's own kind (the others stay available)
DEFAULT_TOKENIZERS = {"gpt": "bpe", "bert": "wordpiece", "t5": "unigram"}


def tokenizer_type(answers: dict[str, Any]) -> str:
    """The tokenizer type the answers choose: "auto" is the architecture's own (gpt: bpe,
    bert: wordpiece, t5: unigram)."""
    chosen = answer(answers, "tokenizer", "auto")
    return DEFAULT_TOKENIZERS[answer(answers, "model", "gpt")] if chosen == "auto" else chosen


def custom_mlp_dim(dim: int, architecture: str = "gpt", variant: str = "") -> int:
    """Feed-forward width for a custom model. gpt (SwiGLU), t5 (gated GELU) and bert's
    ModernBERT (GeGLU): 8/3 * dim, the usual ratio for a gated block, rounded up to a multiple
    of 32 (efficient matrix sizes); the original BERT (variant 'bert'): 4 * dim, as in BERT."""
    if architecture == "bert" and variant == "bert":
        return 4 * dim
    return (dim * 8 // 3 + 31) // 32 * 32


def preset_values(answers: dict[str, Any]) -> dict[str, Any]:
    """Every value of the chosen preset for the chosen architecture (answers["model"]): gpt's
    numbers with the architecture's own entry on top."""
    preset = answers["_presets"][answer(answers, "preset", "tiny")]
    architecture = answer(answers, "model", "gpt")
    base = {key: value for key, value in preset.items() if key not in ARCHITECTURES}
    return {**base, **preset.get(architecture, {})}


def model_shape(answers: dict[str, Any]) -> dict[str, Any]:
    """The model that a set of answers gives: the preset's shape, or the custom_* answers (with
    plain multi-head attention and the rounded feed-forward width), and its "architecture".
    `answers` is cookiecutter's context: it holds `preset`, `model`, `_presets` and the custom_*
    answers. bert and t5 have no grouped-query attention: their kv_heads is heads."""
    architecture = answer(answers, "model", "gpt")
    if answer(answers, "preset", "tiny") != "custom":
        values = preset_values(answers)
        shape = {key: int(values[key]) for key in SHAPE_KEYS}
    else:
        sizes = {key: int(answers[f"custom_{key}"]) for key in CUSTOM_KEYS}
        variant = preset_values(answers).get("variant", "")
        shape = {**sizes, "kv_heads": sizes["heads"],
                 "mlp_dim": custom_mlp_dim(sizes["dim"], architecture, variant)}
    if architecture != "gpt":
        shape["kv_heads"] = shape["heads"]
    if architecture == "bert":  # which of bert's two encoders (the preset's: models/presets.json)
        shape["variant"] = preset_values(answers).get("variant", "bert")
    return {**shape, "architecture": architecture}


def parameter_count(shape: dict[str, Any]) -> int:
    """Parameters of the generated project's model of shape["architecture"] (default gpt)."""
    architecture = shape.get("architecture", "gpt")
    V, L, d, m = shape["vocab_size"], shape["layers"], shape["dim"], shape["mlp_dim"]
    if architecture == "bert" and shape.get("variant") == "modernbert":
        # models/architectures/bert.py, ModernBERT: the word embedding and its LayerNorm (no
        # biases anywhere but the decoder's); per layer the fused q/k/v and o projections,
        # GeGLU's Wi (2 x mlp_dim wide) and Wo, an attention norm (none in the first layer) and
        # an MLP norm; the final norm; the MLM head's dense and norm, and the decoder's bias.
        layer = 4 * d * d + 3 * d * m + 2 * d
        return V * d + d + (L * layer - d) + d + d * d + d + V
    if architecture == "bert":
        # models/architectures/bert.py, BERT: word, position and 2 token-type embeddings and their
        # LayerNorm; per layer q/k/v/o (with biases), 2 LayerNorms, dense up and down (with
        # biases); the MLM head's dense, LayerNorm and output bias (its matrix is the tied
        # word embedding).
        layer = 4 * (d * d + d) + 2 * d * m + m + d + 2 * 2 * d
        return V * d + shape["max_length"] * d + 2 * d + 2 * d + L * layer + d * d + d + 2 * d + V
    if architecture == "t5":
        # models/architectures/t5.py: the shared (tied) embedding; per encoder block q/k/v/o,
        # gated GELU's three matrices and 2 norms; per decoder block the same plus the
        # cross-attention's q/k/v/o and a third norm; a relative position bias (buckets x
        # heads) in each stack's first block, and each stack's final norm. No biases.
        encoder = 4 * d * d + 3 * d * m + 2 * d
        decoder = 8 * d * d + 3 * d * m + 3 * d
        return V * d + L * (encoder + decoder) + 2 * T5_BUCKETS * shape["heads"] + 2 * d
    # models/architectures/gpt.py: a tied embedding, then per block the q/k/v/o projections,
    # SwiGLU's gate/up/down and two RMSNorm weights, and a final RMSNorm. No biases.
    heads, kv_heads = shape["heads"], shape["kv_heads"]
    head_dim = d // heads
    attention = d * head_dim * (heads + 2 * kv_heads) + heads * head_dim * d
    block = attention + 3 * d * m + 2 * d
    return V * d + L * block + d


def format_count(n: int) -> str:
    """1066112 -> '1.07M', 10059840 -> '10.1M', 990453888 -> '990M', 1.2e9 -> '1.2B'."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            value = n / scale
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)


class PresetFilters(Extension):
    """`{{ cookiecutter | preset_values }}`, `{{ cookiecutter | model_shape }}`,
    `{{ shape | parameter_count | format_count }}`, `{{ cookiecutter | tokenizer_type }}`."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(preset_values=preset_values, model_shape=model_shape,
                                   parameter_count=parameter_count, format_count=format_count,
                                   tokenizer_type=tokenizer_type)
