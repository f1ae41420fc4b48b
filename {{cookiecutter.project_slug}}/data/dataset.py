"""Batches of token windows for training and evaluation, read from data/processed/*.bin.

    tokens = load_split("data/processed", "train")            # data/splits.py: np.memmap
    batches = TrainBatches(tokens, batch_size=16, max_length=256, seed=1337)
    x, y = batches.next_batch()          # (16, 256) int64 each; y is x shifted left by one
    state = batches.state_dict()                               # goes into the checkpoint
    for x, y in eval_windows(load_split("data/processed", "val"), 256, stride=256):
        ...                                                    # every val token scored once

The .bin files are flat arrays of token ids (uint16, or uint32 for vocabularies over 65536) that
data/prepare.py wrote; meta.json says which. They are memory-mapped, never loaded: a batch reads
only the bytes it needs, so a corpus larger than RAM trains fine.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice

import numpy as np
import torch

from data.splits import check_enough_tokens


class TrainBatches:
    """Random windows of max_length + 1 tokens; deterministic given the seed, and resumable.

    A window starts anywhere in the data (windows may cross document boundaries: the end-of-text
    token between documents tells the model where one story ends).

    With several processes (`make train NPROC=N`, rank = 0 .. N-1), every process draws the same
    batch_size x N window starts from the same generator and keeps its own slice of batch_size:
    the processes read disjoint shares of one global batch, which is exactly the batch one
    process with batch_size x N would read. The generator's state is the same everywhere, so one
    state in the checkpoint resumes every process, with any number of processes.
    """

    def __init__(self, tokens: np.memmap, batch_size: int, max_length: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        check_enough_tokens(len(tokens), batch_size * world_size, max_length, "train")
        self.tokens = tokens
        self.batch_size = batch_size
        self.max_length = max_length
        self.rank, self.world_size = rank, world_size
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.offsets = np.arange(max_length + 1)  # positions inside one window

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T) input ids, y: (B, T) the ids that follow each position. CPU int64."""
        starts = self.rng.integers(0, len(self.tokens) - self.max_length,
                                   size=self.batch_size * self.world_size)
        starts = starts[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]  # (B,)
        # One vectorised gather from the memmap: (B, 1) + (T+1,) -> (B, T+1) indices.
        window = torch.from_numpy(self.tokens[starts[:, None] + self.offsets].astype(np.int64))
        return window[:, :-1].contiguous(), window[:, 1:].contiguous()  # (B, T), (B, T)

    def state_dict(self) -> dict:
        """The random generator's exact state as plain Python ints (torch.load-safe)."""
        state = self.rng.bit_generator.state
        return {"bit_generator": state["bit_generator"],
                "state": int(state["state"]["state"]), "inc": int(state["state"]["inc"]),
                "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where state_dict() was taken: the next batches are identical."""
        self.rng.bit_generator.state = {
            "bit_generator": state["bit_generator"],
            "state": {"state": int(state["state"]), "inc": int(state["inc"])},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"]),
        }


def eval_windows(tokens: np.memmap, max_length: int, stride: int,
                 max_windows: int | None = None, batch_size: int = 8
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic strided windows over a whole split, batched: yields (x, y), each (B, T).

    With stride < max_length windows overlap, so each window after the first scores only its last
    `stride` targets (the rest are -1, ignored by the loss): every token is predicted exactly once,
    and always with at least max_length - stride tokens of context.
    """
    n = len(tokens)
    if n < max_length + 1:
        check_enough_tokens(n, 1, max_length, "val")
    last = n - max_length - 1  # the last possible window start
    starts = range(0, last + 1, stride)
    if last % stride:  # one more window so the tail of the split is scored too
        starts = chain(starts, [last])
    starts = islice(starts, max_windows)  # max_windows=None: all of them
    offsets = np.arange(max_length + 1)
    scored_until = 0  # targets before this position (in y coordinates) were already scored
    while batch := list(islice(starts, batch_size)):
        batch = np.asarray(batch)
        window = torch.from_numpy(tokens[batch[:, None] + offsets].astype(np.int64))
        x, y = window[:, :-1].contiguous(), window[:, 1:].clone()  # (B, T) each
        for row, start in enumerate(batch.tolist()):
            # y[row, j] is the token at start + 1 + j; skip those scored by an earlier window.
            skip = max(0, scored_until - (start + 1))
            y[row, :skip] = -1
            scored_until = start + 1 + max_length
        yield x, y
