"""The model's shape: a typed config, the size presets, and their parameter counts.

    python -m models.config --summary      # every preset and this project's model, with sizes

`ModelConfig` is the `model` section of llm.config.js (config.py reads the file into it). The one
value the file does not hold is `vocab_size`: it comes from the trained tokenizer, so code fills
it in (`dataclasses.replace(cfg.model, vocab_size=tokenizer.get_vocab_size())`) before building
the model.

Parameter counts are computed by building the real model on PyTorch's "meta" device (shapes only,
no memory), so the number printed is always the number the architecture has.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from errors import ConfigurationError

# Architectures with a file in models/architectures/. Add yours here when you add one.
ARCHITECTURES = ("gpt",)


@dataclass
class ModelConfig:
    architecture: str = "gpt"
    """Which file in models/architectures/ builds the model ('gpt': decoder-only, Llama-style)."""
    preset: str = "custom"
    """The size preset these numbers came from (informational only)."""
    layers: int = 4
    """Number of transformer blocks."""
    heads: int = 4
    """Attention (query) heads. dim / heads is the head size; it must be even for RoPE."""
    kv_heads: int = 4
    """Key/value heads. Equal to heads: plain multi-head attention; fewer: grouped-query attention
    (each k/v head is shared by heads / kv_heads query heads: a smaller KV cache)."""
    dim: int = 128
    """Model width: the size of every token's vector in the residual stream."""
    mlp_dim: int = 352
    """Hidden width of the SwiGLU feed-forward block (about 8/3 * dim)."""
    max_length: int = 256
    """Context length in tokens: the longest sequence the model sees at once."""
    dropout: float = 0.0
    """Dropout on attention weights and on each residual branch, in training only. 0 trains
    fastest and is best for short runs."""
    rope_theta: float = 10000.0
    """Base of the rotary position embedding frequencies."""
    norm_eps: float = 1e-5
    """Epsilon of every RMSNorm (written explicitly: torch's default differs from Llama's)."""
    tie_embeddings: bool = True
    """Use the token embedding matrix as the output projection too (saves vocab_size * dim)."""
    vocab_size: int = 0
    """Size of the tokenizer's vocabulary. Not in llm.config.js: filled in from the trained
    tokenizer. 0 means "not known yet"; the model refuses to be built with it."""

    def __post_init__(self) -> None:
        for key in ("layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length", "vocab_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigurationError(
                    f"model.{key} must be a whole number, got {value!r}",
                    f"write model.{key} as an integer, e.g. {key}: 4",
                )
            if value <= 0 and key != "vocab_size":
                raise ConfigurationError(
                    f"model.{key} must be > 0, got {value}",
                    f"set model.{key} to a positive number (see `python -m models.config "
                    "--summary` for sizes that work)",
                )
        if self.vocab_size < 0:
            raise ConfigurationError(
                f"model.vocab_size must be >= 0, got {self.vocab_size}",
                "leave it at 0: it is filled in from the trained tokenizer",
            )
        if self.architecture not in ARCHITECTURES:
            raise ConfigurationError(
                f"model.architecture is '{self.architecture}', but the available ones are: "
                f"{', '.join(ARCHITECTURES)}",
                "set architecture: 'gpt'",
            )
        if self.dim % self.heads:
            raise ConfigurationError(
                f"model.dim ({self.dim}) must be divisible by model.heads ({self.heads})",
                f"use heads = {max(1, self.dim // 64)} (a head size of 64) or another divisor "
                "of dim",
            )
        if self.head_dim % 2:
            raise ConfigurationError(
                f"model.heads ({self.heads}) gives an odd head size {self.head_dim} "
                "(dim / heads); rotary position embeddings need an even one",
                "choose heads so that dim / heads is even, e.g. a head size of 32 or 64",
            )
        if self.heads % self.kv_heads:
            raise ConfigurationError(
                f"model.kv_heads ({self.kv_heads}) must divide model.heads ({self.heads})",
                f"set kv_heads to {self.heads} (plain attention) or another divisor of heads",
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigurationError(
                f"model.dropout must be in [0, 1), got {self.dropout}",
                "use 0.0 for short runs, up to 0.2 for long runs on little data",
            )
        for key in ("rope_theta", "norm_eps"):
            if not getattr(self, key) > 0:
                raise ConfigurationError(
                    f"model.{key} must be > 0, got {getattr(self, key)}",
                    "use rope_theta: 10000.0 and norm_eps: 1e-5",
                )

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.dim // self.heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A preset's architecture, e.g. `ModelConfig.from_preset("tiny")`."""
        if name not in PRESETS:
            raise ConfigurationError(
                f"unknown preset '{name}'", f"use one of: {', '.join(PRESETS)}"
            )
        return cls(**{"preset": name, **PRESETS[name], **overrides})


# ---- EDIT HERE: the size presets ----
# Architecture numbers only; cookiecutter.json's `_presets` holds the same numbers plus training
# settings (keep the two equal). vocab_size is the preset's tokenizer.vocab_size. The targets are
# ~1M, ~10M, ~100M and ~1B parameters; `python -m models.config --summary` prints the real counts
# and tests/test_model.py keeps them within 10% of the targets.
PRESETS: dict[str, dict[str, int]] = {
    # ~1.07M: a 2-minute demo on a laptop CPU. Most of its weights are the embedding.
    "nano": dict(vocab_size=2048, dim=128, layers=4, heads=4, kv_heads=4, mlp_dim=352,
                 max_length=256),
    # ~10.1M: trains on a laptop CPU in about an hour.
    "tiny": dict(vocab_size=8192, dim=320, layers=6, heads=5, kv_heads=5, mlp_dim=864,
                 max_length=256),
    # ~100M: one GPU. Grouped-query attention (4 k/v heads for 12 query heads) keeps the KV
    # cache small, as in Llama 3 and SmolLM, and the count at 100M (12 k/v heads: 110M).
    "small": dict(vocab_size=32000, dim=768, layers=12, heads=12, kv_heads=4, mlp_dim=2048,
                  max_length=1024),
    # ~0.99B: a large GPU or several. TinyLlama's width and MLP, 18 layers.
    "base": dict(vocab_size=32000, dim=2048, layers=18, heads=16, kv_heads=16, mlp_dim=5632,
                 max_length=2048),
}
# What each preset is meant to reach, for the summary and the tests.
PRESET_TARGETS: dict[str, int] = {
    "nano": 1_000_000, "tiny": 10_000_000, "small": 100_000_000, "base": 1_000_000_000
}


def count_parameters(config: ModelConfig) -> int:
    """Exact number of trainable parameters (tied embeddings counted once).

    The model is built on the meta device: shapes without memory, so even the 1B preset takes
    milliseconds and no RAM.
    """
    import torch

    from models.architectures.gpt import GPT  # here: gpt.py imports this module

    with torch.device("meta"):
        model = GPT(config)
    return model.num_parameters()


def format_count(n: int) -> str:
    """1066112 -> '1.07M', 1009338368 -> '1.01B'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)


def _project_model() -> tuple[ModelConfig | None, str]:
    """This project's model (llm.config.js + the trained tokenizer's vocab), or why not."""
    try:
        from config import load_config

        cfg = load_config()
    except ImportError as error:
        return None, f"config loader not available ({error})"
    except ConfigurationError as error:
        return None, error.message
    vocab, source = cfg.tokenizer.vocab_size, "tokenizer.vocab_size"
    try:  # the trained tokenizer's real size, when there is one
        from tokenizers import Tokenizer

        vocab = Tokenizer.from_file(cfg.tokenizer.path).get_vocab_size()
        source = "trained tokenizer"
    except Exception:  # not trained yet: the configured size is close enough for a summary
        pass
    return dataclasses.replace(cfg.model, vocab_size=vocab), f"{cfg.path}, vocab from {source}"


def summary() -> str:
    """A table of the presets and this project's model."""
    header = f"{'':12}{'params':>8}{'layers':>8}{'dim':>7}{'heads':>7}{'kv':>5}{'mlp':>7}" \
             f"{'context':>9}{'vocab':>8}"
    rows = [header, "-" * len(header)]

    def row(name: str, c: ModelConfig) -> str:
        return (f"{name:12}{format_count(count_parameters(c)):>8}{c.layers:>8}{c.dim:>7}"
                f"{c.heads:>7}{c.kv_heads:>5}{c.mlp_dim:>7}{c.max_length:>9}{c.vocab_size:>8}")

    for name in PRESETS:
        rows.append(row(name, ModelConfig.from_preset(name)))
    project, where = _project_model()
    rows.append("")
    if project is None:
        rows.append(f"This project: not shown ({where})")
    else:
        rows.append(row("this project", project))
        rows.append(f"  ({where}; preset '{project.preset}')")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m models.config",
        description="Show the size presets and this project's model, with parameter counts.",
    )
    parser.add_argument("--summary", action="store_true",
                        help="print the table (also the default)")
    parser.parse_args(argv)
    print(summary())


if __name__ == "__main__":
    from errors import run_cli

    run_cli(main)
