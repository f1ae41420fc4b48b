"""What each architecture learns from, how it is scored, and what a short sample of its work
looks like: the one place that asks which architecture a model is, for training and evaluation.

    objective = objective_for(cfg, model_config, tokenizer)
    batches = TrainBatches(tokens, batch_size, objective.window, seed, objective.make_batch)
    metrics = objective.evaluate(model, val_tokens, batch_size=16, max_batches=20, device=cpu)
    text = objective.sample(model, cfg.generation.prompt, cfg.generation, generator)

- gpt, "next-token": every position predicts the token after it (data/dataset.py); scored by the
  loss over strided windows that see every validation token once, its perplexity and bits per
  byte (runtime/metrics.py); its sample continues the prompt (runtime/sampling.py).
- bert, "masked-lm": [CLS] + a window, with mask_probability of its tokens hidden
  (data/masked_lm.py); scored by the loss and accuracy on the hidden tokens of fixed windows,
  hidden the same way at every evaluation (runtime/fill_mask.py); its sample fills the
  prompt's [MASK]s.
- t5, "span-corruption": spans cut out of a window, the model writes them back
  (data/span_corruption.py); scored by the loss of the output given the true tokens before it,
  and the share of spans it writes exactly right on its own (runtime/seq2seq.py); its sample
  fills the prompt's <extra_id_N> sentinels.

Losses of different objectives measure different things (compare.py refuses to rank them).
The trainer calls `model(**batch)` and `objective.evaluate(...)`: it never asks which one it has.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from config import BERT_SPECIAL_TOKENS, Config, GenerationConfig, ModelConfig
from data.dataset import MakeBatch, ShortFirst, as_tensors, fixed_windows, next_token_batch
from tokenizer.load import eot_id, load_tokenizer, pad_token, special_ids, special_token_id

EVAL_SEED = 0  # the hidden tokens of every evaluation, in every project: comparable numbers


@dataclass(frozen=True)
class Objective:
    name: str
    """'next-token', 'masked-lm' or 'span-corruption'."""
    window: int | ShortFirst
    """Tokens of train.bin in one training sequence (TrainBatches' window); for bert and t5
    with objective.short_sequence_length, a ShortFirst: shorter ones first."""
    tokens_per_row: int
    """Tokens of text one sequence trains on (what `tokens_seen` counts)."""
    make_batch: MakeBatch | None
    """Windows (B, window) and a random generator -> the model's keyword arguments (None for
    instruction tuning, whose batches are whole conversations: data/finetune.py)."""
    evaluate: Callable[..., dict[str, float]]
    """evaluate(model, tokens, batch_size, max_batches, device, autocast_ctx=..., text_size=...,
    forward_batch_size=...) -> {"val_loss", ... other val_* metrics, "scored_tokens"}; text_size
    = (tokens, bytes) of the text, for bits per byte (gpt); forward_batch_size: run the model on
    at most that many rows at a time (the same data and numbers as batch_size)."""
    sample: Callable[[torch.nn.Module, str, GenerationConfig, torch.Generator | None], str]
    """sample(model, prompt, settings, generator) -> the model's answer to the prompt: gpt's
    continuation of it; bert's and t5's, the prompt with its blanks filled in."""
    continues_prompt: bool
    """True when `sample` writes what comes after the prompt (show prompt + answer)."""


def objective_for(cfg: Config, model_config: ModelConfig,
                  tokenizer: Tokenizer | None = None) -> Objective:
    """The objective of model_config.architecture. The tokenizer (cfg.tokenizer.path when not
    given) gives bert and t5 their special tokens, checked here: DataError names a missing one.
    gpt needs it only for samples, and loads it then."""
    architecture = model_config.architecture
    if architecture == "gpt":
        return _next_token(cfg, model_config, tokenizer)
    if tokenizer is None:
        tokenizer = load_tokenizer(cfg.tokenizer.path)
    if architecture == "bert":
        return _masked_lm(cfg, model_config, tokenizer)
    return _span_corruption(cfg, model_config, tokenizer)


def fixed_batches(tokens: np.ndarray, window: int, make_batch: MakeBatch, batch_size: int,
                  max_batches: int | None, forward_batch_size: int | None = None
                  ) -> Iterator[dict[str, torch.Tensor]]:
    """The evaluation batches of bert and t5: the first windows of the split (shorter ones for
    a text shorter than a window), with the objective's random choices from EVAL_SEED, made
    batch_size windows at a time and handed out forward_batch_size rows at a time."""
    rng = np.random.Generator(np.random.PCG64(EVAL_SEED))
    window = min(window, len(tokens))
    max_windows = None if max_batches is None else max_batches * batch_size
    rows = forward_batch_size or batch_size
    for windows in fixed_windows(tokens, window, max_windows, batch_size):
        batch = make_batch(windows, rng)
        for start in range(0, len(windows), rows):
            yield as_tensors({name: array[start:start + rows] for name, array in batch.items()})


def short_first(cfg: Config, m: ModelConfig, window: int,
                short_window: Callable[[int], int]) -> int | ShortFirst:
    """bert's and t5's training windows: `window`, after objective.short_sequence_steps steps of
    short_window(objective.short_sequence_length) when that is shorter than model.max_length
    (data/dataset.py's ShortFirst). short_window: sequence length -> tokens of train.bin in such
    a sequence."""
    o = cfg.objective
    if not 0 < o.short_sequence_length < m.max_length or o.short_sequence_steps == 0:
        return window
    return ShortFirst(window, short_window(o.short_sequence_length),
                      o.short_sequence_steps * cfg.training.gradient_accumulation)


# ---- gpt: the next token ----


def _next_token(cfg: Config, m: ModelConfig, tokenizer: Tokenizer | None) -> Objective:
    from runtime.metrics import bits_per_byte, evaluate_loss, perplexity
    from runtime.sampling import generate_tokens

    def evaluate(model: torch.nn.Module, tokens: np.ndarray, batch_size: int,
                 max_batches: int | None, device: torch.device,
                 autocast_ctx: Callable[[], AbstractContextManager] = contextlib.nullcontext,
                 text_size: tuple[int, int] | None = None,
                 forward_batch_size: int | None = None) -> dict[str, float]:
        window = min(m.max_length, len(tokens) - 1)  # a short text: a shorter window
        loss, scored = evaluate_loss(model, tokens, window, min(cfg.data.stride, window),
                                     batch_size, max_batches, device, autocast_ctx,
                                     forward_batch_size)
        metrics = {"val_loss": loss, "val_ppl": perplexity(loss)}
        if text_size is not None:
            metrics["val_bpb"] = bits_per_byte(loss, *text_size)
        return {**metrics, "scored_tokens": scored}

    def sample(model: torch.nn.Module, prompt: str, settings: GenerationConfig,
               generator: torch.Generator | None = None) -> str:
        tok = tokenizer or load_tokenizer(cfg.tokenizer.path)
        eot = eot_id(tok, cfg.tokenizer)
        ids = tok.encode(prompt, add_special_tokens=False).ids or [eot]
        return tok.decode(list(generate_tokens(model, ids, settings, stop_ids=(eot,),
                                               generator=generator)))

    return Objective("next-token", m.max_length + 1, m.max_length, next_token_batch, evaluate,
                     sample, continues_prompt=True)


# ---- bert: masked tokens ----


def bert_special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """The ids BERT needs, by name: [CLS], [SEP], [MASK], [PAD], [UNK]."""
    return {name: special_token_id(tokenizer, name, "BERT's masked-LM objective needs")
            for name in BERT_SPECIAL_TOKENS}


def _masked_lm(cfg: Config, m: ModelConfig, tokenizer: Tokenizer) -> Objective:
    from data.masked_lm import MaskedLM
    from runtime.fill_mask import evaluate_masked_lm, sample_fill

    ids = bert_special_ids(tokenizer)
    make_batch = MaskedLM(cfg.objective.mask_probability, ids["[CLS]"], ids["[MASK]"],
                          special_ids(tokenizer), tokenizer.get_vocab_size())
    window = m.max_length - 1  # + [CLS] = max_length
    windows = short_first(cfg, m, window, lambda length: length - 1)

    def evaluate(model: torch.nn.Module, tokens: np.ndarray, batch_size: int,
                 max_batches: int | None, device: torch.device,
                 autocast_ctx: Callable[[], AbstractContextManager] = contextlib.nullcontext,
                 text_size: tuple[int, int] | None = None,
                 forward_batch_size: int | None = None) -> dict[str, float]:
        batches = fixed_batches(tokens, window, make_batch, batch_size, max_batches,
                                forward_batch_size)
        return evaluate_masked_lm(model, batches, device, autocast_ctx)

    def sample(model: torch.nn.Module, prompt: str, settings: GenerationConfig,
               generator: torch.Generator | None = None) -> str:
        return sample_fill(model, tokenizer, prompt, ids["[MASK]"], ids["[CLS]"], ids["[SEP]"])

    return Objective("masked-lm", windows, window, make_batch, evaluate, sample,
                     continues_prompt=False)


# ---- t5: corrupted spans ----


def t5_special_ids(cfg: Config, tokenizer: Tokenizer) -> dict[str, Any]:
    """The ids T5 needs: end of text, the decoder's start (padding) and the sentinels."""
    need = "T5's span corruption needs"
    return {"eos": eot_id(tokenizer, cfg.tokenizer),
            "start": special_token_id(tokenizer, pad_token(cfg.tokenizer), need),
            "sentinels": [special_token_id(tokenizer, f"<extra_id_{i}>", need)
                          for i in range(cfg.tokenizer.sentinel_tokens)]}


def _span_corruption(cfg: Config, m: ModelConfig, tokenizer: Tokenizer) -> Objective:
    from data.span_corruption import SpanCorruption
    from runtime.seq2seq import evaluate_spans, sample_spans

    ids = t5_special_ids(cfg, tokenizer)
    o = cfg.objective
    make_batch = SpanCorruption(o.noise_density, o.mean_span_length, ids["sentinels"],
                                ids["eos"], ids["start"])
    window, _ = make_batch.lengths(m.max_length)  # the input is then max_length tokens
    windows = short_first(cfg, m, window, lambda length: make_batch.lengths(length)[0])

    def evaluate(model: torch.nn.Module, tokens: np.ndarray, batch_size: int,
                 max_batches: int | None, device: torch.device,
                 autocast_ctx: Callable[[], AbstractContextManager] = contextlib.nullcontext,
                 text_size: tuple[int, int] | None = None,
                 forward_batch_size: int | None = None) -> dict[str, float]:
        batches = fixed_batches(tokens, window, make_batch, batch_size, max_batches,
                                forward_batch_size)
        return evaluate_spans(model, batches, device, ids["start"], ids["eos"],
                              ids["sentinels"], autocast_ctx)

    def sample(model: torch.nn.Module, prompt: str, settings: GenerationConfig,
               generator: torch.Generator | None = None) -> str:
        return sample_spans(model, tokenizer, prompt, settings, ids["start"], ids["eos"],
                            ids["sentinels"], generator)

    return Objective("span-corruption", windows, window, make_batch, evaluate, sample,
                     continues_prompt=False)


def objective_name(architecture: str) -> str:
    """The objective an architecture trains on, without building it (compare.py, the card)."""
    return {"gpt": "next-token", "bert": "masked-lm", "t5": "span-corruption"}[architecture]

