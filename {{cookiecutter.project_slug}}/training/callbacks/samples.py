"""A short sample after each evaluation, so the logs (and the dashboard) show what the model does
as it learns, not only its loss.

The sample is logged as a {"type": "sample", "step", "prompt", "text", "continues"} record:
`text` is the model's answer to generation.prompt, from its objective (runtime/objectives.py): gpt
continues the prompt (text is the continuation: "continues" is true); bert gives it back with each
[MASK] filled in; t5 with each <extra_id_N> span filled in ("continues" is false). It uses its own
random generator with a fixed seed, so the same randomness is used at every evaluation (changes
come from the model, not the dice) and the training run's random state is untouched: a resumed
run stays bit for bit the same as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from config import Config
from training.callbacks.base import Callback


class SampleCallback(Callback):
    def __init__(self, cfg: Config) -> None:
        self.prompt = cfg.generation.prompt
        self.settings = dataclasses.replace(cfg.generation,
                                            max_new_tokens=cfg.logging.sample_tokens)
        self.seed = cfg.training.seed

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        generator = torch.Generator(device=trainer.device).manual_seed(self.seed)
        # The plain model (not a torch.compile wrapper): generation runs other shapes.
        text = trainer.objective.sample(trainer.model, self.prompt, self.settings, generator)
        trainer.log({"type": "sample", "step": trainer.step, "prompt": self.prompt,
                     "text": text, "continues": trainer.objective.continues_prompt})
