"""The tokenizer of a Hugging Face folder: tokenizer.json, its special tokens, its chat template.

    imported = read_tokenizer(folder, config, embedding_rows=49152)
    imported.special_tokens     # ['<|endoftext|>', ...]: its eos first, then bos, pad, unk
    imported.chat_template      # the Jinja template of tokenizer_config.json (or None)

The weights were trained with exactly this tokenizer, so it becomes the project's unchanged
(tokenizer.json is copied byte for byte): retraining one would scramble every embedding row.
The special tokens are named in tokenizer_config.json (or special_tokens_map.json, or by id in
config.json); the end-of-text token comes first because tokenizer.special_tokens[0] is what
`make data` appends to every document. A chat template is in tokenizer_config.json's
"chat_template" or, as transformers 5 writes it, in chat_template.jinja beside it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from errors import DataError

TOKENIZER_TYPES = {"BPE": "bpe", "WordPiece": "wordpiece", "Unigram": "unigram"}
ROLES = ("eos_token", "bos_token", "pad_token", "unk_token")  # in tokenizer.special_tokens order


@dataclasses.dataclass(frozen=True)
class ImportedTokenizer:
    tokenizer: Tokenizer
    data: bytes  # tokenizer.json as it is in the checkpoint
    type: str  # our tokenizer.type: 'bpe', 'wordpiece' or 'unigram'
    special_tokens: list[str]  # eos first, then bos, pad, unk (those it has)
    chat_template: str | None

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file of the checkpoint ({} when it is not there); DataError when unreadable."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({str(error)[:120]})",
                        "download the checkpoint again") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a JSON object", "download the checkpoint again")
    return data


def token_name(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def chat_template_of(folder: Path, tokenizer_config: dict[str, Any]) -> str | None:
    """chat_template.jinja, else tokenizer_config.json's "chat_template" (a string, or a list of
    named templates: the one named "default")."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) and template.strip() else None


def read_tokenizer(folder: Path, config: dict[str, Any], embedding_rows: int
                   ) -> ImportedTokenizer:
    """The checkpoint's tokenizer, checked against its embedding (every id must have a row)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"{folder} has no tokenizer.json (the weights need the exact tokenizer "
                        "they were trained with)",
                        "use a checkpoint folder that has tokenizer.json (transformers writes "
                        "one with `AutoTokenizer.from_pretrained(...).save_pretrained(folder)`)")
    data = path.read_bytes()
    try:
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as error:  # tokenizers says why in its own words
        raise DataError(f"{path} does not load: {str(error).splitlines()[0][:160]}",
                        "download the checkpoint again, or upgrade tokenizers "
                        "(`.venv/bin/pip install -U tokenizers`)") from None
    kind = type(tokenizer.model).__name__
    if kind not in TOKENIZER_TYPES:
        raise DataError(f"{path} is a {kind} tokenizer; this project's code knows BPE, WordPiece "
                        "and Unigram", "use a checkpoint with one of those tokenizers")
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    largest = max(vocab.values(), default=-1)
    if largest >= embedding_rows:
        raise DataError(f"the tokenizer has token ids up to {largest}, and the model's embedding "
                        f"has {embedding_rows} rows (vocab_size in config.json): those tokens "
                        "would have no embedding",
                        "use the tokenizer that was published with these weights")

    tokenizer_config = read_json(folder / "tokenizer_config.json")
    special_map = read_json(folder / "special_tokens_map.json")
    names: list[str] = []
    for role in ROLES:
        name = token_name(tokenizer_config.get(role)) or token_name(special_map.get(role))
        if name is None and role == "eos_token":
            eos_id = config.get("eos_token_id")
            eos_id = eos_id[0] if isinstance(eos_id, list) and eos_id else eos_id
            name = tokenizer.id_to_token(eos_id) if isinstance(eos_id, int) else None
        if name is not None and name in vocab and name not in names:
            names.append(name)
        elif role == "eos_token":
            raise DataError(f"the checkpoint names no end-of-text token that its tokenizer has "
                            f"(eos_token in tokenizer_config.json: {name!r})",
                            "use a checkpoint whose tokenizer_config.json has an eos_token (it "
                            "ends every document in training)")
    return ImportedTokenizer(tokenizer, data, TOKENIZER_TYPES[kind], names,
                             chat_template_of(folder, tokenizer_config))
