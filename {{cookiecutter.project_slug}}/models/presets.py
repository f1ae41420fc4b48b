"""The size presets and their parameter counts.

    python -m models.presets      # make summary: every preset and this project's model

The presets come from models/presets.json, written from create-llm's cookiecutter.json when this
project was made (the same numbers the `create-llm` command shows): each preset's values are
gpt's, and its "bert" and "t5" entries hold what differs for those architectures. This project's
architecture is the one it has the code of (models/architectures/). Parameter counts are computed
by building the real model on PyTorch's "meta" device (shapes only, no memory), so the number
printed is always the number the architecture has (`create-llm --list-templates` shows the other
architectures' presets too).
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from config import ARCHITECTURES, ModelConfig, available_architectures
from errors import ConfigurationError, CreateLLMError
from models.build import build_model
from models.memory import memory_table

SHAPE_KEYS = ("layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length", "vocab_size")
# This project's architecture: the one whose file it has (create-llm keeps one; a checkout of
# the template has all three, and gpt comes first).
ARCHITECTURE = (available_architectures() or ("gpt",))[0]


def read_presets(architecture: str = ARCHITECTURE) -> dict[str, dict[str, Any]]:
    """Every preset with a fixed shape (not `custom`) for `architecture`, smallest first."""
    table = json.loads((Path(__file__).parent / "presets.json").read_text(encoding="utf-8"))
    shaped = {}
    for name, preset in table.items():
        if "layers" in preset:
            values = {key: value for key, value in preset.items() if key not in ARCHITECTURES}
            shaped[name] = {**values, **preset.get(architecture, {})}
            if architecture != "gpt":  # plain multi-head attention
                shaped[name]["kv_heads"] = shaped[name]["heads"]
    return dict(sorted(shaped.items(), key=lambda item: item[1]["target_params"]))


# The LoRA rank `make summary` shows for this project's model (litgpt's default; models/lora.py).
SUMMARY_LORA_RANK = 8
# name -> the whole preset: its shape, its training settings, target_params, hardware notes.
PRESETS: dict[str, dict[str, Any]] = read_presets()


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """A preset's model, e.g. `preset_config("tiny")` (vocab_size: its tokenizer.vocab_size)."""
    if name not in PRESETS:
        raise ConfigurationError(f"unknown preset '{name}'", f"use one of: {', '.join(PRESETS)}")
    shape = {key: PRESETS[name][key] for key in SHAPE_KEYS}
    if "variant" in PRESETS[name]:  # bert: which of its encoders
        shape["variant"] = PRESETS[name]["variant"]
    return ModelConfig(**{"architecture": ARCHITECTURE, "preset": name, **shape, **overrides})


def count_parameters(config: ModelConfig) -> int:
    """Exact number of trainable parameters (tied embeddings counted once).

    The model is built on the meta device: shapes without memory, so even the 1B preset takes
    milliseconds and no RAM.
    """
    with torch.device("meta"):
        model = build_model(config)
    return model.num_parameters()


def count_lora_parameters(config: ModelConfig, rank: int) -> tuple[int, int]:
    """(all parameters, trainable ones) of the model with LoRA adapters of this rank on its
    attention and MLP projections, counted on the meta device like count_parameters (gpt)."""
    from models.lora import apply_lora, trainable_parameters  # gpt projects only

    with torch.device("meta"):
        model = apply_lora(build_model(config), rank)
    return model.num_parameters(), trainable_parameters(model)


def _project_model() -> tuple[ModelConfig | None, str]:
    """This project's model (llm.config.js + the trained tokenizer's vocab), or why not."""
    from config import load_config  # only the summary needs the config file

    try:
        cfg = load_config()
    except ConfigurationError as error:
        return None, error.message
    vocab, source = cfg.tokenizer.vocab_size, "tokenizer.vocab_size"
    if Path(cfg.tokenizer.path).is_file():  # the trained tokenizer's real size
        from tokenizer.load import load_tokenizer

        try:
            vocab, source = load_tokenizer(cfg.tokenizer.path).get_vocab_size(), \
                "trained tokenizer"
        except CreateLLMError:  # unreadable: the configured size is close enough here
            pass
    return dataclasses.replace(cfg.model, vocab_size=vocab), f"{cfg.path}, vocab from {source}"


def summary() -> str:
    """A table of the presets and this project's model."""
    header = f"{'':12}{'params':>8}{'layers':>8}{'dim':>7}{'heads':>7}{'kv':>5}{'mlp':>7}" \
             f"{'context':>9}{'vocab':>8}"
    rows = [f"Presets of {ARCHITECTURE}, this project's architecture (`create-llm "
            "--list-templates` shows every architecture's):", "", header, "-" * len(header)]

    def row(name: str, c: ModelConfig) -> str:
        return (f"{name:12}{count_parameters(c) / 1e6:>7.2f}M{c.layers:>8}{c.dim:>7}"
                f"{c.heads:>7}{c.kv_heads:>5}{c.mlp_dim:>7}{c.max_length:>9}{c.vocab_size:>8}")

    for name in PRESETS:
        rows.append(row(name, preset_config(name)))
    project, where = _project_model()
    rows.append("")
    if project is None:
        rows.append(f"This project: not shown ({where})")
    else:
        rows.append(row("this project", project))
        rows.append(f"  ({where}; preset '{project.preset}')")
        lora = count_lora_parameters(project, SUMMARY_LORA_RANK) \
            if project.architecture == "gpt" else None
        if lora is not None:
            total, trainable = lora
            rows.append(f"  with LoRA rank {SUMMARY_LORA_RANK} (models/lora.py): "
                        f"{trainable / 1e6:.2f}M trainable of {total / 1e6:.2f}M "
                        f"({100 * trainable / total:.1f}%): adapters on q/k/v/o, gate/up/down")
    memory = {name: (preset_config(name), count_parameters(preset_config(name)),
                     PRESETS[name]["batch_size"]) for name in PRESETS}
    if project is not None:
        memory["this project"] = (project, count_parameters(project), _project_batch_size())
        if lora is not None:
            memory[f"+ LoRA r={SUMMARY_LORA_RANK}"] = (project, lora[0], _project_batch_size(),
                                                       lora[1])
    return "\n".join([*rows, "", *memory_table(memory, _masked_share())])


def _project_batch_size() -> int:
    from config import load_config

    return load_config().training.batch_size


def _masked_share() -> float | None:
    """bert: the share of positions its MLM head runs on (objective.mask_probability)."""
    if ARCHITECTURE != "bert":
        return None
    from config import load_config

    try:
        return load_config().objective.mask_probability
    except ConfigurationError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m models.presets",
        description="Show the size presets and this project's model, with parameter counts.",
    )
    parser.parse_args(argv)
    print(summary())


if __name__ == "__main__":
    from errors import run_cli

    run_cli(main)
