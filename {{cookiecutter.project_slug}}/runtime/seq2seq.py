"""What a T5 model does once trained: write an output for an input, one token at a time, with a
KV cache; fill in the spans of <extra_id_N> sentinels; and how well it does that.

    tokens = generate_seq2seq(model, input_ids, settings, start_id=pad, stop_ids=(eos,))
    spans = fill_spans(model, tokenizer, "The cat <extra_id_0> the mat.", settings, ...)
    spans.text                        # "The cat [sat on] the mat."
    metrics = evaluate_spans(model, batches, device, ...)   # val_loss, val_ppl, val_span_match

The encoder reads the input once. The decoder then starts from its start token (the padding
token, as in T5) and each step adds one token; the cache keeps every decoder layer's keys and
values of the tokens so far, and the keys and values of the encoder states, so a step costs one
position. Sampling (temperature, top-k, top-p, repetition penalty over the output) is
runtime/sampling.py's, the same as gpt's.

Trained on span corruption only, the model answers every input with sentinels and the spans
they stand for: give it an input with sentinels where text is missing. Trained on your own
(input, output) pairs, the same code maps text to text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from config import GenerationConfig
from errors import ConfigurationError
from runtime.metrics import perplexity
from runtime.sampling import sample_next_token

SENTINEL = re.compile(r"<extra_id_(\d+)>")


def encode_input(tokenizer: Tokenizer, text: str, eos_id: int, max_length: int) -> list[int]:
    """The encoder's input: the text's ids and the end-of-text token, as in training (and as
    Hugging Face's T5 tokenizer encodes it); ConfigurationError if it does not fit."""
    ids = [*tokenizer.encode(text, add_special_tokens=False).ids, eos_id]
    if len(ids) > max_length:
        raise ConfigurationError(
            f"the input is {len(ids)} tokens long, more than the model's context of "
            f"{max_length} (model.max_length)", "use a shorter prompt")
    return ids


def generate_seq2seq(model: torch.nn.Module, input_ids: list[int], settings: GenerationConfig,
                     start_id: int, stop_ids: Iterable[int] = (), use_cache: bool = True,
                     generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield up to settings.max_new_tokens output tokens, one at a time, as they are chosen.

    A token in stop_ids ends the output and is not yielded. use_cache=False runs the decoder
    over the whole output for every token: slower, the same tokens; kept as the reference.
    The model is in eval mode while generating and is put back in its previous mode afterwards.
    """
    if not input_ids:
        raise ConfigurationError("the input is empty", "give the model some text to read")
    return _generate(model, list(input_ids), settings, start_id, set(stop_ids), use_cache,
                     generator)


@torch.inference_mode()
def _generate(model: torch.nn.Module, input_ids: list[int], settings: GenerationConfig,
              start_id: int, stop_ids: set[int], use_cache: bool,
              generator: torch.Generator | None) -> Iterator[int]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        encoded = model.encode(torch.tensor([input_ids], device=device))  # (1, S, C)
        s = settings
        cache = model.new_kv_cache(1, s.max_new_tokens + 1) if use_cache else None
        output = [start_id]
        for i in range(s.max_new_tokens):
            new = output[-1:] if cache is not None else output
            logits = model.decode(torch.tensor([new], device=device), encoded, cache=cache)
            context = torch.tensor(output[1:], device=device, dtype=torch.long)
            token = sample_next_token(logits[0, -1], context, s.temperature, s.top_k, s.top_p,
                                      s.repetition_penalty, generator)
            if token in stop_ids:
                return
            yield token
            output.append(token)
            if i == s.max_new_tokens - 1:
                break
    finally:
        model.train(was_training)


# ---- filling in sentinels ----


@dataclass
class Spans:
    text: str
    """The input with each sentinel replaced by [the text the model wrote for it]."""
    spans: dict[int, str]
    """Sentinel number -> the text written for it."""
    output: str
    """Everything the model wrote, sentinels included."""


def split_spans(ids: list[int], sentinel_ids: list[int], end_id: int | None = None
                ) -> dict[int, list[int]]:
    """Output ids '<extra_id_0> a b <extra_id_1> c </s>' -> {0: [a, b], 1: [c]}. The output
    ends at end_id; tokens before the first sentinel belong to no span; a sentinel written twice
    keeps its first span."""
    number = {token: i for i, token in enumerate(sentinel_ids)}
    spans: dict[int, list[int]] = {}
    current: list[int] | None = None
    for token in ids:
        if token == end_id:
            break
        if token in number:
            current = [] if number[token] not in spans else None
            if current is not None:
                spans[number[token]] = current
        elif current is not None:
            current.append(token)
    return spans


def fill_spans(model: torch.nn.Module, tokenizer: Tokenizer, text: str,
               settings: GenerationConfig, start_id: int, eos_id: int, sentinel_ids: list[int],
               generator: torch.Generator | None = None) -> Spans:
    """The text's sentinels filled in by the model (ConfigurationError when it has none)."""
    ids = encode_input(tokenizer, text, eos_id, model.config.max_length)
    if not set(ids) & set(sentinel_ids):
        raise ConfigurationError(
            "the prompt has no sentinel (<extra_id_0>, <extra_id_1>, ...) to fill in",
            "put <extra_id_0> where text is missing, e.g. --prompt 'The cat <extra_id_0> the "
            "mat.' (or run it as text-to-text: make generate ARGS=\"--prompt '...' "
            "--text-to-text\")")
    out = list(generate_seq2seq(model, ids, settings, start_id, (eos_id,), generator=generator))
    asked = {int(n) for n in SENTINEL.findall(text)}  # the spans the prompt has blanks for
    spans = {k: tokenizer.decode(v).strip() for k, v in split_spans(out, sentinel_ids).items()
             if k in asked}

    def replace(match: re.Match) -> str:
        return f"[{spans.get(int(match.group(1)), '')}]"

    written = tokenizer.decode(out, skip_special_tokens=False)
    return Spans(SENTINEL.sub(replace, text), spans, written)


def sample_spans(model: torch.nn.Module, tokenizer: Tokenizer, prompt: str,
                 settings: GenerationConfig, start_id: int, eos_id: int, sentinel_ids: list[int],
                 generator: torch.Generator | None = None) -> str:
    """The prompt with its sentinels filled in: what training logs at each evaluation (and
    compare.py shows). A prompt without a sentinel gets <extra_id_0> at its end (the model
    then continues it)."""
    if not SENTINEL.search(prompt):
        prompt = f"{prompt} <extra_id_0>"
    try:
        return fill_spans(model, tokenizer, prompt, settings, start_id, eos_id, sentinel_ids,
                          generator).text
    except ConfigurationError as error:  # a log line, never the end of a training run
        return f"(no sample: {error.message})"


# ---- evaluation ----


@torch.inference_mode()
def greedy_outputs(model: torch.nn.Module, input_ids: torch.Tensor, length: int, start_id: int,
                   autocast_ctx: Callable[[], AbstractContextManager]) -> torch.Tensor:
    """(B, length) greedy output tokens for a batch of inputs (B, S), with the cache."""
    B = input_ids.size(0)
    with autocast_ctx():
        encoded = model.encode(input_ids)
    cache = model.new_kv_cache(B, length)
    token = torch.full((B, 1), start_id, dtype=torch.long, device=input_ids.device)
    out = []
    for _ in range(length):
        with autocast_ctx():
            token = model.decode(token, encoded, cache=cache)[:, -1].argmax(-1, keepdim=True)
        out.append(token)
    return torch.cat(out, dim=1)  # (B, length)


@torch.no_grad()
def evaluate_spans(model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                   device: torch.device, start_id: int, eos_id: int, sentinel_ids: list[int],
                   autocast_ctx: Callable[[], AbstractContextManager] = contextlib.nullcontext
                   ) -> dict[str, float]:
    """On `batches` (data/span_corruption.py with a fixed seed, so every evaluation cuts the
    same spans): val_loss, the mean cross-entropy of the output tokens given the true ones
    before them; val_span_match, the share of spans the model writes exactly right when it
    writes the whole output itself (greedy, no help)."""
    was_training = model.training
    model.eval()
    total, count, matched, spans = 0.0, 0, 0, 0
    for batch in batches:
        batch = {name: tensor.to(device) for name, tensor in batch.items()}
        labels = batch["labels"]
        with autocast_ctx():
            logits, _ = model(batch["input_ids"], batch["decoder_input_ids"])  # (B, T, V)
        total += torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), reduction="sum").item()
        count += labels.numel()
        written = greedy_outputs(model, batch["input_ids"], labels.size(1), start_id,
                                 autocast_ctx)
        for truth, guess in zip(labels.tolist(), written.tolist(), strict=True):
            expected = split_spans(truth, sentinel_ids, eos_id)
            got = split_spans(guess, sentinel_ids, eos_id)
            spans += len(expected)
            matched += sum(got.get(k) == v for k, v in expected.items())
    model.train(was_training)
    loss = total / max(1, count)
    return {"val_loss": loss, "val_ppl": perplexity(loss),
            "val_span_match": matched / max(1, spans), "scored_tokens": count}
