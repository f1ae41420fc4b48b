"""The prepared data on disk: data/processed/meta.json and the {train,val}.bin token files.

    meta = read_meta("data/processed", "tokenizer/tokenizer.json")  # checks the tokenizer too
    tokens = load_split("data/processed", "train")                  # np.memmap, opened once
    check_enough_tokens(len(tokens), batch_size=16, max_length=256, split="train")

numpy only (no torch), so `make data` and its worker processes start quickly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from errors import DataError
from tokenizer.load import tokenizer_hash


def read_meta(processed_dir: str, tokenizer_path: str | None = None) -> dict:
    """meta.json of the prepared data (DataError if `make data` has not run). With
    `tokenizer_path`, also DataError unless the data was encoded by that very tokenizer."""
    path = Path(processed_dir) / "meta.json"
    if not path.is_file():
        raise DataError(f"no prepared data in {processed_dir} (meta.json is missing)",
                        "run `make data` (python -m data.prepare) first")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):  # cut short or edited by hand
        raise DataError(f"{path} is damaged (not valid JSON)",
                        "run `make data` again to rebuild data/processed") from None
    if tokenizer_path is not None:
        if not Path(tokenizer_path).is_file():
            raise DataError(f"no tokenizer at {tokenizer_path}",
                            "run `make tokenizer` then `make data`")
        if meta.get("tokenizer_hash") != tokenizer_hash(tokenizer_path):
            raise DataError(
                f"the prepared data in {processed_dir} was made with a different tokenizer "
                f"than {tokenizer_path}",
                "run `make data` again to re-encode the text with the current tokenizer",
            )
    return meta


def load_split(processed_dir: str, split: str) -> np.memmap:
    """The token ids of one split ('train' or 'val'), memory-mapped read-only."""
    meta = read_meta(processed_dir)
    path = Path(processed_dir) / f"{split}.bin"
    if not path.is_file():
        raise DataError(f"{path} is missing", "run `make data` again")
    dtype = np.dtype(meta["dtype"])
    expected = meta.get(f"{split}_tokens")
    if expected is not None and path.stat().st_size != expected * dtype.itemsize:
        raise DataError(f"{path} does not match meta.json (interrupted or edited?)",
                        "run `make data` again")
    return np.memmap(path, dtype=dtype, mode="r")


def check_enough_tokens(n_tokens: int, batch_size: int, max_length: int, split: str,
                        bytes_per_token: float = 4.0) -> None:
    """DataError unless `split` holds one training batch (train) or one window (val).

    Sampling windows from too little data cannot work (a loop waiting for a full batch never
    ends), so say how much more text is needed instead. (Also used by data/prepare.py.)
    """
    if split == "train":
        needed = batch_size * (max_length + 1)
        what = f"one training batch (batch_size {batch_size} x (max_length {max_length} + 1))"
        fix = ("add more text to data/raw, or lower training.batch_size or model.max_length "
               "(the built-in corpus: raise data.sample_size_mb)")
    else:
        needed = max_length + 1
        what = f"one validation window (max_length {max_length} + 1)"
        fix = ("raise data.val_split, add more text, or lower model.max_length "
               "(or point data.val_path at a validation file)")
    if n_tokens >= needed:
        return
    missing_kb = (needed - n_tokens) * bytes_per_token / 1000
    raise DataError(
        f"the {split} split has {n_tokens:,} tokens, but {what} needs {needed:,}: "
        f"about {max(1, round(missing_kb)):,} KB more {split} text",
        fix,
    )
