"""Encode many documents fast: what `make data` uses to turn the corpus into token ids.

    encoder = DocumentEncoder(load_tokenizer("tokenizer/tokenizer.json"))
    id_arrays = encoder.encode_batch(["Once upon a time...", "The end."])   # list of np arrays
    with Encoders("tokenizer/tokenizer.json", workers=2, end_id=0, dtype=np.uint16) as encoders:
        for payload, encoded in encoders.map(batches): ...   # one array per batch of texts

The ids are exactly those of `tokenizer.encode(text, add_special_tokens=False)`; only the speed
differs. For byte-level BPE (our `bpe`) there is a shortcut: the tokenizer first splits text into
words with a fixed regular expression and then encodes each word on its own, so a word always
gives the same ids. Natural text repeats the same few thousand words (Zipf's law), so we split
with Python's `re`, encode each *new* word once with the tokenizer and look the rest up in a
dict. One step coarser still: a space followed by a non-space always starts a new word, so the
text is cut there into segments (" dog," " upon") with str.split, and whole segments are looked
up; only new segments are split into words. Measured on bench's 20 MB of stories in one process
(shared 2-core machine): `Tokenizer.encode_batch` 1.9 MB/s, words 11.8 MB/s, segments 15.8 MB/s.
Other tokenizers (wordpiece, unigram, or a bpe you changed) use `encode_batch`.

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
import sys
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, repeat
from typing import Any, NamedTuple, TypeVar

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
# Where _segments cuts: a space before a non-space; a space before whitespace or at the end.
_CUT = re.compile(rf" (?=[^{_WS}])")
_SPACE_NOT_CUT = re.compile(rf" (?=[{_WS}]|\Z)")
T = TypeVar("T")
MAX_CACHED = 300_000  # words and segments, ~60 MB; bounds memory however large the corpus is
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
        # Entry i (a cached word or segment) has the ids flat[starts[i] : starts[i] + lengths[i]].
        self.word_index: dict[str, int] = {}  # a pre-tokenized word -> its entry
        self.segment_index: dict[str, int] = {}  # a segment after a space (see _segments)
        self.first_index: dict[str, int] = {}  # a document's first segment (no space before)
        self.flat = np.zeros(1 << 16, dtype=np.int64)
        self.starts = np.zeros(1 << 12, dtype=np.int64)
        self.lengths = np.zeros(1 << 12, dtype=np.int64)
        self.entries = 0  # entries in use
        self.used = 0  # elements of `flat` in use

    def _append(self, id_arrays: list[np.ndarray]) -> int:
        """Add entries with these ids to the cache; the index of the first."""
        lengths = np.array([len(i) for i in id_arrays], dtype=np.int64)
        first, n, total = self.entries, len(id_arrays), int(lengths.sum())
        while first + n > len(self.starts):  # grow by doubling: amortised O(1) per entry
            self.starts = np.resize(self.starts, 2 * len(self.starts))
            self.lengths = np.resize(self.lengths, 2 * len(self.lengths))
        while self.used + total > len(self.flat):
            self.flat = np.resize(self.flat, 2 * len(self.flat))
        self.starts[first:first + n] = self.used + np.cumsum(lengths) - lengths
        self.lengths[first:first + n] = lengths
        if total:
            self.flat[self.used:self.used + total] = np.concatenate(id_arrays)
        self.used += total
        self.entries += n
        return first

    def _entries(self, keys: list[str], index: dict[str, int],
                 encode_new: Callable[[list[str]], list[np.ndarray]]) -> np.ndarray:
        """The cache entry of each key (one dict lookup each), encoding the keys not yet in
        `index` with encode_new(keys)."""
        found = np.fromiter(map(index.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))
        missing = np.flatnonzero(found < 0)
        if len(missing):
            new = list(dict.fromkeys(keys[i] for i in missing))  # distinct, in order
            first = self._append(encode_new(new))
            index.update(zip(new, range(first, first + len(new)), strict=True))
            found[missing] = [index[keys[i]] for i in missing]
        return found

    def _expand(self, entries: np.ndarray, counts: list[int]) -> list[np.ndarray]:
        """The ids of a sequence of entries, cut into documents of counts[d] entries each."""
        lengths = self.lengths[entries]
        ends = np.cumsum(lengths)  # token position just after each entry
        positions = np.repeat(self.starts[entries] - (ends - lengths), lengths)
        ids = self.flat[positions + np.arange(len(positions))]  # one vectorised gather
        doc_ends = np.concatenate([[0], ends])[np.cumsum(counts, dtype=np.int64)]
        return np.split(ids, doc_ends[:-1])

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

    def _by_words(self, texts: list[str]) -> list[np.ndarray]:
        """Ids of each text from its words: new words encoded by the tokenizer (all cores)."""
        words = [self._words(text) for text in texts]
        plain = [w for w in words if w is not None]
        entries = self._entries(list(chain.from_iterable(plain)), self.word_index, self._slow)
        pieces = iter(self._expand(entries, [len(w) for w in plain]))
        slow = iter(self._slow([t for t, w in zip(texts, words, strict=True) if w is None]))
        return [next(slow) if w is None else next(pieces) for w in words]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text, exactly as `tok.encode(text, add_special_tokens=False)`."""
        if not self.fast:
            return self._slow(texts)
        if self.entries > MAX_CACHED:  # bound memory; frequent segments come back fast
            self._clear_cache()
        special = [self.specials is not None and self.specials.search(t) is not None
                   for t in texts]
        firsts: list[str] = []
        rest: list[str] = []
        counts: list[int] = []  # entries per document: its first segment and the rest
        for text, is_special in zip(texts, special, strict=True):
            if not is_special:
                segments = _segments(text)
                firsts.append(segments[0])
                counts.append(len(segments))
                del segments[0]
                rest += segments
        first_entries = self._entries(firsts, self.first_index, self._by_words)
        rest_entries = self._entries(rest, self.segment_index,
                                     lambda new: self._by_words([" " + s for s in new]))
        # Each document's entries in order: its first segment's, then those of the rest.
        entries = np.empty(len(firsts) + len(rest), dtype=np.int64)
        is_first = np.zeros(len(entries), dtype=bool)
        starts = np.cumsum(counts, dtype=np.int64) - np.array(counts, dtype=np.int64)
        is_first[starts] = True  # (an int array even when every text holds a special token)
        entries[is_first] = first_entries
        entries[~is_first] = rest_entries
        pieces = iter(self._expand(entries, counts))
        slow = iter(self._slow([t for t, s in zip(texts, special, strict=True) if s]))
        out = [next(slow) if s else next(pieces) for s in special]

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


def _segments(text: str) -> list[str]:
    """`text` cut before every space that the next token starts with: the pieces encode
    independently, so a repeated piece (" dog," again) is looked up, not encoded again.

    The byte-level pre-tokenizer starts a token at every space followed by a non-space (the
    optional space of its letter, digit and punctuation runs) and never looks back past it, so
    cutting there is exact. A space followed by whitespace (or at the end) may belong to a run
    of whitespace instead: texts with one are cut by a regular expression, the rest by the much
    faster str.split.
    """
    if _SPACE_NOT_CUT.search(text):
        return _CUT.split(text)
    return text.split(" ")


# ---- using every core: one DocumentEncoder per worker process ----


class Encoded(NamedTuple):
    """A batch of texts encoded for a .bin file: few, large arrays, cheap to send between
    processes (a list of one small array per text cost more to pickle than to encode)."""

    ids: np.ndarray  # every text's ids one after another, end_id after each that ends a document
    tokens: np.ndarray  # how many of `ids` belong to each text (its end_id included)
    text_bytes: np.ndarray  # each text's size in UTF-8 bytes


def encode_joined(encoder: DocumentEncoder, texts: list[str], ends: list[bool], end_id: int,
                  dtype: type[np.unsignedinteger]) -> Encoded:
    """Encode `texts` into one array of `dtype`, with end_id after each text whose `ends` is
    true."""
    id_arrays = encoder.encode_batch(texts)
    end = np.array([end_id], dtype=np.int64)
    pieces: list[np.ndarray] = []
    for ids, ends_document in zip(id_arrays, ends, strict=True):
        pieces += (ids, end) if ends_document else (ids,)
    tokens = np.fromiter(map(len, id_arrays), np.int64, len(texts)) + np.array(ends, np.int64)
    return Encoded(np.concatenate(pieces).astype(dtype) if pieces else np.zeros(0, dtype), tokens,
                   np.fromiter((len(t.encode("utf-8")) for t in texts), np.int64, len(texts)))


_worker: tuple[DocumentEncoder, int, type[np.unsignedinteger]] | None = None


def _start_worker(tokenizer_path: str, end_id: int, dtype: type[np.unsignedinteger]) -> None:
    global _worker
    # One worker per core already: the tokenizer's own threads would only fight over them.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker = DocumentEncoder(Tokenizer.from_file(tokenizer_path)), end_id, dtype


def _encode_in_worker(texts: list[str], ends: list[bool]) -> Encoded:
    assert _worker is not None
    encoder, end_id, dtype = _worker
    return encode_joined(encoder, texts, ends, end_id, dtype)


class Encoders:
    """`workers` processes (one: this process) encoding batches of texts in order.

        with Encoders("tokenizer/tokenizer.json", workers=2, end_id=0, dtype=np.uint16) as enc:
            for payload, encoded in enc.map(batches):   # batches of (payload, texts, ends)
                ...

    The processes start on entering, before anything else (a progress bar) starts a thread.
    Only 2 batches per worker are in flight at any time, so memory does not depend on how many
    batches there are.
    """

    def __init__(self, tokenizer_path: str, workers: int, end_id: int,
                 dtype: type[np.unsignedinteger]) -> None:
        self.args = (tokenizer_path, end_id, dtype)
        self.workers = workers
        self.pool: Any = None

    def __enter__(self) -> Encoders:
        if self.workers > 1:
            # fork on Linux: a worker starts in milliseconds with this process's imports, where
            # spawn starts a new interpreter (~0.3-0.5 s each, as long as encoding 5 MB). Not on
            # macOS (fork is unsafe there) or Windows (no fork). The tokenizer has not encoded
            # anything in this process yet, so its thread pool is not running.
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            self.pool = multiprocessing.get_context(method).Pool(
                self.workers, initializer=_start_worker, initargs=self.args)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def map(self, batches: Iterable[tuple[T, list[str], list[bool]]]
            ) -> Iterator[tuple[T, Encoded]]:
        """Encode (payload, texts, ends) batches; yield (payload, encoded) in the same order."""
        if self.pool is None:
            tokenizer_path, end_id, dtype = self.args
            encoder = DocumentEncoder(Tokenizer.from_file(tokenizer_path))
            for payload, texts, ends in batches:
                yield payload, encode_joined(encoder, texts, ends, end_id, dtype)
            return
        in_flight: deque = deque()
        for payload, texts, ends in batches:
            in_flight.append((payload, self.pool.apply_async(_encode_in_worker, (texts, ends))))
            if len(in_flight) >= 2 * self.workers:
                done, result = in_flight.popleft()
                yield done, result.get()
        while in_flight:
            done, result = in_flight.popleft()
            yield done, result.get()
