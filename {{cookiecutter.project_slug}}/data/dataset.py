"""Batches of token windows for training and evaluation, read from data/processed/*.bin.

    tokens = load_split("data/processed", "train")            # data/splits.py: np.memmap
    batches = TrainBatches(tokens, batch_size=16, window=257, seed=1337)   # gpt: next token
    batch = batches.next_batch()   # {"idx": (16, 256), "targets": (16, 256)}: targets = idx
                                   # shifted left by one (bert, t5: data/masked_lm.py, ...)
    state = batches.state_dict()                               # goes into the checkpoint
    TrainBatches(tokens, 16, ShortFirst(window=255, short_window=15, short_batches=300), seed)
                                         # bert, t5: 272 rows of 15 tokens for 300 batches, then 255
    for x, y in eval_windows(load_split("data/processed", "val"), 256, stride=256):
        ...                                                    # every val token scored once

The .bin files are flat arrays of token ids (uint16, or uint32 for vocabularies over 65536) that
data/prepare.py wrote; meta.json says which. They are memory-mapped, never loaded: a batch reads
only the bytes it needs, so a corpus larger than RAM trains fine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain, islice

import numpy as np
import torch

from data.splits import check_enough_tokens

# An objective's batch maker: windows (B, window) int64 and the random generator -> the model's
# keyword arguments as arrays, e.g. {"idx": x, "targets": y} for gpt.
MakeBatch = Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]


def next_token_batch(windows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """gpt's objective: predict each next token. idx = window[:, :-1], targets = window[:, 1:]
    (targets[:, t] is the token that follows idx[:, t]). Draws nothing from rng."""
    return {"idx": windows[:, :-1], "targets": windows[:, 1:]}  # (B, T) each


@dataclass(frozen=True)
class ShortFirst:
    """A sequence-length warm-up: the first `short_batches` batches are windows of
    `short_window` tokens, window // short_window times as many rows of them (the tokens of a
    batch about the same), and every batch after them is windows of `window` tokens.

    Why (bert, t5): a model first has to learn that the words next to a blank say what it is.
    In 256-token sequences each position's attention is spread over 256 others at first and that
    signal is faint; in 16-token ones it is strong, and a model with relative positions (rotary,
    t5's buckets) then uses what it learned at any length. runtime/objectives.py makes one from
    objective.short_sequence_length and short_sequence_steps.
    """

    window: int
    """Tokens of train.bin in each row once the warm-up is over."""
    short_window: int = 0
    """Tokens of train.bin in each row during the warm-up (0: no warm-up)."""
    short_batches: int = 0
    """Batches drawn (optimizer steps x gradient_accumulation) before `window` takes over."""

    def at(self, drawn: int, batch_size: int) -> tuple[int, int]:
        """(window, rows) of the batch drawn after `drawn` others, for batch_size rows of the
        full window."""
        if drawn < self.short_batches and 0 < self.short_window < self.window:
            # A whole multiple of batch_size rows: N processes of batch_size rows then read
            # exactly what one process of N x batch_size reads (rounding each would not).
            return self.short_window, batch_size * (self.window // self.short_window)
        return self.window, batch_size


class TrainBatches:
    """Random windows of `window` tokens, turned into training batches; deterministic given the
    seed, and resumable.

    A window starts anywhere in the data (windows may cross document boundaries: the end-of-text
    token between documents tells the model where one story ends). `make_batch` is the
    objective: it turns the windows (B, window) into the model's inputs, drawing any random
    choices it makes (which tokens to mask, which spans to drop) from this same generator, so
    one state_dict() holds everything a resumed run needs to get the same batches.
    next_token_batch (gpt) is above; data/masked_lm.py (bert) and data/span_corruption.py (t5)
    hold the others.

    With several processes (`make train NPROC=N`, rank = 0 .. N-1), every process draws the same
    batch_size x N windows (and the objective's choices for all of them) from the same
    generator and keeps its own slice of batch_size rows: the processes read disjoint shares of
    one global batch, which is exactly the batch one process with batch_size x N would read. The
    generator's state is the same everywhere, so one state in the checkpoint resumes every
    process, with any number of processes.

    `window` may be a ShortFirst: short windows for the first batches, then `window.window`.
    The number of batches drawn is part of the state, so a resumed run switches at the same step.
    """

    def __init__(self, tokens: np.memmap, batch_size: int, window: int | ShortFirst, seed: int,
                 make_batch: MakeBatch | None = None, rank: int = 0,
                 world_size: int = 1) -> None:
        self.schedule = window if isinstance(window, ShortFirst) else ShortFirst(window)
        self.window = self.schedule.window  # the full window (the short one is shorter)
        check_enough_tokens(len(tokens), batch_size * world_size, self.window - 1, "train")
        self.tokens = tokens
        self.batch_size = batch_size
        self.make_batch = make_batch or next_token_batch
        self.rank, self.world_size = rank, world_size
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.drawn = 0  # batches drawn so far (what ShortFirst counts)

    def next_batch(self) -> dict[str, torch.Tensor]:
        """This process's share of the next global batch: the model's keyword arguments, CPU
        int64 tensors."""
        window, rows = self.schedule.at(self.drawn, self.batch_size)  # rows of this process
        self.drawn += 1
        starts = self.rng.integers(0, len(self.tokens) - window + 1, size=rows * self.world_size)
        # One vectorised gather from the memmap: (rows, 1) + (window,) -> (rows, window) indices.
        windows = self.tokens[starts[:, None] + np.arange(window)].astype(np.int64)
        batch = self.make_batch(windows, self.rng)  # choices for every row: generators in step
        mine = slice(self.rank * rows, (self.rank + 1) * rows)
        return as_tensors({name: array[mine] for name, array in batch.items()})

    def state_dict(self) -> dict:
        """The random generator's exact state as plain Python ints (torch.load-safe), and the
        number of batches drawn."""
        state = self.rng.bit_generator.state
        return {"bit_generator": state["bit_generator"],
                "state": int(state["state"]["state"]), "inc": int(state["state"]["inc"]),
                "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"]),
                "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where state_dict() was taken: the next batches are identical."""
        self.rng.bit_generator.state = {
            "bit_generator": state["bit_generator"],
            "state": {"state": int(state["state"]), "inc": int(state["inc"])},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"]),
        }
        # A checkpoint from before the warm-up existed trained at full length: it stays there.
        self.drawn = int(state.get("drawn", self.schedule.short_batches))


def as_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """numpy arrays -> contiguous torch tensors (sharing memory where they can)."""
    return {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in batch.items()}


def fixed_windows(tokens: np.ndarray, window: int, max_windows: int | None = None,
                  batch_size: int = 8) -> Iterator[np.ndarray]:
    """Non-overlapping windows (B, window) from the start of a split, always the same ones: the
    evaluation data of bert and t5, whose objectives then hide tokens with a fixed seed."""
    check_enough_tokens(len(tokens), 1, window - 1, "val")
    starts = islice(range(0, len(tokens) - window + 1, window), max_windows)
    offsets = np.arange(window)
    while batch := list(islice(starts, batch_size)):
        yield np.asarray(tokens[np.asarray(batch)[:, None] + offsets], dtype=np.int64)


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
