"""chat.py: the transcript always fits the context, answers stop at the next speaker, commands
never crash, /save never overwrites a file unasked nor anything of the project, non-UTF-8 input
is skipped, the sampling settings are refused or sample a real token (property tests), and a
piped session works end to end with a real (microscopic) trained model.

    python -m pytest tests/test_chat.py -q
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import config as config_module
from chat import ChatSession, ProjectPaths, StopAtMarkers, Turn, build_prompt, stop_markers
from config import GenerationConfig, ModelConfig
from conftest import write_project_config
from errors import ConfigurationError
from models.architectures.gpt import GPT
from runtime.sampling import sample_next_token

PROJECT = Path(__file__).resolve().parents[1]
EOT = 0

SENTENCES = [
    "User: Hello there, how are you today?",
    "Model: I am fine. The cat sat on the mat and looked at the dog.",
    "Once upon a time there was a little girl who loved to read stories.",
    "The sun was warm and the birds were singing in the tall green trees.",
]


@functools.cache
def bpe_tokenizer() -> Tokenizer:
    """A byte-level BPE trained in memory in milliseconds: id 0 is the end-of-text token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 20, trainer)
    assert tok.token_to_id("<|endoftext|>") == EOT
    return tok


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return bpe_tokenizer()


def long_history(n: int) -> list[Turn]:
    return [Turn(f"question number {i}, tell me about the cat", f"answer {i}: the dog sat down")
            for i in range(n)]


# ---- the context window ----


def test_a_history_far_longer_than_the_context_keeps_the_newest_turns(tokenizer) -> None:
    history = long_history(2000)  # ~100,000 tokens for a 256-token budget
    ids, first = build_prompt(history, "and now?", tokenizer, EOT, budget=256)
    assert len(ids) <= 256
    assert ids[0] == EOT  # the transcript starts a new document
    text = tokenizer.decode(ids)
    assert text.endswith("User: and now?\nModel:")
    assert 0 < first < len(history) - 1
    kept = history[first:]
    assert kept and kept[-1] is history[-1]  # the newest turns are the ones kept
    for turn in kept:
        assert f"User: {turn.user}\nModel: {turn.model}\n" in text
    assert f"User: {history[first - 1].user}" not in text


def test_a_message_longer_than_the_context_keeps_its_end(tokenizer) -> None:
    message = "the cat sat on the mat " * 200
    ids, first = build_prompt(long_history(3), message, tokenizer, EOT, budget=40)
    assert len(ids) == 40 and first == 3
    assert tokenizer.decode(ids).endswith("mat \nModel:")


def test_a_session_never_crashes_on_a_long_history(tokenizer) -> None:
    config = ModelConfig(layers=2, heads=2, kv_heads=2, dim=32, mlp_dim=64, max_length=32,
                         vocab_size=tokenizer.get_vocab_size())
    session = ChatSession(GPT(config), tokenizer, EOT,
                          GenerationConfig(temperature=1.0, top_k=0, top_p=1.0,
                                           max_new_tokens=100), seed=0)
    session.history = long_history(500)
    written: list[str] = []
    for message in ("hello", "the cat " * 100):  # the second alone overflows the context
        answer, interrupted = session.reply(message, written.append)
        assert not interrupted
        assert answer == "".join(written).rstrip()
        written.clear()
    assert session.dropped > 490  # only the newest turns were shown to the model
    assert len(session.history) == 502  # ...but the transcript keeps them all


# ---- ending an answer at the next speaker ----


def test_streamed_text_stops_at_the_next_speaker_and_never_half_prints_it() -> None:
    stop = StopAtMarkers(["\nUser:", "\nModel:"])
    shown = [stop.push(piece) for piece in [" Hello", " there\n", "Us", "er: what", " next"]]
    assert "".join(shown) == " Hello there"
    assert shown[1] == " there"  # the newline waits: it might start "\nUser:"
    assert stop.stopped
    stop = StopAtMarkers(["\nUser:", "\nModel:"])
    text = "".join(stop.push(piece) for piece in ["a\n", "Us", "ually fine\n"]) + stop.flush()
    assert text == "a\nUsually fine\n" and not stop.stopped


def test_answers_stream_whole_characters_and_end_at_the_next_speaker(tokenizer,
                                                                     monkeypatch) -> None:
    import chat

    # The emoji is not in this tokenizer's vocabulary: it arrives as 4 byte-level tokens.
    scripted = tokenizer.encode(" Café 🐶 yes\nUser: more", add_special_tokens=False).ids
    assert len(scripted) > len(" Café 🐶 yes\nUser: more".split())

    def fake_generate_tokens(*args, **kwargs):
        yield from scripted

    monkeypatch.setattr(chat, "generate_tokens", fake_generate_tokens)
    config = ModelConfig(layers=1, heads=2, kv_heads=2, dim=16, mlp_dim=32, max_length=64,
                         vocab_size=tokenizer.get_vocab_size())
    session = ChatSession(GPT(config), tokenizer, EOT, GenerationConfig())
    pieces: list[str] = []
    answer, interrupted = session.reply("hi", pieces.append)
    assert answer == "".join(pieces) == "Café 🐶 yes" and not interrupted
    assert all("\ufffd" not in piece for piece in pieces)  # never half a character
    assert (session.history[-1].user, session.history[-1].model) == ("hi", "Café 🐶 yes")


def test_markers_follow_what_the_tokenizer_keeps(tokenizer) -> None:
    assert stop_markers(tokenizer) == ["\nUser:", "\nModel:"]  # byte-level: exact text

    class Lossy:  # a whitespace-splitting tokenizer loses the newline
        def encode(self, text: str, add_special_tokens: bool = False):
            return type("E", (), {"ids": [0]})()

        def decode(self, ids: list[int]) -> str:
            return "a user : b"

    assert "user :" in stop_markers(Lossy())


# ---- commands ----


def test_commands_change_settings_and_bad_arguments_are_one_line_messages(
        tokenizer, tmp_path: Path) -> None:
    config = ModelConfig(layers=1, heads=2, kv_heads=2, dim=16, mlp_dim=32, max_length=16,
                         vocab_size=tokenizer.get_vocab_size())
    session = ChatSession(GPT(config), tokenizer, EOT, GenerationConfig())
    assert session.command("/temperature 0.3") == ("temperature = 0.3", False)
    assert session.settings.temperature == 0.3
    assert session.command("/top_k 5")[0] == "top_k = 5"
    assert session.command("/top_p 0.5")[0] == "top_p = 0.5"
    assert session.command("/max_tokens 7")[0] == "max_tokens = 7"
    assert session.command("/max_tokens")[0] == "max_tokens = 7"  # no value: show it
    for bad in ("/temperature hot", "/temperature -1", "/top_k 2.5", "/top_p 0", "/top_p 1.5",
                "/max_tokens 0", "/save", "/frobnicate", "/save /no/such/folder/x.txt"):
        message, quit_now = session.command(bad)
        assert message and "\n" not in message and not quit_now, bad
    assert session.settings == GenerationConfig(temperature=0.3, top_k=5, top_p=0.5,
                                                max_new_tokens=7)
    session.history = [Turn("hi", "hello"), Turn("bye", "")]
    message, _ = session.command(f"/save {tmp_path / 'chat.txt'}")
    assert "2 turns" in message
    assert (tmp_path / "chat.txt").read_text() == "User: hi\nModel: hello\nUser: bye\nModel: \n"
    assert session.command("/reset")[0] and session.history == []
    assert session.command("/help")[0].startswith("Commands:")
    assert session.command("/quit") == ("", True)


# ---- the real thing: a trained microscopic model, chat.py as a subprocess ----

TINY = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 64, "max_length": 64},
    "tokenizer": {"type": "bpe", "vocab_size": 300},
    "data": {"sample_size_mb": 0.2, "stride": 64},
    "training": {"batch_size": 8, "max_steps": 30, "warmup_steps": 3, "learning_rate": 3e-3,
                 "min_lr": 3e-4, "eval_interval": 30, "eval_batches": 2, "log_interval": 10,
                 "threads": 1, "precision": "fp32", "device": "cpu"},
    "checkpoints": {"save_interval": 30},
    "logging": {"progress_bar": False},
    "generation": {"max_new_tokens": 20},
}


def run_python(folder: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run this project's code (PYTHONPATH) inside another folder holding an llm.config.js."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with a tokenizer, data and a 30-step checkpoint (about 10 s)."""
    folder = tmp_path_factory.mktemp("chat-project")
    write_project_config(folder, TINY)
    (folder / "data" / "raw").mkdir(parents=True)
    for module in ("tokenizer.train", "data.prepare", "training.train"):
        result = run_python(folder, "-m", module)
        assert result.returncode == 0, result.stdout + result.stderr
    return folder


def test_piped_session_with_commands(trained: Path) -> None:
    stdin = ("Hello there\n"
             "/temperature 0\n"
             "/top_k lots\n"
             "\n"
             "Once upon a time\n"
             "/save transcript.txt\n"
             "/quit\n"
             "this line is never read\n")
    result = run_python(trained, str(PROJECT / "chat.py"), "--seed", "1", stdin=stdin)
    assert result.returncode == 0, result.stderr
    # stdout holds the answers only: no banner, no prompt, no command replies, no colours.
    assert "\033" not in result.stdout + result.stderr
    assert "Loaded" not in result.stdout and "base model" not in result.stdout
    assert "You:" not in result.stdout and "temperature" not in result.stdout
    # stderr: the one-line description, what a base model does, the command replies.
    assert "trained 30 steps" in result.stderr and "val loss" in result.stderr
    assert "base model" in result.stderr and "not instruction-tuned" in result.stderr
    assert "temperature = 0.0" in result.stderr
    assert "/top_k needs a whole number, got 'lots'" in result.stderr
    transcript = (trained / "transcript.txt").read_text()
    assert transcript.startswith("User: Hello there\nModel:")
    assert "\nUser: Once upon a time\nModel:" in transcript
    assert "never read" not in transcript
    # Each answer is on stdout, as in the transcript (the empty line asked nothing).
    answers = transcript.split("User: ")[1:]
    assert len(answers) == 2
    for answer in answers:
        assert answer.split("Model:", 1)[1].strip() in result.stdout


@pytest.mark.slow
def test_a_seeded_session_repeats(trained: Path) -> None:
    stdin = "The dog\nand then?\n"
    first = run_python(trained, str(PROJECT / "chat.py"), "--seed", "3", stdin=stdin)
    second = run_python(trained, str(PROJECT / "chat.py"), "--seed", "3", "--max-tokens", "20",
                        stdin=stdin)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout and first.stdout.endswith("\n")


def test_no_checkpoint_says_how_to_train_one(trained: Path, tmp_path: Path) -> None:
    (tmp_path / "llm.config.js").write_text((trained / "llm.config.js").read_text())
    result = run_python(tmp_path, str(PROJECT / "chat.py"), stdin="hello\n")
    assert result.returncode == 1
    assert "Error: there is no trained model" in result.stderr
    assert "Suggestion:" in result.stderr and "make data train" in result.stderr
    assert "Traceback" not in result.stderr


# ---- /save, non-UTF-8 input, and property tests of commands and settings ----


def small_session(**options: object) -> ChatSession:
    tok = bpe_tokenizer()
    model = GPT(ModelConfig(layers=1, heads=2, kv_heads=2, dim=32, mlp_dim=64, max_length=32,
                            vocab_size=tok.get_vocab_size()))
    return ChatSession(model, tok, EOT, GenerationConfig(), **options)


def test_save_never_overwrites_unasked_nor_writes_into_the_project(trained: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch) -> None:
    project = tmp_path / "p"
    shutil.copytree(trained, project)
    monkeypatch.chdir(project)
    for name in ("chat.py", "Makefile", "README.md", "requirements.txt"):  # the project's own
        (project / name).write_text(f"# {name}\n")
    (project / "models").mkdir()
    (project / "models" / "gpt.py").write_text("# code\n")
    (project / ".git").mkdir()
    os.mkfifo(project / "pipe.txt")  # opening it to write would wait forever
    (project / "link.txt").symlink_to(project / "Makefile")
    cfg = config_module.load_config("llm.config.js")
    session = small_session(project_paths=ProjectPaths.of(cfg))
    protected = ["llm.config.js", "checkpoints/best.pt", "checkpoints/new.txt",
                 "data/raw/notes.txt", "data/processed/meta.json", "tokenizer/tokenizer.json",
                 str(project / "checkpoints" / ".." / "checkpoints" / "x.txt"),
                 "logs/metrics.jsonl", "logs/new.txt", "chat.py", "Makefile", "README.md",
                 "requirements.txt", "models/notes.txt", ".git/notes.txt", "link.txt",
                 # new files that would change what the project's commands run
                 "GNUmakefile", "tokenizers.py", "pytest.ini", "sitecustomize.py",
                 "pipe.txt"]
    before = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    for target in protected:
        for command in ("/save", "/save!"):
            message, _ = session.command(f"{command} {target}")
            assert message.startswith("Not saved: ") and "your project's" in message, message
    assert {path: path.read_bytes() for path in project.rglob("*") if path.is_file()} == before
    assert not (project / "GNUmakefile").exists() and not (project / "logs" / "new.txt").exists()

    # In the project folder: new .txt/.md transcripts, and /save! replaces a transcript.
    assert session.command("/save chat.txt")[0].startswith("Saved 0 turns")
    session.history.append(Turn("Hello", "Hi"))
    assert "already exists" in session.command("/save chat.txt")[0]
    assert session.command("/save! chat.txt")[0].startswith("Saved 1 turn")
    assert (project / "chat.txt").read_text() == "User: Hello\nModel: Hi\n"
    assert session.command("/save! chat.txt")[0].startswith("Saved 1 turn")  # a transcript
    assert session.command("/save notes/today.md")[0].startswith("Could not write")  # no folder
    (project / "notes").mkdir()
    assert session.command("/save notes/today.md")[0].startswith("Saved")

    # Outside the project: any name, and /save! replaces what you name.
    mine = tmp_path / "chat.txt"
    mine.write_text("my notes")
    message, _ = session.command(f"/save {mine}")
    assert "already exists" in message and f"/save! {mine}" in message
    assert mine.read_text() == "my notes"
    assert session.command(f"/save! {mine}")[0].startswith("Saved 1 turn")
    assert session.command(f"/save {tmp_path / 'new.log'}")[0].startswith("Saved")
    os.mkfifo(tmp_path / "fifo")
    assert "not a regular file" in session.command(f"/save! {tmp_path / 'fifo'}")[0]


def test_save_in_a_piped_session_leaves_the_projects_files_alone(trained: Path,
                                                                  tmp_path: Path) -> None:
    """The case of issue 30: `/save! logs/metrics.jsonl` replaced the run's history."""
    project = tmp_path / "p"
    shutil.copytree(trained, project)
    for name in ("Makefile", "chat.py"):  # as in a generated project
        shutil.copy(PROJECT / name, project / name)
    before = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    result = run_python(project, str(PROJECT / "chat.py"), "--max-tokens", "3", stdin=(
        "Hello\n/save! logs/metrics.jsonl\n/save! Makefile\n/save! chat.py\n/save chat.txt\n"))
    assert result.returncode == 0, result.stderr
    for name in ("logs/metrics.jsonl", "Makefile", "chat.py"):
        assert f"Not saved: {name} is " in result.stderr
    assert {path: path.read_bytes() for path in project.rglob("*") if path.is_file()
            and path.name != "chat.txt"} == before
    assert (project / "chat.txt").read_text().startswith("User: Hello\nModel:")


def test_chat_skips_a_line_that_is_not_utf8_and_goes_on(trained: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    result = subprocess.run([sys.executable, str(PROJECT / "chat.py"), "--seed", "1",
                             "--max-tokens", "5"], cwd=trained, env=env, capture_output=True,
                            input=b"caf\xe9 au lait\nHello\n/quit\n", timeout=300)
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, result.stderr
    assert "Skipped a message that is not UTF-8 text" in result.stderr
    assert len(result.stdout.splitlines()) == 1  # the answer to "Hello"
    assert "Traceback" not in result.stderr and "Error" not in result.stderr


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
# File names for /save: anything, but in the current folder only (the test's own tmp_path).
FILE_NAMES = st.text(max_size=15).filter(lambda name: "/" not in name
                                         and not name.startswith("~"))


@FUZZ
@given(line=st.one_of(
    st.text(max_size=30).map(lambda text: "/" + text).filter(
        lambda line: not line.lower().startswith("/save")),
    st.tuples(st.sampled_from(["/temperature", "/top_k", "/top_p", "/max_tokens", "/reset",
                               "/help", "/quit"]),
              st.one_of(st.text(max_size=15), st.floats().map(str),
                        st.integers().map(str))).map(" ".join),
    st.tuples(st.sampled_from(["/save", "/save!"]), FILE_NAMES).map(" ".join)))
def test_any_chat_command_is_answered_in_one_message(line, tmp_path: Path,
                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # /save writes here, if anywhere
    session = small_session()
    message, _ = session.command(line)
    assert isinstance(message, str)
    GenerationConfig(**dataclasses.asdict(session.settings))  # the settings are still valid


@FUZZ
@given(temperature=st.floats(), top_k=st.integers(-5, 500), top_p=st.floats(),
       penalty=st.floats(), logits=st.lists(st.floats(-1e4, 1e4), min_size=2, max_size=50))
def test_generation_settings_are_refused_or_sample_a_real_token(temperature, top_k, top_p,
                                                                 penalty, logits) -> None:
    try:
        g = GenerationConfig(temperature=temperature, top_k=top_k, top_p=top_p,
                             repetition_penalty=penalty)
    except ConfigurationError as error:
        assert error.message.startswith("generation.") and error.suggestion
        return
    scores = torch.tensor(logits)
    token = sample_next_token(scores, torch.tensor([0, 1]), g.temperature, g.top_k, g.top_p,
                              g.repetition_penalty, torch.Generator().manual_seed(0))
    assert 0 <= token < len(logits)
