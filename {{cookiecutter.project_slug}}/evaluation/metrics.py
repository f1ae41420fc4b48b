"""Metrics: validation loss over fixed windows, perplexity, and bits per byte.

Bits per byte (bpb) is the loss in bits spread over the UTF-8 bytes of the text rather than over
tokens, so models with different tokenizers can be compared fairly: a tokenizer with longer
tokens has a higher loss per token but needs fewer tokens for the same text.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from data.dataset import eval_windows


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged model prints a number instead of overflowing."""
    return math.exp(min(loss, 50.0))


def bits_per_byte(loss: float, tokens: int, num_bytes: int) -> float:
    """Convert a mean loss in nats per token into bits per UTF-8 byte of the same text."""
    return loss / math.log(2) * tokens / max(1, num_bytes)


def _batches(tokens: np.ndarray, max_length: int, stride: int, batch_size: int,
             max_batches: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Group the deterministic evaluation windows into batches."""
    max_windows = None if max_batches is None else max_batches * batch_size
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for x, y in eval_windows(tokens, max_length, stride, max_windows):
        xs.append(x.view(-1, x.shape[-1]))
        ys.append(y.view(-1, y.shape[-1]))
        if sum(len(b) for b in xs) >= batch_size:
            yield torch.cat(xs), torch.cat(ys)
            xs, ys = [], []
    if xs:
        yield torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, tokens: np.ndarray, max_length: int, stride: int,
                  batch_size: int, max_batches: int | None, device: torch.device,
                  autocast_ctx=None) -> tuple[float, int]:
    """Mean next-token loss over the first `max_batches` batches of fixed validation windows.

    The windows are always the same, so losses from different steps (or runs) are comparable.
    Returns (mean loss in nats per token, number of scored tokens).
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in _batches(tokens, max_length, stride, batch_size, max_batches):
        x, y = x.to(device), y.to(device)
        if autocast_ctx is not None:
            with autocast_ctx():
                logits, _ = model(x)
        else:
            logits, _ = model(x)
        scored = y != -1
        losses = torch.nn.functional.cross_entropy(
            logits.float().view(-1, logits.size(-1)), y.view(-1), ignore_index=-1,
            reduction="sum",
        )
        total += losses.item()
        count += int(scored.sum().item())
    model.train(was_training)
    return total / max(1, count), count
