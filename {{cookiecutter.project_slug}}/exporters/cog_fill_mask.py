"""The predictor Replicate runs for a bert model (copied to deploy/replicate/predict.py by `make
deploy ARGS="--target replicate"`): the exported model in model/ (a Hugging Face folder) filling
in the [MASK] tokens of a text, with the likeliest candidates for each.

    cd deploy/replicate && cog predict -i text="The [MASK] sat on the mat."    # cog and Docker
    COG_PREDICT_TYPE_STUB=predict.py:Runner PORT=5000 python -m cog.server.http   # no Docker

It needs only cog, torch and transformers (its fill-mask pipeline), never this project's code.
"""

# No `from __future__ import annotations`: cog reads the inputs' types from the signature.
from pathlib import Path

import torch
from cog import BaseModel, BaseRunner, Input
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

MODEL = Path(__file__).resolve().parent / "model"


class Candidate(BaseModel):
    mask: int  # which [MASK] of the text (0 = the first)
    token: str
    score: float  # the model's probability for it
    sequence: str  # the text with this candidate in place of that mask


class Runner(BaseRunner):
    def setup(self, weights: str | None = None) -> None:
        tokenizer = AutoTokenizer.from_pretrained(MODEL)
        model = AutoModelForMaskedLM.from_pretrained(MODEL, dtype=torch.float32).eval()
        self.fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
        self.mask = tokenizer.mask_token

    def run(
        self,
        text: str = Input(description="Text with [MASK] where a word is missing"),
        top_k: int = Input(default=5, ge=1, le=100, description="Candidates for each [MASK]"),
    ) -> list[Candidate]:
        if self.mask not in text:
            raise ValueError(f"the text has no {self.mask}: put one where a word is missing")
        found = self.fill(text, top_k=top_k)
        per_mask = found if text.count(self.mask) > 1 else [found]  # one list per mask
        return [Candidate(mask=i, token=c["token_str"], score=float(c["score"]),
                          sequence=c["sequence"])
                for i, candidates in enumerate(per_mask) for c in candidates]
