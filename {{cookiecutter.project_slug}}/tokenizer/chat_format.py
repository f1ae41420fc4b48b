"""The chat format: a conversation -> token ids, and which of them the model learns to write.

    chat = ChatFormat.load(tokenizer, "tokenizer/chat_template.jinja")
    ids, mask = chat.render([{"role": "user", "content": "Hi"},
                             {"role": "assistant", "content": "Hello!"}])
    prompt = chat.prompt(messages)   # ids ending where the assistant's answer begins
    chat.stop_ids                    # the tokens that end an answer (<|im_end|>, end of text)

The format lives in one place, a Jinja chat template (tokenizer/chat_template.jinja, ChatML),
and this file renders it exactly as Hugging Face transformers' `apply_chat_template` does (the
same sandboxed Jinja settings), so training, `make chat`, the HF export (whose
tokenizer_config.json carries the template), GGUF and Ollama all see the same tokens. One function
writes both the ids and the loss mask (as nanochat's render_conversation does), so they cannot
drift apart: the mask is 1 on every token inside the template's {% generation %} blocks (the
assistant's words and its end-of-turn token) and 0 elsewhere, the rule of transformers'
`return_assistant_tokens_mask`. A template without such blocks (an imported model's) gets the
assistant's spans by rendering the conversation one turn at a time.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from errors import DataError

# Beside this file: the project's one chat template (`make import` puts an imported model's here).
TEMPLATE_PATH = Path(__file__).resolve().parent / "chat_template.jinja"
Messages = list[dict[str, str]]


class _GenerationTracker(Extension):
    """`{% generation %}...{% endgeneration %}`: records where its text lands in the output."""

    tags = {"generation"}

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        self.spans: ContextVar[list[tuple[int, int]] | None] = ContextVar("spans", default=None)
        self.rendered: ContextVar[list[str] | None] = ContextVar("rendered", default=None)
        environment.extend(track_generation=self.track)

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.CallBlock:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation"), [], [], body) \
            .set_lineno(lineno)

    def _generation(self, caller: Any) -> str:
        text = caller()
        spans, rendered = self.spans.get(), self.rendered.get()
        if spans is not None and rendered is not None:
            start = len("".join(rendered))
            spans.append((start, start + len(text)))
        return text

    @contextmanager
    def track(self, rendered: list[str], spans: list[tuple[int, int]]) -> Any:
        token_spans, token_rendered = self.spans.set(spans), self.rendered.set(rendered)
        try:
            yield
        finally:
            self.spans.reset(token_spans)
            self.rendered.reset(token_rendered)


def _environment() -> ImmutableSandboxedEnvironment:
    """transformers' chat-template environment: sandboxed, trim_blocks, lstrip_blocks."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTracker, "jinja2.ext.loopcontrols"])

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False,
                                                               indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env


class ChatFormat:
    def __init__(self, tokenizer: Tokenizer, template: str, special: dict[str, str]) -> None:
        """`special`: the names a template may use, bos_token and eos_token (as transformers
        passes them from the tokenizer's settings)."""
        self.tokenizer = tokenizer
        self.template_text = template
        self.special = special
        try:
            self.template = _environment().from_string(template)
        except jinja2.TemplateError as error:
            raise DataError(f"the chat template does not parse: {error}",
                            "fix it (tokenizer/chat_template.jinja), or restore it from git"
                            ) from None
        for token in dict.fromkeys(re.findall(r"<\|[A-Za-z_]+\|>", template)):
            if tokenizer.token_to_id(token) is None:  # it would be split into pieces of text
                raise DataError(
                    f"the tokenizer has no {token} token, which the chat template uses",
                    "train a tokenizer that has it (it is in tokenizer.special_tokens of a new "
                    "project): `make tokenizer data`, then `make train ARGS=--fresh`")
        self.eos_id = tokenizer.token_to_id(special.get("eos_token", ""))
        self.stop_ids = self._stop_ids()

    @classmethod
    def load(cls, tokenizer: Tokenizer, path: str | Path = TEMPLATE_PATH,
             eos_token: str = "<|endoftext|>") -> ChatFormat:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"cannot read the chat template {path}: "
                            f"{getattr(error, 'strerror', None) or error}",
                            "restore it from git (git checkout tokenizer/chat_template.jinja)"
                            ) from None
        return cls(tokenizer, text, {"bos_token": eos_token, "eos_token": eos_token})

    # ---- text ----

    def render_text(self, messages: Messages, add_generation_prompt: bool = False
                    ) -> tuple[str, list[tuple[int, int]]]:
        """The conversation as text, and the (start, end) character spans of the
        {% generation %} blocks in it."""
        rendered: list[str] = []
        spans: list[tuple[int, int]] = []
        env = self.template.environment
        try:
            with env.track_generation(rendered, spans):  # type: ignore[attr-defined]
                for piece in self.template.generate(messages=messages,
                                                    add_generation_prompt=add_generation_prompt,
                                                    **self.special):
                    rendered.append(piece)
        except jinja2.TemplateError as error:
            raise DataError(f"the chat template failed on a conversation: {error}",
                            "check the conversation's roles, or fix "
                            "tokenizer/chat_template.jinja") from None
        return "".join(rendered), spans

    def assistant_spans(self, messages: Messages) -> tuple[str, list[tuple[int, int]]]:
        """The text and the assistant's spans; for a template without {% generation %}, each
        assistant turn is what rendering it adds after the generation prompt before it."""
        text, spans = self.render_text(messages)
        if spans or re.search(r"{%-?\s*generation\s*-?%}", self.template_text):
            return text, spans
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before, _ = self.render_text(messages[:i], add_generation_prompt=True)
            through, _ = self.render_text(messages[:i + 1])
            if not (text.startswith(through) and through.startswith(before)):
                raise DataError("the chat template renders a conversation differently as it "
                                "grows, so the assistant's turns cannot be found",
                                "add {% generation %} ... {% endgeneration %} around the "
                                "assistant's content in tokenizer/chat_template.jinja")
            spans.append((len(before), len(through.rstrip())))
        return text, spans

    # ---- tokens ----

    def render(self, messages: Messages) -> tuple[list[int], list[int]]:
        """(ids, mask) of a whole conversation: mask[i] = 1 where token i is the assistant's
        (a token overlapping a span counts, as in transformers)."""
        text, spans = self.assistant_spans(messages)
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        mask, span = [0] * len(encoding.ids), 0
        for i, (start, end) in enumerate(encoding.offsets):
            while span < len(spans) and start >= spans[span][1]:
                span += 1
            if span == len(spans):
                break
            if end > spans[span][0]:
                mask[i] = 1
        return encoding.ids, mask

    def prompt(self, messages: Messages) -> list[int]:
        """The ids of the conversation so far, ending where the assistant's next turn begins."""
        text, _ = self.render_text(messages, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _stop_ids(self) -> tuple[int, ...]:
        """The special tokens an assistant turn ends with (<|im_end|> in ChatML), found by
        rendering a probe turn, plus the end-of-text token."""
        probe = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        ids, mask = self.render(probe)
        special = {i for i, token in self.tokenizer.get_added_tokens_decoder().items()
                   if token.special}
        stops = [i for i, m in zip(ids, mask, strict=True) if m and i in special]
        if self.eos_id is not None:
            stops.append(self.eos_id)
        if not stops:
            raise DataError("the chat template ends an assistant turn with no special token, so "
                            "an answer would never stop",
                            "end the assistant's turn with a special token in "
                            "tokenizer/chat_template.jinja (ChatML: <|im_end|>)")
        return tuple(dict.fromkeys(stops))
