"""BERT's objective: hide some tokens of each sequence and ask the model to recover them.

    make_batch = MaskedLM(mask_probability=0.15, cls_id=1, mask_id=2, special_ids=[0, 1, 2, 3, 4],
                          vocab_size=2048)
    batches = TrainBatches(tokens, batch_size=16, window=255, seed=1337, make_batch=make_batch)
    batch = batches.next_batch()      # {"input_ids": (16, 256), "labels": (16, 256)}

Each window of the token stream (documents end with [SEP]) becomes one sequence: [CLS], then
the window (max_length tokens in all). mask_probability of the window's length (rounded, at
least one) of its ordinary tokens are chosen at random (special tokens such as [CLS], [SEP],
[PAD], [UNK] are never hidden). The same number in every row: each row weighs the same in the
mean loss, so processes that each average their own rows (`make train NPROC=...`) average to
what one process with all the rows gets. `labels` holds the original token at each chosen
position and -100 everywhere else, so only the chosen tokens are scored. In `input_ids`,
following BERT:
- 80% of the chosen tokens become [MASK];
- 10% become a random ordinary token;
- 10% stay as they are.
The last two mean the model cannot assume that a visible token is the right one, so it learns a
good representation of every token, not only of [MASK]s (which never occur when it is used).

Every random choice is drawn from the generator it is given: TrainBatches' own, so a resumed run
hides exactly the same tokens; a fixed-seed one for evaluation, so every evaluation scores the
same hidden tokens. numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

IGNORE_INDEX = -100  # labels of positions that are not scored
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen tokens; the rest stay unchanged


class MaskedLM:
    """Windows of tokens -> {"input_ids", "labels"} for a BERT model (see the module docstring).

    The window is max_length - 1 tokens: [CLS] makes the sequence max_length long.
    """

    def __init__(self, mask_probability: float, cls_id: int, mask_id: int,
                 special_ids: Iterable[int], vocab_size: int) -> None:
        self.mask_probability = mask_probability
        self.cls_id, self.mask_id = cls_id, mask_id
        self.special_ids = np.unique(np.asarray([*special_ids, cls_id, mask_id], dtype=np.int64))
        # The tokens a chosen token may be swapped for: every one but the special tokens.
        self.ordinary_ids = np.setdiff1d(np.arange(vocab_size), self.special_ids)

    def __call__(self, windows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        B = windows.shape[0]
        ids = np.concatenate([np.full((B, 1), self.cls_id, dtype=np.int64), windows], axis=1)
        candidates = ~np.isin(ids, self.special_ids)  # (B, T): tokens that may be hidden
        available = candidates.sum(axis=1)  # (B,)
        wanted = max(1, round(self.mask_probability * windows.shape[1]))
        count = np.minimum(available, wanted)  # (B,): fewer only in a row of special tokens

        # Choose `count` candidates per row: give each position a random key (non-candidates the
        # largest), and take the positions whose key ranks below count.
        keys = rng.random(ids.shape)  # (B, T)
        keys[~candidates] = 2.0
        rank = keys.argsort(axis=1).argsort(axis=1)  # (B, T): 0 = the smallest key of its row
        chosen = rank < count[:, None]  # (B, T)

        labels = np.where(chosen, ids, IGNORE_INDEX)  # (B, T)
        action = rng.random(ids.shape)  # (B, T): which of the three things happens
        random_ids = self.ordinary_ids[rng.integers(0, len(self.ordinary_ids), size=ids.shape)]
        inputs = ids.copy()
        inputs[chosen & (action < MASK_SHARE)] = self.mask_id
        swap = chosen & (action >= MASK_SHARE) & (action < MASK_SHARE + RANDOM_SHARE)
        inputs[swap] = random_ids[swap]
        return {"input_ids": inputs, "labels": labels}
