"""The predictor Replicate runs (copied to deploy/replicate/predict.py by `make deploy ARGS=
"--target replicate"`): the exported model in model/ (a Hugging Face folder) continuing a prompt,
or, tuned (make finetune), answering a conversation through its chat template, streamed as it is
generated.

    cd deploy/replicate && cog predict -i prompt="Once upon a time"     # needs cog and Docker
    cog predict -i messages='[{"role": "user", "content": "Hello!"}]'  # a tuned model
    COG_PREDICT_TYPE_STUB=predict.py:Runner PORT=5000 python -m cog.server.http   # no Docker

It needs only cog, torch and transformers, never this project's code. The defaults of the
sampling inputs are the project's `generation` settings, read from model/generation_config.json.
"""

# No `from __future__ import annotations`: cog reads the inputs' types from the signature.
import json
from pathlib import Path
from threading import Thread

import torch
from cog import BaseRunner, ConcatenateIterator, Input
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

MODEL = Path(__file__).resolve().parent / "model"
DEFAULTS = json.loads((MODEL / "generation_config.json").read_text(encoding="utf-8"))
CONTEXT = json.loads((MODEL / "config.json").read_text(encoding="utf-8"))[
    "max_position_embeddings"]


class Runner(BaseRunner):
    def setup(self, weights: str | None = None) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(MODEL)
        self.model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()

    def run(
        self,
        prompt: str = Input(default="", description="Text for the model to continue"),
        messages: str = Input(default="", description='A conversation to answer, as JSON: '
                              '[{"role": "user", "content": "..."}] (tuned models; it goes '
                              "through the model's chat template). Empty: continue the prompt"),
        max_new_tokens: int = Input(default=DEFAULTS.get("max_new_tokens", 200), ge=1,
                                    le=CONTEXT - 1, description="How many tokens to generate"),
        temperature: float = Input(default=DEFAULTS.get("temperature", 0.8), ge=0.0, le=100.0,
                                   description="0 = greedy (always the likeliest token)"),
        top_k: int = Input(default=DEFAULTS.get("top_k", 50), ge=0,
                           description="Sample among the k likeliest tokens (0 = off)"),
        top_p: float = Input(default=DEFAULTS.get("top_p", 0.95), ge=0.000001, le=1.0,
                             description="Nucleus sampling: smallest set with this probability"),
    ) -> ConcatenateIterator[str]:
        eos = self.tokenizer.eos_token_id
        stop = DEFAULTS.get("eos_token_id", eos)  # a tuned model's end of turn, then eos
        if messages:
            if not self.tokenizer.chat_template:
                raise ValueError("this model was not tuned to chat (it has no chat template): "
                                 "give a prompt to continue instead")
            conversation = json.loads(messages)
            ids = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True,
                                                     return_dict=True,
                                                     return_tensors="pt")["input_ids"]
        else:
            ids = self.tokenizer(prompt, return_tensors="pt").input_ids  # (1, T), no bos added
        if ids.shape[1] == 0:  # an empty prompt: start a new document
            ids = torch.tensor([[eos]])
        max_new_tokens = min(max_new_tokens, CONTEXT - 1)
        ids = ids[:, -(CONTEXT - max_new_tokens):]  # the prompt's end, if it is too long
        sampling = ({"do_sample": True, "temperature": temperature, "top_k": top_k,
                     "top_p": top_p} if temperature > 0 else {"do_sample": False})
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                        skip_special_tokens=True)
        # generate() runs in a thread and hands text to the streamer as it goes: each piece is
        # sent to the client as soon as it exists.
        thread = Thread(target=self.model.generate, kwargs={
            "input_ids": ids, "attention_mask": torch.ones_like(ids), "streamer": streamer,
            "max_new_tokens": max_new_tokens, "eos_token_id": stop, "pad_token_id": eos,
            "repetition_penalty": 1.0, **sampling})
        thread.start()
        for text in streamer:
            if text:
                yield text
        thread.join()
