"""The one place that turns model.architecture into a model class.

    model = build_model(ModelConfig(architecture="bert", vocab_size=8192, ...))

Each architecture is one file in models/architectures/. A project made by create-llm keeps the
file of its own architecture only, so the imports below are inside the branches: a bert project
never imports gpt.py (it has none). Adding an architecture: its file, a branch here, its name in
config.ARCHITECTURES.
"""

from __future__ import annotations

import torch

from config import ModelConfig, available_architectures
from errors import ConfigurationError


def build_model(config: ModelConfig) -> torch.nn.Module:
    """A freshly initialised model of config.architecture (on the default device)."""
    if config.architecture not in available_architectures():
        raise ConfigurationError(
            f"this project has no code for a {config.architecture} model (models/architectures/"
            f"{config.architecture}.py); it has {', '.join(available_architectures()) or 'none'}",
            f"use a {config.architecture} project for it (`create-llm my-{config.architecture} "
            f"--model {config.architecture}`)")
    if config.architecture == "gpt":
        from models.architectures.gpt import GPT

        return GPT(config)
    if config.architecture == "bert":  # model.variant: ModernBERT's layer or the original's
        from models.architectures.bert import BERT, ModernBERT

        return ModernBERT(config) if config.variant == "modernbert" else BERT(config)
    from models.architectures.t5 import T5

    return T5(config)
