"""The tokenizer: each type trains to the configured size, bpe round-trips any text exactly, the
fast encoder used by `make data` gives the tokenizer's own ids, and `make tokenizer` skips an
up-to-date tokenizer without ever overwriting one it did not write.

    python -m pytest tests/test_tokenizer.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from config import TokenizerConfig, load_config
from corpus.sample import generate_corpus
from errors import DataError
from tokenizer.encode import DocumentEncoder, Encoders
from tokenizer.load import eot_id, load_tokenizer
from tokenizer.train import main as train_main
from tokenizer.train import save_tokenizer, train_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(PROJECT_ROOT / "llm.config.js")

UNICODE_TEXT = (
    "Héllo wörld! Ça va? Ünïcödé — naïve café, smörgåsbord.\n"
    "日本語のテキスト、中文字符。한국어 문장.\n\n"
    "Emoji: 😀👍🏽🚀 and a family 👨‍👩‍👧.  Two  spaces,\ttabs\t, trailing   \n"
    "Numbers ½ ² 3.14 ١٢٣; combining e\u0301; <|endoftext|> in the middle; end"
)
SENTINELS = load_config(CONFIG).tokenizer.sentinel_tokens


@pytest.fixture(scope="module")
def stories() -> list[str]:
    return list(generate_corpus(0.3, seed=1))


@pytest.fixture(scope="module")
def bpe(stories):
    return train_tokenizer(stories, TokenizerConfig(type="bpe", vocab_size=512),
                           show_progress=False)


def test_bpe_round_trip_is_exact_on_any_unicode(bpe) -> None:
    ids = bpe.encode(UNICODE_TEXT, add_special_tokens=False).ids
    assert bpe.decode(ids, skip_special_tokens=False) == UNICODE_TEXT
    assert bpe.token_to_id("<|unk|>") not in ids[:-20]  # byte-level: nothing is unknown


def test_special_tokens_come_first_and_eot_is_the_first(bpe) -> None:
    assert [bpe.token_to_id(t) for t in ("<|endoftext|>", "<|pad|>", "<|unk|>")] == [0, 1, 2]
    assert eot_id(bpe, TokenizerConfig()) == 0


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "unigram"])
def test_each_type_trains_with_the_configured_vocab_size(stories, kind) -> None:
    tok = train_tokenizer(stories, TokenizerConfig(type=kind, vocab_size=512),
                          show_progress=False)
    assert abs(tok.get_vocab_size() - 512) <= 8
    text = stories[0]
    decoded = tok.decode(tok.encode(text, add_special_tokens=False).ids)
    if kind == "wordpiece":  # wordpiece cannot keep whitespace: the rest must survive
        assert "".join(decoded.split()) == "".join(text.split())
    else:  # unigram keeps spaces (▁); bpe keeps everything
        assert decoded == text


def test_fast_encoder_gives_the_tokenizers_own_ids(bpe, stories) -> None:
    texts = stories[:200] + [UNICODE_TEXT, "", " ", "\n\n", "x²", "plain ascii"]
    encoder = DocumentEncoder(bpe)
    assert encoder.fast
    got = encoder.encode_batch(texts) + encoder.encode_batch(texts[::-1])  # second: cached words
    expected = [e.ids for e in bpe.encode_batch(texts + texts[::-1], add_special_tokens=False)]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


# Pieces the pre-tokenizer treats differently: runs of spaces (one, two, at the end of a text),
# newlines and tabs next to spaces, Unicode spaces, letters, digits, numerals, contractions,
# punctuation and the special tokens (which the tokenizer matches before anything else).
PIECES = [" ", "  ", "   ", "\n", "\n\n", " \n", "\t", " \t ", "\u3000", "\xa0", " \u2009",
          "the", "The", "dog", "dog,", "'s", "'ll", "don't", "42", "3.14", "½", "²", "١٢٣",
          "café", "naïve", "日本語", "😀", "👍🏽", "e\u0301", "--", "!?", "_", "<|endoftext|>",
          "<|pad|>", "x<|unk|>y"]


def test_fast_encoder_is_exact_on_random_mixtures_of_hard_pieces(stories) -> None:
    import random

    rng = random.Random(0)
    texts = ["".join(rng.choices(PIECES, k=rng.randint(0, 40))) for _ in range(600)]
    texts += [s.replace(" ", rng.choice(["  ", " \n", "\t "]), 3) for s in stories[:50]]
    # Trained on these texts too, so that it has merges of whitespace ("  ", " \n"): a shortcut
    # that cut a run of spaces in the wrong place would then give other ids.
    tok = train_tokenizer(stories + texts, TokenizerConfig(type="bpe", vocab_size=1024),
                          show_progress=False)
    assert tok.token_to_id("ĠĠ") is not None
    encoder = DocumentEncoder(tok)
    for start in range(0, len(texts), 100):  # later batches reuse what earlier ones cached
        batch = texts[start:start + 100]
        got = encoder.encode_batch(batch)
        expected = [tok.encode(t, add_special_tokens=False).ids for t in batch]
        assert [list(a) for a in got] == expected
    assert encoder.fast  # the shortcut itself was right, not the fallback of the self-check


def test_fast_encoder_turns_itself_off_if_it_ever_disagrees(bpe, stories, monkeypatch) -> None:
    import re

    import tokenizer.encode

    monkeypatch.setattr(tokenizer.encode, "_ASCII_WORDS", re.compile(r"\S+|\s+"))  # a wrong split
    encoder = DocumentEncoder(bpe)
    got = encoder.encode_batch(stories[:20])
    assert not encoder.fast
    expected = [e.ids for e in bpe.encode_batch(stories[:20], add_special_tokens=False)]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_a_batch_whose_every_text_holds_a_special_token_encodes_exactly(bpe, stories) -> None:
    # Such texts all go to the tokenizer itself, which left the shortcut an empty batch (a
    # separator written at the end of a line, not on its own, makes every chunk like this).
    texts = [f"{story}<|endoftext|>" for story in stories[:5]]
    for batch in (texts, texts + stories[5:8]):
        got = DocumentEncoder(bpe).encode_batch(batch)
        expected = bpe.encode_batch(batch, add_special_tokens=False)
        assert [g.tolist() for g in got] == [e.ids for e in expected]


def test_worker_processes_encode_like_one_process(bpe, stories, tmp_path) -> None:
    path = tmp_path / "tok.json"
    save_tokenizer(bpe, path)
    batches = [(i, stories[i * 50:(i + 1) * 50], [j % 3 != 0 for j in range(50)])
               for i in range(4)]
    results = []
    for workers in (1, 2):
        with Encoders(str(path), workers, end_id=0, dtype=np.uint16) as encoders:
            results.append(list(encoders.map(batches)))
    one, two = results
    assert [p for p, _ in two] == [0, 1, 2, 3]
    for (_, texts, ends), (_, a), (_, b) in zip(batches, one, two, strict=True):
        expected = [e.ids + [0] * end for e, end in
                    zip(bpe.encode_batch(texts, add_special_tokens=False), ends, strict=True)]
        assert a.ids.dtype == np.uint16
        assert a.ids.tolist() == b.ids.tolist() == [i for ids in expected for i in ids]
        assert a.tokens.tolist() == b.tokens.tolist() == [len(ids) for ids in expected]
        assert a.text_bytes.tolist() == [len(t.encode()) for t in texts]


def test_missing_tokenizer_says_run_make_tokenizer(tmp_path) -> None:
    with pytest.raises(DataError) as error:
        load_tokenizer(tmp_path / "nope.json")
    assert "make tokenizer" in error.value.suggestion


def test_train_cli_skips_up_to_date_and_keeps_a_foreign_tokenizer(tmp_path, capsys) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("\n\n".join(generate_corpus(0.1, seed=2)))
    path = tmp_path / "tok" / "tokenizer.json"
    size = 300 + SENTINELS  # (t5's 100 sentinel tokens come on top of bpe's 256 bytes)
    argv = ["--config", CONFIG, "--data.raw_dir", str(raw), "--tokenizer.path", str(path),
            "--tokenizer.vocab_size", str(size), "--tokenizer.type", "bpe"]
    train_main(argv)
    out = capsys.readouterr().out
    assert f"Vocabulary: {size} tokens" in out and path.is_file()

    train_main(argv)  # nothing changed: skipped
    assert "up to date" in capsys.readouterr().out

    (raw / "b.txt").write_text("\n\n".join(generate_corpus(0.05, seed=3)))
    train_main(argv)  # the data changed: retrained
    assert "Retraining" in capsys.readouterr().out

    path.write_text(path.read_text() + " ")  # now it is a file `make tokenizer` did not write
    mine = path.read_bytes()
    train_main(argv[:-2] + ["--tokenizer.type", "unigram"])
    assert "keeping it" in capsys.readouterr().out
    assert path.read_bytes() == mine  # never overwritten without --force
    train_main(argv + ["--force"])
    assert path.read_bytes() != mine and load_tokenizer(path).get_vocab_size() == size
