"""A short generation after each evaluation, so the logs (and the dashboard) show what the model
writes as it learns, not only its loss.

The sample is logged as a {"type": "sample", "step", "prompt", "text"} record. It uses its own
random generator with a fixed seed, so the same randomness is used at every evaluation (changes
come from the model, not the dice) and the training run's random state is untouched: a resumed
run stays bit for bit the same as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from config import Config
from runtime.sampling import generate_tokens
from tokenizer.load import eot_id, load_tokenizer
from training.callbacks.base import Callback


class SampleCallback(Callback):
    def __init__(self, cfg: Config) -> None:
        self.tokenizer = load_tokenizer(cfg.tokenizer.path)
        self.eot = eot_id(self.tokenizer, cfg.tokenizer)
        self.prompt = cfg.generation.prompt
        self.settings = dataclasses.replace(cfg.generation,
                                            max_new_tokens=cfg.logging.sample_tokens)
        self.seed = cfg.training.seed

    def on_evaluate(self, trainer: Any, metrics: dict[str, Any]) -> None:
        ids = self.tokenizer.encode(self.prompt, add_special_tokens=False).ids or [self.eot]
        generator = torch.Generator(device=trainer.device).manual_seed(self.seed)
        # The plain model (not a torch.compile wrapper): generation runs other shapes.
        new = list(generate_tokens(trainer.model, ids, self.settings, stop_ids=(self.eot,),
                                   generator=generator))
        trainer.log({"type": "sample", "step": trainer.step, "prompt": self.prompt,
                     "text": self.tokenizer.decode(new)})
