"""Load the trained tokenizer that `make tokenizer` wrote (tokenizer/tokenizer.json).

    from tokenizer.load import load_tokenizer, eot_id
    tok = load_tokenizer(cfg.tokenizer.path)
    ids = tok.encode("Once upon a time", add_special_tokens=False).ids
    text = tok.decode(ids)                      # bpe: exactly the input text
    end = eot_id(tok, cfg.tokenizer)            # appended after every document

The file is a plain Hugging Face `tokenizers` file, so `transformers` can load it too
(`PreTrainedTokenizerFast(tokenizer_file="tokenizer/tokenizer.json")`).
"""

from __future__ import annotations

import hashlib
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


def check_same_tokenizer(trained_with: str | None, path: str | Path, checkpoint: str) -> None:
    """DataError unless `checkpoint` (whose tokenizer hash is `trained_with`) was trained with the
    tokenizer at `path`: the same ids would decode to other text. Old checkpoints without a hash
    pass."""
    if trained_with and trained_with != tokenizer_hash(path):
        raise DataError(
            f"{checkpoint} was trained with a different tokenizer than {path}",
            "use it from the project that trained it (or restore that tokenizer), or retrain "
            "with the current one: `make train ARGS=--fresh`",
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
