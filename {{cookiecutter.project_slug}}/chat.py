"""Chat with your trained model in the terminal, its answers streamed as they are generated.

    make chat                                    # = python chat.py (best checkpoint, else latest)
    python chat.py --checkpoint checkpoints/step_000500.pt --temperature 0.5
    python chat.py --seed 1                      # reproducible answers
    printf 'Hello!\\n/temperature 0\\nTell me a story\\n' | python chat.py > answers.txt

After `make finetune` it talks to the tuned model (checkpoints/finetune/, and says so): the
conversation goes through the chat template it was tuned with (tokenizer/chat_template.jinja,
ChatML), exactly as in tuning, and an answer ends at the model's end-of-turn token
(TunedSession). `--checkpoint checkpoints/best.pt` talks to the base model instead.

A *base* model (`make train` only) was trained to continue text, not to follow instructions.
Chatting with it works by writing the conversation as a plain transcript and letting the model
continue it:

    User: Hello!
    Model: Hi, who are you?
    User: Tell me a story
    Model:

The answer ends where the model writes the next "User:" (or "Model:") line or its end-of-text
token. When the transcript no longer fits in the model's context window, the oldest turns are
left out of what the model sees (the /save transcript keeps them all).

A base t5 model chats as text to text (TextToTextSession): each message is the encoder's input
and the answer is what the decoder writes; it does not see the earlier turns (a tuned t5 reads
the conversation through the chat template). (A bert model cannot chat: an encoder fills in
[MASK]s; `make generate` does that.)

Commands: /help, /reset, /temperature X, /top_k N, /top_p X, /max_tokens N, /save FILE (/save!
FILE replaces a file), /quit.
Ctrl+C during an answer stops it; Ctrl+C or Ctrl+D at the prompt quits.

With stdin not a terminal (a pipe or a file), each input line is one message, each answer is
written to stdout followed by a newline, and everything else (the banner, command replies) goes
to stderr, without colours.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer

from config import (
    Config,
    GenerationConfig,
    add_config_arguments,
    config_from_args,
    has_lone_surrogate,
)
from errors import ConfigurationError, TrainingError, run_cli
from evaluation.generate import TextStream, add_sampling_options
from runtime.chat_tuning import answer_tokens
from runtime.checkpoints import has_checkpoints, load_trained_model, model_folder
from runtime.device import pick_device, set_threads
from runtime.sampling import generate_tokens
from tokenizer.chat_format import ChatFormat
from tokenizer.load import eot_id, pad_token, tokenizer_of

USER = "User:"
MODEL = "Model:"

HELP = """\
Commands:
  /help             this list
  /reset            forget the conversation (start a new transcript)
  /temperature X    randomness: 0 = always the likeliest token, about 1 = creative
  /top_k N          sample among the N likeliest tokens (0 = off)
  /top_p X          sample among the likeliest tokens holding X of the probability (1 = off)
  /max_tokens N     longest answer, in tokens
  /save FILE        write the transcript to a new FILE (/save! FILE replaces one)
  /quit             leave (Ctrl+D works too)
A setting command without a value shows the current value. Ctrl+C stops an answer."""


# ---- the transcript and the context window ----


@dataclass
class Turn:
    """One exchange: what the user wrote and what the model answered."""

    user: str
    model: str
    tokens: int = 0
    """Length of this turn's transcript text in tokens (to fit the history without re-encoding)."""


def turn_text(user: str, model: str | None) -> str:
    """The transcript lines of one turn. model=None: the open turn that the model continues.

    No space after the final "Model:": in the training text a word's leading space belongs to
    the word's token, so the model writes " Hello", not "Hello" after a stray space token.
    """
    if model is None:
        return f"{USER} {user}\n{MODEL}"
    return f"{USER} {user}\n{MODEL} {model}\n"


def transcript(history: list[Turn]) -> str:
    """The whole conversation as text (what /save writes)."""
    return "".join(turn_text(turn.user, turn.model) for turn in history)


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def build_prompt(history: list[Turn], user: str, tokenizer: Tokenizer, eot: int,
                 budget: int) -> tuple[list[int], int]:
    """Token ids of the transcript ending in the open turn, at most `budget` long.

    Returns (ids, first): the model sees history[first:] plus the new message. The oldest turns
    are dropped until the rest fits; if the new message alone is too long, only its end is kept.
    The end-of-text token goes first: in the training data it separates documents, so it tells
    the model that a new text (this transcript) starts here.
    """
    budget = max(1, budget)
    for turn in history:
        if not turn.tokens:
            turn.tokens = len(encode(tokenizer, turn_text(turn.user, turn.model)))
    # Choose the turns from the per-turn lengths (linear in the history, however long it is)...
    used = 1 + len(encode(tokenizer, turn_text(user, None)))
    first = len(history)
    while first > 0 and used + history[first - 1].tokens <= budget:
        first -= 1
        used += history[first].tokens
    # ...then encode the chosen text in one piece: merges across turn boundaries can change
    # the count a little, so check it and drop more turns if needed.
    while True:
        ids = [eot] + encode(tokenizer, transcript(history[first:]) + turn_text(user, None))
        if len(ids) <= budget or first == len(history):
            break
        first += 1
    return ids[-budget:], first


# ---- ending the answer at the next speaker's line ----


def stop_markers(tokenizer: Tokenizer) -> list[str]:
    """The texts that end an answer: the next "User:" or "Model:" line.

    Byte-level BPE gives back the exact text, newline included. Tokenizers that split on
    whitespace (wordpiece, some unigram setups) lose the newline and may lowercase or space out
    the colon, so for them the speaker label alone is the marker.
    """
    round_trip = tokenizer.decode(encode(tokenizer, "a\nUser: b"))
    if "\nUser:" in round_trip:
        return ["\n" + USER, "\n" + MODEL]
    markers = []
    for label in ("User", "Model"):
        for name in (label, label.lower()):
            markers += [f"{name}:", f"{name} :"]
    return markers


class StopAtMarkers:
    """Pass streamed text through until a stop marker appears.

    Text that could be the beginning of a marker ("\\n", "\\nUs") is held back until the next
    piece shows whether it is one, so a marker is never half-printed.
    """

    def __init__(self, markers: list[str]) -> None:
        self.markers = markers
        self.pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Add streamed text; return what can be shown now. Sets .stopped at a marker."""
        if self.stopped:
            return ""
        self.pending += text
        found = [i for i in (self.pending.find(m) for m in self.markers) if i >= 0]
        if found:
            out, self.pending, self.stopped = self.pending[: min(found)], "", True
            return out
        hold = 0
        for marker in self.markers:
            for k in range(min(len(marker) - 1, len(self.pending)), hold, -1):
                if self.pending.endswith(marker[:k]):
                    hold = k
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out):]
        return out

    def flush(self) -> str:
        """What is still held back, once the answer is over."""
        out, self.pending = self.pending, ""
        return out


# ---- the session ----


# command -> (setting of GenerationConfig, type, example). GenerationConfig checks the values.
SETTING_COMMANDS = {
    "/temperature": ("temperature", float, "/temperature 0.7"),
    "/top_k": ("top_k", int, "/top_k 40"),
    "/top_p": ("top_p", float, "/top_p 0.9"),
    "/max_tokens": ("max_new_tokens", int, "/max_tokens 100"),
}


@dataclass
class ProjectPaths:
    """Where /save may write: never over or among the project's own files.

    - Never inside the folders of its data, tokenizer, checkpoints and logs (wherever they
      are), its code (a folder below the project folder that holds a .py file) or a hidden
      folder (.git, .venv).
    - Elsewhere in the project folder (that of llm.config.js), only a .txt or .md file: a new
      one, or one that /save wrote (empty or starting with "User:"), which /save! replaces. (A
      new chat.py, GNUmakefile or pytest.ini would change what the project's commands run.)
    - Outside the project: any new file, and /save! replaces the file you name.
    """

    root: Path | None = None  # the project folder (None: no project, as in a test)
    folders: list[Path] = field(default_factory=list)

    @classmethod
    def of(cls, cfg: Config) -> ProjectPaths:
        root = Path(cfg.path).resolve().parent
        folders = [cfg.checkpoints.dir, cfg.logging.dir, cfg.data.raw_dir, cfg.data.processed_dir,
                   str(Path(cfg.tokenizer.path).parent)]
        return cls(root, [(root / folder).resolve() for folder in folders])  # (as config.py)

    def protects(self, path: Path) -> str | None:
        """Why /save must not write `path` (as "your project's ..."), or None."""
        target = path.resolve()  # a link is judged by where it leads
        for folder in self.folders:
            if target.is_relative_to(folder):
                return f"inside your project's {self._name(folder)}/ folder"
        if self.root is None or not target.is_relative_to(self.root):
            return None
        for part in list(target.relative_to(self.root).parents)[:-1]:  # (the last is '.')
            folder = self.root / part
            if folder.name.startswith(".") or any(folder.glob("*.py")):
                return f"inside your project's {self._name(folder)}/ folder"
        if target.exists():
            if not is_transcript(target):
                return f"your project's {self._name(target)}, not a transcript that /save wrote"
        elif target.suffix.lower() not in (".txt", ".md"):
            return ("a new file among your project's own (in the project folder, /save writes "
                    ".txt and .md files)")
        return None

    def _name(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if self.root and path.is_relative_to(self.root) \
            else str(path)


def is_transcript(path: Path) -> bool:
    """Whether `path` is a file that /save wrote: a regular file, empty or starting "User:"."""
    if not path.is_file():  # a folder, a FIFO, a device: never (opening a FIFO would hang)
        return False
    with open(path, "rb") as file:
        return file.read(len(USER)) in (b"", USER.encode())


class ChatSession:
    """The conversation, the sampling settings, and generating one streamed answer."""

    def __init__(self, model: torch.nn.Module, tokenizer: Tokenizer, eot: int,
                 settings: GenerationConfig, seed: int | None = None,
                 project_paths: ProjectPaths | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eot = eot
        self.settings = settings
        self.history: list[Turn] = []
        self.max_length: int = model.config.max_length
        self.markers = stop_markers(tokenizer)
        # One generator for the whole session: with --seed, a whole scripted session repeats.
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.dropped = 0  # how many of the oldest turns the model no longer sees
        # What /save must never write over or into: the project's own files.
        self.project_paths = project_paths or ProjectPaths()

    def prompt(self, user: str) -> list[int]:
        # Keep room for the answer: at most half the window, so the history is never squeezed
        # to nothing by a large /max_tokens (generate_tokens slides the window past the end).
        reserve = min(self.settings.max_new_tokens, self.max_length // 2)
        ids, first = build_prompt(self.history, user, self.tokenizer, self.eot,
                                  self.max_length - reserve)
        self.dropped = first
        return ids

    def tokens(self, ids: list[int]) -> Iterator[int]:
        """The answer's tokens, as the model writes them after `ids`."""
        return generate_tokens(self.model, ids, self.settings, stop_ids=(self.eot,),
                               generator=self.generator)

    def context_of_answer(self, ids: list[int]) -> list[int]:
        """The tokens the answer's text follows (decoders join pieces by their neighbours)."""
        return ids

    def reply(self, user: str, write: Callable[[str], None]) -> tuple[str, bool]:
        """Generate the answer to `user`, calling write() with each new piece of text.

        Returns (answer, interrupted). Ctrl+C stops the answer; what was written so far stays
        in the history, as it is in the transcript on screen.
        """
        ids = self.prompt(user)
        stream = TextStream(self.tokenizer, self.context_of_answer(ids))
        stop = StopAtMarkers(self.markers)
        pieces: list[str] = []
        started = False  # the model's first token usually starts with a space: do not show it

        def show(text: str) -> None:
            nonlocal started
            if not started:
                text = text.lstrip()
                started = bool(text)
            if text:
                pieces.append(text)
                write(text)

        interrupted = False
        tokens = self.tokens(ids)
        try:
            for token in tokens:
                show(stop.push(stream.push(token)))
                if stop.stopped:
                    break
            if not stop.stopped:
                show(stop.push(stream.flush()))
                if not stop.stopped:
                    show(stop.flush())
        except KeyboardInterrupt:
            interrupted = True
        finally:
            tokens.close()  # puts the model back in its previous mode
        answer = "".join(pieces).rstrip()
        self.history.append(Turn(user, answer))
        return answer, interrupted

    def reset(self) -> None:
        self.history.clear()
        self.dropped = 0

    def command(self, line: str) -> tuple[str, bool]:
        """Run a /command; return (message to show, whether to quit). Never raises for bad
        input: a mistake is a one-line message."""
        name, _, arg = line.strip().partition(" ")
        name, arg = name.lower(), arg.strip()
        if name in ("/quit", "/exit", "/q"):
            return "", True
        if name in ("/help", "/?"):
            return HELP, False
        if name == "/reset":
            self.reset()
            return "Conversation cleared.", False
        if name in ("/save", "/save!"):
            return self.save(arg, replace=name == "/save!"), False
        if name in SETTING_COMMANDS:
            return self.set(name, arg), False
        return f"Unknown command {name}; /help lists the commands.", False

    def set(self, name: str, arg: str) -> str:
        key, kind, example = SETTING_COMMANDS[name]
        if not arg:
            return f"{name[1:]} = {getattr(self.settings, key)}"
        try:
            value = kind(arg)
        except ValueError:
            kind_name = "a whole number" if kind is int else "a number"
            return f"{name} needs {kind_name}, got '{arg}' (e.g. {example})"
        try:
            self.settings = dataclasses.replace(self.settings, **{key: value})
        except ConfigurationError as error:
            return f"{error.message}; {error.suggestion}"
        return f"{name[1:]} = {value}"

    def save(self, arg: str, replace: bool = False) -> str:
        """/save FILE writes the transcript to a new file; /save! FILE may replace one. Never
        over or among the project's own files (ProjectPaths)."""
        if not arg:
            return "/save needs a file name, e.g. /save chat.txt"
        path = Path(arg).expanduser()
        try:
            problem = self.project_paths.protects(path)
            exists = path.exists()
            if exists and not path.is_file():
                problem = problem or "not a regular file"
        except (OSError, ValueError):  # e.g. a NUL byte in the name, a folder we cannot read
            return f"Not saved: {arg!r} is not a file name you can use"
        if problem:
            return f"Not saved: {path} is {problem}; choose another name, e.g. /save chat.txt"
        if exists and not replace:
            return (f"Not saved: {path} already exists. /save! {arg} replaces it; /save with "
                    "another name keeps it")
        try:
            # "x": a file that appeared meanwhile is never replaced by /save
            with open(path, "w" if replace else "x", encoding="utf-8") as file:
                file.write(transcript(self.history))
        except (OSError, ValueError) as error:  # ValueError: a name the file system refuses
            return f"Could not write {arg!r}: {getattr(error, 'strerror', None) or error}"
        turns = len(self.history)
        return f"Saved {turns} turn{'s' if turns != 1 else ''} to {path}"


class TextToTextSession(ChatSession):
    """t5: each message is the encoder's input and the answer is the decoder's output (text to
    text). The model sees the message alone, not the conversation: it was not trained on
    transcripts. /save still writes the whole conversation."""

    def __init__(self, model: torch.nn.Module, tokenizer: Tokenizer, cfg: Config,
                 seed: int | None = None, project_paths: ProjectPaths | None = None) -> None:
        from runtime.objectives import t5_special_ids

        self.ids = t5_special_ids(cfg, tokenizer)
        super().__init__(model, tokenizer, self.ids["eos"], cfg.generation, seed, project_paths)

    def prompt(self, user: str) -> list[int]:
        # The message and the end-of-text token, as in training; a message longer than the
        # encoder's context keeps its end.
        ids = encode(self.tokenizer, user)[-(self.max_length - 1):]
        return [*ids, self.eot]

    def tokens(self, ids: list[int]) -> Iterator[int]:
        from runtime.seq2seq import generate_seq2seq

        return generate_seq2seq(self.model, ids, self.settings, self.ids["start"], (self.eot,),
                                generator=self.generator)

    def context_of_answer(self, ids: list[int]) -> list[int]:
        return []  # the decoder starts a new text


class TunedSession(ChatSession):
    """A tuned model (make finetune): the conversation is rendered by the chat template it was
    tuned with, and the answer ends at the template's end-of-turn token. When the conversation
    outgrows the context, the oldest turns are left out of what the model sees."""

    def __init__(self, model: torch.nn.Module, chat: ChatFormat, settings: GenerationConfig,
                 seed: int | None = None, project_paths: ProjectPaths | None = None,
                 decoder_start: int | None = None) -> None:
        super().__init__(model, chat.tokenizer, chat.stop_ids[-1], settings, seed,
                         project_paths)
        self.chat = chat
        self.markers = []  # the template ends the turn, not a speaker's label
        self.decoder_start = decoder_start  # t5: the token its decoder starts from

    def prompt(self, user: str) -> list[int]:
        # gpt keeps room for the answer in its context; t5's encoder needs one more for </s>.
        budget = self.max_length - 1 if self.model.config.architecture == "t5" else \
            self.max_length - min(self.settings.max_new_tokens, self.max_length // 2)
        first = 0
        while True:
            messages = [message for turn in self.history[first:] for message in (
                {"role": "user", "content": turn.user},
                {"role": "assistant", "content": turn.model})]
            ids = self.chat.prompt([*messages, {"role": "user", "content": user}])
            if len(ids) <= budget or first == len(self.history):
                break  # it fits (or only the new message is left: its end is kept)
            first += 1
        self.dropped = first
        return ids[-budget:]

    def tokens(self, ids: list[int]) -> Iterator[int]:
        return answer_tokens(self.model, self.chat, ids, self.settings, self.generator,
                             self.decoder_start)

    def context_of_answer(self, ids: list[int]) -> list[int]:
        return ids if self.model.config.architecture != "t5" else []


# ---- the terminal ----


class Console:
    """Where text goes. In a terminal: prompts, colours, everything on stdout. Piped: answers
    on stdout, everything else on stderr, no colours, no prompt."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.color = interactive and not os.environ.get("NO_COLOR") and os.name != "nt"
        self.info_file = sys.stdout if interactive else sys.stderr
        self.readline = False
        if interactive:
            try:  # line editing and arrow-key history where Python has readline
                import readline  # noqa: F401

                self.readline = True
            except ImportError:
                pass

    def style(self, text: str, code: str, in_prompt: bool = False) -> str:
        if not self.color:
            return text
        start, end = f"\033[{code}m", "\033[0m"
        if in_prompt and self.readline:  # tell readline these bytes take no room on screen
            start, end = f"\001{start}\002", f"\001{end}\002"
        return f"{start}{text}{end}"

    def info(self, text: str) -> None:
        print(self.style(text, "2"), file=self.info_file, flush=True)

    def read(self) -> str | None:
        """The next message, or None for a line that is not UTF-8 text; EOFError at the end of
        input (Ctrl+D)."""
        if self.interactive:
            try:
                return input(self.style("You:", "1;32", in_prompt=True) + " ")
            except UnicodeDecodeError:
                return None
        line = sys.stdin.buffer.readline()  # bytes: a bad line is skipped, not fatal
        if not line:
            raise EOFError
        try:
            return line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            return None

    def start_answer(self) -> None:
        if self.interactive:
            print(self.style("Model:", "1;36") + " ", end="", flush=True)

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def end_answer(self, interrupted: bool) -> None:
        if interrupted:
            sys.stdout.write(self.style(" [stopped]", "2") if self.interactive else "")
        sys.stdout.write("\n")
        sys.stdout.flush()


def describe_model(model: torch.nn.Module, info: dict, device: torch.device) -> str:
    """One line: which model this is and how far it was trained."""
    preset = info["model_config"].get("preset", "custom")
    val = info.get("val_loss")
    val_text = f"val loss {val:.3f}" if val is not None else "val loss not measured yet"
    if info.get("stage") == "finetune":
        base = info.get("finetune", {})
        trained = (f"instruction-tuned {info['step']:,} steps on {base.get('data', '?')} from "
                   f"{base.get('base', '?')} (step {base.get('base_step', '?')})")
    else:
        trained = f"trained {info['step']:,} steps"
    return (f"Loaded {info['path']}: {model.config.architecture} '{preset}', "
            f"{model.num_parameters() / 1e6:.2f}M parameters, {trained}, "
            f"{val_text} ({device.type})")


TUNED_NOTE = ("This model was instruction-tuned (make finetune): ask it something. Tuned on the "
              "built-in set, it answers questions about a short story you paste in, and tells "
              "stories ('Tell me a story about a fox and a kite'). /help lists the commands.")
BASE_MODEL_NOTE = ("This is a base model: it continues text and is not instruction-tuned, so it "
                   "carries on the User:/Model: transcript rather than following instructions. "
                   "/help lists the commands.")
TEXT_TO_TEXT_NOTE = ("This is a T5 model: each message is its input and its answer is its output "
                     "(text to text); it does not see the earlier turns. Trained on span "
                     "corruption only, it answers with its guesses for the blanks of the input: "
                     "write <extra_id_0> where text is missing ('The cat <extra_id_0> the "
                     "mat.'). /help lists the commands.")


def run_chat(session: ChatSession, console: Console) -> None:
    """Read messages until /quit, Ctrl+D or (at the prompt) Ctrl+C."""
    told_dropped = False
    while True:
        try:
            line = console.read()
        except (EOFError, KeyboardInterrupt):
            if console.interactive:
                print()
            return
        if line is None or has_lone_surrogate(line):
            console.info("(Skipped a message that is not UTF-8 text: check the encoding of your "
                         "terminal or file.)")
            continue
        if not line.strip():
            continue
        if line.startswith("/"):
            message, quit_now = session.command(line)
            if message:
                console.info(message)
            if quit_now:
                return
            continue
        console.start_answer()
        answer, interrupted = "", False
        try:
            answer, interrupted = session.reply(line, console.write)
        except KeyboardInterrupt:  # a Ctrl+C that landed just outside the generation loop
            interrupted = True
        console.end_answer(interrupted)
        if not answer and not interrupted:
            console.info("(The model ended its answer at once: ask again, or raise /temperature.)")
        if session.dropped and not told_dropped:
            console.info(f"(The conversation is now longer than the {session.max_length}-token "
                         "context: the oldest turns are left out of what the model sees.)")
            told_dropped = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python chat.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="auto",
                        help="'auto' (best, else latest), 'best', 'latest' or a .pt file")
    add_sampling_options(parser, ("temperature", "top_k", "top_p", "max_new_tokens"),
                         names={"max_new_tokens": "--max-tokens"})
    parser.add_argument("--seed", type=int, help="make the answers reproducible")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)

    folder = model_folder(cfg.checkpoints.dir, args.checkpoint)  # the tuned one, if any
    if args.checkpoint in ("auto", "best", "latest") and not has_checkpoints(folder):
        raise TrainingError(
            f"there is no trained model to chat with yet (no checkpoint in {folder}/)",
            "train one first: `make data train` (the nano preset takes a few minutes on a CPU), "
            "then `make finetune` to teach it to answer, then `make chat`",
        )
    device = pick_device(cfg.training.device)
    if device.type == "cpu":
        set_threads(cfg.training.threads)
    model, info = load_trained_model(args.checkpoint, folder, device)
    if model.config.architecture == "bert":
        raise ConfigurationError(
            "a BERT model cannot chat: it is an encoder, which fills in [MASK] tokens and does "
            "not write text", "fill in masks with `make generate ARGS=\"--prompt 'The [MASK] "
            "sat on the mat.'\"`")
    tokenizer, _ = tokenizer_of(info["path"], info["tokenizer_hash"], cfg.tokenizer.path)
    if info["chat_template"]:  # tuned: the template it was tuned with, kept in its checkpoint
        chat = ChatFormat(tokenizer, info["chat_template"],
                          {"bos_token": cfg.tokenizer.special_tokens[0],
                           "eos_token": cfg.tokenizer.special_tokens[0]})
        start = tokenizer.token_to_id(pad_token(cfg.tokenizer)) \
            if model.config.architecture == "t5" else None
        session: ChatSession = TunedSession(model, chat, cfg.generation, args.seed,
                                            ProjectPaths.of(cfg), start)
        note = TUNED_NOTE
    elif model.config.architecture == "t5":
        session = TextToTextSession(model, tokenizer, cfg, args.seed, ProjectPaths.of(cfg))
        note = TEXT_TO_TEXT_NOTE
    else:
        session = ChatSession(model, tokenizer, eot_id(tokenizer, cfg.tokenizer),
                              cfg.generation, args.seed, ProjectPaths.of(cfg))
        note = BASE_MODEL_NOTE
    console = Console(interactive=sys.stdin.isatty() and sys.stdout.isatty())
    console.info(describe_model(model, info, device))
    console.info(note)
    try:
        run_chat(session, console)
    except BrokenPipeError:  # `python chat.py < prompts.txt | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    run_cli(main)
