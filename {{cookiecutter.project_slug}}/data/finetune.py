"""Tokenized conversations for `make finetune`: the rows the model trains on and is scored on.

    train, held_out, source = conversation_sets(cfg.finetune)   # data/finetune, or built-in
    rows, cut = make_rows("gpt", train, chat, max_length, max_output)
    batches = ConversationBatches(rows, batch_size, seed, collate_for("gpt", pad_id))
    batch = batches.next_batch()      # gpt: {"idx": (B, T), "targets": (B, T)}, -1 = not scored

gpt: one row per conversation, all its turns (corpus/conversations.py reads them,
tokenizer/chat_format.py renders them). The loss counts the assistant's tokens only: a target
is -1 (ignored) wherever the chat format's mask is 0, so nothing is learned from the user's words
or the formatting around them, only what the model is to write, its end-of-turn token included.

Rows are padded, not packed: each row of a batch holds one conversation, padded at its end to
the batch's longest. The model is causal, so padding after a conversation changes nothing before
it, and no conversation ever attends to another. Packing several into a row would waste less
compute, but then every row needs a block-diagonal attention mask and positions that restart
for each conversation; at the lengths of a small model's conversations (a few hundred tokens)
padding to the batch's longest costs little, and the model code stays the pretraining one.

t5 (text to text): one row per assistant turn. The encoder reads the conversation up to that
turn, as the chat template renders it (ending with the assistant's header); the decoder writes
the answer, then </s>.

Batches draw rows at random, the shortest first (a length warm-up: ConversationBatches says why),
a global batch of batch_size x processes rows at a time (each process keeps its slice, as
TrainBatches does), so a resumed run gets exactly the batches it would have had.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from config import FinetuneConfig
from corpus.conversations import Conversation, read_conversations, split_conversations
from corpus.instructions import builtin_conversations
from data.dataset import as_tensors
from errors import TrainingError
from tokenizer.chat_format import ChatFormat

Row = dict[str, np.ndarray]
Collate = Callable[[list[Row]], dict[str, np.ndarray]]


@dataclass
class Cut:
    """What did not fit in max_length: how many rows were shortened, and how many lost every
    token the loss counts (those are left out)."""

    shortened: int = 0
    dropped: int = 0


HELD_OUT = 500  # held-out conversations of the built-in set


# ---- the conversations ----


def conversation_sets(f: FinetuneConfig, train: bool = True
                      ) -> tuple[list[Conversation], list[Conversation], str]:
    """(training, held-out, what they are): data/finetune's conversations split whole, or the
    built-in instruction set (train=False: the held-out ones only, for evaluation)."""
    found = read_conversations(f.data_dir)
    if found:
        training, held_out = split_conversations(found, f.val_split, f.seed)
        return training, held_out, f"{f.data_dir} ({len(found):,} conversations)"
    if train:
        print(f"{f.data_dir} holds no conversations: using the built-in instruction set "
              f"({f.builtin_conversations:,} conversations about the built-in stories, "
              f"{HELD_OUT} more held out)")
    held_out = list(builtin_conversations(HELD_OUT, f.seed, held_out=True))
    training = list(builtin_conversations(f.builtin_conversations, f.seed)) if train else []
    return training, held_out, "the built-in instruction set"


# ---- conversations -> rows ----


def make_rows(architecture: str, conversations: list[Conversation], chat: ChatFormat,
              max_length: int, max_output: int) -> tuple[list[Row], Cut]:
    """The rows of this architecture: gpt's whole conversations, t5's turn by turn."""
    if architecture == "t5":
        return text_to_text_rows(conversations, chat, max_length, max_output)
    return chat_rows(conversations, chat, max_length)


def collate_for(architecture: str, pad_id: int) -> Collate:
    """gpt's or t5's padding (T5's decoder starts from its padding token)."""
    return collate_t5(pad_id, pad_id) if architecture == "t5" else collate_gpt(pad_id)



def chat_rows(conversations: list[Conversation], chat: ChatFormat, max_length: int
              ) -> tuple[list[Row], Cut]:
    """gpt: {"ids", "mask"} per conversation, at most max_length + 1 tokens (the model reads
    max_length and predicts the token after each)."""
    rows, cut = [], Cut()
    for conversation in conversations:
        ids, mask = chat.render(conversation.messages)
        if len(ids) > max_length + 1:
            cut.shortened += 1
            ids, mask = ids[:max_length + 1], mask[:max_length + 1]
        if not any(mask[1:]):  # the answer was cut off entirely: nothing to learn
            cut.dropped += 1
            continue
        rows.append({"ids": np.asarray(ids, dtype=np.int32),
                     "mask": np.asarray(mask, dtype=np.uint8)})
    return rows, cut


def text_to_text_rows(conversations: list[Conversation], chat: ChatFormat, max_length: int,
                      max_output: int) -> tuple[list[Row], Cut]:
    """t5: {"input", "output"} per assistant turn. A longer input keeps its end (the question
    is there), a longer output its start."""
    rows, cut = [], Cut()
    for conversation in conversations:
        for i, message in enumerate(conversation.messages):
            if message["role"] != "assistant":
                continue
            source = chat.prompt(conversation.messages[:i])
            target = chat.tokenizer.encode(message["content"], add_special_tokens=False).ids
            eos = chat.eos_id
            if len(source) + 1 > max_length or len(target) + 1 > max_output:
                cut.shortened += 1
            rows.append({"input": np.asarray([*source[-(max_length - 1):], eos], dtype=np.int32),
                         "output": np.asarray([*target[:max_output - 1], eos], dtype=np.int32)})
    return rows, cut


# ---- rows -> padded batches ----


def collate_gpt(pad_id: int) -> Collate:
    """Rows -> {"idx", "targets"} (B, T), T = the longest row - 1; targets -1 where the mask is
    0 and on the padding."""
    def collate(rows: list[Row]) -> dict[str, np.ndarray]:
        T = max(len(row["ids"]) for row in rows) - 1
        idx = np.full((len(rows), T), pad_id, dtype=np.int64)
        targets = np.full((len(rows), T), -1, dtype=np.int64)
        for r, row in enumerate(rows):
            ids, mask = row["ids"].astype(np.int64), row["mask"]
            n = len(ids) - 1
            idx[r, :n] = ids[:-1]
            targets[r, :n] = np.where(mask[1:] == 1, ids[1:], -1)  # (n,)
        return {"idx": idx, "targets": targets}

    return collate


def collate_t5(pad_id: int, decoder_start: int) -> Collate:
    """Rows -> the model's input_ids, attention_mask, decoder_input_ids and labels (-100 on
    padding), each padded to the batch's longest."""
    def collate(rows: list[Row]) -> dict[str, np.ndarray]:
        S = max(len(row["input"]) for row in rows)
        T = max(len(row["output"]) for row in rows)
        input_ids = np.full((len(rows), S), pad_id, dtype=np.int64)
        attention = np.zeros((len(rows), S), dtype=np.int64)
        labels = np.full((len(rows), T), -100, dtype=np.int64)
        decoder = np.full((len(rows), T), pad_id, dtype=np.int64)
        for r, row in enumerate(rows):
            source, target = row["input"], row["output"]
            input_ids[r, :len(source)] = source
            attention[r, :len(source)] = 1
            labels[r, :len(target)] = target
            decoder[r, 0] = decoder_start
            decoder[r, 1:len(target)] = target[:-1]  # the output shifted right by one
        return {"input_ids": input_ids, "attention_mask": attention,
                "decoder_input_ids": decoder, "labels": labels}

    return collate


class ConversationBatches:
    """Training batches of rows, shortest first: a length warm-up, then all of them.

    Each step draws its global batch (batch_size x processes rows) at random, seeded by the step
    number, from the shortest part of the rows: the shortest START_SHARE at first, growing to all
    of them by `warmup_steps`. Why: a small model learns to find an answer in a conversation at
    all only where it is a few tokens away. On the built-in questions the nano preset stayed
    below 6% answer accuracy after 800 steps with the rows in random order, and kept climbing to
    37% by step 800 with the shortest rows first (README: the curves). It is the sequence-length
    warm-up of pretraining, for conversations.

    The draws depend on nothing but the seed and the step, so a resumed run (state_dict: the
    step) gets exactly the batches it would have had, with any number of processes.
    """

    START_SHARE = 0.1

    def __init__(self, rows: list[Row], batch_size: int, seed: int, collate: Collate,
                 rank: int = 0, world_size: int = 1, warmup_steps: int = 0) -> None:
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.collate = collate
        self.rank, self.world_size = rank, world_size
        self.warmup_steps = warmup_steps
        self.fingerprint = fingerprint(rows)  # a resumed run must have the same rows
        # Shortest first; rows of one length in a seeded random order.
        shuffled = np.random.default_rng([seed, 0]).permutation(len(rows))
        lengths = np.array([len(next(iter(rows[i].values()))) for i in shuffled])
        self.order = shuffled[np.argsort(lengths, kind="stable")]
        self.step = 0

    def admitted(self) -> int:
        """How many of the shortest rows this step draws from."""
        share = 1.0 if self.warmup_steps <= 0 else min(
            1.0, self.START_SHARE + (1 - self.START_SHARE) * self.step / self.warmup_steps)
        return max(min(len(self.rows), self.batch_size * self.world_size),
                   round(share * len(self.rows)))

    def next_batch(self) -> dict[str, torch.Tensor]:
        """This process's share of the next global batch (batch_size x processes rows)."""
        rng = np.random.default_rng([self.seed, 1, self.step])
        chosen = self.order[rng.integers(0, self.admitted(), size=self.batch_size
                                         * self.world_size)]
        self.step += 1
        mine = chosen[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        return as_tensors(self.collate([self.rows[i] for i in mine]))

    def state_dict(self) -> dict:
        return {"step": self.step, "rows": len(self.rows), "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        if state.get("fingerprint") != self.fingerprint or state.get("rows") != len(self.rows):
            raise TrainingError(
                "cannot resume: the conversations are not those this run was tuned on "
                f"({state.get('rows')} rows then, {len(self.rows)} now)",
                "put back the data (finetune.data_dir and its settings), or start again with "
                "`make finetune ARGS=--fresh`")
        self.step = int(state["step"])


def fixed_row_batches(rows: list[Row], batch_size: int, collate: Collate,
                      max_batches: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """The evaluation batches: the first rows of the validation set, in order, always the
    same ones."""
    count = len(rows) if max_batches is None else min(len(rows), max_batches * batch_size)
    for start in range(0, count, batch_size):
        yield as_tensors(collate(rows[start:min(start + batch_size, count)]))


def fingerprint(rows: list[Row]) -> str:
    """A short hash of the rows' tokens: what a checkpoint was tuned on."""
    sha = hashlib.sha256()
    for row in rows:
        for array in row.values():
            sha.update(array.tobytes())
    return sha.hexdigest()[:16]
