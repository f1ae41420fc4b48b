"""Sampling and the generation loop, shared by evaluation/generate.py, chat.py, compare.py and
the sample generations that training logs at each evaluation (training/callbacks/samples.py).

`generate_tokens` does:
- temperature (0 = greedy), top-k, top-p (nucleus) and a repetition penalty;
- a KV cache: the prompt is run once (prefill), then each new token costs one position;
- a context longer than model.max_length: when the window is full, it is cut to its last
  max_length // 2 tokens and continued from there (with or without the cache, the same way, so
  both give the same tokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from config import GenerationConfig
from errors import ConfigurationError

# ---- sampling ----


def apply_repetition_penalty(
    logits: torch.Tensor, context_ids: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Make tokens already in the context less likely (CTRL, Keskar et al. 2019).

    A seen token's logit is divided by `penalty` when positive and multiplied by it when negative,
    so either way it moves down (for penalty > 1). logits: (V,), context_ids: (N,).
    """
    seen = torch.unique(context_ids)
    scores = logits[seen]
    logits[seen] = torch.where(scores > 0, scores / penalty, scores * penalty)
    return logits


def sample_next_token(
    logits: torch.Tensor,
    context_ids: torch.Tensor | None,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    repetition_penalty: float = 1.0,
    generator: torch.Generator | None = None,
) -> int:
    """Pick the next token from one position's logits (V,); context_ids (N,) are the tokens the
    repetition penalty applies to."""
    logits = logits.float().clone()  # float32: top-p sums thousands of small probabilities
    if repetition_penalty != 1.0 and context_ids is not None:
        logits = apply_repetition_penalty(logits, context_ids, repetition_penalty)
    if temperature == 0:
        return int(torch.argmax(logits))  # greedy
    logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth_best = torch.topk(logits, top_k).values[-1]
        logits[logits < kth_best] = float("-inf")  # keep the k likeliest tokens
    probs = torch.softmax(logits, dim=-1)  # (V,)
    if top_p < 1.0:
        # Nucleus: the smallest set of likeliest tokens whose probabilities sum to >= top_p.
        sorted_probs, order = torch.sort(probs, descending=True)  # (V,), (V,)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass of likelier tokens
        sorted_probs[mass_before >= top_p] = 0.0  # the likeliest token always stays
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    if generator is not None and generator.device != probs.device:
        probs = probs.to(generator.device)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


# ---- the generation loop ----


def generate_tokens(
    model: torch.nn.Module,
    prompt_ids: list[int],
    settings: GenerationConfig,
    use_cache: bool = True,
    stop_ids: Iterable[int] = (),
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """Yield up to settings.max_new_tokens new token ids, one at a time, as they are chosen.

    `settings` (the `generation` section of llm.config.js, checked when it was made) gives
    max_new_tokens, temperature (0 = greedy: top_k/top_p then do nothing), top_k, top_p and the
    repetition penalty; its prompt is not used here. A token in stop_ids ends the generation and
    is not yielded. seed (or your own generator) makes sampling reproducible. use_cache=False
    recomputes the whole context for every token: slower, same tokens; kept as the reference.
    The model is in eval mode while generating and is put back in its previous mode afterwards.
    """
    # Checked here, not inside the generator below, so an empty prompt fails at the call.
    if not prompt_ids:
        raise ConfigurationError(
            "the prompt is empty: the model needs at least one token to continue",
            "start from the end-of-text token to generate from nothing",
        )
    if generator is None and seed is not None:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
    return _generate(model, list(prompt_ids), settings, use_cache, set(stop_ids), generator)


@torch.inference_mode()  # on a generator: active while it computes, not while the caller runs
def _generate(
    model: torch.nn.Module,
    ids: list[int],
    settings: GenerationConfig,
    use_cache: bool,
    stop_ids: set[int],
    generator: torch.Generator | None,
) -> Iterator[int]:
    device = next(model.parameters()).device
    max_length = model.config.max_length
    keep = max(1, max_length // 2)  # tokens kept when the context window is full

    cache = model.new_kv_cache(batch_size=1) if use_cache else None

    def next_logits(new_ids: list[int]) -> torch.Tensor:
        idx = torch.tensor([new_ids], dtype=torch.long, device=device)  # (1, T)
        logits, _ = model(idx, kv_cache=cache)  # (1, T, V)
        return logits[0, -1]  # (V,): the scores of the token that comes next

    s, max_new_tokens = settings, settings.max_new_tokens
    was_training = model.training
    model.eval()  # no dropout
    try:
        start = max(0, len(ids) - max_length)  # the context is ids[start:], <= max_length long
        logits = next_logits(ids[start:])  # prefill: the whole prompt in one pass
        for i in range(max_new_tokens):
            penalised = s.repetition_penalty != 1
            context = torch.tensor(ids[start:], device=device) if penalised else None
            token = sample_next_token(logits, context, s.temperature, s.top_k, s.top_p,
                                      s.repetition_penalty, generator)
            if token in stop_ids:
                return
            yield token
            ids.append(token)
            if i == max_new_tokens - 1:
                break  # do not run the model for a token nobody will sample
            if len(ids) - start > max_length:
                # The window is full: continue from its last half (with the cache, a new prefill).
                start = len(ids) - keep
                if cache is not None:
                    cache.reset()
                logits = next_logits(ids[start:])
            elif cache is not None:
                logits = next_logits([token])  # one position: the new token attends to the cache
            else:
                logits = next_logits(ids[start:])  # no cache: the whole context again
    finally:
        model.train(was_training)
