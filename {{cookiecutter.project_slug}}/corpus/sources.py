"""Where the training text comes from — one place, used by `make tokenizer` and `make data`.

    data/raw/            .txt, .md and .jsonl files, nested folders allowed
    (empty data/raw)     the built-in generated stories (corpus/sample.py), streamed, never written

How files become documents:
- .txt / .md: one file is one document. A line holding only the end-of-text token
  (`<|endoftext|>`, the format of TinyStories) separates documents inside a file.
- .jsonl: one document per line, from its "text" field. A broken line or a missing "text" field
  stops with an error naming file:line — silently training on less data than you think is worse.
- Files are read as UTF-8 (a BOM is fine; Windows line endings become \\n). A binary (a NUL
  byte anywhere) or non-UTF-8 file is skipped with a one-line message, and so is any other file
  type.
- data/raw is read as the files that are in it (walk_raw): a link is not followed (it could lead
  out of data/raw, e.g. to /etc/passwd, or loop), and neither a FIFO, socket or device (reading
  one could wait forever) nor a folder that cannot be read stops the others; each is skipped with
  a one-line message. Hidden names (.git, .DS_Store) are passed over silently.

Long documents are cut into chunks of about CHUNK_CHARS characters at blank lines. Files are
streamed one chunk at a time, so memory does not grow with the corpus, and the train/validation
split works on chunks, so even a single big file (a book, tiny shakespeare) gets a validation part.
The end-of-text token is appended only where a real document ends.
"""

from __future__ import annotations

import codecs
import json
import os
import random
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from corpus.sample import BYTES_PER_MB, generate_corpus
from errors import DataError

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl",)
# Chunks of ~16k characters: small enough that a 1 MB file still gives a 5% validation split
# (~3 chunks), large enough that cutting a long document into pieces hardly matters.
CHUNK_CHARS = 16_000
READ_BLOCK = 1 << 20  # bytes read at a time when checking that a file is text
# A longer line is read (and cut into chunks) in pieces of this many characters, so even a file
# that is one huge line gets a validation part.
LINE_PIECE = 4 * CHUNK_CHARS


class Chunk(NamedTuple):
    """A piece of text; `end_of_document` says whether the end-of-text token follows it."""

    text: str
    end_of_document: bool


def is_utf8_text(path: Path) -> bool:
    """True if the whole file decodes as UTF-8 and has no NUL bytes (binary files do)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            if b"\x00" in block:  # anywhere: a text file with a binary tail is not text
                return False
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def walk_raw(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The regular files under `root` (a folder, or one file), sorted, and what was passed
    over, with why (hidden names are left out of both).

    Links are never followed, so the text stays inside `root` and no walk can loop; only
    regular files are kept, so nothing is opened that could block (a FIFO waits for a writer).
    `root` itself may be a link: it is the folder (or file) you named in data.raw_dir.
    """
    if not root.is_dir():
        return ([root], []) if root.is_file() else ([], [(root, _not_a_file(root))])
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []

    def visit(folder: Path) -> None:
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as error:
            skipped.append((folder, f"cannot read this folder ({error.strerror or error})"))
            return
        for entry in sorted(entries, key=lambda e: e.name):
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue  # .gitkeep, .DS_Store, .git/...: not data, not worth a message
            if entry.is_symlink():
                skipped.append((path, _link(path, root)))
            elif entry.is_dir(follow_symlinks=False):
                visit(path)
            elif entry.is_file(follow_symlinks=False):
                files.append(path)
            else:
                skipped.append((path, _not_a_file(path)))

    visit(root)
    return sorted(files, key=lambda p: p.as_posix()), skipped


def _link(path: Path, root: Path) -> str:
    """Why a link in data/raw is not read: where it leads (or that it leads nowhere)."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return f"a link to {os.readlink(path)}, which does not exist"
    except (OSError, RuntimeError):  # ELOOP (RuntimeError before Python 3.13)
        return "a link that loops back to itself"
    if not target.is_relative_to(root.resolve()):
        return (f"a link to {target}, outside {root} (links are not followed: copy the file "
                f"into {root}, or point data.raw_dir at it)")
    return f"a link (to {target}); links are not followed: the files it leads to are read as " \
        "themselves"


def _not_a_file(path: Path) -> str:
    mode = path.lstat().st_mode
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file or folder"
    return f"{kind}, not a regular file"


def find_text_files(root: Path, announce: bool = True) -> list[Path]:
    """Every usable file under `root` (a folder or one file), in a stable sorted order; what is
    passed over is said in one line each (with `announce`)."""
    candidates, skipped = walk_raw(root)
    if announce:
        for path, why in skipped:
            print(f"Skipping {path}: {why}")
    files = []
    for path in candidates:
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES + JSONL_SUFFIXES:
            if announce:
                print(f"Skipping {path}: not a .txt, .md or .jsonl file")
            continue
        try:
            readable = is_utf8_text(path)
        except OSError as error:  # no permission, a broken disk: the user should hear of it
            raise DataError(f"cannot read {path}: {error.strerror or error}",
                            f"make it readable (`chmod u+r {path}`) or move it out of "
                            f"{root}") from None
        if not readable:
            if announce:
                print(f"Skipping {path}: binary or not UTF-8 text")
            continue
        files.append(path)
    return files


def _text_file_chunks(path: Path, separator: str) -> Iterator[Chunk]:
    """Documents of a .txt/.md file, as chunks; a `separator` line ends a document."""
    lines: list[str] = []
    size = 0
    held: str | None = None  # a finished chunk whose document may or may not go on

    def cut() -> str:
        nonlocal lines, size
        text = "".join(lines)
        lines, size = [], 0
        return text

    with open(path, encoding="utf-8-sig") as f:
        while line := f.readline(LINE_PIECE):
            if separator and line.strip() == separator:
                text = cut()
                if text.strip():
                    if held is not None:
                        yield Chunk(held, False)
                    held = text
                if held is not None:
                    yield Chunk(held, True)
                held = None
                continue
            if held is not None and line.strip():  # the document goes on after `held`
                yield Chunk(held, False)
                held = None
            lines.append(line)
            size += len(line)
            # Cut at a blank line once the chunk is big enough (or anywhere if it is huge).
            if size >= CHUNK_CHARS and (not line.strip() or size >= 4 * CHUNK_CHARS):
                text = cut()
                if held is not None:
                    yield Chunk(held, False)
                held = text
    text = cut()
    if text.strip():
        if held is not None:
            yield Chunk(held, False)
        held = text
    if held is not None:
        yield Chunk(held, True)


def _jsonl_chunks(path: Path) -> Iterator[Chunk]:
    """One document per line of a .jsonl file, from its "text" field."""
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path}:{number} is not valid JSON "
                    f"({error.msg.removesuffix(' at')} at column {error.colno})",
                    "fix or delete that line; every line of a .jsonl file must be one JSON "
                    'object such as {"text": "..."}',
                ) from None
            text = record.get("text") if isinstance(record, dict) else None
            if isinstance(record, dict) and "text" in record and not isinstance(text, str):
                raise DataError(
                    f'{path}:{number}: "text" is {json.dumps(text)[:40]}, not a string',
                    'write the text as a JSON string, e.g. {"text": "Once upon a time"}',
                )
            if not isinstance(text, str):
                keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                raise DataError(
                    f'{path}:{number} has no "text" string (found: {keys or "nothing"})',
                    'give every line a "text" field, e.g. rename your field to "text"',
                )
            if text.strip():
                yield Chunk(text, True)


@dataclass
class Corpus:
    """The documents to read: some files, or (no files) the built-in generated stories."""

    files: list[Path] = field(default_factory=list)
    sample_size_mb: float = 0.0
    seed: int = 0
    separator: str = "<|endoftext|>"

    @property
    def total_bytes(self) -> int:
        """Roughly how many bytes of text `chunks()` yields, for progress bars."""
        if not self.files:
            return int(self.sample_size_mb * BYTES_PER_MB)
        return sum(path.stat().st_size for path in self.files)

    def names(self) -> list[str]:
        """What the corpus is made of, for meta.json."""
        if not self.files:
            return [f"built-in sample stories ({self.sample_size_mb:g} MB, seed {self.seed})"]
        names = [path.as_posix() for path in self.files[:100]]
        if len(self.files) > 100:  # keep meta.json readable for folders of many small files
            names.append(f"... and {len(self.files) - 100} more files")
        return names

    def no_text(self, raw_dir: str) -> DataError:
        """The error for a corpus that gave no text at all (every chunk empty or blank)."""
        if not self.files:  # the built-in stories: a size too small for one of them
            return DataError(
                f"data.sample_size_mb is {self.sample_size_mb:g}, too little for even one story "
                f"of the built-in corpus ({raw_dir} is empty, so that corpus is used)",
                "set data.sample_size_mb to a few MB in llm.config.js (the preset's default is "
                "fine), or put your own text in " + raw_dir)
        return DataError(f"no text in {raw_dir}: its files hold only whitespace",
                         "put some text in them, or empty the folder to use the built-in stories")

    def chunks(self) -> Iterator[Chunk]:
        """Stream the corpus chunk by chunk, always in the same order."""
        if not self.files:
            for story in generate_corpus(self.sample_size_mb, self.seed):
                yield Chunk(story, True)
            return
        for path in self.files:
            if path.suffix.lower() in JSONL_SUFFIXES:
                yield from _jsonl_chunks(path)
            else:
                yield from _text_file_chunks(path, self.separator)


def open_raw_corpus(raw_dir: str, sample_size_mb: float, seed: int,
                    separator: str = "<|endoftext|>", announce: bool = True) -> Corpus:
    """The corpus of `data.raw_dir`; the built-in stories when it holds no files at all."""
    root = Path(raw_dir)
    if not root.exists():
        raise DataError(
            f"data.raw_dir '{raw_dir}' does not exist",
            f"create it (mkdir -p {raw_dir}) and put .txt/.md/.jsonl files in it, or leave it "
            "empty to train on the built-in stories",
        )
    files, skipped = walk_raw(root)
    has_any = bool(files or skipped)  # (hidden files alone: empty)
    if not has_any:
        if announce:
            print(f"{raw_dir} is empty: using the built-in sample corpus "
                  f"({sample_size_mb:g} MB of generated stories)")
        return Corpus(sample_size_mb=sample_size_mb, seed=seed, separator=separator)
    files = find_text_files(root, announce)
    if not files:
        raise DataError(
            f"no usable text in {raw_dir}: every file was skipped (see the messages above)",
            "add UTF-8 .txt, .md or .jsonl files, or empty the folder to use the built-in stories",
        )
    return Corpus(files=files, separator=separator)


def open_val_corpus(val_path: str, separator: str = "<|endoftext|>",
                    announce: bool = True) -> Corpus:
    """The corpus of `data.val_path` (a file or a folder), used whole for validation."""
    root = Path(val_path)
    if not root.exists():
        raise DataError(f"data.val_path '{val_path}' does not exist",
                        "point it at a validation file or folder, or set it to '' to split "
                        "validation data off data.raw_dir (data.val_split)")
    files = find_text_files(root, announce)
    if not files:
        raise DataError(f"no usable text in data.val_path '{val_path}'",
                        "use UTF-8 .txt, .md or .jsonl files")
    return Corpus(files=files, separator=separator)


def raw_fingerprint(raw_dir: str) -> list:
    """Names, sizes and modification times of the files under raw_dir: cheap to compute, and it
    changes whenever a file is added, removed or edited (used to skip an up-to-date tokenizer)."""
    root = Path(raw_dir)
    if not root.exists():
        return []
    files = walk_raw(root)[0]
    return [[p.as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


class ValidationSplit:
    """Decides, chunk by chunk, which chunks are held out for validation.

    Systematic sampling with a seeded offset: exactly one chunk in every 1/val_split goes to
    validation, evenly spread over the corpus. Unlike a coin flip per chunk, this never leaves the
    validation set empty once there are 1/val_split chunks, and it needs no second pass.
    """

    def __init__(self, val_split: float, seed: int) -> None:
        self.fraction = val_split
        self.offset = random.Random(seed).random()

    def __call__(self, index: int) -> bool:
        if self.fraction <= 0:
            return False
        before = int(index * self.fraction + self.offset)
        return int((index + 1) * self.fraction + self.offset) > before
