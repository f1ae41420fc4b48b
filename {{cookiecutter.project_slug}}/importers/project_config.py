"""llm.config.js, rewritten for an imported checkpoint, its comments and layout kept.

    text = set_values(text, {"model": {"layers": 30, "dim": 576}, "tokenizer": {"type": "bpe"}})

Each value is replaced where it is written, so `layers: 4,   // transformer blocks` becomes
`layers: 30,  // transformer blocks`; a key the file does not have yet is added at the end of its
section with a comment saying where it came from. The file is never executed or re-serialised:
a small scanner finds where each value starts and ends (strings, comments, nested lists and
objects are skipped correctly), and only those characters change. set_values then parses the
result and checks that every value reads back as asked, so a rewrite that went wrong is an
error before the file is written, never a broken llm.config.js.
"""

from __future__ import annotations

import json
import re
from typing import Any

from config import parse_config_text
from errors import ConfigurationError

IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")


class _Scanner:
    """Where each value of `module.exports = {...}` is: (section, key) -> (start, end) of the
    value's text, and section -> the index of its closing brace. Understands what JSON5 allows:
    comments, quoted or bare keys, single or double quoted strings, trailing commas."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.values: dict[tuple[str, ...], tuple[int, int]] = {}
        self.keys: dict[tuple[str, ...], int] = {}  # where each key is written
        self.closing: dict[tuple[str, ...], int] = {}
        match = re.search(r"^\s*module\.exports\s*=\s*", text, flags=re.MULTILINE)
        if match is None:
            raise ConfigurationError("llm.config.js has no `module.exports = {`",
                                     "restore it from git (`git checkout llm.config.js`)")
        self.value(self.skip(match.end()), ())

    def skip(self, i: int) -> int:
        """The index of the next character that is not whitespace or a comment."""
        text = self.text
        while i < len(text):
            if text[i].isspace():
                i += 1
            elif text.startswith("//", i):
                end = text.find("\n", i)
                i = len(text) if end < 0 else end + 1
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                i = len(text) if end < 0 else end + 2
            else:
                break
        return i

    def string(self, i: int) -> int:
        """The index just after the string literal starting at i."""
        quote, i = self.text[i], i + 1
        while i < len(self.text) and self.text[i] != quote:
            i += 2 if self.text[i] == "\\" else 1
        return i + 1

    def value(self, i: int, path: tuple[str, ...]) -> int:
        """Scan the value at i (recording objects' keys under `path`); its end index."""
        text = self.text
        if i >= len(text):
            raise ConfigurationError("llm.config.js ends in the middle of a value",
                                     "restore it from git (`git checkout llm.config.js`)")
        if text[i] in "{[":
            close = "}" if text[i] == "{" else "]"
            i = self.skip(i + 1)
            while text[i] != close:
                if close == "}":  # a key, a colon, then its value
                    key_start = i
                    if text[i] in "'\"":
                        end = self.string(i)
                        key = json.loads('"' + text[i + 1:end - 1] + '"') if text[i] == '"' \
                            else text[i + 1:end - 1]
                    else:
                        match = IDENTIFIER.match(text, i)
                        if match is None:
                            raise ConfigurationError(f"llm.config.js: unexpected {text[i]!r}",
                                                     "fix the file, or restore it from git")
                        key, end = match.group(), match.end()
                    i = self.skip(end)
                    if text[i] != ":":
                        raise ConfigurationError(f"llm.config.js: no `:` after {key}",
                                                 "fix the file, or restore it from git")
                    start = self.skip(i + 1)
                    i = self.value(start, (*path, key))
                    self.values[(*path, key)] = (start, i)
                    self.keys[(*path, key)] = key_start
                else:
                    i = self.value(i, path + ("[]",))
                i = self.skip(i)
                if text[i] == ",":
                    i = self.skip(i + 1)
            if close == "}":
                self.closing[path] = i
            return i + 1
        if text[i] in "'\"":
            return self.string(i)
        match = re.compile(r"[^,\]}\s/]+").match(text, i)  # a number, true, false, null
        return match.end() if match else i + 1


def literal(value: Any, like: str = "'") -> str:
    """A Python value as a JSON5 literal, strings in the quote style of `like`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, like) for v in value) + "]"
    if like.startswith("'"):
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(str(value), ensure_ascii=False)


def _quote_style(text: str, start: int, end: int) -> str:
    """The quote character of the first string in text[start:end] (single by default)."""
    found = re.search(r"['\"]", text[start:end])
    return found.group() if found else "'"


def _aligned(text: str, start: int, end: int, new: str) -> tuple[int, int, str]:
    """The edit replacing text[start:end] by `new`, with the spaces before a comment on the same
    line shortened or lengthened so the comment stays in its column."""
    gap = re.compile(r"(,?)( +)(?=//)").match(text, end)
    if gap is None:
        return start, end, new
    spaces = max(1, len(gap.group(2)) - (len(new) - (end - start)))
    return start, gap.end(), new + gap.group(1) + " " * spaces


def set_values(text: str, changes: dict[str, dict[str, Any]],
               comments: dict[str, str] | None = None) -> str:
    """`text` with each changes[section][key] set (see the module docstring). comments: the
    comment of a key that has to be added, by key."""
    comments = comments or {}
    scanner = _Scanner(text)
    edits: list[tuple[int, int, str]] = []  # (start, end, new text), applied back to front
    for section, values in changes.items():
        if (section,) not in scanner.closing:
            raise ConfigurationError(f"llm.config.js has no `{section}: {{ ... }}` section",
                                     f"add an empty `{section}: {{}},` section and run again")
        missing = []
        for key, value in values.items():
            span = scanner.values.get((section, key))
            if span is None:
                missing.append((key, value))
            else:
                edits.append(_aligned(text, *span, literal(value, _quote_style(text, *span))))
        if missing:
            edits += _insertion(text, scanner, section, missing, comments)
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    check_values(text, changes)
    return text


def _insertion(text: str, scanner: _Scanner, section: str, missing: list[tuple[str, Any]],
               comments: dict[str, str]) -> list[tuple[int, int, str]]:
    """Edits that add the keys a section lacks at its end, indented and quoted like its other
    keys (and a comma after the last old value if it had none, as in JSON)."""
    keys = [start for path, start in scanner.keys.items() if len(path) == 2
            and path[0] == section]
    close = scanner.closing[(section,)]
    first = min(keys, default=None)
    indent = "    " if first is None else \
        re.match(r"[ \t]*", text[text.rfind("\n", 0, first) + 1:]).group()
    quote = text[first] if first is not None and text[first] in "'\"" else None
    entries = [(json.dumps(key) if quote else key, literal(value, quote or "'"), comments.get(key))
               for key, value in missing]
    edits = []
    last = max((end for path, (_, end) in scanner.values.items() if len(path) == 2
                and path[0] == section), default=None)
    if last is not None and text[scanner.skip(last)] != ",":
        edits.append((last, last, ","))
    brace_line = text.rfind("\n", 0, close) + 1
    if text[brace_line:close].strip() or first is None:  # `{ a: 1 }` on one line, or `{}`
        space = "" if text[close - 1] == " " else " "
        edits.append((close, close, space + ", ".join(f"{k}: {v}" for k, v, _ in entries) + " "))
    else:  # new lines just above the closing brace's line
        lines = [f"{indent}{k}: {v},{f'  // {c}' if c else ''}\n" for k, v, c in entries]
        edits.append((brace_line, brace_line, "".join(lines)))
    return edits


def check_values(text: str, changes: dict[str, dict[str, Any]]) -> None:
    """ConfigurationError unless every value of `changes` reads back from `text` as asked."""
    data = parse_config_text(text)
    for section, values in changes.items():
        for key, value in values.items():
            found = data.get(section, {}).get(key)
            if found != value or type(found) is not type(value) and not (
                    isinstance(value, float) and isinstance(found, int)):
                raise ConfigurationError(
                    f"could not write {section}.{key} = {value!r} into llm.config.js (it reads "
                    f"back as {found!r})",
                    f"set {section}.{key} to {literal(value)} in llm.config.js yourself, then "
                    "run the import again")
