"""What a BERT model does once trained: fill in [MASK] tokens; and how well it does it.

    fills = fill_masks(model, tokenizer, "The [MASK] sat on the mat.", top_k=5)
    fills.text                      # "The cat sat on the mat." (each mask: its likeliest token)
    fills.candidates[0]             # the first [MASK]'s top 5: [Candidate(id, "cat", 0.41), ...]
    metrics = evaluate_masked_lm(model, batches, device)   # val_loss, val_ppl, val_mlm_accuracy

An encoder sees the whole sentence at once, so it fills every mask in one forward pass: each
[MASK] gets its own distribution over the vocabulary, from the words around it (not from what
the other masks become). That is the same thing Hugging Face's pipeline("fill-mask") does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from errors import ConfigurationError
from runtime.metrics import perplexity

IGNORE_INDEX = -100


@dataclass
class Candidate:
    id: int
    text: str
    probability: float


@dataclass
class Fills:
    text: str
    """The input with each [MASK] replaced by its likeliest token."""
    candidates: list[list[Candidate]]
    """For each [MASK], in order: the top-k tokens, likeliest first."""


def encode_for_bert(tokenizer: Tokenizer, text: str, cls_id: int, sep_id: int,
                    max_length: int) -> list[int]:
    """[CLS] text [SEP], as BERT reads a sentence (and as Hugging Face's tokenizer encodes it);
    ConfigurationError if it does not fit in the context."""
    ids = [cls_id, *tokenizer.encode(text, add_special_tokens=False).ids, sep_id]
    if len(ids) > max_length:
        raise ConfigurationError(
            f"the prompt is {len(ids)} tokens long with [CLS] and [SEP], more than the model's "
            f"context of {max_length}", "use a shorter prompt")
    return ids


@torch.no_grad()
def fill_masks(model: torch.nn.Module, tokenizer: Tokenizer, text: str, mask_id: int,
               cls_id: int, sep_id: int, top_k: int = 5) -> Fills:
    """Every [MASK] in `text` filled in (ConfigurationError when it has none)."""
    ids = encode_for_bert(tokenizer, text, cls_id, sep_id, model.config.max_length)
    positions = [i for i, token in enumerate(ids) if token == mask_id]
    if not positions:
        mask = tokenizer.id_to_token(mask_id)
        raise ConfigurationError(
            f"the prompt has no {mask} token: a BERT model fills in {mask}s, it does not write "
            f"text after a prompt", f"put {mask} where a word is missing, e.g. --prompt "
            f"'The {mask} sat on the mat.'")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, _ = model(torch.tensor([ids], device=device))  # (1, T, V)
    model.train(was_training)
    probs = torch.softmax(logits[0, positions].float(), dim=-1)  # (masks, V)
    top = torch.topk(probs, min(top_k, probs.size(-1)), dim=-1)
    candidates = [[Candidate(int(i), tokenizer.decode([int(i)]).strip(), float(p))
                   for p, i in zip(values, indices, strict=True)]
                  for values, indices in zip(top.values, top.indices, strict=True)]
    filled = list(ids[1:-1])
    for position, best in zip(positions, top.indices[:, 0].tolist(), strict=True):
        filled[position - 1] = best
    return Fills(tokenizer.decode(filled), candidates)


def sample_fill(model: torch.nn.Module, tokenizer: Tokenizer, prompt: str, mask_id: int,
                cls_id: int, sep_id: int) -> str:
    """The prompt with its masks filled in: what training logs at each evaluation. A prompt
    without [MASK] gets one at its end (the model then guesses the word that follows)."""
    mask = tokenizer.id_to_token(mask_id)
    if mask not in prompt:
        prompt = f"{prompt} {mask}"
    try:
        return fill_masks(model, tokenizer, prompt, mask_id, cls_id, sep_id, top_k=1).text
    except ConfigurationError as error:  # a log line, never the end of a training run
        return f"(no sample: {error.message})"


@torch.no_grad()
def evaluate_masked_lm(model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                       device: torch.device,
                       autocast_ctx: Callable[[], AbstractContextManager] =
                       contextlib.nullcontext) -> dict[str, float]:
    """Loss, perplexity and accuracy on the hidden tokens of `batches` (data/masked_lm.py with a
    fixed seed, so every evaluation hides the same tokens): val_loss is the mean cross-entropy of
    the hidden tokens, val_mlm_accuracy the share whose likeliest prediction is right."""
    was_training = model.training
    model.eval()
    total, correct, count = 0.0, 0, 0
    for batch in batches:
        labels = batch["labels"].to(device)
        with autocast_ctx():
            logits, loss = model(batch["input_ids"].to(device), labels=labels)  # (N, V): hidden
        targets = labels[labels != IGNORE_INDEX]  # (N,): in the same order as the logits
        if targets.numel() == 0:  # rows of special tokens only: nothing hidden, nothing scored
            continue
        total += loss.item() * targets.numel()  # the model's loss is the mean over the N
        correct += int((logits.argmax(-1) == targets).sum())
        count += int(targets.numel())
    model.train(was_training)
    loss = total / max(1, count)
    return {"val_loss": loss, "val_ppl": perplexity(loss),
            "val_mlm_accuracy": correct / max(1, count), "scored_tokens": count}
