"""Conversations for instruction tuning (`make finetune`): read data/finetune/*.jsonl, checked.

    data/finetune/*.jsonl      one conversation per line (nested folders allowed), either
        {"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}
        {"prompt": "...", "completion": "..."}      (each also a list of messages)
    (empty data/finetune)      the built-in instruction set (corpus/instructions.py)

These are the formats of OpenAI's chat API and of Hugging Face TRL. A line that is not JSON, an
unknown role, content that is not text, or a conversation without an assistant turn stops with
an error naming file:line: tuning on less data than you think is worse than stopping.
Conversations are split between training and validation whole (finetune.val_split), never cut
across the two, with the same seeded rule as `make data` (corpus/sources.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corpus.sources import ValidationSplit, find_text_files
from errors import DataError

ROLES = ("system", "user", "assistant")


@dataclass
class Conversation:
    messages: list[dict[str, str]]
    """{"role", "content"} dicts, in order."""
    answer: str | None = None
    """A fact the last answer must state (the built-in questions): what answer_accuracy checks."""
    checks: list[str] = field(default_factory=list)
    """Words a request's answer must hold (the built-in "tell me a story about ..." requests)."""
    source: str = ""
    """file:line it came from ('' for the built-in set)."""


def read_conversations(folder: str | Path) -> list[Conversation]:
    """Every conversation of the .jsonl files under `folder` (sorted; [] when there are none)."""
    root = Path(folder)
    if not root.exists():
        return []
    conversations = []
    for path in find_text_files(root):  # text files only; the others are named and skipped
        if path.suffix.lower() != ".jsonl":
            print(f"Skipping {path}: conversations are .jsonl files (one JSON object a line)")
            continue
        conversations += _read_file(path)
    return conversations


def _read_file(path: Path) -> Iterator[Conversation]:
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield parse_conversation(line, f"{path}:{number}")


def parse_conversation(line: str, where: str) -> Conversation:
    """One JSON line -> a checked Conversation; DataError naming `where` and the fix."""
    try:
        row = json.loads(line)
    except ValueError as error:
        raise DataError(f"{where} is not valid JSON ({error})",
                        "write one JSON object per line: "
                        '{"messages": [{"role": "user", "content": "..."}, '
                        '{"role": "assistant", "content": "..."}]}') from None
    if not isinstance(row, dict):
        raise DataError(f"{where} is not a JSON object", 'write {"messages": [...]} or '
                        '{"prompt": "...", "completion": "..."} on each line')
    if "messages" in row:
        messages = _messages(row["messages"], where, "messages")
    elif "prompt" in row and "completion" in row:
        messages = (_as_messages(row["prompt"], "user", where, "prompt")
                    + _as_messages(row["completion"], "assistant", where, "completion"))
    else:
        raise DataError(f"{where} has neither \"messages\" nor \"prompt\" and \"completion\" "
                        f"(its keys: {', '.join(map(str, row)) or 'none'})",
                        'write {"messages": [...]} or {"prompt": "...", "completion": "..."}')
    if not any(message["role"] == "assistant" for message in messages):
        raise DataError(f"{where} has no assistant turn: there is nothing to learn from it",
                        "add the answer as {\"role\": \"assistant\", \"content\": \"...\"}, or "
                        "delete the line")
    return Conversation(messages, source=where)


def _as_messages(value: object, role: str, where: str, key: str) -> list[dict[str, str]]:
    """A prompt or completion: a string (one message of `role`) or a list of messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return _messages(value, where, key)


def _messages(value: object, where: str, key: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: \"{key}\" must be a non-empty list of messages",
                        'write it as [{"role": "user", "content": "..."}, ...]')
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(f"{where}: message {i + 1} of \"{key}\" needs a \"role\" and a "
                            "\"content\"", 'write {"role": "user", "content": "..."}')
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(f"{where}: message {i + 1} has the role {role!r}; the roles are "
                            f"{', '.join(ROLES)}", "use one of those roles (a tool's output: put "
                            "it in a user message)")
        if not isinstance(content, str):
            raise DataError(f"{where}: the content of message {i + 1} is not text",
                            "write the content as one string")
        messages.append({"role": role, "content": content})
    return messages


def split_conversations(conversations: list[Conversation], val_split: float, seed: int
                        ) -> tuple[list[Conversation], list[Conversation]]:
    """(train, validation): whole conversations, chosen by the same seeded rule as `make data`.
    A set too small to split keeps at least one conversation on each side."""
    if len(conversations) < 2:
        raise DataError(f"only {len(conversations)} conversation(s) to tune on",
                        "add more lines to data/finetune/*.jsonl (hundreds at least), or empty "
                        "the folder to use the built-in instruction set")
    held_out = ValidationSplit(val_split, seed)
    train, val = [], []
    for i, conversation in enumerate(conversations):
        (val if held_out(i) else train).append(conversation)
    if not val:
        val.append(train.pop())
    if not train:
        train.append(val.pop())
    return train, val
