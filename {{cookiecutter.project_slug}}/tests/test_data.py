"""Data: the built-in corpus, reading data/raw, `make data` (prepare), batches, and downloads.

    python -m pytest tests/test_data.py

What a user would notice if it broke: the same stories every time; no validation text in the
training split; a corpus too small for one batch refused with a message instead of a hang;
y is x shifted by one; a resumed run sees the same batches; each validation token scored once;
a broken download never leaves a truncated file.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from config import DataConfig, TokenizerConfig
from corpus.sample import generate_corpus, write_sample
from corpus.sources import Corpus, ValidationSplit, find_text_files, open_raw_corpus
from data.dataset import TrainBatches, eval_windows
from data.download import download
from data.download import main as download_main
from data.prepare import prepare
from data.splits import load_split, read_meta
from errors import DataError, run_cli
from tokenizer.load import load_tokenizer
from tokenizer.train import save_tokenizer, train_tokenizer

EOT = "<|endoftext|>"


# ---- the built-in corpus ----


def test_sample_corpus_is_deterministic_and_diverse() -> None:
    stories = list(generate_corpus(1.0, seed=7))
    assert stories == list(generate_corpus(1.0, seed=7))
    assert stories[:50] != list(generate_corpus(1.0, seed=8))[:50]
    assert len(set(stories)) == len(stories)  # no two stories identical
    words = set(re.findall(r"[A-Za-z']+", " ".join(stories)))
    assert len(words) > 2000
    assert sum(len(s.encode()) for s in stories) >= 1_000_000
    assert sum('"' in s for s in stories) > 0.9 * len(stories)  # nearly all have dialogue
    assert all("{" not in s and "}" not in s for s in stories)  # no unfilled template slots


def test_written_sample_reads_back_as_the_same_documents(tmp_path) -> None:
    path = tmp_path / "raw" / "stories.txt"
    write_sample(path, 0.05, seed=3)
    chunks = list(Corpus(files=[path]).chunks())
    stories = list(generate_corpus(0.05, seed=3))
    assert [c.text.strip() for c in chunks] == stories
    assert all(c.end_of_document for c in chunks)


# ---- reading data/raw ----


def test_sources_read_txt_md_jsonl_in_nested_folders_and_skip_the_rest(tmp_path, capsys) -> None:
    raw = tmp_path / "raw"
    (raw / "books" / "deep").mkdir(parents=True)
    (raw / ".gitkeep").write_text("")
    (raw / "a.txt").write_text(f"first doc\n{EOT}\nsecond doc\n")
    (raw / "books" / "deep" / "b.md").write_text("# Title\n\nmarkdown doc\n")
    (raw / "c.jsonl").write_text('{"text": "json one"}\n\n{"text": "json two", "id": 2}\n')
    (raw / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (raw / "binary.txt").write_bytes(b"\x00\x01\x02 not text \xff\xfe")
    (raw / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    corpus = open_raw_corpus(str(raw), 1.0, 0)
    texts = [c.text.strip() for c in corpus.chunks()]
    assert texts == ["first doc", "second doc", "# Title\n\nmarkdown doc", "json one", "json two"]
    out = capsys.readouterr().out
    assert "image.png" in out and "binary.txt" in out and "latin1.txt" in out
    assert "gitkeep" not in out


def test_empty_raw_uses_the_built_in_stories(tmp_path, capsys) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / ".gitkeep").write_text("")
    corpus = open_raw_corpus(str(tmp_path / "raw"), 0.02, 5)
    assert "using the built-in sample corpus (0.02 MB of generated stories)" in \
        capsys.readouterr().out
    assert [c.text for c in corpus.chunks()] == list(generate_corpus(0.02, 5))


def test_jsonl_errors_name_the_file_and_line(tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "d.jsonl").write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2 is not valid JSON"):
        list(open_raw_corpus(str(raw), 1, 0).chunks())
    (raw / "d.jsonl").write_text('{"content": "no text field"}\n')
    with pytest.raises(DataError, match=r'd\.jsonl:1 has no "text" string \(found: content\)'):
        list(open_raw_corpus(str(raw), 1, 0).chunks())


def test_a_long_file_is_cut_into_chunks_that_stream(tmp_path) -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 200 for i in range(400)]  # ~400 KB, one doc
    path = tmp_path / "book.txt"
    path.write_text("\n\n".join(paragraphs))
    chunks = list(Corpus(files=find_text_files(path)).chunks())
    assert len(chunks) > 10
    assert [c.end_of_document for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c.text for c in chunks) == path.read_text()  # nothing lost or added


def test_validation_split_is_exact_and_never_empty() -> None:
    split = ValidationSplit(0.05, seed=1337)
    held = [i for i in range(1000) if split(i)]
    assert len(held) == 50
    assert any(split(i) for i in range(20))  # 1/val_split chunks always give one
    assert held == [i for i in range(1000) if ValidationSplit(0.05, seed=1337)(i)]


# ---- prepare (make data) ----


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok = train_tokenizer(generate_corpus(0.2, seed=1), TokenizerConfig(vocab_size=400),
                          show_progress=False)
    save_tokenizer(tok, path)
    return str(path)


def _prepare(raw: Path, out: Path, tokenizer_path: str, **data) -> dict:
    cfg = DataConfig(raw_dir=str(raw), processed_dir=str(out), **data)
    return prepare(cfg, TokenizerConfig(path=tokenizer_path, vocab_size=400), batch_size=4,
                   max_length=32, progress=False)


def test_prepare_writes_windows_and_splits_by_document(tmp_path, tokenizer_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    stories = list(generate_corpus(0.1, seed=4))
    (raw / "stories.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in stories))
    meta = _prepare(raw, tmp_path / "out", tokenizer_path, val_split=0.1)

    assert meta == read_meta(str(tmp_path / "out"))
    assert meta["dtype"] == "uint16" and meta["eot_id"] == 0 and meta["vocab_size"] == 400
    train, val = (load_split(str(tmp_path / "out"), split) for split in ("train", "val"))
    assert (len(train), len(val)) == (meta["train_tokens"], meta["val_tokens"])
    assert meta["train_documents"] + meta["val_documents"] == len(stories)
    assert meta["train_bytes"] + meta["val_bytes"] == sum(len(s.encode()) for s in stories)

    # Decoding each split gives back whole stories, each ending with the end-of-text token,
    # and no validation story appears in the training split.
    tok = load_tokenizer(tokenizer_path)
    def documents(ids: np.ndarray) -> list[str]:
        assert ids[-1] == 0
        return tok.decode(ids.tolist(), skip_special_tokens=False).split(EOT)[:-1]
    train_docs, val_docs = documents(np.asarray(train)), documents(np.asarray(val))
    assert sorted(train_docs + val_docs) == sorted(stories)
    assert len(val_docs) == meta["val_documents"] > 0
    assert not set(val_docs) & set(train_docs)


def test_prepare_uses_a_separate_val_path(tmp_path, tokenizer_path) -> None:
    raw, val = tmp_path / "raw", tmp_path / "val.txt"
    raw.mkdir()
    write_sample(raw / "train.txt", 0.05, seed=1)
    write_sample(val, 0.01, seed=2)
    meta = _prepare(raw, tmp_path / "out", tokenizer_path, val_path=str(val))
    assert meta["val_documents"] == len(list(generate_corpus(0.01, seed=2)))
    assert meta["train_documents"] == len(list(generate_corpus(0.05, seed=1)))


def test_too_small_corpus_is_refused_with_how_much_text_is_needed(tmp_path,
                                                                  tokenizer_path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_sample(raw / "big.txt", 0.05, seed=1)
    _prepare(raw, out, tokenizer_path)  # a good run first: the refusal must not destroy it
    before = (out / "train.bin").read_bytes()
    (raw / "big.txt").unlink()
    (raw / "tiny.txt").write_text("Once upon a time there was a very short story.")
    with pytest.raises(DataError) as error:
        _prepare(raw, out, tokenizer_path)
    assert "one training batch" in error.value.message and "KB more" in error.value.message
    assert (out / "train.bin").read_bytes() == before
    assert not list(out.glob("*.tmp"))


def test_worker_processes_write_the_same_files_as_one_process(tmp_path, tokenizer_path,
                                                              monkeypatch) -> None:
    # Several files, a .jsonl, separator lines, chunks long enough to be cut, Unicode, a special
    # token inside the text and a validation split, in many batches: the batches go to worker
    # processes, and each chunk of each batch must still land in its own split, in order.
    monkeypatch.setattr("data.prepare.BATCH_CHARS", 20_000)
    raw = tmp_path / "raw"
    raw.mkdir()
    stories = list(generate_corpus(0.3, seed=3))
    third = len(stories) // 3
    (raw / "a.txt").write_text("".join(f"{s}\n{EOT}\n" for s in stories[:third]))
    (raw / "b.txt").write_text("\n\n".join(stories[third:2 * third])
                               + f" <|pad|> ½ café 日本 \r\n{EOT}\n")
    (raw / "c.jsonl").write_text("".join(json.dumps({"text": s}) + "\n"
                                         for s in stories[2 * third:]))
    metas, files = [], []
    for workers, name in ((1, "one"), (2, "two")):
        cfg = DataConfig(raw_dir=str(raw), processed_dir=str(tmp_path / name), val_split=0.1)
        metas.append(prepare(cfg, TokenizerConfig(path=tokenizer_path, vocab_size=400),
                             batch_size=4, max_length=32, progress=False, workers=workers))
        files.append([(tmp_path / name / f"{part}.bin").read_bytes() for part in ("train", "val")])
    assert metas[0] == metas[1] and files[0] == files[1]
    assert metas[0]["val_documents"] > 10  # (b.txt is one document, cut into chunks)
    assert metas[0]["train_documents"] + metas[0]["val_documents"] > 2 * third


# ---- batches ----


def test_train_batches_y_is_x_shifted_and_resume_is_exact() -> None:
    tokens = np.arange(1000, dtype=np.uint16)  # token i is i: shifts are easy to see
    batches = TrainBatches(tokens, batch_size=4, window=17, seed=3)  # gpt's next-token batches
    batch = batches.next_batch()
    x, y = batch["idx"], batch["targets"]
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)
    state = batches.state_dict()
    state = torch.load(_roundtrip(state), weights_only=True)  # as it travels in a checkpoint
    expected = [batches.next_batch() for _ in range(3)]
    resumed = TrainBatches(tokens, batch_size=4, window=17, seed=999)
    resumed.load_state_dict(state)
    for a, b in zip(expected, [resumed.next_batch() for _ in range(3)], strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_objective_draws_from_the_batches_generator_so_resume_covers_it() -> None:
    """A batch maker that makes random choices (as bert's masking and t5's spans do) gets the
    same generator as the window starts: one state_dict restores both."""

    def noisy(windows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"ids": windows, "noise": rng.integers(0, 1000, size=windows.shape)}

    tokens = np.arange(1000, dtype=np.uint16)
    batches = TrainBatches(tokens, batch_size=2, window=8, seed=5, make_batch=noisy)
    batches.next_batch()
    state = batches.state_dict()
    expected = [batches.next_batch() for _ in range(2)]
    resumed = TrainBatches(tokens, batch_size=2, window=8, seed=0, make_batch=noisy)
    resumed.load_state_dict(state)
    for a, b in zip(expected, [resumed.next_batch() for _ in range(2)], strict=True):
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["noise"], b["noise"])


def _roundtrip(obj) -> object:
    import io
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_train_batches_refuse_too_few_tokens() -> None:
    with pytest.raises(DataError, match="one training batch"):
        TrainBatches(np.zeros(50, dtype=np.uint16), batch_size=4, window=17, seed=0)


@pytest.mark.parametrize("stride", [16, 5, 1])
def test_eval_windows_score_every_token_exactly_once(stride) -> None:
    tokens = np.arange(1, 201, dtype=np.uint16)
    scored = []
    for x, y in eval_windows(tokens, max_length=16, stride=stride):
        assert x.shape[1] == y.shape[1] == 16
        keep = y != -1
        assert torch.equal(y[keep], (x + 1)[keep])
        scored += y[keep].tolist()
    assert sorted(scored) == list(range(2, 201))  # every target once, no double counting


# ---- downloads ----


@pytest.fixture
def http_server(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "book.txt").write_bytes(b"It was a dark and stormy night.\n" * 1000)
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_download_from_http_with_checksum(http_server, tmp_path) -> None:
    expected = hashlib.sha256(b"It was a dark and stormy night.\n" * 1000).hexdigest()
    out = download(f"{http_server}/book.txt", tmp_path / "raw" / "book.txt", sha256=expected)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    with pytest.raises(DataError, match="checksum mismatch"):
        download(f"{http_server}/book.txt", tmp_path / "raw" / "bad.txt", sha256="0" * 64)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["book.txt"]  # no leftovers


def test_download_errors_are_clear(http_server, tmp_path, capsys) -> None:
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{http_server}/missing.txt", tmp_path / "m.txt")
    with pytest.raises(SystemExit) as exit_info:  # nothing listens on port 9: no traceback
        run_cli(download_main, ["http://127.0.0.1:9/x.txt", "--out", str(tmp_path / "x.txt")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: could not download") and "Traceback" not in err
    with pytest.raises(DataError, match="hf:OWNER/REPO/PATH"):
        download("hf:just-a-name", tmp_path / "h.txt")
    assert not any(tmp_path.glob("*.txt")) and not any(tmp_path.glob(".*.part"))


def test_hub_download_offline_fails_fast_and_clearly(tmp_path, monkeypatch) -> None:
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # .invalid never resolves
    with pytest.raises(DataError, match="cannot reach hub.invalid"):
        download("hf:owner/repo/file.txt", tmp_path / "f.txt")
