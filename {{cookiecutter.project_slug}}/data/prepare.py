"""Tokenize the corpus into data/processed/{train,val}.bin and meta.json.

    make data                                          # = python -m data.prepare
    python -m data.prepare --data.val_split 0.1
    python -m data.prepare --data.raw_dir ~/my-texts

Reads data/raw (.txt, .md, .jsonl, nested folders; see corpus/sources.py for the rules), or the
built-in stories when data/raw is empty, and needs the tokenizer from `make tokenizer`.

- Streaming: files are read chunk by chunk and token ids are appended to the .bin files as they
  are produced, so memory stays flat whether the corpus is 10 MB or 100 GB.
- Every document ends with the end-of-text token (tokenizer.special_tokens[0]).
- Train/validation split by document (data.val_split of them, spread evenly, fixed by data.seed),
  so no validation text is ever trained on; or data.val_path names separate validation text.
- Output: uint16 token ids (uint32 when the vocabulary exceeds 65536) and meta.json with the
  vocabulary size, token and byte counts (bits per byte in evaluation) and the tokenizer's hash.
- A corpus too small for one training batch is refused with how much more text is needed.
- Results are written to temporary files and renamed at the end: an interrupted or refused run
  leaves the previous data/processed untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from config import DataConfig, TokenizerConfig, add_config_arguments, config_from_args
from corpus.sources import Chunk, Corpus, ValidationSplit, open_raw_corpus, open_val_corpus
from data.splits import check_enough_tokens
from errors import DataError, run_cli
from project_lock import project_lock
from tokenizer.encode import Encoders
from tokenizer.load import eot_id, load_tokenizer, tokenizer_hash

BATCH_CHARS = 1 << 20  # encode ~1 MB of text per call: big enough for all cores, small in memory
FLUSH_TOKENS = 1 << 20  # write to disk every ~1M tokens (2 MB as uint16): few, large appends
# Below this size one process is quicker than starting worker processes.
PARALLEL_MIN_BYTES = 16_000_000
MAX_WORKERS = 8  # one reader feeds the workers: more than ~8 would mostly wait


def default_workers(total_bytes: int) -> int:
    """Encoding processes: one per available core for big corpora, else just this one."""
    if total_bytes < PARALLEL_MIN_BYTES or os.environ.get(
            "TOKENIZERS_PARALLELISM", "").lower() in ("0", "false", "no", "off"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_WORKERS, cores or 1))


TOKENIZER_TYPES = {"BPE": "bpe", "WordPiece": "wordpiece", "Unigram": "unigram"}


def check_tokenizer_type(tok: Tokenizer, tokenizer: TokenizerConfig) -> None:
    """DataError when tokenizer.json is not the tokenizer.type the config asks for (the type was
    changed without retraining): data encoded with the wrong tokenizer is a wasted run."""
    actual = TOKENIZER_TYPES.get(type(tok.model).__name__)
    if actual is not None and actual != tokenizer.type:
        raise DataError(
            f"{tokenizer.path} is a {actual} tokenizer, but tokenizer.type in llm.config.js is "
            f"'{tokenizer.type}'",
            f"run `make tokenizer` to train a {tokenizer.type} tokenizer (then `make data`), or "
            f"set tokenizer.type: '{actual}'",
        )


class SplitWriter:
    """Appends token ids of one split to `<name>.bin.tmp` and counts what went in."""

    def __init__(self, path: Path, dtype: type[np.unsignedinteger]) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.file = open(self.tmp, "wb")
        self.dtype = dtype
        self.pending: list[np.ndarray] = []
        self.pending_tokens = 0
        self.tokens = self.bytes = self.documents = 0

    def add(self, ids: np.ndarray, text_bytes: int, chunks: int) -> None:
        """Append `ids` (of this writer's dtype), the tokens of `chunks` chunks of text."""
        self.pending.append(ids)
        self.pending_tokens += len(ids)
        self.tokens += len(ids)
        self.bytes += text_bytes
        self.documents += chunks
        if self.pending_tokens >= FLUSH_TOKENS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.file.write(np.concatenate(self.pending).tobytes())
            self.pending, self.pending_tokens = [], 0

    def close(self, keep: bool) -> None:
        """Finish the file: rename it into place if `keep`, else delete it."""
        self.flush()
        self.file.close()
        if keep:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _batches(chunks: Iterable[tuple[str, Chunk]]
             ) -> Iterator[tuple[np.ndarray, list[str], list[bool]]]:
    """Group (split, chunk) pairs into batches of about BATCH_CHARS characters:
    (which chunks are validation, texts, which end a document)."""
    names: list[str] = []
    texts: list[str] = []
    ends: list[bool] = []
    size = 0
    for name, chunk in chunks:
        names.append(name)
        texts.append(chunk.text)
        ends.append(chunk.end_of_document)
        size += len(chunk.text)
        if size >= BATCH_CHARS:
            yield np.array(names) == "val", texts, ends
            names, texts, ends, size = [], [], [], 0
    if texts:
        yield np.array(names) == "val", texts, ends


def _labelled_chunks(train: Corpus, val: Corpus | None, split: ValidationSplit
                     ) -> Iterator[tuple[str, Chunk]]:
    """Every chunk with its split: from val_path if given, else held out by `split`."""
    for index, chunk in enumerate(train.chunks()):
        yield ("val" if val is None and split(index) else "train"), chunk
    if val is not None:
        for chunk in val.chunks():
            yield "val", chunk


def prepare(data: DataConfig, tokenizer: TokenizerConfig, batch_size: int, max_length: int,
            progress: bool = True, workers: int | None = None) -> dict:
    """Tokenize the corpus into data.processed_dir; return the meta.json contents.

    `workers`: encoding processes (default: default_workers(), one per core for big corpora;
    TOKENIZERS_PARALLELISM=false keeps everything in this process).
    """
    tok = load_tokenizer(tokenizer.path)
    check_tokenizer_type(tok, tokenizer)
    eot = eot_id(tok, tokenizer)
    vocab_size = tok.get_vocab_size()
    # Token ids go up to vocab_size - 1; uint16 halves the disk and memory of uint32.
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32

    separator = tokenizer.special_tokens[0]
    train = open_raw_corpus(data.raw_dir, data.sample_size_mb, data.seed, separator)
    val = open_val_corpus(data.val_path, separator) if data.val_path else None
    total = train.total_bytes + (val.total_bytes if val else 0)

    out = Path(data.processed_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers = {name: SplitWriter(out / f"{name}.bin", dtype) for name in ("train", "val")}
    workers = default_workers(total) if workers is None else workers
    split = ValidationSplit(data.val_split, data.seed)
    start = time.perf_counter()
    ok = False
    try:
        with Encoders(tokenizer.path, workers, eot, dtype) as encoders, \
                tqdm(total=total, unit="B", unit_scale=True, desc="Tokenizing",
                     disable=not progress, dynamic_ncols=True) as bar:
            batches = _batches(_labelled_chunks(train, val, split))
            for is_val, encoded in encoders.map(batches):
                # Each chunk's tokens go to its split, in order: two masks, not a loop.
                in_val = np.repeat(is_val, encoded.tokens)
                for writer, chunks, tokens in ((writers["train"], ~is_val, ~in_val),
                                               (writers["val"], is_val, in_val)):
                    writer.add(encoded.ids[tokens], int(encoded.text_bytes[chunks].sum()),
                               int(chunks.sum()))
                bar.update(int(encoded.text_bytes.sum()))
        if not writers["train"].documents + writers["val"].documents:
            raise train.no_text(data.raw_dir)
        bytes_per_token = max(1, writers["train"].bytes) / max(1, writers["train"].tokens)
        for name, writer in writers.items():
            check_enough_tokens(writer.tokens, batch_size, max_length, name, bytes_per_token)
        ok = True
    finally:
        for writer in writers.values():
            writer.close(keep=ok)
    seconds = time.perf_counter() - start

    meta = {
        "vocab_size": vocab_size,
        "dtype": np.dtype(dtype).name,
        "eot_id": eot,
        "tokenizer_hash": tokenizer_hash(tokenizer.path),
        "tokenizer_type": tokenizer.type,
        **{f"{name}_{key}": getattr(w, key) for name, w in writers.items()
           for key in ("tokens", "bytes", "documents")},
        "sources": train.names() + (val.names() if val else []),
        "val_source": data.val_path or f"val_split {data.val_split} of the documents",
        "seed": data.seed,
    }
    write_meta(out, meta)
    report(writers, out, seconds, workers, tokenizer.type, vocab_size)
    return meta


def write_meta(out: Path, meta: dict) -> None:
    """meta.json, written last and atomically: it is what says the data is complete."""
    meta_path = out / "meta.json"
    tmp = meta_path.with_name("meta.json.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(meta_path)


def report(writers: dict[str, SplitWriter], out: Path, seconds: float, workers: int,
           tokenizer_type: str, vocab_size: int) -> None:
    text_mb = (writers["train"].bytes + writers["val"].bytes) / 1e6
    print(f"Tokenized {text_mb:.3g} MB in {seconds:.1f}s ({text_mb / max(seconds, 1e-9):.1f} MB/s, "
          f"{workers} process{'es' if workers > 1 else ''}) with the {vocab_size}-token "
          f"{tokenizer_type} tokenizer:")
    for name, w in writers.items():
        print(f"  {name:5s} {w.tokens:>12,} tokens  {w.documents:>8,} documents  "
              f"{w.bytes / max(1, w.tokens):.2f} bytes/token  -> {out / (name + '.bin')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m data.prepare",
        description="Tokenize data/raw (or the built-in stories) into data/processed.",
    )
    add_config_arguments(parser)
    cfg = config_from_args(parser.parse_args(argv))
    if not Path(cfg.tokenizer.path).is_file():
        raise DataError(f"no tokenizer at {cfg.tokenizer.path}",
                        "train it first: run `make tokenizer`")
    progress = cfg.logging.progress_bar and os.isatty(2)
    with project_lock("make data", Path(cfg.path).parent):  # never while a training reads it
        prepare(cfg.data, cfg.tokenizer, cfg.training.batch_size, cfg.model.max_length,
                progress)
    print("Next: make train")


if __name__ == "__main__":
    run_cli(main)
