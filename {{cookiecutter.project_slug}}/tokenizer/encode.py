"""Encode many documents fast: what `make data` uses to turn the corpus into token ids.

    encoder = DocumentEncoder(load_tokenizer("tokenizer/tokenizer.json"))
    id_arrays = encoder.encode_batch(["Once upon a time...", "The end."])   # list of np arrays
    for payload, id_arrays in encode_stream(batches, "tokenizer/tokenizer.json", workers=2): ...

The ids are exactly those of `tokenizer.encode(text, add_special_tokens=False)`; only the speed
differs. For byte-level BPE (our `bpe`) there is a shortcut: the tokenizer first splits text into
words with a fixed regular expression and then encodes each word on its own, so a word always
gives the same ids. Natural text repeats the same few thousand words (Zipf's law), so we split
with Python's `re`, encode each *new* word once with the tokenizer and look the rest up in a
dict — about 4x faster than `Tokenizer.encode_batch` on two CPU cores, where it is the slowest part
of `make data`. Other tokenizers (wordpiece, unigram, or a bpe you changed) use `encode_batch`.

Two safety nets keep the ids identical to the tokenizer's own:
- text the shortcut cannot classify exactly like the tokenizer (special-token strings, characters
  newer than Python's Unicode tables, unusual numerals such as '½') goes to `encode_batch`;
- the first ~128 KB are encoded both ways and compared; any difference turns the shortcut off.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import TypeVar

import numpy as np
from tokenizers import Tokenizer

# The byte-level pre-tokenizer's pattern (GPT-2's), written for Python's `re`, which has no
# \p{L}/\p{N}: for str patterns [^\W\d_] is a letter and \d a decimal digit; the few characters
# where that differs from \p{L}/\p{N} are sent to the tokenizer instead (see _is_plain).
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_ASCII_WORDS = re.compile(
    r" ?[A-Za-z]+|'(?:s|t|re|ve|m|ll|d)| ?[0-9]+| ?[^\t\n\x0b\x0c\r A-Za-z0-9]+"
    r"|[\t\n\x0b\x0c\r ]+(?![^\t\n\x0b\x0c\r ])|[\t\n\x0b\x0c\r ]+"
)
_UNICODE_WORDS = re.compile(
    rf" ?[^\W\d_]+|'(?:s|t|re|ve|m|ll|d)| ?\d+| ?(?:[^\w{_WS}]|_)+"
    rf"|[{_WS}]+(?![^{_WS}])|[{_WS}]+"
)
_ASCII = frozenset(map(chr, range(128)))
T = TypeVar("T")
MAX_CACHED_WORDS = 200_000  # ~40 MB; bounds memory however large the corpus is
CHECK_CHARS = 128_000  # text compared against the tokenizer before trusting the shortcut


@functools.cache
def _is_plain(char: str) -> bool:
    """Whether Python's `re` classifies this non-ASCII character like the tokenizer's regex:
    not for characters unassigned in Python's Unicode tables (Cn) nor numerals other than
    decimal digits (Nl, No: '½', 'Ⅻ'), numbers to the tokenizer but letters to `re`."""
    category = unicodedata.category(char)
    return category == "Nd" or (category != "Cn" and not category.startswith("N"))


def _uses_byte_level_bpe(tok: Tokenizer) -> bool:
    """True for the pipeline tokenizer/train.py builds for `bpe` (and nothing else)."""
    spec = json.loads(tok.to_str())
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model", {})
    return (
        model.get("type") == "BPE"
        and not model.get("dropout")  # BPE dropout is random on purpose: no cache then
        and spec.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and not pre.get("add_prefix_space", False)
    )


class DocumentEncoder:
    """Turns batches of documents into arrays of token ids (no special tokens added)."""

    def __init__(self, tok: Tokenizer) -> None:
        self.tok = tok
        self.fast = _uses_byte_level_bpe(tok)
        self.checked = False
        specials = [t.content for t in tok.get_added_tokens_decoder().values()]
        self.specials = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._clear_cache()

    def _clear_cache(self) -> None:
        # Word i's ids are flat[starts[i] : starts[i] + lengths[i]].
        self.word_index: dict[str, int] = {}
        self.flat = np.zeros(1 << 16, dtype=np.int64)
        self.starts = np.zeros(1 << 12, dtype=np.int64)
        self.lengths = np.zeros(1 << 12, dtype=np.int64)
        self.used = 0  # entries of `flat` in use

    def _add_words(self, words: list[str]) -> None:
        """Encode new words with the tokenizer (all cores) and append them to the cache."""
        encodings = self.tok.encode_batch(words, add_special_tokens=False)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        lengths = np.array([len(i) for i in ids], dtype=np.int64)
        first, n = len(self.word_index), len(words)
        while first + n > len(self.starts):  # grow by doubling: amortised O(1) per word
            self.starts = np.resize(self.starts, 2 * len(self.starts))
            self.lengths = np.resize(self.lengths, 2 * len(self.lengths))
        while self.used + lengths.sum() > len(self.flat):
            self.flat = np.resize(self.flat, 2 * len(self.flat))
        self.starts[first:first + n] = self.used + np.cumsum(lengths) - lengths
        self.lengths[first:first + n] = lengths
        self.flat[self.used:self.used + lengths.sum()] = np.concatenate(ids)
        self.used += int(lengths.sum())
        self.word_index.update(zip(words, range(first, first + n), strict=True))

    def _words(self, text: str) -> list[str] | None:
        """The tokenizer's pre-tokenization of `text`, or None if only the tokenizer can say."""
        if self.specials is not None and self.specials.search(text):
            return None
        if text.isascii():
            return _ASCII_WORDS.findall(text)
        if all(map(_is_plain, set(text) - _ASCII)):
            return _UNICODE_WORDS.findall(text)
        return None

    def _slow(self, texts: list[str]) -> list[np.ndarray]:
        encodings = self.tok.encode_batch(texts, add_special_tokens=False)
        return [np.array(e.ids, dtype=np.int64) for e in encodings]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text, exactly as `tok.encode(text, add_special_tokens=False)`."""
        if not self.fast:
            return self._slow(texts)
        words = [self._words(text) for text in texts]
        plain = [w for w in words if w is not None]
        if len(self.word_index) > MAX_CACHED_WORDS:  # bound memory; frequent words come back fast
            self._clear_cache()
        new = set().union(*plain).difference(self.word_index)
        if new:
            self._add_words(list(new))
        # One dict lookup per word, then one vectorised gather expands words into token ids.
        all_words = list(chain.from_iterable(plain))
        index = np.fromiter(map(self.word_index.__getitem__, all_words), dtype=np.int64,
                            count=len(all_words))
        lengths = self.lengths[index]
        ends = np.cumsum(lengths)  # token position just after each word
        positions = np.repeat(self.starts[index] - (ends - lengths), lengths)
        ids = self.flat[positions + np.arange(len(positions))]
        # Cut the flat ids back into documents: document d ends where its last word ends.
        doc_ends = np.concatenate([[0], ends])[np.cumsum([len(w) for w in plain], dtype=np.int64)]
        pieces = iter(np.split(ids, doc_ends[:-1]))
        slow = iter(self._slow([t for t, w in zip(texts, words, strict=True) if w is None]))
        out = [next(slow) if w is None else next(pieces) for w in words]

        if not self.checked:  # compare with the tokenizer once; never trust a shortcut blindly
            self.checked = True
            count, size = 0, 0
            while count < len(texts) and size <= CHECK_CHARS:
                size += len(texts[count])
                count += 1
            reference = self._slow(texts[:count])
            if any(not np.array_equal(a, b) for a, b in zip(out, reference)):  # noqa: B905
                print("Note: fast encoding disagreed with the tokenizer; using the tokenizer "
                      "for everything (slower, same result)")
                self.fast = False
                return self._slow(texts)
        return out


# ---- using every core: one DocumentEncoder per worker process ----

_worker_encoder: DocumentEncoder | None = None


def _start_worker(tokenizer_path: str) -> None:
    global _worker_encoder
    # One worker per core already: the tokenizer's own threads would only fight over them.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_encoder = DocumentEncoder(Tokenizer.from_file(tokenizer_path))


def _encode_in_worker(texts: list[str]) -> list[np.ndarray]:
    assert _worker_encoder is not None
    return _worker_encoder.encode_batch(texts)


def encode_stream(batches: Iterable[tuple[T, list[str]]], tokenizer_path: str,
                  workers: int = 1) -> Iterator[tuple[T, list[np.ndarray]]]:
    """Encode (payload, texts) batches in order, on `workers` processes; yields (payload, ids).

    Only 2 batches per worker are in flight at any time, so memory does not depend on how many
    batches there are. With workers <= 1 everything runs in this process.
    """
    if workers <= 1:
        encoder = DocumentEncoder(Tokenizer.from_file(tokenizer_path))
        for payload, texts in batches:
            yield payload, encoder.encode_batch(texts)
        return
    # "spawn", not fork: the tokenizer's own thread pool does not survive a fork.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(tokenizer_path,)) as pool:
        in_flight: deque = deque()
        for payload, texts in batches:
            in_flight.append((payload, pool.apply_async(_encode_in_worker, (texts,))))
            if len(in_flight) >= 2 * workers:
                done, result = in_flight.popleft()
                yield done, result.get()
        while in_flight:
            done, result = in_flight.popleft()
            yield done, result.get()
