"""Read llm.config.js into typed dataclasses, without ever executing JavaScript.

The file is `module.exports = { ... };` holding one object literal of plain values. We strip
`module.exports =` and the final `;` and parse the rest as JSON5 (comments, single quotes and
trailing commas allowed). Code in the file is not run: `require(...)`, an expression or a variable
is a syntax error here, reported with its line and column.

Every entry point accepts typed overrides of any key for one run:

    python -m training.train --training.max_steps 300 --model.dropout 0.1
    make train ARGS="--training.max_steps 300"

Unknown keys, wrong types and impossible values raise ConfigurationError naming the key, its line
in llm.config.js and a fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import json5

from errors import ConfigurationError
from models.config import ModelConfig

DEFAULT_CONFIG_PATH = "llm.config.js"


# ---- the sections of llm.config.js (model: see models/config.py) ----


@dataclass
class TokenizerConfig:
    type: str = "bpe"
    """'bpe' (byte-level, lossless), 'wordpiece' or 'unigram'."""
    vocab_size: int = 4096
    """Target vocabulary size; the trained tokenizer's real size is what the model uses."""
    min_frequency: int = 2
    """A merge or piece must occur at least this often."""
    special_tokens: list[str] = field(
        default_factory=lambda: ["<|endoftext|>", "<|pad|>", "<|unk|>"]
    )
    """Special tokens; the first one is appended to the end of every document."""
    path: str = "tokenizer/tokenizer.json"
    """Where the trained tokenizer is written."""


@dataclass
class DataConfig:
    raw_dir: str = "data/raw"
    """Folder of .txt / .md / .jsonl files; empty means the built-in story corpus."""
    processed_dir: str = "data/processed"
    """Where train.bin, val.bin and meta.json are written."""
    val_split: float = 0.05
    """Fraction of documents held out for validation."""
    val_path: str = ""
    """A separate validation file or folder ('' = split from raw_dir)."""
    stride: int = 256
    """Evaluation window stride in tokens."""
    sample_size_mb: float = 5.0
    """Size of the built-in corpus used when raw_dir is empty."""
    seed: int = 1337
    """Seed for the built-in corpus and the train/val split."""


@dataclass
class TrainingConfig:
    batch_size: int = 16
    """Sequences per micro-batch."""
    gradient_accumulation: int = 1
    """Micro-batches per optimizer step."""
    max_steps: int = 1000
    """Optimizer steps."""
    learning_rate: float = 1e-3
    """Peak learning rate, reached after warmup."""
    min_lr: float = 1e-4
    """Learning rate at the end of the cosine decay."""
    warmup_steps: int = 100
    """Steps of linear warmup from 0."""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices (norms and nothing else are exempt)."""
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    eval_interval: int = 250
    """Evaluate every N steps."""
    eval_batches: int = 20
    """Validation batches per evaluation."""
    log_interval: int = 10
    """Log every N steps (the loss is read from the device only then)."""
    seed: int = 1337
    """Seed for initialisation and batch order."""
    device: str = "auto"
    """'auto' (cuda -> mps -> cpu), 'cuda', 'mps' or 'cpu'."""
    precision: str = "auto"
    """'auto', 'bf16', 'fp16' or 'fp32'."""
    compile: bool = False
    """torch.compile the model."""
    gradient_checkpointing: bool = False
    """Recompute activations during backward to save memory."""
    threads: int = 0
    """CPU threads for torch; 0 = one per physical core."""


@dataclass
class CheckpointConfig:
    dir: str = "checkpoints"
    save_interval: int = 500
    """Save every N steps (and always at the end)."""
    save_total_limit: int = 3
    """Keep the newest N step checkpoints; best.pt is always kept."""
    keep_best: bool = True
    """Keep best.pt, chosen by validation loss."""


@dataclass
class LoggingConfig:
    dir: str = "logs"
    tensorboard: bool = False
    """Also write TensorBoard event files (needs the tensorboard package)."""
    progress_bar: bool = True
    """A progress bar on a terminal; plain lines otherwise."""


@dataclass
class GenerationConfig:
    prompt: str = "Once upon a time"
    max_new_tokens: int = 200
    temperature: float = 0.8
    """0 = greedy."""
    top_k: int = 50
    """0 = off."""
    top_p: float = 0.95
    """1 = off."""
    repetition_penalty: float = 1.1
    """1 = off."""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    path: str = DEFAULT_CONFIG_PATH
    """The file this config was read from (not a key of the file)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only, so the config can travel inside a checkpoint."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "tokenizer": TokenizerConfig,
    "data": DataConfig,
    "training": TrainingConfig,
    "checkpoints": CheckpointConfig,
    "logging": LoggingConfig,
    "generation": GenerationConfig,
}
# Sections without sensible defaults: the file must have them.
REQUIRED_SECTIONS = ("model", "tokenizer", "data", "training")
# Keys set by code, never by the file.
INTERNAL_KEYS = {("model", "vocab_size")}


# ---- reading the file ----


def _strip_module_exports(text: str, path: str) -> str:
    """Return the object literal, with line numbers kept (the prefix becomes blank lines)."""
    match = re.search(r"^\s*module\.exports\s*=\s*", text, flags=re.MULTILINE)
    if match is None:
        raise ConfigurationError(
            f"{path} does not contain `module.exports = {{ ... }}`",
            "start the config with `module.exports = {` and end it with `};` "
            "(see the comment at the top of a freshly generated llm.config.js)",
        )
    head = text[: match.end()]
    _refuse_code_before(text[: match.start()], path)
    body = re.sub(r"[^\n]", " ", head) + text[match.end() :]
    # Drop a final `;` (and any comments after it).
    body = re.sub(r";\s*(//[^\n]*\s*)*\Z", "\n", body.rstrip() + "\n")
    return body


def _refuse_code_before(head: str, path: str) -> None:
    """Only comments may come before `module.exports =`: anything else would be code that a
    reader of the file expects to run (a `const`, a `require(...)`), and we never run code."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group())  # noqa: E731 (keeps line numbers)
    uncommented = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", blank, head, flags=re.DOTALL))
    for number, line in enumerate(uncommented.splitlines(), start=1):
        if line.strip():
            code = head.splitlines()[number - 1].strip()
            raise ConfigurationError(
                f"line {number} of {path} is code before `module.exports =`: `{code[:80]}`",
                "llm.config.js holds plain values only and is never executed: delete that line "
                "(comments are fine) and write values directly in the object",
            )


def _line_of(text: str, section: str, key: str | None = None) -> int | None:
    """Line number (1-based) of `section:` or of `key:` inside that section, if found."""
    lines = text.splitlines()
    key_re = lambda name: re.compile(rf"^\s*['\"]?{re.escape(name)}['\"]?\s*:")  # noqa: E731
    start = next((i for i, line in enumerate(lines) if key_re(section).match(line)), None)
    if start is None or key is None:
        return None if start is None else start + 1
    depth = 0
    for i in range(start, len(lines)):
        if i > start and depth == 1 and key_re(key).match(lines[i]):
            return i + 1
        depth += lines[i].count("{") - lines[i].count("}")
        if i > start and depth <= 0:
            break
    return None


def _where(text: str, path: str, section: str, key: str | None = None,
           overridden: Collection[str] = ()) -> str:
    """Where the user set a value: its line in the file, or the command-line override."""
    if key is not None and f"{section}.{key}" in overridden:
        return f" (set by --{section}.{key})"
    line = _line_of(text, section, key)
    return f" (line {line} of {path})" if line else f" (in {path})"


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""


def _type_name(tp: Any) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, "a list of strings"
    )


def _coerce(value: Any, tp: Any, name: str, where: str) -> Any:
    """Check a parsed JSON5 value against a dataclass field type."""
    ok = False
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:  # list[str]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        raise ConfigurationError(
            f"{name} must be {_type_name(tp)}, got {json.dumps(value)}{where}",
            f"write {name} as {_type_name(tp)}, e.g. {name.split('.')[-1]}: "
            f"{_example(tp)}",
        )
    return value


def _example(tp: Any) -> str:
    return {int: "8", float: "0.001", bool: "true", str: "'text'"}.get(tp, "['a', 'b']")


def _field_types(cls: type) -> dict[str, Any]:
    hints = {"int": int, "float": float, "bool": bool, "str": str, "list[str]": list}
    return {f.name: hints.get(str(f.type), f.type) for f in dataclasses.fields(cls)}


def parse_config_text(text: str, path: str = DEFAULT_CONFIG_PATH) -> dict[str, Any]:
    """Parse the text of llm.config.js into a plain dict (no validation)."""
    if not text.strip():
        raise ConfigurationError(
            f"{path} is empty",
            "restore it from git (`git checkout llm.config.js`) or regenerate the project",
        )
    body = _strip_module_exports(text, path)
    try:
        data = json5.loads(body)
    except ValueError as error:
        raise ConfigurationError(
            f"{path} is not a plain object literal: {_syntax_error_detail(str(error), text)}",
            "llm.config.js may hold plain values only (numbers, 'strings', true/false, lists, "
            "objects) — no expressions, variables, require() or undefined; check that line",
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{path} must export an object `{{ ... }}`, got {type(data).__name__}",
            "write `module.exports = { model: {...}, training: {...}, ... };`",
        )
    return data


def _syntax_error_detail(error: str, text: str) -> str:
    """json5's '<string>:5 Unexpected "2" at column 17' -> 'line 5, column 17: unexpected "2"
    in `layers: 2 2,`' (the line as the user wrote it)."""
    match = re.match(r"<string>:(\d+) (.*) at column (\d+)", error)
    if match is None:
        return error
    line, what, column = int(match.group(1)), match.group(2), match.group(3)
    lines = text.splitlines()
    source = f" in `{lines[line - 1].strip()[:80]}`" if 0 < line <= len(lines) else ""
    return f"line {line}, column {column}: {what[:1].lower() + what[1:]}{source}"


def build_config(data: dict[str, Any], text: str = "", path: str = DEFAULT_CONFIG_PATH,
                 overridden: Collection[str] = ()) -> Config:
    """Turn the parsed dict into typed dataclasses, checking keys, types and values.

    `overridden`: the "section.key" names set on the command line (errors name the flag then).
    """
    sections: dict[str, Any] = {}
    for name in data:
        if name not in SECTIONS:
            raise ConfigurationError(
                f"unknown section `{name}`{_where(text, path, name)}",
                f"{_did_you_mean(name, list(SECTIONS))}the sections are: {', '.join(SECTIONS)}",
            )
    for name in REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigurationError(
                f"section `{name}` is missing from {path}",
                f"add a `{name}: {{ ... }}` section (a freshly generated llm.config.js has one)",
            )
    for name, cls in SECTIONS.items():
        values = data.get(name, {})
        if not isinstance(values, dict):
            raise ConfigurationError(
                f"section `{name}` must be an object {{ ... }}{_where(text, path, name)}",
                f"write it as `{name}: {{ key: value, ... }}`",
            )
        types = _field_types(cls)
        allowed = [k for k in types if (name, k) not in INTERNAL_KEYS]
        kwargs = {}
        for key, value in values.items():
            where = _where(text, path, name, key, overridden)
            if key not in allowed:
                hint = (
                    "the vocabulary size is set by `tokenizer.vocab_size`; "
                    if (name, key) in INTERNAL_KEYS
                    else _did_you_mean(key, allowed)
                )
                raise ConfigurationError(
                    f"unknown key `{name}.{key}`{where}",
                    f"{hint}the keys of `{name}` are: {', '.join(allowed)}",
                )
            kwargs[key] = _coerce(value, types[key], f"{name}.{key}", where)
        try:
            sections[name] = cls(**kwargs)
        except ConfigurationError as error:  # a dataclass's own check (e.g. ModelConfig)
            named = re.search(rf"\b{name}\.(\w+)", error.message)  # the key it complains of
            key = named.group(1) if named else None
            raise ConfigurationError(error.message + _where(text, path, name, key, overridden),
                                     error.suggestion) from None
    config = Config(**sections, path=path)
    validate(config, text, path, overridden)
    return config


def validate(cfg: Config, text: str = "", path: str = DEFAULT_CONFIG_PATH,
             overridden: Collection[str] = ()) -> None:
    """Impossible values and combinations, each with the key's line and a fix."""

    def fail(section: str, key: str, message: str, suggestion: str) -> None:
        raise ConfigurationError(
            f"{section}.{key} {message}{_where(text, path, section, key, overridden)}",
            suggestion,
        )

    def positive(section: str, *keys: str) -> None:
        for key in keys:
            if getattr(getattr(cfg, section), key) <= 0:
                fail(section, key, "must be > 0", f"set {section}.{key} to a positive number")

    m, tok, d, t = cfg.model, cfg.tokenizer, cfg.data, cfg.training
    if m.architecture != "gpt":
        fail("model", "architecture", f"is '{m.architecture}', but only 'gpt' is available",
             "set architecture: 'gpt' (BERT and T5 are planned, not yet built)")
    positive("model", "layers", "heads", "kv_heads", "dim", "mlp_dim", "max_length")
    if m.dim % m.heads:
        fail("model", "dim", f"({m.dim}) must be divisible by model.heads ({m.heads})",
             f"use dim {m.heads * max(2, round(m.dim / m.heads / 2) * 2)} or change heads")
    if (m.dim // m.heads) % 2:
        fail("model", "heads", f"give an odd head size {m.dim // m.heads} (dim / heads); "
             "rotary position embeddings need an even one",
             "choose heads so that dim / heads is even, e.g. a head size of 32 or 64")
    if m.heads % m.kv_heads:
        fail("model", "kv_heads", f"({m.kv_heads}) must divide model.heads ({m.heads})",
             f"set kv_heads to {m.heads} (plain attention) or another divisor of heads")
    if m.max_length > 32768:
        fail("model", "max_length", f"({m.max_length}) is beyond what this model supports "
             "(32768)", "use a context of 32768 tokens or fewer (256-2048 is typical)")
    if not 0 <= m.dropout < 1:
        fail("model", "dropout", "must be in [0, 1)", "use 0.0 (short runs) to 0.2")
    positive("model", "rope_theta", "norm_eps")

    if tok.type not in ("bpe", "wordpiece", "unigram"):
        fail("tokenizer", "type", f"is '{tok.type}'",
             f"{_did_you_mean(tok.type, ['bpe', 'wordpiece', 'unigram'])}"
             "use 'bpe', 'wordpiece' or 'unigram'")
    if not tok.special_tokens:
        fail("tokenizer", "special_tokens", "must hold at least the end-of-text token",
             "use ['<|endoftext|>', '<|pad|>', '<|unk|>']")
    minimum = 256 + len(tok.special_tokens) if tok.type == "bpe" else 64
    if not minimum <= tok.vocab_size <= 2**31:
        fail("tokenizer", "vocab_size", f"({tok.vocab_size}) must be at least {minimum}",
             "use 2048-8192 for small models, 32000 or more for large ones")
    positive("tokenizer", "min_frequency")

    if not 0 < d.val_split < 1 and not d.val_path:
        fail("data", "val_split", "must be between 0 and 1", "use 0.05 (5% of documents)")
    if not 1 <= d.stride <= m.max_length:
        fail("data", "stride", f"({d.stride}) must be between 1 and model.max_length "
             f"({m.max_length})", f"use {m.max_length} (non-overlapping windows)")
    positive("data", "sample_size_mb")

    positive("training", "batch_size", "gradient_accumulation", "max_steps", "learning_rate",
             "eval_interval", "eval_batches", "log_interval")
    if not 0 <= t.min_lr <= t.learning_rate:
        fail("training", "min_lr", f"({t.min_lr}) must be between 0 and learning_rate "
             f"({t.learning_rate})", f"use about learning_rate / 10 = {t.learning_rate / 10:g}")
    if not 0 <= t.warmup_steps <= t.max_steps:
        fail("training", "warmup_steps", f"({t.warmup_steps}) must be between 0 and "
             f"training.max_steps ({t.max_steps})",
             f"use about 5% of max_steps, e.g. {max(1, t.max_steps // 20)}")
    for key in ("weight_decay", "grad_clip", "threads"):
        if getattr(t, key) < 0:
            fail("training", key, "must be >= 0", f"set training.{key} to 0 or more")
    for key in ("beta1", "beta2"):
        if not 0 <= getattr(t, key) < 1:
            fail("training", key, "must be in [0, 1)", "use beta1 0.9 and beta2 0.95")
    if t.device not in ("auto", "cuda", "mps", "cpu") and not t.device.startswith("cuda:"):
        fail("training", "device", f"is '{t.device}'", "use 'auto', 'cuda', 'mps' or 'cpu'")
    if t.precision not in ("auto", "bf16", "fp16", "fp32"):
        fail("training", "precision", f"is '{t.precision}'",
             "use 'auto', 'bf16', 'fp16' or 'fp32'")

    positive("checkpoints", "save_interval", "save_total_limit")
    g = cfg.generation
    positive("generation", "max_new_tokens", "repetition_penalty")
    if g.temperature < 0:
        fail("generation", "temperature", "must be >= 0", "use 0 (greedy) to 1.0")
    if g.top_k < 0:
        fail("generation", "top_k", "must be >= 0", "use 0 (off) or e.g. 50")
    if not 0 < g.top_p <= 1:
        fail("generation", "top_p", "must be in (0, 1]", "use 1.0 (off) or e.g. 0.95")


# ---- command-line overrides ----


def _parse_override(raw: str, tp: Any, name: str) -> Any:
    if tp is bool:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
    elif tp is int:
        try:
            return int(raw)
        except ValueError:
            pass
    elif tp is float:
        try:
            return float(raw)
        except ValueError:
            pass
    elif tp is str:
        return raw
    else:
        try:
            value = json5.loads(raw)
            if isinstance(value, list):
                return value
        except ValueError:
            pass
        return [part.strip() for part in raw.split(",") if part.strip()]
    raise ConfigurationError(
        f"--{name} must be {_type_name(tp)}, got '{raw}'",
        f"e.g. --{name} {_example(tp).strip(chr(39))}",
    )


def apply_overrides(data: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Apply `{"training.max_steps": "300"}`-style overrides (strings) to the parsed dict."""
    for name, raw in overrides.items():
        section, _, key = name.partition(".")
        if section not in SECTIONS or key not in _field_types(SECTIONS[section]):
            raise ConfigurationError(
                f"unknown option --{name}",
                f"{_did_you_mean(name, _all_keys())}run with --help to list the options",
            )
        if (section, key) in INTERNAL_KEYS:
            raise ConfigurationError(f"--{name} cannot be set", "set --tokenizer.vocab_size")
        value = _parse_override(raw, _field_types(SECTIONS[section])[key], name)
        data.setdefault(section, {})[key] = value
    return data


def _all_keys() -> list[str]:
    return [f"{s}.{k}" for s, cls in SECTIONS.items() for k in _field_types(cls)
            if (s, k) not in INTERNAL_KEYS]


def load_config(path: str | Path = DEFAULT_CONFIG_PATH,
                overrides: dict[str, str] | None = None) -> Config:
    """Read llm.config.js, apply command-line overrides, and return the typed config."""
    path = str(path)
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(
            f"config file {path} not found (looked in {Path.cwd()})",
            "run commands from the project folder (where llm.config.js is), "
            "or pass --config PATH",
        )
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text",
                                 "save llm.config.js as UTF-8") from None
    data = parse_config_text(text, path)
    data = apply_overrides(data, overrides or {})
    return build_config(data, text, path, overridden=set(overrides or {}))


def raise_argument_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """A mistyped or unknown option is a user mistake like any other: `Error:` / `Suggestion:`
    (through errors.run_cli), not argparse's usage dump and exit 2."""
    options = [option for action in parser._actions for option in action.option_strings]
    unknown = re.findall(r"--?[\w.-]+", message.partition(":")[2]) if "unrecognized" in message \
        else []
    hint = next((_did_you_mean(u, options) for u in unknown if _did_you_mean(u, options)), "")
    raise ConfigurationError(message, f"{hint}run `{parser.prog} --help` to list the options")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--config` and one typed `--section.key` override per config key.

    Also makes the parser's own errors (unknown option, missing value) ConfigurationErrors.
    """
    parser.error = functools.partial(raise_argument_error, parser)  # type: ignore[method-assign]
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH,
                        help="path of the config file (default: llm.config.js)")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks (or set CREATE_LLM_DEBUG=1)")
    group = parser.add_argument_group(
        "config overrides", "any key of llm.config.js, for this run only"
    )
    for section, cls in SECTIONS.items():
        for key, tp in _field_types(cls).items():
            if (section, key) in INTERNAL_KEYS:
                continue
            metavar = {int: "INT", float: "FLOAT", bool: "BOOL", str: "STR"}.get(tp, "LIST")
            group.add_argument(f"--{section}.{key}", dest=f"override:{section}.{key}",
                               metavar=metavar, default=None)
    # The usage line would list all ~60 overrides; show the entry point's own options instead.
    # (Call this after adding the entry point's own arguments.)
    formatter = parser._get_formatter()
    own = [a for a in parser._actions if not a.dest.startswith("override:")]
    formatter.add_usage(None, own, [], prefix="")
    parser.usage = formatter.format_help().strip() + " [--section.key VALUE ...]"


def config_from_args(args: argparse.Namespace) -> Config:
    """Load the config named by `--config` with the `--section.key` overrides applied."""
    overrides = {
        dest.removeprefix("override:"): value
        for dest, value in vars(args).items()
        if dest.startswith("override:") and value is not None
    }
    return load_config(args.config, overrides)
