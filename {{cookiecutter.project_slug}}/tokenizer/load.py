"""Load the trained tokenizer that `make tokenizer` wrote (tokenizer/tokenizer.json).

    from tokenizer.load import load_tokenizer, eot_id, tokenizer_of
    tok = load_tokenizer(cfg.tokenizer.path)
    ids = tok.encode("Once upon a time", add_special_tokens=False).ids
    text = tok.decode(ids)                      # bpe: exactly the input text
    end = eot_id(tok, cfg.tokenizer)            # appended after every document
    tok, used = tokenizer_of(info["path"], info["tokenizer_hash"], cfg.tokenizer.path)
                                                # the tokenizer a trained checkpoint needs

The file is a plain Hugging Face `tokenizers` file, so `transformers` can load it too
(`PreTrainedTokenizerFast(tokenizer_file="tokenizer/tokenizer.json")`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer

from errors import DataError

if TYPE_CHECKING:
    from config import TokenizerConfig


def load_tokenizer(path: str | Path = "tokenizer/tokenizer.json") -> Tokenizer:
    """The trained tokenizer; DataError (run `make tokenizer`) if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no tokenizer at {path}",
                        "train one first: run `make tokenizer` (python -m tokenizer.train)")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # a truncated or hand-edited file: tokenizers says why
        raise DataError(f"cannot read the tokenizer {path}: {error}",
                        "train it again with `make tokenizer`") from None


def tokenizer_hash(path: str | Path = "tokenizer/tokenizer.json") -> str:
    """First 16 hex digits of the file's sha256: data and checkpoints record which tokenizer
    made them, so a retrained tokenizer is noticed before it silently scrambles training."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def kept_copy_path(checkpoint_folder: str | Path, tokenizer_hash_: str) -> Path:
    """Where `make train` keeps the exact tokenizer a run was trained with."""
    return Path(checkpoint_folder) / f"tokenizer-{tokenizer_hash_}.json"


def keep_copy(path: str | Path, checkpoint_folder: str | Path) -> Path:
    """Copy the tokenizer next to the checkpoints (once per tokenizer): retraining the tokenizer
    later never strands a trained model, because every reader can still find this copy."""
    copy = kept_copy_path(checkpoint_folder, tokenizer_hash(path))
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(f".{copy.name}.tmp-{os.getpid()}")
        shutil.copyfile(path, tmp)
        tmp.replace(copy)  # atomic: a reader never sees half of it
    return copy


def tokenizer_of(checkpoint: str | Path, trained_with: str | None,
                 path: str | Path) -> tuple[Tokenizer, Path]:
    """The tokenizer a checkpoint was trained with (whose hash is `trained_with`): the project's
    (`path`) when it is that one, else the copy kept next to the checkpoint. DataError when
    neither is it: the same ids would decode to other text. Old checkpoints without a hash get
    the project's tokenizer."""
    current = Path(path).is_file() and tokenizer_hash(path)
    if not trained_with or current == trained_with:
        return load_tokenizer(path), Path(path)
    copy = kept_copy_path(Path(checkpoint).parent, trained_with)
    if copy.is_file() and tokenizer_hash(copy) == trained_with:
        print(f"(Using {copy}: {checkpoint} was trained with it, not with the current {path})",
              file=sys.stderr)
        return load_tokenizer(copy), copy
    raise DataError(
        f"{checkpoint} was trained with a different tokenizer than {path}, and its copy "
        f"({copy.name}) is not next to it",
        "use it from the project that trained it, or retrain with the current tokenizer: "
        "`make train ARGS=--fresh`",
    )


def eot_id(tok: Tokenizer, tokenizer_cfg: TokenizerConfig) -> int:
    """Id of the end-of-text token: the first of `tokenizer.special_tokens`."""
    token = tokenizer_cfg.special_tokens[0]
    token_id = tok.token_to_id(token)
    if token_id is None:
        raise DataError(
            f"the tokenizer has no end-of-text token '{token}' (tokenizer.special_tokens[0])",
            "the tokenizer was trained with other special tokens: run `make tokenizer` again",
        )
    return token_id


def special_token_id(tok: Tokenizer, token: str, needed_for: str) -> int:
    """Id of a special token the model needs (e.g. BERT's [MASK]); DataError if it has none."""
    token_id = tok.token_to_id(token)
    if token_id is None:
        raise DataError(
            f"the tokenizer has no {token} token, which {needed_for}",
            "train the tokenizer again with `make tokenizer` (it adds tokenizer.special_tokens "
            "and the sentinels), then `make data` and `make train ARGS=--fresh`",
        )
    return token_id


def special_ids(tok: Tokenizer) -> list[int]:
    """Ids of every special token of the tokenizer (never hidden by masking)."""
    return sorted(i for i, token in tok.get_added_tokens_decoder().items() if token.special)


def pad_token(tokenizer_cfg: TokenizerConfig) -> str:
    """The padding token of tokenizer.special_tokens (the first that names "pad"), else the
    end-of-text token."""
    return next((t for t in tokenizer_cfg.special_tokens if "pad" in t.lower()),
                tokenizer_cfg.special_tokens[0])
