"""Metrics: validation loss over fixed windows, perplexity, and bits per byte.

Bits per byte (bpb) is the loss in bits spread over the UTF-8 bytes of the text rather than over
tokens, so models with different tokenizers can be compared fairly: a tokenizer with longer
tokens has a higher loss per token but needs fewer tokens for the same text.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch

from data.dataset import eval_windows


def perplexity(loss: float) -> float:
    """exp(loss), capped so a diverged model prints a number instead of overflowing."""
    return math.exp(min(loss, 50.0))


def bits_per_byte(loss: float, tokens: int, num_bytes: int) -> float:
    """Convert a mean loss in nats per token into bits per UTF-8 byte of the same text."""
    return loss / math.log(2) * tokens / max(1, num_bytes)


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, tokens: np.ndarray, max_length: int, stride: int,
                  batch_size: int, max_batches: int | None, device: torch.device,
                  autocast_ctx: Callable[[], AbstractContextManager] = contextlib.nullcontext,
                  forward_batch_size: int | None = None) -> tuple[float, int]:
    """Mean next-token loss over the first `max_batches` batches of fixed validation windows.

    The windows are always the same, so losses from different steps (or runs) are comparable.
    Returns (mean loss in nats per token, number of scored tokens). `autocast_ctx()` gives the
    mixed-precision context to run the model in (runtime.device.autocast). forward_batch_size:
    run the model on at most this many windows at a time (default: batch_size).
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    max_windows = None if max_batches is None else max_batches * batch_size
    chunk = forward_batch_size or batch_size
    for xs, ys in eval_windows(tokens, max_length, stride, max_windows, batch_size):
        for x, y in zip(xs.split(chunk), ys.split(chunk), strict=True):
            x, y = x.to(device), y.to(device)
            with autocast_ctx():
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
