"""The predictor Replicate runs for a t5 model (copied to deploy/replicate/predict.py by `make
deploy ARGS="--target replicate"`): the exported model in model/ (a Hugging Face folder) writing
its output for an input; for a span-corruption model, each sentinel of the input
(<extra_id_0>, ...) followed by the text it guesses for it.

    cd deploy/replicate && cog predict -i prompt="The cat <extra_id_0> the mat."   # cog, Docker
    COG_PREDICT_TYPE_STUB=predict.py:Runner PORT=5000 python -m cog.server.http   # no Docker

It needs only cog, torch and transformers, never this project's code. The defaults of the
sampling inputs are the project's `generation` settings, read from model/generation_config.json.
"""

# No `from __future__ import annotations`: cog reads the inputs' types from the signature.
import json
from pathlib import Path

import torch
from cog import BaseRunner, Input
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

MODEL = Path(__file__).resolve().parent / "model"
DEFAULTS = json.loads((MODEL / "generation_config.json").read_text(encoding="utf-8"))


class Runner(BaseRunner):
    def setup(self, weights: str | None = None) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(MODEL)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(MODEL, dtype=torch.float32).eval()

    def run(
        self,
        prompt: str = Input(description="The input (with <extra_id_0> where text is missing)"),
        max_new_tokens: int = Input(default=DEFAULTS.get("max_new_tokens", 64), ge=1, le=4096,
                                    description="Longest output, in tokens"),
        temperature: float = Input(default=DEFAULTS.get("temperature", 0.0), ge=0.0, le=100.0,
                                   description="0 = greedy (always the likeliest token)"),
        top_k: int = Input(default=DEFAULTS.get("top_k", 50), ge=0,
                           description="Sample among the k likeliest tokens (0 = off)"),
        top_p: float = Input(default=DEFAULTS.get("top_p", 0.95), ge=0.000001, le=1.0,
                             description="Nucleus sampling: smallest set with this probability"),
    ) -> str:
        # (1, S), ending with </s>; at most the model's context (tokenizer's model_max_length)
        ids = self.tokenizer(prompt, return_tensors="pt", truncation=True).input_ids
        sampling = ({"do_sample": True, "temperature": temperature, "top_k": top_k,
                     "top_p": top_p} if temperature > 0 else {"do_sample": False})
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=max_new_tokens, repetition_penalty=1.0,
                                  **sampling)[0]  # starts with the decoder's start token
        keep = [t for t in out.tolist()[1:] if t not in (self.tokenizer.eos_token_id,
                                                           self.tokenizer.pad_token_id)]
        # Sentinels kept: they say which blank each span fills.
        return self.tokenizer.decode(keep, skip_special_tokens=False)
