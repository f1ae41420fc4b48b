"""Instruction tuning (`make finetune`): what the model learns from, how it is scored, and how it
answers.

    objective = chat_objective(model_config, chat, val_rows, val_conversations, collate)
    reply = answer(model, chat, messages, max_new_tokens=48)          # greedy, one turn
    share = answer_accuracy(model, chat, held_out_conversations)

- It learns from the assistant's tokens of each conversation (data/finetune.py masks the rest).
- It is scored by the loss on the held-out conversations' assistant tokens (val_loss), and, when
  they are the built-in questions about a story (corpus/instructions.py), by answer_accuracy:
  the share answered with the right fact, matched after normalising case, punctuation and
  spaces (the fact "a hut beside a lake" is in "She lives in a hut beside a lake.").
- gpt writes the answer after the conversation's tokens (runtime/sampling.py); t5's decoder
  writes it from the encoder's reading of the conversation (runtime/seq2seq.py).
The Objective has the same fields as pretraining's (runtime/objectives.py), so the Trainer
(training/trainer.py) runs this stage without knowing it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

import numpy as np
import torch

from config import GenerationConfig, ModelConfig
from corpus.conversations import Conversation
from data.finetune import Collate, Row, fixed_row_batches
from runtime.objectives import Objective
from tokenizer.chat_format import ChatFormat, Messages

GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
ANSWER_TOKENS = 48  # enough for a one-sentence answer
SCORED_QUESTIONS = 100  # held-out questions answered at each evaluation (all of them: make eval)


def normalise(text: str) -> str:
    """Lowercase, punctuation dropped, spaces folded: how an answer is compared with a fact."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def answered(reply: str, fact: str) -> bool:
    """Whether the reply states the fact (as whole words)."""
    return f" {normalise(fact)} " in f" {normalise(reply)} "


def answer(model: torch.nn.Module, chat: ChatFormat, messages: Messages,
           settings: GenerationConfig | None = None, generator: torch.Generator | None = None,
           decoder_start: int | None = None) -> str:
    """The model's next turn after `messages` (greedy unless `settings` say otherwise). t5
    models need `decoder_start`, the token their decoder starts from."""
    settings = settings or GenerationConfig(max_new_tokens=ANSWER_TOKENS, **GREEDY)
    ids = prompt_ids(model, chat, messages, settings)
    return chat.tokenizer.decode(list(answer_tokens(model, chat, ids, settings, generator,
                                                    decoder_start)))


def prompt_ids(model: torch.nn.Module, chat: ChatFormat, messages: Messages,
               settings: GenerationConfig) -> list[int]:
    """The conversation's ids up to the answer; too long, it keeps its end (gpt: leaving room
    for the answer in the context, t5: for the encoder's </s>)."""
    ids, context = chat.prompt(messages), model.config.max_length
    if model.config.architecture == "t5":
        return ids[-(context - 1):]
    return ids[-max(1, context - min(settings.max_new_tokens, context // 2)):]


def answer_tokens(model: torch.nn.Module, chat: ChatFormat, ids: list[int],
                  settings: GenerationConfig, generator: torch.Generator | None = None,
                  decoder_start: int | None = None) -> Iterator[int]:
    """The answer's token ids after the prompt `ids`, one at a time as they are chosen (chat.py
    streams them); it ends before the chat format's end-of-turn token."""
    if model.config.architecture == "t5":
        from runtime.seq2seq import generate_seq2seq

        # The encoder reads the conversation; the decoder writes the answer from scratch.
        return generate_seq2seq(model, [*ids, chat.eos_id], settings, decoder_start,
                                chat.stop_ids, generator=generator)
    from runtime.sampling import generate_tokens

    return generate_tokens(model, ids, settings, stop_ids=chat.stop_ids, generator=generator)


def answer_accuracy(model: torch.nn.Module, chat: ChatFormat,
                    conversations: list[Conversation], limit: int | None = None,
                    decoder_start: int | None = None) -> float | None:
    """The share of conversations with a known answer (the built-in questions) whose last
    assistant turn, written by the model, states it. None when there are none."""
    scored = [c for c in conversations if c.answer][:limit]
    if not scored:
        return None
    right = sum(answered(answer(model, chat, c.messages[:-1], decoder_start=decoder_start),
                         c.answer) for c in scored)
    return right / len(scored)


def request_match(model: torch.nn.Module, chat: ChatFormat, conversations: list[Conversation],
                  limit: int | None = None, decoder_start: int | None = None) -> float | None:
    """The share of requests ("a story about a dragon and a ball") whose answer holds every
    word asked for. None when there are none."""
    scored = [c for c in conversations if c.checks][:limit]
    if not scored:
        return None
    settings = GenerationConfig(max_new_tokens=4 * ANSWER_TOKENS, **GREEDY)
    right = 0
    for c in scored:
        reply = answer(model, chat, c.messages[:-1], settings, decoder_start=decoder_start)
        right += all(answered(reply, word) for word in c.checks)
    return right / len(scored)


def assistant_loss(model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                   device: torch.device,
                   autocast_ctx: Callable[[], AbstractContextManager] = contextlib.nullcontext
                   ) -> tuple[float, int]:
    """(mean loss per scored token, number of scored tokens) over the batches."""
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                batch = {name: tensor.to(device) for name, tensor in batch.items()}
                targets = batch["targets"] if "targets" in batch else batch["labels"]
                scored = int((targets >= 0).sum())
                if not scored:
                    continue
                with autocast_ctx():
                    _, loss = model(**batch)
                total += float(loss) * scored  # the model's loss is the mean over these
                count += scored
    finally:
        model.train(was_training)
    return (total / count if count else float("nan")), count


def chat_objective(model_config: ModelConfig, chat: ChatFormat, val_rows: list[Row],
                   val_conversations: list[Conversation], collate: Collate,
                   train_rows: list[Row], decoder_start: int | None = None) -> Objective:
    """The Objective of instruction tuning. `evaluate` scores the held-out rows (its `tokens`
    argument, the Trainer's validation data, is these same rows)."""

    def evaluate(model: torch.nn.Module, tokens: list[Row], batch_size: int,
                 max_batches: int | None, device: torch.device,
                 autocast_ctx: Callable[[], AbstractContextManager] = contextlib.nullcontext,
                 text_size: tuple[int, int] | None = None,
                 forward_batch_size: int | None = None) -> dict[str, float]:
        batches = fixed_row_batches(tokens, forward_batch_size or batch_size, collate,
                                    None if max_batches is None else
                                    max_batches * batch_size // (forward_batch_size or batch_size))
        loss, scored = assistant_loss(model, batches, device, autocast_ctx)
        metrics = {"val_loss": loss, "val_ppl": float(np.exp(min(loss, 50.0)))}
        accuracy = answer_accuracy(model, chat, val_conversations,
                                   None if max_batches is None else SCORED_QUESTIONS,
                                   decoder_start)
        if accuracy is not None:
            metrics["val_answer_accuracy"] = accuracy
        return {**metrics, "scored_tokens": scored}

    def sample(model: torch.nn.Module, prompt: str, settings: GenerationConfig,
               generator: torch.Generator | None = None) -> str:
        return answer(model, chat, [{"role": "user", "content": prompt}],
                      GenerationConfig(max_new_tokens=min(settings.max_new_tokens, 64),
                                       **GREEDY), generator, decoder_start)

    key = "ids" if model_config.architecture != "t5" else "output"
    tokens_per_row = round(float(np.mean([len(row[key]) for row in train_rows])))
    return Objective("chat", model_config.max_length, tokens_per_row, make_batch=None,
                     evaluate=evaluate, sample=sample, continues_prompt=False)
