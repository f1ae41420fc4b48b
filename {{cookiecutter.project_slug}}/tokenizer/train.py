"""Train the tokenizer on your text (or the built-in stories) and save tokenizer/tokenizer.json.

    make tokenizer                                  # = python -m tokenizer.train
    python -m tokenizer.train --tokenizer.vocab_size 8192
    python -m tokenizer.train --tokenizer.type unigram

`tokenizer.type` in llm.config.js picks one of three Hugging Face `tokenizers` models:
- bpe: byte-level BPE (GPT-2 style). Lossless: decode(encode(text)) == text for any text, emoji
  and all, and no unknown tokens ever. The best choice for a generative model.
- wordpiece (BERT style): splits on whitespace and punctuation, so decoding cannot know where the
  spaces were: newlines and runs of spaces come back as single spaces, and "don't" may come back
  as "don ' t". Characters never seen in training become the unknown token.
- unigram (SentencePiece style): keeps spaces as '▁' so text round-trips, except characters never
  seen in training, which become the unknown token.

Special tokens (`tokenizer.special_tokens`, then t5's sentinels <extra_id_0>, <extra_id_1>, ...
when `tokenizer.sentinel_tokens` asks for them) get the first ids; the first one is the
end-of-text token that `make data` appends to every document. Any of them in your text is read
as that one token, never split. The vocabulary size you ask for is a target:
the real size is printed, and it is what the model uses (read from the tokenizer at run time).
Training reads the same documents as `make data` (corpus/sources.py), minus the validation part.

`make tokenizer` does nothing when the tokenizer is up to date (same settings, same files in
data/raw); it retrains when either changed, and never overwrites a tokenizer.json it did not
write itself (your own tokenizer stays) unless you pass --force. What it was trained on is
recorded next to it, in tokenizer/tokenizer.training.json. After retraining, `make data` again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from config import Config, TokenizerConfig, add_config_arguments, config_from_args
from corpus import sample
from corpus.sources import ValidationSplit, open_raw_corpus, raw_fingerprint
from errors import ConfigurationError, run_cli
from project_lock import project_lock
from tokenizer.load import tokenizer_hash


def unknown_token(special_tokens: list[str]) -> str:
    """The special token used for characters wordpiece/unigram cannot represent."""
    for token in special_tokens:
        if "unk" in token.lower():
            return token
    raise ConfigurationError(
        "wordpiece and unigram tokenizers need an unknown token, and tokenizer.special_tokens "
        "has none",
        "add '<|unk|>' to tokenizer.special_tokens",
    )


def build_tokenizer(cfg: TokenizerConfig, show_progress: bool = True
                    ) -> tuple[Tokenizer, trainers.Trainer]:
    """An untrained tokenizer pipeline and its trainer, for cfg.type."""
    special = cfg.all_special_tokens  # special_tokens, then any sentinels (t5)
    if cfg.type == "bpe":
        tok = Tokenizer(models.BPE())
        # Byte-level: text is split GPT-2 style, then every byte maps to one of 256 symbols, so
        # any text can be encoded and decoded back exactly. No prefix space: lossless round trip.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress,
        )
    elif cfg.type == "wordpiece":
        unk = unknown_token(special)
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.normalizer = normalizers.NFC()  # keep case and accents (BERT's uncased mode drops them)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        trainer = trainers.WordPieceTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=special,
            show_progress=show_progress,
        )
    elif cfg.type == "unigram":
        unk = unknown_token(special)
        tok = Tokenizer(models.Unigram())
        # Spaces become '▁' and stay part of the pieces, so the decoder can put them back.
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        tok.decoder = decoders.Metaspace(prepend_scheme="first")
        # (Unigram has no min_frequency: it keeps the pieces that best explain the text.)
        trainer = trainers.UnigramTrainer(
            vocab_size=cfg.vocab_size, special_tokens=special, unk_token=unk,
            show_progress=show_progress,
        )
    else:
        raise ConfigurationError(f"tokenizer.type is '{cfg.type}'",
                                 "use 'bpe', 'wordpiece' or 'unigram'")
    return tok, trainer


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig,
                    show_progress: bool = True) -> Tokenizer:
    """Train a tokenizer of cfg.type on a stream of documents (held in memory one at a time)."""
    tok, trainer = build_tokenizer(cfg, show_progress)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    """Write tokenizer.json atomically: an interrupted save never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tok.save(str(tmp))
    tmp.replace(path)


def training_record_path(tokenizer_path: str | Path) -> Path:
    """tokenizer/tokenizer.json -> tokenizer/tokenizer.training.json"""
    path = Path(tokenizer_path)
    return path.with_name(path.stem + ".training.json")


def training_inputs(cfg: Config) -> dict:
    """Everything the trained tokenizer depends on: settings and the files it read."""
    tc, dc = cfg.tokenizer, cfg.data
    files = raw_fingerprint(dc.raw_dir)
    # With no files the text is the built-in stories: editing corpus/sample.py changes them.
    sample_code = None if files else hashlib.sha256(Path(sample.__file__).read_bytes()).hexdigest()
    return {
        "tokenizer": {"type": tc.type, "vocab_size": tc.vocab_size,
                      "min_frequency": tc.min_frequency, "special_tokens": list(tc.special_tokens),
                      **({"sentinel_tokens": tc.sentinel_tokens} if tc.sentinel_tokens else {})},
        "data": {"raw_dir": dc.raw_dir, "files": files, "sample_code": sample_code,
                 "sample_size_mb": dc.sample_size_mb, "seed": dc.seed,
                 "val_split": dc.val_split, "val_path": dc.val_path},
    }


def up_to_date(cfg: Config) -> tuple[bool, str]:
    """(skip?, why): is tokenizer.path the one `make tokenizer` would train right now?"""
    path, record_path = Path(cfg.tokenizer.path), training_record_path(cfg.tokenizer.path)
    if not path.is_file():
        return False, ""
    try:
        record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    except ValueError:  # a damaged record: treat the tokenizer as not ours, so it is kept
        record = {}
    if record.get("imported_from") and record.get("tokenizer_hash") == tokenizer_hash(path):
        return True, f"{path} came with the model imported from {record['imported_from']} " \
                     "(`make import`): keeping it, the model's weights were trained with it."
    if record.get("tokenizer_hash") != tokenizer_hash(path):
        return True, (f"{path} was not written by `make tokenizer` (or was edited since): "
                      "keeping it. Run `python -m tokenizer.train --force` to replace it.")
    inputs = training_inputs(cfg)
    if record.get("inputs") == inputs:
        return True, f"{path} is up to date ({record.get('vocab_size')} tokens)."
    changed = [key for section in ("tokenizer", "data") for key in inputs[section]
               if record.get("inputs", {}).get(section, {}).get(key) != inputs[section][key]]
    return False, f"Retraining the tokenizer: {', '.join(changed)} changed."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tokenizer.train",
        description="Train the tokenizer (tokenizer.type, tokenizer.vocab_size in llm.config.js) "
                    "on data/raw, or on the built-in stories when data/raw is empty.",
    )
    parser.add_argument("--force", action="store_true",
                        help="train even if the tokenizer is up to date (or not ours)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    with project_lock("make tokenizer", Path(cfg.path).parent):  # never while a training runs
        if not args.force:
            skip, why = up_to_date(cfg)
            if why:
                print(why)
            if skip:
                return
        train_and_save(cfg)
    print("Next: make data")


def train_and_save(cfg: Config) -> None:
    """Train the tokenizer on data/raw (or the built-in stories) and write it atomically, with
    the record that `up_to_date` compares against next time."""
    tc, dc = cfg.tokenizer, cfg.data
    corpus = open_raw_corpus(dc.raw_dir, dc.sample_size_mb, dc.seed, tc.special_tokens[0])
    # Train on the training documents only, so validation text stays unseen (val_path: all raw).
    held_out = ValidationSplit(0.0 if dc.val_path else dc.val_split, dc.seed)
    characters = 0  # of real text: a tokenizer trained on whitespace alone is no tokenizer

    def texts() -> Iterator[str]:
        nonlocal characters
        for i, chunk in enumerate(corpus.chunks()):
            if not held_out(i):
                characters += len(chunk.text.strip())
                yield chunk.text

    print(f"Training a {tc.type} tokenizer (vocab_size {tc.vocab_size}) on "
          f"{corpus.total_bytes / 1e6:.1f} MB of text...")
    start = time.perf_counter()
    tok = train_tokenizer(texts(), tc, show_progress=sys.stderr.isatty())
    if not characters:  # checked before saving: the previous tokenizer stays
        raise corpus.no_text(dc.raw_dir)
    save_tokenizer(tok, tc.path)
    size = tok.get_vocab_size()
    record = {"tokenizer_hash": tokenizer_hash(tc.path), "vocab_size": size,
              "inputs": training_inputs(cfg)}
    training_record_path(tc.path).write_text(json.dumps(record, indent=2) + "\n")
    print(f"Saved {tc.path} in {time.perf_counter() - start:.1f}s.")
    print(f"Vocabulary: {size} tokens — this is the vocab size the model will use.")
    if size < tc.vocab_size:
        print(f"(Fewer than the {tc.vocab_size} asked for: the text has too few distinct "
              f"pieces occurring {tc.min_frequency}+ times. More text gives a fuller vocabulary.)")


if __name__ == "__main__":
    run_cli(main)
