"""A catalogue of bad inputs, each met the way a user meets it: a real `python -m ...` (or
`python chat.py`) in a project folder. Every refusal must print an `Error:` line and a
`Suggestion:` line, exit non-zero, show no traceback, and leave every file the user has
(llm.config.js, data/, tokenizer/, checkpoints/) exactly as it was. Where the right answer is to
go on (an empty data/raw, a binary file among the text), it says so in one line and exits 0.

    python -m pytest tests/test_bad_inputs.py            # about a minute on 2 CPU cores

One microscopic project (tokenizer, prepared data, a 10-step checkpoint) is built per module
and copied for each case.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from config import ARCHITECTURES
from conftest import ARCHITECTURE, write_project_config
from runtime import checkpoints

PROJECT = Path(__file__).resolve().parents[1]

# 2 layers, width 32, vocab 320, context 32: the whole pipeline runs in seconds.
MICRO = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 96, "max_length": 32},
    "tokenizer": {"vocab_size": 320},
    "data": {"sample_size_mb": 0.3, "stride": 32},
    "training": {"batch_size": 8, "max_steps": 10, "warmup_steps": 2, "eval_interval": 10,
                 "eval_batches": 2, "log_interval": 5, "threads": 1, "device": "cpu",
                 "precision": "fp32"},
    "checkpoints": {"save_interval": 10},
    "logging": {"progress_bar": False},
}
# What a user made and must never lose to an error.
WATCHED = ("llm.config.js", "data/raw", "data/processed", "tokenizer", "checkpoints", "export")


# ---- the project, and running its commands ----


def read_config(folder: Path) -> dict:
    text = (folder / "llm.config.js").read_text()
    return json.loads(text.removeprefix("module.exports = ").strip().removesuffix(";"))


def write_config(folder: Path, data: dict) -> None:
    (folder / "llm.config.js").write_text(f"module.exports = {json.dumps(data, indent=2)};\n")


def run(folder: Path, *argv: str, env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """`python -m module ...` or `python script.py ...` in `folder`, as a user runs it."""
    if argv[0].endswith(".py"):
        argv = (str(PROJECT / argv[0]), *argv[1:])
    environment = {**os.environ, "PYTHONPATH": str(PROJECT), "TOKENIZERS_PARALLELISM": "false",
                   **(env or {})}
    environment.pop("CREATE_LLM_DEBUG", None)
    return subprocess.run([sys.executable, *argv], cwd=folder, env=environment, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=300,
                          preexec_fn=preexec_fn)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_project(tmp_path_factory.mktemp("prepared"))


def trained_project(folder: Path) -> Path:
    """llm.config.js (MICRO), an empty data/raw (the built-in corpus), a trained tokenizer,
    prepared data, and a 10-step training run (checkpoints/step_000010.pt and best.pt)."""
    write_project_config(folder, MICRO)
    (folder / "data" / "raw").mkdir(parents=True)
    for module in ("tokenizer.train", "data.prepare", "training.train"):
        result = run(folder, "-m", module)
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.fixture
def project(prepared: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "my-llm"
    shutil.copytree(prepared, folder)
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file the user made (a deleted, added or changed file shows up)."""
    files = {}
    for name in WATCHED:
        root = folder / name
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file() and path.name != ".llm.lock":  # (who holds the lock: not yours)
                files[path.relative_to(folder).as_posix()] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
    return files


# ---- the ways to break a project ----


def set_key(key: str, value: object) -> Callable[[Path], None]:
    """Setup: write `value` at `section.key` of llm.config.js."""
    section, _, name = key.partition(".")

    def setup(folder: Path) -> None:
        data = read_config(folder)
        data[section][name] = value
        write_config(folder, data)

    return setup


def drop_section(section: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        data = read_config(folder)
        del data[section]
        write_config(folder, data)

    return setup


def rename_section(old: str, new: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        data = read_config(folder)
        write_config(folder, {new if k == old else k: v for k, v in data.items()})

    return setup


def replace_in_config(old: str, new: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / "llm.config.js"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    return setup


def write_file(relative: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return setup


def append_bytes(relative: str, content: bytes) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        with open(folder / relative, "ab") as f:
            f.write(content)

    return setup


def link(relative: str, target: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / relative).symlink_to(target)

    return setup


def mkfifo(relative: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        os.mkfifo(folder / relative)

    return setup


def prepend(relative: str, text: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / relative
        path.write_text(text + path.read_text(encoding="utf-8"), encoding="utf-8")

    return setup


def remove(relative: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return setup


def truncate(relative: str, size: int = 1000) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / relative
        path.write_bytes(path.read_bytes()[:size])

    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        for step in setups:
            step(folder)

    return setup


def sample_text(folder: Path) -> None:
    """Real text in data/raw (0.3 MB of the built-in stories as a file)."""
    from corpus.sample import generate_corpus

    (folder / "data" / "raw" / "stories.txt").write_text(
        "<|endoftext|>\n".join(generate_corpus(0.3, 1)), encoding="utf-8")


def retrain_tokenizer_with_vocab(vocab: int, prepare: bool = True) -> Callable[[Path], None]:
    """Another tokenizer (and, with `prepare`, data encoded by it): what `make tokenizer data`
    after editing tokenizer.vocab_size gives."""

    def setup(folder: Path) -> None:
        result = run(folder, "-m", "tokenizer.train", "--force", "--tokenizer.vocab_size",
                     str(vocab))
        assert result.returncode == 0, result.stderr
        if prepare:
            assert run(folder, "-m", "data.prepare").returncode == 0

    return setup


def lock_file_is_a_folder(folder: Path) -> None:
    """Where the lock file goes there is a folder: the lock cannot be made (as on a read-only
    folder, which root, who runs these tests, cannot be refused)."""
    (folder / ".llm.lock").unlink(missing_ok=True)
    (folder / ".llm.lock").mkdir()


def remove_kept_tokenizers(folder: Path) -> None:
    """Delete the tokenizer copies `make train` keeps in checkpoints/ (as an old project has
    none)."""
    kept = list((folder / "checkpoints").glob("tokenizer-*.json"))
    assert kept, "make train kept no copy of the tokenizer"
    for path in kept:
        path.unlink()


def prepared_with_another_tokenizer(folder: Path) -> None:
    """data/processed made by a different tokenizer than tokenizer/tokenizer.json."""
    saved = (folder / "tokenizer" / "tokenizer.json").read_bytes()
    retrain_tokenizer_with_vocab(300)(folder)
    (folder / "tokenizer" / "tokenizer.json").write_bytes(saved)


class Evil:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def evil_checkpoint(relative: str, sidecar: bool = True) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / relative
        if sidecar:  # a sidecar that matches: only the unpickling can catch it
            checkpoints.save_checkpoint(path, {"model": Evil()}, {"step": 20})
        else:
            torch.save({"model": Evil()}, path)

    return setup


def torch_file(relative: str, content: object) -> Callable[[Path], None]:
    """A file torch.save wrote, but not a checkpoint of this project ("best-model": one that
    holds a model and its config, but no optimizer or other training state)."""

    def setup(folder: Path) -> None:
        state = content
        if content == "best-model":
            full = checkpoints.load_checkpoint(folder / "checkpoints" / "best.pt")
            state = {key: full[key] for key in ("model", "model_config", "step")}
        torch.save(state, folder / relative)

    return setup


def corrupt(relative: str) -> Callable[[Path], None]:
    """One byte in the middle changed: the size is right, the checksum is not."""

    def setup(folder: Path) -> None:
        path = folder / relative
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    return setup


def checkpoint_of_another_model(folder: Path) -> None:
    """best.pt whose weights do not fit the architecture it claims (e.g. edited models/)."""
    path = folder / "checkpoints" / "best.pt"
    state = checkpoints.load_checkpoint(path)
    state["model_config"]["layers"] = 3
    checkpoints.save_checkpoint(path, state, {"step": state["step"]})


def limit_file_size() -> None:
    """A full disk, for the child process: writes past 200 KB fail (Python ignores SIGXFSZ,
    so the write returns EFBIG instead of killing the process)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def no_setup(folder: Path) -> None:
    pass


def only(*architectures: str) -> pytest.MarkDecorator:
    """For a case that this project's architecture cannot meet (bert has no chat.py, no
    temperature; RoPE's even head size is gpt's)."""
    return pytest.mark.skipif(ARCHITECTURE not in architectures,
                              reason=f"for {' and '.join(architectures)} projects")


def checkpoint_claiming(architecture: str) -> Callable[[Path], None]:
    """checkpoints/other.pt: a checkpoint of another architecture (from another project)."""

    def setup(folder: Path) -> None:
        state = checkpoints.load_checkpoint(folder / "checkpoints" / "best.pt")
        state["model_config"]["architecture"] = architecture
        checkpoints.save_checkpoint(folder / "checkpoints" / "other.pt", state,
                                    {"step": state["step"]})

    return setup


def retrain_tokenizer_without(token: str, kind: str) -> Callable[[Path], None]:
    """A tokenizer.json from elsewhere (not written by `make tokenizer`) that lacks `token` but
    has the end-of-text token, and data prepared with it: only training can notice."""

    def setup(folder: Path) -> None:
        from config import load_config
        from tokenizer.train import save_tokenizer, train_tokenizer

        cfg = load_config(folder / "llm.config.js")
        special = [t for t in cfg.tokenizer.special_tokens if t != token]
        tokenizer = train_tokenizer(["Once upon a time there was a little cat. " * 40] * 30,
                                    dataclasses.replace(cfg.tokenizer, type=kind,
                                                        special_tokens=special,
                                                        sentinel_tokens=0, vocab_size=300),
                                    show_progress=False)
        save_tokenizer(tokenizer, folder / "tokenizer" / "tokenizer.json")
        (folder / "tokenizer" / "tokenizer.training.json").unlink()
        data = read_config(folder)
        data["tokenizer"]["type"] = kind
        write_config(folder, data)
        assert run(folder, "-m", "data.prepare").returncode == 0

    return setup


TRAIN, RESUME = ("-m", "training.train"), ("-m", "training.train", "--resume")
TOKENIZER, PREPARE = ("-m", "tokenizer.train"), ("-m", "data.prepare")
EVALUATE = ("-m", "evaluation.evaluate")
# bert fills in masks (no tokens to count); gpt and t5 write a few tokens.
GENERATE = ("-m", "evaluation.generate", *(() if ARCHITECTURE == "bert" else
                                           ("--max-new-tokens", "4")))
CHAT, COMPARE, BENCH = ("chat.py",), ("compare.py", "."), ("bench.py", "--steps", "1")
FINETUNE = ("-m", "training.finetune", "--finetune.max_steps", "2")
CONVERSATIONS = "data/finetune/chats.jsonl"
GOOD_LINE = ('{"messages": [{"role": "user", "content": "hi"}, '
             '{"role": "assistant", "content": "ok"}]}')
TUNED = only("gpt", "t5")  # bert projects have no instruction tuning
OTHER_ARCHITECTURE = next(a for a in ARCHITECTURES if a != ARCHITECTURE)
OWN_TOKENIZER = {"gpt": "bpe", "bert": "wordpiece", "t5": "unigram"}[ARCHITECTURE]
# (t5's 100 sentinels would not fit in a 320-token bpe: 256 bytes come first)
OTHER_TOKENIZER = {"gpt": "unigram", "bert": "unigram", "t5": "wordpiece"}[ARCHITECTURE]
STEP_10 = "checkpoints/step_000010.pt"

# (setup, command, fragments of the Error: line). Ids name the bad input.
REFUSED = [
    # -- llm.config.js: syntax, code, keys, types, values (spread over every entry point) --
    pytest.param(replace_in_config('"layers": 2,', '"layers": 2 2,'), TOKENIZER,
                 ["column", 'unexpected "2"', '`"layers": 2 2,`'], id="config-syntax-error"),
    pytest.param(replace_in_config('"layers": 2,', '"layers": 1 + 1,'), PREPARE,
                 ["not a plain object literal", "line"], id="config-expression"),
    pytest.param(replace_in_config('"layers": 2,', '"layers": LAYERS,'), TRAIN,
                 ['unexpected "L"'], id="config-variable"),
    pytest.param(replace_in_config('"layers": 2,', "\"layers\": require('fs').writeFileSync("
                                   "'pwned', 'x'),"), PREPARE,
                 ["not a plain object literal"], id="config-require-in-a-value"),
    pytest.param(replace_in_config("module.exports", "const fs = require('fs'); "
                                   "fs.writeFileSync('pwned', 'x');\nmodule.exports"), TOKENIZER,
                 ["line 1", "code before `module.exports =`"], id="config-code-before-exports"),
    pytest.param(replace_in_config('"layers": 2,', '"layers": undefined,'),
                 EVALUATE if ARCHITECTURE == "bert" else CHAT,
                 ['unexpected "u"'], id="config-undefined"),
    pytest.param(set_key("model.layer", 3), EVALUATE, ["unknown key `model.layer`", "line"],
                 id="config-unknown-key"),
    pytest.param(rename_section("training", "trainng"), COMPARE,
                 ["unknown section `trainng`"], id="config-misspelt-section"),
    pytest.param(set_key("model.layers", "two"), BENCH,
                 ["model.layers must be a whole number", "line"], id="config-wrong-type"),
    pytest.param(both(set_key("model.heads", 3), set_key("model.kv_heads", 3)),
                 ("-m", "data.download", "shakespeare"), ["must be divisible by model.heads"],
                 id="config-dim-not-divisible-by-heads", marks=only("gpt")),
    pytest.param(set_key("model.heads", 3), ("-m", "data.download", "shakespeare"),
                 ["must be divisible by model.heads"],
                 id="config-dim-not-divisible-by-heads-no-kv", marks=only("bert", "t5")),
    pytest.param(both(set_key("model.heads", 32), set_key("model.kv_heads", 32)), TOKENIZER,
                 ["odd head size"], id="config-odd-head-size", marks=only("gpt")),
    pytest.param(set_key("model.kv_heads", 2), TOKENIZER,
                 ["`model.kv_heads` is a setting of gpt models, and this one is " + ARCHITECTURE],
                 id="config-key-of-another-architecture", marks=only("bert", "t5")),
    pytest.param(set_key("model.relative_attention_buckets", 32), TOKENIZER,
                 ["`model.relative_attention_buckets` is a setting of t5 models"],
                 id="config-t5-key-in-another-architecture", marks=only("gpt", "bert")),
    pytest.param(set_key("model.architecture", OTHER_ARCHITECTURE), TRAIN,
                 [f"model.architecture is '{OTHER_ARCHITECTURE}', but this project has the code "
                  f"of {ARCHITECTURE} only"], id="config-architecture-without-its-code"),
    pytest.param(set_key("training.learning_rate", -0.001), TOKENIZER,
                 ["training.learning_rate must be > 0", "line"], id="config-negative-lr"),
    pytest.param(no_setup, (*PREPARE, "--training.learning_rate", "0"),
                 ["must be > 0 (set by --training.learning_rate)"], id="override-zero-lr"),
    pytest.param(set_key("model.max_length", 100_000), PREPARE,
                 ["beyond what this model supports"], id="config-max-length-too-long"),
    pytest.param(set_key("training.warmup_steps", 50), TOKENIZER,
                 ["training.warmup_steps (50) must be between 0 and training.max_steps (10)"],
                 id="config-warmup-beyond-max-steps"),
    pytest.param(drop_section("data"), TOKENIZER, ["section `data` is missing"],
                 id="config-missing-section"),
    pytest.param(write_file("llm.config.js", "module.exports = " + "{a: " * 150 + "1" + "}" * 150
                            + ";\n"), TOKENIZER,
                 ["llm.config.js nests objects or lists far too deeply to be a config"],
                 id="config-nested-150-deep"),
    pytest.param(replace_in_config('"training": {', '"model": {"layers": 3},\n  "training": {'),
                 TRAIN, ["llm.config.js sets `model` twice in one object (lines 2 and ",
                         "the second would silently replace the first"],
                 id="config-section-written-twice"),
    pytest.param(replace_in_config('"layers": 2,', '"layers": 2,\n    "layers": 3,'), EVALUATE,
                 ["llm.config.js sets `layers` twice in one object (lines ",
                  "the second would silently replace the first"],
                 id="config-key-written-twice"),
    pytest.param(no_setup, (*PREPARE, "--tokenizer.special_tokens", "[" * 3000 + "]" * 3000,
                            "--training.max_steps", "[" * 3000),
                 ["--training.max_steps must be a whole number"], id="override-nested-deep"),
    pytest.param(write_file("llm.config.js", ""), PREPARE, ["llm.config.js is empty"],
                 id="config-empty-file"),
    pytest.param(remove("llm.config.js"), PREPARE, ["config file llm.config.js not found"],
                 id="config-file-absent"),
    pytest.param(no_setup, (*TOKENIZER, "--config", "other.config.js"),
                 ["config file other.config.js not found"], id="config-path-absent"),
    pytest.param(append_bytes("llm.config.js", b"// caf\xe9 (Latin-1)\n"), TOKENIZER,
                 ["llm.config.js is not UTF-8 text"], id="config-not-utf8"),
    pytest.param(replace_in_config("module.exports = ", ""), TOKENIZER,
                 ["does not contain `module.exports = { ... }`"], id="config-no-module-exports"),
    pytest.param(set_key("tokenizer.type", "sentencepiece"), TOKENIZER,
                 ["tokenizer.type is 'sentencepiece'"], id="config-unknown-tokenizer-type"),
    pytest.param(set_key("training.parallelism", "fsdp2"), TRAIN,
                 ["training.parallelism is 'fsdp2'"], id="config-unknown-parallelism"),
    pytest.param(no_setup, (*PREPARE, "--training.optimizer", "adam"),
                 ["training.optimizer is 'adam'"],
                 id="config-unknown-optimizer"),
    pytest.param(no_setup, (*PREPARE, "--training.max_steps", "ten"),
                 ["--training.max_steps must be a whole number"], id="override-wrong-type"),
    pytest.param(no_setup, (*PREPARE, "--training.maxsteps", "10"),
                 ["unrecognized arguments: --training.maxsteps"], id="override-unknown-option"),
    # -- numbers that are not numbers, or absurd ones (one check: config.py _check_fields) --
    pytest.param(set_key("training.learning_rate", float("nan")), TRAIN,
                 ["training.learning_rate must be a finite number, got nan", "line"],
                 id="config-nan-learning-rate"),
    pytest.param(set_key("model.norm_eps", float("inf")), TRAIN,
                 ["model.norm_eps must be a finite number, got inf"],
                 id="config-infinite-norm-eps"),
    pytest.param(set_key("training.max_steps", 10**400), TRAIN,
                 ["training.max_steps is far too large (1000000000000000000"],
                 id="config-400-digit-max-steps"),
    pytest.param(set_key("model.dim", 10**7), TRAIN,
                 ["model.dim (10000000) is beyond what this model supports (65,536)"],
                 id="config-huge-dim"),
    pytest.param(set_key("generation.temperature", float("nan")), GENERATE,
                 ["generation.temperature must be a finite number, got nan"],
                 id="config-nan-temperature", marks=only("gpt", "t5")),
    pytest.param(no_setup, (*GENERATE, "--temperature", "nan"),
                 ["generation.temperature must be a finite number, got nan (set by "
                  "--generation.temperature)"], id="override-temperature-nan",
                 marks=only("gpt", "t5")),
    pytest.param(no_setup, (*GENERATE, "--temperature", "0.5"),
                 ["`generation.temperature` is a setting of gpt and t5 models, and this one is "
                  "bert (set by --generation.temperature)"], id="override-temperature-of-bert",
                 marks=only("bert")),
    pytest.param(no_setup, (*GENERATE, "--repetition-penalty", "nan"),
                 ["generation.repetition_penalty must be a finite number"],
                 id="override-repetition-penalty-nan", marks=only("gpt", "t5")),
    pytest.param(no_setup, (*GENERATE, "--top-p", "1e-300"),
                 ["generation.top_p must be in [0.000001, 1], got 1e-300"],
                 id="override-top-p-tiny", marks=only("gpt", "t5")),
    pytest.param(no_setup, (*CHAT, "--temperature", "nan"),
                 ["generation.temperature must be a finite number"], id="chat-temperature-nan",
                 marks=only("gpt", "t5")),
    pytest.param(no_setup, (*GENERATE, "--prompt", "No blank in this prompt."),
                 ["the prompt has no [MASK] token"], id="prompt-without-mask",
                 marks=only("bert")),
    # -- text that is not text --
    pytest.param(no_setup, (*GENERATE, "--prompt", b"caf\xe9"),
                 ["generation.prompt holds a character that is not valid text"],
                 id="prompt-not-utf8"),
    pytest.param(set_key("generation.prompt", "caf\ud800"), GENERATE,
                 ["generation.prompt holds a character that is not valid text", "line"],
                 id="config-prompt-lone-surrogate"),
    pytest.param(write_file("data/raw/docs.jsonl", '{"text": 5}\n'), PREPARE,
                 ['docs.jsonl:1: "text" is 5, not a string'], id="data-jsonl-text-not-a-string"),
    # -- data --
    pytest.param(remove("data/raw"), PREPARE, ["data.raw_dir 'data/raw' does not exist"],
                 id="data-raw-absent"),
    pytest.param(write_file("data/raw/notes.txt", "  \n\n\t\n"), TOKENIZER,
                 ["hold only whitespace"], id="data-whitespace-only-tokenizer"),
    pytest.param(write_file("data/raw/notes.txt", "  \n\n\t\n"), PREPARE,
                 ["hold only whitespace"], id="data-whitespace-only"),
    pytest.param(set_key("data.sample_size_mb", 1e-9), TOKENIZER,
                 ["data.sample_size_mb is 1e-09, too little for even one story of the built-in "
                  "corpus (data/raw is empty"], id="data-sample-size-too-small-tokenizer"),
    pytest.param(set_key("data.sample_size_mb", 1e-9), PREPARE,
                 ["data.sample_size_mb is 1e-09, too little"], id="data-sample-size-too-small"),
    pytest.param(both(link("data/raw/passwd.txt", "/etc/passwd"), mkfifo("data/raw/pipe.txt")),
                 PREPARE, ["no usable text in data/raw: every file was skipped"],
                 id="data-raw-holds-only-a-link-and-a-fifo"),
    pytest.param(write_file("data/raw/notes.txt", b"caf\xe9 \xff\xfe broken bytes\n"), PREPARE,
                 ["no usable text in data/raw"], id="data-invalid-utf8"),
    pytest.param(write_file("data/raw/docs.jsonl", '{"content": "no text field"}\n'), PREPARE,
                 ['docs.jsonl:1 has no "text" string (found: content)'],
                 id="data-jsonl-without-text"),
    pytest.param(write_file("data/raw/docs.jsonl", '{"text": "fine"}\n{"text": "cut\n'),
                 PREPARE, ["docs.jsonl:2 is not valid JSON"], id="data-jsonl-broken-line"),
    pytest.param(write_file("data/raw/tiny.txt", "Once upon a time there was a cat.\n"), PREPARE,
                 ["needs 264", "KB more train text"], id="data-smaller-than-one-batch"),
    pytest.param(prepared_with_another_tokenizer, RESUME,
                 ["prepared data in data/processed was made with a different tokenizer"],
                 id="data-from-another-tokenizer-train"),
    pytest.param(prepared_with_another_tokenizer, EVALUATE,
                 ["prepared data in data/processed was made with a different tokenizer"],
                 id="data-from-another-tokenizer-evaluate"),
    pytest.param(remove("data/processed"), TRAIN, ["no prepared data"],
                 id="data-not-prepared"),
    pytest.param(truncate("data/processed/meta.json", 20), RESUME,
                 ["data/processed/meta.json is damaged"], id="data-meta-damaged"),
    # -- tokenizer --
    pytest.param(remove("tokenizer/tokenizer.json"), PREPARE, ["no tokenizer at"],
                 id="tokenizer-missing-prepare"),
    pytest.param(write_file("tokenizer/tokenizer.json", "{"), PREPARE,
                 ["cannot read the tokenizer"], id="tokenizer-corrupt"),
    pytest.param(retrain_tokenizer_with_vocab(300), (*RESUME, "--training.max_steps", "20"),
                 ["different tokenizer (320 tokens; the current one has 300)"],
                 id="tokenizer-vocab-differs-from-checkpoint"),
    # (Retraining the tokenizer alone strands nothing: see GOES_ON. Without the copy that
    # `make train` keeps next to the checkpoints, it would.)
    pytest.param(both(retrain_tokenizer_with_vocab(300, prepare=False),
                      remove_kept_tokenizers), GENERATE,
                 ["checkpoints/best.pt was trained with a different tokenizer than "
                  "tokenizer/tokenizer.json, and its copy (tokenizer-"],
                 id="tokenizer-differs-from-checkpoint-generate"),
    pytest.param(both(retrain_tokenizer_with_vocab(300, prepare=False),
                      remove_kept_tokenizers), CHAT,
                 ["was trained with a different tokenizer than tokenizer/tokenizer.json"],
                 id="tokenizer-differs-from-checkpoint-chat", marks=only("gpt", "t5")),
    pytest.param(set_key("tokenizer.type", OTHER_TOKENIZER), PREPARE,
                 [f"is a {OWN_TOKENIZER} tokenizer, but tokenizer.type in llm.config.js is "
                  f"'{OTHER_TOKENIZER}'"], id="tokenizer-type-differs-from-config"),
    pytest.param(set_key("tokenizer.special_tokens", ["<|end|>", "<|unk|>"]), PREPARE,
                 ["no end-of-text token '<|end|>'"], id="tokenizer-without-eot-token",
                 marks=only("gpt")),
    pytest.param(set_key("tokenizer.special_tokens", ["[SEP]", "[CLS]", "[PAD]", "[UNK]"]),
                 PREPARE, ["tokenizer.special_tokens of a bert model must hold", "[MASK] is "
                           "missing"], id="config-bert-without-mask-token", marks=only("bert")),
    pytest.param(retrain_tokenizer_without("[MASK]", "bpe"), (*TRAIN, "--fresh"),
                 ["the tokenizer has no [MASK] token, which BERT's masked-LM objective needs"],
                 id="tokenizer-bpe-without-mask-for-bert", marks=only("bert")),
    pytest.param(set_key("tokenizer.sentinel_tokens", 0), TOKENIZER,
                 ["tokenizer.sentinel_tokens is 0, and a t5 model needs sentinel tokens"],
                 id="config-t5-without-sentinels", marks=only("t5")),
    pytest.param(retrain_tokenizer_without("<extra_id_0>", "unigram"), (*TRAIN, "--fresh"),
                 ["the tokenizer has no <extra_id_0> token, which T5's span corruption needs"],
                 id="tokenizer-without-sentinels-for-t5", marks=only("t5")),
    pytest.param(set_key("tokenizer.sentinel_tokens", 1), (*TRAIN, "--fresh"),
                 ["span corruption cuts 2 spans from each window of 34 tokens, but the "
                  "tokenizer has only 1 sentinel tokens"],
                 id="config-t5-too-few-sentinels", marks=only("t5")),
    # -- checkpoints --
    pytest.param(remove("checkpoints"), GENERATE, ["no usable checkpoint in checkpoints/"],
                 id="checkpoint-none-generate"),
    pytest.param(remove("checkpoints"), EVALUATE, ["no usable checkpoint in checkpoints/"],
                 id="checkpoint-none-evaluate"),
    pytest.param(remove("checkpoints"), CHAT, ["no trained model to chat with"],
                 id="checkpoint-none-chat", marks=only("gpt", "t5")),
    pytest.param(remove("checkpoints"), COMPARE, ["no usable checkpoint"],
                 id="checkpoint-none-compare"),
    pytest.param(both(truncate(STEP_10), truncate("checkpoints/best.pt")), GENERATE,
                 ["every one there is damaged"], id="checkpoint-all-truncated"),
    pytest.param(truncate(STEP_10), (*EVALUATE, "--checkpoint", STEP_10),
                 ["is unusable", "(truncated?)"], id="checkpoint-truncated-named"),
    pytest.param(both(truncate(STEP_10), remove("checkpoints/step_000010.json")),
                 (*GENERATE, "--checkpoint", STEP_10), ["could not read checkpoint"],
                 id="checkpoint-truncated-without-sidecar"),
    pytest.param(no_setup, (*RESUME, "--model.layers", "3"),
                 ["it has model.layers = 2, the current config has 3"],
                 id="checkpoint-of-another-architecture-resume"),
    pytest.param(checkpoint_of_another_model, GENERATE,
                 ["does not match this project's model code"],
                 id="checkpoint-weights-do-not-fit-model"),
    pytest.param(checkpoint_claiming(OTHER_ARCHITECTURE),
                 (*GENERATE, "--checkpoint", "checkpoints/other.pt"),
                 [f"checkpoints/other.pt holds a {OTHER_ARCHITECTURE} model, and this project has "
                  f"the code of {ARCHITECTURE} only"], id="checkpoint-of-another-architecture"),
    pytest.param(evil_checkpoint("evil.pt", sidecar=False), (*GENERATE, "--checkpoint",
                                                            "evil.pt"),
                 ["refused to load evil.pt"], id="checkpoint-malicious-pickle"),
    pytest.param(evil_checkpoint("checkpoints/step_000020.pt"), RESUME,
                 ["refused to load checkpoints/step_000020.pt"],
                 id="checkpoint-malicious-pickle-newest"),
    pytest.param(no_setup, (*TRAIN, "--checkpoints.dir", "llm.config.js/checkpoints"),
                 ["cannot write checkpoints to llm.config.js/checkpoints/: Not a directory"],
                 id="checkpoint-folder-unwritable"),
    # -- is this ours? (runtime/checkpoints.py checks every file before it is unpickled) --
    pytest.param(no_setup, (*GENERATE, "--checkpoint", "/etc/passwd"),
                 ["/etc/passwd is not a checkpoint: it is a text file"],
                 id="checkpoint-is-etc-passwd"),
    pytest.param(write_file("notes.pt", "just some text\n"),
                 (*EVALUATE, "--checkpoint", "notes.pt"),
                 ["notes.pt is not a checkpoint: it is a text file"], id="checkpoint-is-a-text-pt"),
    pytest.param(no_setup, (*RESUME, "llm.config.js"),
                 ["llm.config.js is not a checkpoint: it is a text file"],
                 id="checkpoint-is-the-config-resume"),
    pytest.param(no_setup, ("deploy.py", "export", "--checkpoint", "data/processed/train.bin"),
                 ["data/processed/train.bin is not a checkpoint: it is not a file that "
                  "torch.save writes"], id="checkpoint-is-the-token-data-export"),
    pytest.param(no_setup, (*CHAT, "--checkpoint", "tokenizer/tokenizer.json"),
                 ["tokenizer/tokenizer.json is not a checkpoint"], id="checkpoint-is-a-json-chat",
                 marks=only("gpt", "t5")),
    pytest.param(no_setup, (*COMPARE, "llm.config.js"),
                 ["llm.config.js is not a checkpoint: it is a text file"],
                 id="checkpoint-is-the-config-compare"),
    pytest.param(torch_file("plain.pt", {"model": {}}), (*GENERATE, "--checkpoint", "plain.pt"),
                 ["plain.pt is not a checkpoint written by this project: it has no valid "
                  "model_config, step"], id="checkpoint-torch-file-of-something-else"),
    pytest.param(torch_file("weights.pt", "best-model"), (*RESUME, "weights.pt"),
                 ["cannot resume from weights.pt: it holds a model but no training state"],
                 id="checkpoint-without-training-state-resume"),
    pytest.param(no_setup, TRAIN, ["checkpoints/ already holds a training run (up to step 10)"],
                 id="checkpoint-second-run-without-resume"),
    # -- where a run may write (config.py's run folders): never among the project's own files --
    pytest.param(no_setup, (*TRAIN, "--fresh", "--checkpoints.dir", "."),
                 ["checkpoints.dir is '.' (set by --checkpoints.dir): that is the project folder"],
                 id="checkpoint-folder-is-the-project"),
    pytest.param(no_setup, (*TRAIN, "--fresh", "--checkpoints.dir", ".."),
                 ["that is the project folder or a folder above it"],
                 id="checkpoint-folder-above-the-project"),
    pytest.param(no_setup, (*TRAIN, "--fresh", "--checkpoints.dir", "data/raw"),
                 ["checkpoints.dir ('data/raw') (set by --checkpoints.dir) overlaps data.raw_dir"],
                 id="checkpoint-folder-is-the-raw-text"),
    pytest.param(no_setup, (*TRAIN, "--fresh", "--checkpoints.dir", "data"),
                 ["overlaps data.raw_dir ('data/raw')"], id="checkpoint-folder-holds-the-data"),
    pytest.param(no_setup, (*TRAIN, "--fresh", "--checkpoints.dir", "tokenizer/runs"),
                 ["overlaps the tokenizer's folder"], id="checkpoint-folder-in-the-tokenizer"),
    pytest.param(no_setup, (*RESUME, "--logging.dir", "data/processed"),
                 ["logging.dir ('data/processed') (set by --logging.dir) overlaps "
                  "data.processed_dir"], id="logs-folder-is-the-prepared-data"),
    pytest.param(no_setup, ("deploy.py", "export", "--deployment.export_dir", "data/raw"),
                 ["deployment.export_dir ('data/raw') (set by --deployment.export_dir) overlaps "
                  "data.raw_dir"], id="export-folder-is-the-raw-text"),
    pytest.param(set_key("checkpoints.dir", "./"), PREPARE,
                 ["checkpoints.dir is './' (line "], id="checkpoint-folder-checked-everywhere"),
    pytest.param(no_setup, (*RESUME, "checkpoints/step_000999.pt"),
                 ["checkpoint checkpoints/step_000999.pt not found"],
                 id="checkpoint-resume-path-absent"),
    # -- instruction tuning (make finetune): its base model and its conversations --
    pytest.param(remove("checkpoints"), FINETUNE, ["there is no trained model to tune yet"],
                 id="finetune-without-a-trained-model", marks=TUNED),
    pytest.param(write_file(CONVERSATIONS, f"{GOOD_LINE}\n" + '{"messages": [\n'), FINETUNE,
                 [f"{CONVERSATIONS}:2 is not valid JSON"], id="finetune-broken-line",
                 marks=TUNED),
    pytest.param(write_file(CONVERSATIONS, '{"messages": [{"role": "robot", "content": "x"}]}\n'),
                 FINETUNE, [f"{CONVERSATIONS}:1: message 1 has the role 'robot'"],
                 id="finetune-unknown-role", marks=TUNED),
    pytest.param(write_file(CONVERSATIONS, '{"messages": [{"role": "user", "content": "x"}]}\n'),
                 FINETUNE, [f"{CONVERSATIONS}:1 has no assistant turn"],
                 id="finetune-no-assistant-turn", marks=TUNED),
    pytest.param(write_file(CONVERSATIONS, '{"prompt": "a", "completion": 3}\n'), FINETUNE,
                 ['"completion" must be a non-empty list of messages'],
                 id="finetune-completion-not-text", marks=TUNED),
    pytest.param(write_file(CONVERSATIONS, GOOD_LINE + "\n"), FINETUNE,
                 ["only 1 conversation(s) to tune on"], id="finetune-too-few", marks=TUNED),
    pytest.param(no_setup, (*FINETUNE, "--finetune.max_length", "999"),
                 ["finetune.max_length (999) is longer than the model's context"],
                 id="finetune-longer-than-the-context", marks=TUNED),
    pytest.param(no_setup, (*FINETUNE, "--finetune.lora_rank", "4"),
                 ["`finetune.lora_rank` is a setting of gpt models"], id="finetune-lora-of-t5",
                 marks=only("t5")),
    # -- the project lock (project_lock.py): a lock file that cannot be made --
    pytest.param(lock_file_is_a_folder, TRAIN,
                 ["cannot create the lock file .llm.lock: Is a directory"],
                 id="lock-file-cannot-be-created-train"),
    pytest.param(lock_file_is_a_folder, PREPARE,
                 ["cannot create the lock file .llm.lock"], id="lock-file-cannot-be-created-data"),
    # -- the dashboard and plugins --
    pytest.param(no_setup, (*TRAIN, "--logging.dashboard_port", "5060"),
                 ["logging.dashboard_port is 5060, a port browsers refuse to open"],
                 id="dashboard-port-browsers-refuse"),
    pytest.param(no_setup, ("-m", "dashboard.serve", "--port", "80"),
                 ["logging.dashboard_port is 80 (set by --logging.dashboard_port)"],
                 id="dashboard-port-privileged"),
    pytest.param(no_setup, (*TRAIN, "--plugins.enabled", "wandbb"),
                 ["plugins.enabled names an unknown plugin 'wandbb'"], id="plugin-unknown"),
    pytest.param(no_setup, (*TRAIN, "--plugins.enabled", "synthex"),
                 ["plugins.enabled names 'synthex', which makes data before training"],
                 id="plugin-synthex-is-not-a-training-plugin"),
    # -- exports --
    pytest.param(no_setup, ("deploy.py", "export", "--format", "gguf"),
                 [f"GGUF export is for gpt models, and this one is {ARCHITECTURE}"],
                 id="export-gguf-of-bert-or-t5", marks=only("bert", "t5")),
    pytest.param(no_setup, ("deploy.py", "export", "--deployment.export_dir", "llm.config.js"),
                 ["cannot export to llm.config.js/hf/: llm.config.js is a file, not a folder"],
                 id="export-folder-is-a-file"),
    pytest.param(write_file("export/hf/notes.txt", "mine"), ("deploy.py", "export"),
                 ["export/hf/ holds files that no export wrote (notes.txt)"],
                 id="export-never-replaces-a-folder-of-yours"),
    pytest.param(no_setup, ("deploy.py", "export", "--deployment.export_dir", "/proc/none"),
                 ["could not write the export to /proc/none/hf/: No such file or directory"],
                 id="export-folder-cannot-be-made"),
    pytest.param(no_setup, ("deploy.py", "export", "--format", "gguf",
                            "--deployment.export_dir", "/proc/none"),
                 ["could not write /proc/none/gguf/"], id="export-gguf-folder-cannot-be-made",
                 marks=only("gpt")),
    # -- other commands' own inputs --
    pytest.param(no_setup, ("-m", "data.download", "no-such-dataset"),
                 ["unknown dataset 'no-such-dataset'"], id="download-unknown-dataset"),
    pytest.param(no_setup, ("compare.py", ".", "../no-such-project"),
                 ["../no-such-project does not exist"], id="compare-path-absent"),
    pytest.param(no_setup, ("compare.py", ".", "--text", ".."), ["--text ..: not a file"],
                 id="compare-text-is-a-folder"),
    pytest.param(no_setup, (*GENERATE, "--checkpoint", "x" * 300),
                 ["cannot be read: File name too long"], id="checkpoint-name-too-long"),
    pytest.param(no_setup, ("compare.py", ".", "--max-new-token", "x"),
                 ["--max-new-tokens: invalid int value: 'x'"], id="compare-bad-option-value"),
]


def first_of_each_command(cases: list, seen: set[tuple]) -> list:
    """The cases with all but the first of each command (tokenizer.train, training.train, a
    resume, deploy.py export, chat.py...) that this architecture meets marked slow, `seen`
    holding the commands met already: `make test` sees each entry point meet bad input once,
    `make test-all` runs the whole catalogue (each case is a python process, a few seconds)."""
    marked = []
    for case in cases:
        command = case.values[1]
        entry = (*command[:2 if command[0] in ("-m", "deploy.py") else 1], "--resume" in command)
        skipped = any(mark.name == "skipif" and mark.args[0] for mark in case.marks)
        if skipped or entry in seen:
            case = pytest.param(*case.values, id=case.id, marks=(*case.marks, pytest.mark.slow))
        else:
            seen.add(entry)
        marked.append(case)
    return marked


EVERYDAY_COMMANDS: set[tuple] = set()  # the commands `make test` has met bad input with


@pytest.mark.parametrize(("setup", "command", "fragments"),
                         first_of_each_command(REFUSED, EVERYDAY_COMMANDS))
def test_bad_input_is_refused_clearly_and_changes_nothing(
        project: Path, setup: Callable[[Path], None], command: tuple[str, ...],
        fragments: list[str]) -> None:
    setup(project)
    before = snapshot(project)
    result = run(project, *command)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback (most recent call last)" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert any(line.startswith("Suggestion: ") for line in result.stderr.splitlines()), output
    for fragment in fragments:
        assert fragment in errors[0], output
    assert snapshot(project) == before, "a user file was changed or deleted"
    assert not list(project.rglob("pwned")), "code from the input was executed"


# (setup, command, the one line that says what happened). These go on, and exit 0.
GOES_ON = [
    pytest.param(no_setup, PREPARE,
                 "data/raw is empty: using the built-in sample corpus (0.3 MB",
                 id="data-raw-empty-uses-built-in-corpus"),
    pytest.param(both(sample_text, write_file("data/raw/photo.txt", b"\x89PNG\r\n\x00\x00" * 99)),
                 PREPARE, "Skipping data/raw/photo.txt: binary or not UTF-8 text",
                 id="data-binary-file-is-skipped"),
    pytest.param(both(sample_text, write_file("data/raw/tail.txt",
                                              b"Text. " * 20_000 + b"\x00")), PREPARE,
                 "Skipping data/raw/tail.txt: binary or not UTF-8 text",
                 id="data-nul-far-into-a-file-is-binary"),
    # data/raw is read as the files in it (corpus/sources.py walk_raw): links are not followed
    pytest.param(both(sample_text, link("data/raw/passwd.txt", "/etc/passwd")), PREPARE,
                 "Skipping data/raw/passwd.txt: a link to /etc/passwd, outside data/raw",
                 id="data-link-out-of-raw-is-skipped"),
    pytest.param(both(sample_text, link("data/raw/etc", "/etc")), TOKENIZER,
                 "Skipping data/raw/etc: a link to /etc, outside data/raw",
                 id="data-link-to-a-folder-outside-is-skipped"),
    pytest.param(both(sample_text, link("data/raw/copy.txt", "stories.txt")), PREPARE,
                 "Skipping data/raw/copy.txt: a link (to ",
                 id="data-link-inside-is-not-read-twice"),
    pytest.param(both(sample_text, link("data/raw/gone.txt", "missing.txt")), PREPARE,
                 "Skipping data/raw/gone.txt: a link to missing.txt, which does not exist",
                 id="data-dangling-link-is-skipped"),
    pytest.param(both(sample_text, link("data/raw/loop.txt", "loop.txt")), PREPARE,
                 "Skipping data/raw/loop.txt: a link that loops back to itself",
                 id="data-looping-link-is-skipped"),
    pytest.param(both(sample_text, mkfifo("data/raw/pipe.txt")), PREPARE,
                 "Skipping data/raw/pipe.txt: a FIFO, not a regular file",
                 id="data-fifo-is-skipped-not-waited-for"),
    pytest.param(both(sample_text, write_file("data/raw/notes.pdf", b"%PDF-1.4 ...")), PREPARE,
                 "Skipping data/raw/notes.pdf: not a .txt, .md or .jsonl file",
                 id="data-other-file-type-is-skipped"),
    pytest.param(write_file("data/raw/one-line.txt", "a long line without an end " * 80_000),
                 PREPARE, "Tokenized 2.16 MB", id="data-one-huge-line"),  # and nothing else
    pytest.param(truncate(STEP_10), (*RESUME, "--training.max_steps", "12"),
                 "Skipping checkpoints/step_000010.pt: it has 1000 bytes",
                 id="checkpoint-newest-truncated-resume-uses-another"),
    # a corrupt best.pt: said in one line, then the newest good step is used
    pytest.param(corrupt("checkpoints/best.pt"), GENERATE,
                 "Skipping checkpoints/best.pt: its checksum does not match its sidecar",
                 id="checkpoint-best-corrupt-generate-says-so"),
    pytest.param(corrupt("checkpoints/best.pt"), ("deploy.py", "export"),
                 "Skipping checkpoints/best.pt: its checksum does not match its sidecar",
                 id="checkpoint-best-corrupt-export-says-so"),
    pytest.param(corrupt("checkpoints/best.pt"), CHAT,
                 "Skipping checkpoints/best.pt: its checksum does not match its sidecar",
                 id="checkpoint-best-corrupt-chat-says-so", marks=only("gpt", "t5")),
    pytest.param(write_file("tokenizer/tokenizer.training.json", "{"), TOKENIZER,
                 "was not written by `make tokenizer` (or was edited since): keeping it",
                 id="tokenizer-record-damaged-keeps-the-tokenizer"),
    pytest.param(prepend("llm.config.js", "\ufeff// saved by an editor that writes a BOM\n"),
                 PREPARE, "data/raw is empty: using the built-in sample corpus",
                 id="config-with-a-utf8-bom"),
    pytest.param(replace_in_config('"layers": 2,', '"layers": 2 2,'), ("-m", "models.presets"),
                 "This project: not shown (llm.config.js is not a plain object literal",
                 id="summary-with-a-broken-config"),
    pytest.param(retrain_tokenizer_with_vocab(300, prepare=False), GENERATE,
                 "(Using checkpoints/tokenizer-",
                 id="tokenizer-retrained-generate-uses-the-kept-copy"),
    pytest.param(retrain_tokenizer_with_vocab(300, prepare=False), CHAT,
                 "(Using checkpoints/tokenizer-", id="tokenizer-retrained-chat-uses-the-kept-copy",
                 marks=only("gpt", "t5")),
    pytest.param(write_file(CONVERSATIONS, "".join(
        GOOD_LINE.replace('"ok"', f'"ok {i}"') + "\n" for i in range(40)) + GOOD_LINE.replace(
        '"hi"', '"' + "a very long question " * 30 + '"') + "\n"), FINETUNE,
        "were longer than 32 tokens and were cut to it", id="finetune-long-conversation-cut",
        marks=TUNED),
]


@pytest.mark.parametrize(("setup", "command", "line"),
                         first_of_each_command(GOES_ON, EVERYDAY_COMMANDS))
def test_recoverable_input_says_so_in_one_line_and_goes_on(
        project: Path, setup: Callable[[Path], None], command: tuple[str, ...],
        line: str) -> None:
    setup(project)
    result = run(project, *command)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "Error:" not in output, output
    assert sum(line in text for text in output.splitlines()) == 1, output


def cannot_read_everything() -> None:
    """For the child process: folders without permissions are unreadable even to root (who runs
    these tests in CI): root's override of file permissions leaves the capability bounding set
    (prctl PR_CAPBSET_DROP) before the exec. Elsewhere the call fails harmlessly."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, capability, 0, 0, 0)


def test_data_raw_is_read_inside_data_raw_only(project: Path, tmp_path: Path) -> None:
    """Links out of data/raw (a file, a folder), a link inside, a dangling and a looping link, a
    FIFO and a folder that cannot be read: each is skipped in one line, `make tokenizer` and
    `make data` go on (never waiting on the FIFO), and nothing from outside is trained on."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET-OUTSIDE " * 200)
    raw = project / "data" / "raw"
    sample_text(project)
    (raw / "passwd.txt").symlink_to("/etc/passwd")
    (raw / "elsewhere").symlink_to(outside)
    (raw / "secret.txt").symlink_to(outside / "secret.txt")
    (raw / "again.txt").symlink_to("stories.txt")
    (raw / "gone.txt").symlink_to("missing.txt")
    (raw / "loop.txt").symlink_to("loop.txt")
    os.mkfifo(raw / "pipe.txt")
    (raw / "locked").mkdir()
    (raw / "locked" / "more.txt").write_text("LOCKED-TEXT " * 200)
    (raw / "locked").chmod(0)
    try:
        results = [run(project, *command, preexec_fn=cannot_read_everything)
                   for command in ((*TOKENIZER, "--force"), PREPARE)]
    finally:
        (raw / "locked").chmod(0o755)
    skipped = {"passwd.txt": "a link to /etc/passwd, outside data/raw",
               "elsewhere": f"a link to {outside}, outside data/raw",
               "secret.txt": f"a link to {outside / 'secret.txt'}, outside data/raw",
               "again.txt": f"a link (to {raw.resolve() / 'stories.txt'}); links are not "
                            "followed", "gone.txt": "a link to missing.txt, which does not exist",
               "loop.txt": "a link that loops back to itself",
               "pipe.txt": "a FIFO, not a regular file",
               "locked": "cannot read this folder (Permission denied)"}
    for result in results:
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Traceback" not in output and "Error" not in output, output
        for name, why in skipped.items():
            assert output.count(f"Skipping data/raw/{name}: {why}") == 1, (name, output)
    meta = json.loads((project / "data" / "processed" / "meta.json").read_text())
    assert meta["sources"] == ["data/raw/stories.txt"]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(project / "tokenizer" / "tokenizer.json"))
    text = "".join(tokenizer.decode(np.fromfile(project / "data" / "processed" / f"{name}.bin",
                                                dtype=meta["dtype"]).tolist())
                   for name in ("train", "val"))
    assert "Once upon a time" in text
    assert "SECRET" not in text and "root:" not in text and "LOCKED" not in text


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(project: Path) -> None:
    before = snapshot(project)
    result = run(project, *RESUME, "--training.max_steps", "20", preexec_fn=limit_file_size)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "could not write checkpoint checkpoints/" in result.stderr
    assert "File too large" in result.stderr and "Suggestion: free some disk space" in \
        result.stderr
    assert snapshot(project) == before  # nothing half-written, nothing lost
    assert checkpoints.verify_checkpoint(project / STEP_10) is None
    assert not list((project / "checkpoints").glob(".*tmp*"))


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[None]:
    """A tmpfs of `size` mounted on `folder` (its files copied in): a disk that fills up.
    Skips the test where mounting is not allowed (not root, or in a container without it)."""
    saved = folder.with_name(folder.name + "-saved")
    shutil.copytree(folder, saved)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(saved)
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    try:
        shutil.copytree(saved, folder, dirs_exist_ok=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.slow
def test_a_full_logs_disk_saves_the_model_then_stops_clearly(project: Path) -> None:
    """logs/ on a disk that fills up during the run (checkpoints/ on one with room): the run
    saves a checkpoint, then stops with one Error naming the logs folder and the fix."""
    size = (project / "logs" / "metrics.jsonl").stat().st_size
    with small_disk(project / "logs", f"{size // 1024 + 40}k"):
        result = run(project, *RESUME, "--training.max_steps", "100000", "--training.log_interval",
                     "1", "--checkpoints.save_interval", "100000")
        output = result.stdout + result.stderr
        records = (project / "logs" / "metrics.jsonl").read_text().splitlines()
    assert result.returncode == 1, output
    assert "Traceback" not in output and "Exception in thread" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: could not write logs/"), output
    assert "No space left on device; training stopped at step " in errors[0]
    step = int(errors[0].split("training stopped at step ")[1].split()[0])
    assert f"Saved checkpoints/step_{step:06d}.pt" in result.stdout
    assert checkpoints.verify_checkpoint(project / "checkpoints" / f"step_{step:06d}.pt") is None
    assert "Suggestion: free some disk space where logs/ is (logging.dir)" in result.stderr
    assert "make resume" in result.stderr
    assert 10 < step < 100000 and json.loads(records[0])["type"] == "run"


@pytest.mark.parametrize("kind", [
    "hf", pytest.param("gguf", marks=[only("gpt"), pytest.mark.slow])])
def test_an_export_to_a_full_disk_says_so_and_leaves_no_half_export(project: Path,
                                                                     kind: str) -> None:
    (project / "export").mkdir()
    with small_disk(project / "export", "60k"):
        result = run(project, "deploy.py", "export", "--format", kind)
        left = sorted(p.name for p in (project / "export").rglob("*") if p.is_file())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: could not write "), errors
    assert f"export/{kind}/" in errors[0], errors
    assert "No space left on device" in errors[0] or "0 written" in errors[0], errors
    assert "Suggestion: free some disk space" in result.stderr
    assert left == [], left  # no half-written file


@pytest.mark.slow
def test_secrets_are_never_printed_or_saved(project: Path) -> None:
    """Tokens in the environment stay out of every output, log and checkpoint, even with
    --debug tracebacks on error paths."""
    secret = f"hf_{uuid.uuid4().hex}"
    env = {name: secret for name in ("HF_TOKEN", "WANDB_API_KEY", "HUGGING_FACE_HUB_TOKEN",
                                     "API_KEY")}
    runs = [
        (*TRAIN, "--fresh", "--training.max_steps", "2", "--debug"),  # writes logs, checkpoints
        (*RESUME, "--model.layers", "3", "--debug"),
        (*EVALUATE, "--checkpoint", "missing.pt", "--debug"),
    ]
    results = [run(project, *command, env=env) for command in runs]
    assert results[0].returncode == 0, results[0].stderr
    assert results[1].returncode == results[2].returncode == 1
    assert "Traceback (most recent call last)" in results[1].stderr  # --debug did its job
    for result in results:
        assert secret not in result.stdout + result.stderr
    written = [p for folder in ("logs", "checkpoints") for p in (project / folder).rglob("*")
               if p.is_file()]
    assert any(p.name == "metrics.jsonl" for p in written)
    assert any(p.suffix == ".json" and p.parent.name == "checkpoints" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
