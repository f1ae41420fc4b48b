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
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import json5

from errors import ConfigurationError

DEFAULT_CONFIG_PATH = "llm.config.js"


# ---- the sections of llm.config.js ----
# Each section is a dataclass whose __post_init__ holds every rule about its own values, so the
# file, a command-line override (`--training.max_steps 300`), a chat command (`/temperature 0.5`)
# and code (`dataclasses.replace(cfg.training, ...)`) are all checked in one place. _check_fields
# first checks every field's type (and that numbers are finite); rules that join two sections
# are in `validate` below.

# The architectures this template knows, each one file in models/architectures/: gpt
# (decoder-only, next token), bert (encoder-only, masked tokens), t5 (encoder-decoder, corrupted
# spans). A project keeps the file of its own architecture only (create-llm removes the others).
ARCHITECTURES = ("gpt", "bert", "t5")
ARCHITECTURE_FILES = Path(__file__).resolve().parent / "models" / "architectures"
# The special tokens BERT's objective and its Hugging Face export need, by these names; the
# first ends every document, as tokenizer.special_tokens[0] does for every architecture.
BERT_SPECIAL_TOKENS = ("[SEP]", "[CLS]", "[MASK]", "[PAD]", "[UNK]")
TOKENIZER_TYPES = ("bpe", "wordpiece", "unigram")
PARALLELISMS = ("auto", "none", "ddp", "fsdp")
OPTIMIZERS = ("adamw", "adafactor", "muon")
ROPE_SCALINGS = ("none", "llama3")  # gpt's model.rope_scaling (models/architectures/gpt.py)
# bert's two encoders (models/architectures/bert.py): ModernBERT's layer, or the original BERT's.
BERT_VARIANTS = ("modernbert", "bert")
# Sizes beyond these are typos, not models: refuse them before torch tries to allocate them.
MAX_LAYERS, MAX_HEADS, MAX_DIM = 1024, 1024, 65536
MIN_LENGTH, MAX_LENGTH = 8, 65536  # tokens; 8 so a window of max_length + 1 tokens is useful
MAX_VOCAB = 1 << 24
# llm.config.js is JavaScript, whose numbers hold whole numbers exactly only up to 2**53.
MAX_INT = 2**53


def _fail(section: str, key: str, problem: str, suggestion: str) -> NoReturn:
    """Raise the ConfigurationError for section.key (build_config adds the key's line)."""
    raise ConfigurationError(f"{section}.{key} {problem}", suggestion)


def _check_fields(obj: Any, section: str) -> None:
    """Every field has its declared type; numbers are finite and at most MAX_INT."""
    for f in dataclasses.fields(obj):
        value, tp = getattr(obj, f.name), _field_types(type(obj))[f.name]
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            setattr(obj, f.name, value)
        if not _has_type(value, tp):
            _fail(section, f.name, f"must be {_type_name(tp)}, got {_show(value)}",
                  f"write {section}.{f.name} as {_type_name(tp)}, e.g. {f.name}: "
                  f"{_example(tp)}")
        if tp is float and not math.isfinite(value):
            _fail(section, f.name, f"must be a finite number, got {value}",
                  f"write {section}.{f.name} as a plain number, e.g. {f.name}: {_example(tp)}")
        if tp in (int, float) and abs(value) > MAX_INT:
            _fail(section, f.name, f"is far too large ({_show(value)})",
                  f"use a {section}.{f.name} of a sensible size (see the comment next to it in "
                  "a freshly generated llm.config.js)")
        if tp is str and "\x00" in value or tp is str and has_lone_surrogate(value):
            _fail(section, f.name, "holds a character that is not valid text",
                  f"write {section}.{f.name} as plain UTF-8 text")


def available_architectures() -> tuple[str, ...]:
    """The architectures whose file this project has (create-llm keeps only the chosen one)."""
    return tuple(name for name in ARCHITECTURES if (ARCHITECTURE_FILES / f"{name}.py").is_file())


def has_lone_surrogate(text: str) -> bool:
    """Python's stand-in for bytes that were not valid UTF-8 (e.g. from a terminal or a command
    line in another encoding): such text cannot be tokenized or written as UTF-8."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _positive(obj: Any, section: str, *keys: str) -> None:
    for key in keys:
        if getattr(obj, key) <= 0:
            _fail(section, key, "must be > 0", f"set {section}.{key} to a positive number")


@dataclass
class ModelConfig:
    architecture: str = "gpt"
    """Which file in models/architectures/ builds the model: 'gpt' (decoder-only, Llama-style),
    'bert' (encoder-only, masked-LM) or 't5' (encoder-decoder, span corruption)."""
    preset: str = "custom"
    """The size preset these numbers came from (informational only)."""
    variant: str = "bert"
    """bert: which encoder. 'modernbert' (what new projects get): rotary positions, pre-norm,
    GeGLU, no biases; exports as ModernBertForMaskedLM. 'bert': the original BERT (learned
    positions, post-LN); exports as BertForMaskedLM. The default is 'bert' because a checkpoint
    saved before this key existed is one."""
    layers: int = 4
    """Number of transformer blocks (t5: in the encoder, and as many in the decoder)."""
    heads: int = 4
    """Attention (query) heads. dim / heads is the head size (gpt: it must be even, for RoPE)."""
    kv_heads: int = 4
    """gpt: key/value heads. Equal to heads: plain multi-head attention; fewer: grouped-query
    attention (each k/v head is shared by heads / kv_heads query heads: a smaller KV cache).
    bert and t5 always use plain multi-head attention (kv_heads = heads)."""
    dim: int = 128
    """Model width: the size of every token's vector in the residual stream."""
    mlp_dim: int = 352
    """Hidden width of the feed-forward block (gpt: SwiGLU, about 8/3 * dim; bert: modernbert's
    GeGLU about 8/3 * dim, the original's GELU 4 * dim; t5: gated GELU, about 2-8/3 * dim)."""
    max_length: int = 256
    """Context length in tokens: the longest sequence the model sees at once (t5: the encoder's
    input; its decoder writes up to generation.max_new_tokens)."""
    dropout: float = 0.0
    """Dropout on attention weights and on each residual branch, in training only. 0 trains
    fastest and is best for short runs."""
    rope_theta: float = 10000.0
    """gpt: base of the rotary position embedding frequencies (bert's modernbert uses the
    default, 10000, which its export writes down; not a key of its llm.config.js)."""
    norm_eps: float = 1e-5
    """Epsilon of every normalisation (gpt: RMSNorm 1e-5; bert: LayerNorm 1e-12; t5: its RMS
    LayerNorm 1e-6), written explicitly: torch's defaults differ from the Hugging Face models'."""
    tie_embeddings: bool = True
    """gpt: use the token embedding matrix as the output projection too (saves vocab_size * dim).
    bert and t5 always tie them (as their Hugging Face classes do)."""
    qkv_bias: bool = False
    """gpt: biases on the query, key and value projections (Qwen2 has them; Llama does not).
    Set by `make import` for a checkpoint that has them."""
    rope_scaling: str = "none"
    """gpt: 'none', or 'llama3': Llama 3.1/3.2's RoPE, whose slow frequencies are divided by
    rope_scaling_factor (set by `make import` from the checkpoint, with the three keys below)."""
    rope_scaling_factor: float = 8.0
    """gpt, rope_scaling 'llama3': how much the long wavelengths are stretched."""
    rope_low_freq_factor: float = 1.0
    """gpt, rope_scaling 'llama3': wavelengths above rope_original_max_length / this are
    stretched fully."""
    rope_high_freq_factor: float = 4.0
    """gpt, rope_scaling 'llama3': wavelengths below rope_original_max_length / this are kept;
    those in between are blended."""
    rope_original_max_length: int = 8192
    """gpt, rope_scaling 'llama3': the context the checkpoint was first trained with."""
    relative_attention_buckets: int = 32
    """t5: how many buckets of query-key distance get their own learned attention bias."""
    relative_attention_max_distance: int = 128
    """t5: distances from here on share the last bucket."""
    vocab_size: int = 0
    """Size of the tokenizer's vocabulary. Not in llm.config.js: filled in from the trained
    tokenizer. 0 means "not known yet"; the model refuses to be built with it."""

    def __post_init__(self) -> None:
        _check_fields(self, "model")
        fail = functools.partial(_fail, "model")
        if self.architecture not in ARCHITECTURES:
            fail("architecture", f"is '{self.architecture}', but the architectures are: "
                 f"{', '.join(ARCHITECTURES)}",
                 f"{_did_you_mean(self.architecture, list(ARCHITECTURES))}set architecture: "
                 f"'{(available_architectures() or ARCHITECTURES)[0]}'")
        if self.architecture != "gpt":
            # Plain multi-head attention and tied embeddings, always (see the fields above);
            # build_config refuses these keys in a bert or t5 llm.config.js.
            self.kv_heads, self.tie_embeddings = self.heads, True
        limits = {"layers": MAX_LAYERS, "heads": MAX_HEADS, "kv_heads": MAX_HEADS, "dim": MAX_DIM,
                  "mlp_dim": 4 * MAX_DIM, "max_length": MAX_LENGTH, "vocab_size": MAX_VOCAB,
                  "relative_attention_buckets": 1024,
                  "relative_attention_max_distance": MAX_LENGTH}
        for key, limit in limits.items():
            value = getattr(self, key)
            if value <= 0 and key != "vocab_size":
                fail(key, f"must be > 0, got {value}", f"set model.{key} to a positive number "
                     "(`make summary` shows sizes that work)")
            if value > limit:
                fail(key, f"({value}) is beyond what this model supports ({limit:,})",
                     f"use a model.{key} of at most {limit:,} (`make summary` shows sizes that "
                     "work)")
        if self.vocab_size < 0:
            fail("vocab_size", f"must be >= 0, got {self.vocab_size}",
                 "leave it at 0: it is filled in from the trained tokenizer")
        if self.max_length < MIN_LENGTH:
            fail("max_length", f"({self.max_length}) must be at least {MIN_LENGTH} tokens",
                 "use a context of 256-2048 tokens")
        if self.dim % self.heads:
            fail("dim", f"({self.dim}) must be divisible by model.heads ({self.heads})",
                 f"use heads = {max(1, self.dim // 64)} (a head size of 64) or another divisor "
                 "of dim")
        if self.architecture == "gpt" and self.head_dim % 2:
            fail("heads", f"({self.heads}) gives an odd head size {self.head_dim} (dim / heads);"
                 " rotary position embeddings need an even one",
                 "choose heads so that dim / heads is even, e.g. a head size of 32 or 64")
        if self.heads % self.kv_heads:
            fail("kv_heads", f"({self.kv_heads}) must divide model.heads ({self.heads})",
                 f"set kv_heads to {self.heads} (plain attention) or another divisor of heads")
        if not 0.0 <= self.dropout < 1.0:  # also false for NaN
            fail("dropout", f"must be in [0, 1), got {self.dropout}",
                 "use 0.0 for short runs, up to 0.2 for long runs on little data")
        if not self.rope_theta > 1:
            fail("rope_theta", f"must be a number > 1, got {self.rope_theta}",
                 "use rope_theta: 10000.0 (Llama 3 uses 500000.0 for long contexts)")
        if not 0 < self.norm_eps <= 0.1:  # a huge eps flattens every activation to ~0
            fail("norm_eps", f"must be in (0, 0.1], got {self.norm_eps}",
                 "use norm_eps: 1e-5 (gpt, modernbert), 1e-12 (bert) or 1e-6 (t5)")
        if self.rope_scaling not in ROPE_SCALINGS:
            fail("rope_scaling", f"is '{self.rope_scaling}'",
                 "use 'none' (or 'llama3', which `make import` sets for Llama 3.1/3.2)")
        if not 0 < self.rope_low_freq_factor < self.rope_high_freq_factor or \
                not self.rope_scaling_factor >= 1 or self.rope_original_max_length <= 0:
            fail("rope_scaling_factor", "and the other rope_* factors must satisfy factor >= 1, "
                 "0 < low_freq_factor < high_freq_factor and original_max_length > 0",
                 "use Llama 3's: 8.0 (3.2: 32.0), 1.0, 4.0 and 8192")
        if self.variant not in BERT_VARIANTS:
            fail("variant", f"is '{self.variant}'",
                 f"{_did_you_mean(self.variant, list(BERT_VARIANTS))}use 'modernbert' or 'bert'")
        if self.relative_attention_buckets < 4 or self.relative_attention_buckets % 2:
            fail("relative_attention_buckets", f"must be an even number >= 4, got "
                 f"{self.relative_attention_buckets}", "use 32 (T5's own value)")
        if self.relative_attention_max_distance <= self.relative_attention_buckets // 2:
            fail("relative_attention_max_distance", f"({self.relative_attention_max_distance}) "
                 f"must be more than half of relative_attention_buckets "
                 f"({self.relative_attention_buckets})", "use 128 (T5's own value)")

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.dim // self.heads


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
    sentinel_tokens: int = 0
    """t5: how many sentinel tokens <extra_id_0>, <extra_id_1>, ... follow the special tokens.
    Span corruption replaces each hidden span of text with one of them (T5 has 100)."""

    def __post_init__(self) -> None:
        _check_fields(self, "tokenizer")
        if self.type not in TOKENIZER_TYPES:
            _fail("tokenizer", "type", f"is '{self.type}'",
                  f"{_did_you_mean(self.type, list(TOKENIZER_TYPES))}use 'bpe', 'wordpiece' or "
                  "'unigram'")
        if not self.special_tokens:
            _fail("tokenizer", "special_tokens", "must hold at least the end-of-text token",
                  "use ['<|endoftext|>', '<|pad|>', '<|unk|>']")
        if not 0 <= self.sentinel_tokens <= 1000:
            _fail("tokenizer", "sentinel_tokens", f"must be between 0 and 1000, got "
                  f"{self.sentinel_tokens}", "use 100 (T5's own number)")
        # Byte-level BPE starts from its 256 byte symbols plus the special tokens.
        minimum = 256 + len(self.all_special_tokens) if self.type == "bpe" else \
            64 + self.sentinel_tokens
        if not minimum <= self.vocab_size <= MAX_VOCAB:
            _fail("tokenizer", "vocab_size", f"({self.vocab_size}) must be between {minimum} and "
                  f"{MAX_VOCAB:,}", "use 2048-8192 for small models, 32000 or more for large ones")
        _positive(self, "tokenizer", "min_frequency")

    @property
    def all_special_tokens(self) -> list[str]:
        """special_tokens, then the sentinels: every token the tokenizer must keep whole."""
        return [*self.special_tokens, *sentinel_names(self.sentinel_tokens)]


def sentinel_names(count: int) -> list[str]:
    """T5's sentinel tokens: <extra_id_0>, <extra_id_1>, ..."""
    return [f"<extra_id_{i}>" for i in range(count)]


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
    """Evaluation window stride in tokens (at most model.max_length)."""
    sample_size_mb: float = 5.0
    """Size of the built-in corpus used when raw_dir is empty."""
    seed: int = 1337
    """Seed for the built-in corpus and the train/val split."""

    def __post_init__(self) -> None:
        _check_fields(self, "data")
        if not 0 < self.val_split < 1 and not self.val_path:
            _fail("data", "val_split", "must be between 0 and 1", "use 0.05 (5% of documents)")
        if not 0 < self.sample_size_mb <= 100_000:
            _fail("data", "sample_size_mb", f"must be in (0, 100000], got {self.sample_size_mb}",
                  "use 5 (MB of built-in stories), or put your own text in data/raw")
        _positive(self, "data", "stride")


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
    optimizer: str = "adamw"
    """'adamw' (gpt's and bert's), 'adafactor' (t5's own: steps relative to each weight's size)
    or 'muon' (Muon for the hidden matrices, AdamW for the rest; see training/optimizer.py)."""
    weight_decay: float = 0.1
    """Weight decay on matrices (norms and nothing else are exempt)."""
    beta1: float = 0.9
    """AdamW's momentum (Adafactor has none)."""
    beta2: float = 0.95
    """AdamW's second-moment decay (Adafactor sets its own)."""
    muon_momentum: float = 0.95
    """optimizer 'muon': the momentum of its matrices' gradients (AdamW's part uses beta1)."""
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
    """CPU threads for torch; 0 = one per physical core (shared by the processes of a run)."""
    parallelism: str = "auto"
    """With several processes (`make train NPROC=N`): 'ddp' (a copy of the model on each device),
    'fsdp' (the model sharded over the devices) or 'auto' (ddp while a copy fits a device, else
    fsdp); 'none' is one process. See training/parallelize.py."""

    def __post_init__(self) -> None:
        _check_fields(self, "training")
        _positive(self, "training", "batch_size", "gradient_accumulation", "max_steps",
                  "learning_rate", "eval_interval", "eval_batches", "log_interval")
        for key, limit in (("max_steps", 10**9), ("batch_size", 1 << 20),
                           ("gradient_accumulation", 1 << 20), ("threads", 4096)):
            if getattr(self, key) > limit:
                _fail("training", key, f"({getattr(self, key)}) is more than {limit:,}",
                      f"use a training.{key} of at most {limit:,}")
        if not 0 <= self.min_lr <= self.learning_rate:
            _fail("training", "min_lr", f"({self.min_lr}) must be between 0 and learning_rate "
                  f"({self.learning_rate})",
                  f"use about learning_rate / 10 = {self.learning_rate / 10:g}")
        if not 0 <= self.warmup_steps <= self.max_steps:
            _fail("training", "warmup_steps", f"({self.warmup_steps}) must be between 0 and "
                  f"training.max_steps ({self.max_steps})",
                  f"use about 5% of max_steps, e.g. {max(1, self.max_steps // 20)}")
        for key in ("weight_decay", "grad_clip", "threads"):
            if getattr(self, key) < 0:
                _fail("training", key, "must be >= 0", f"set training.{key} to 0 or more")
        for key in ("beta1", "beta2", "muon_momentum"):
            if not 0 <= getattr(self, key) < 1:
                _fail("training", key, "must be in [0, 1)",
                      "use beta1 0.9, beta2 0.95 and muon_momentum 0.95")
        if self.device not in ("auto", "cuda", "mps", "cpu") and not re.fullmatch(
                r"cuda:\d+", self.device):
            _fail("training", "device", f"is '{self.device}'",
                  "use 'auto', 'cuda', 'cuda:1', 'mps' or 'cpu'")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            _fail("training", "precision", f"is '{self.precision}'",
                  "use 'auto', 'bf16', 'fp16' or 'fp32'")
        if self.optimizer not in OPTIMIZERS:
            _fail("training", "optimizer", f"is '{self.optimizer}'",
                  f"{_did_you_mean(self.optimizer, list(OPTIMIZERS))}use 'adamw', 'adafactor' "
                  "or 'muon'")
        if self.parallelism not in PARALLELISMS:
            _fail("training", "parallelism", f"is '{self.parallelism}'",
                  f"{_did_you_mean(self.parallelism, list(PARALLELISMS))}use 'auto', 'none', "
                  "'ddp' or 'fsdp'")


@dataclass
class ObjectiveConfig:
    """What bert and t5 learn from their text (gpt learns the next token: nothing to set)."""

    mask_probability: float = 0.15
    """bert: the share of tokens hidden in each sequence; of those, 80% become [MASK], 10% a
    random token and 10% stay as they are (BERT's rule), and the model predicts them all."""
    noise_density: float = 0.15
    """t5: the share of tokens removed from the encoder's input, in spans, each span replaced by
    one sentinel token; the decoder writes the removed spans back."""
    mean_span_length: float = 3.0
    """t5: the average length of a removed span, in tokens."""
    short_sequence_length: int = 0
    """bert, t5: a sequence-length warm-up. For the first short_sequence_steps optimizer steps
    the sequences are this many tokens long (bert: [CLS] included; t5: the encoder's input),
    with as many more of them as keep the tokens of a step the same; then model.max_length.
    0 (or a length not below model.max_length) = no warm-up."""
    short_sequence_steps: int = 0
    """bert, t5: how many optimizer steps the short sequences last."""

    def __post_init__(self) -> None:
        _check_fields(self, "objective")
        if not 0 < self.mask_probability <= 0.5:
            _fail("objective", "mask_probability", f"must be in (0, 0.5], got "
                  f"{self.mask_probability}", "use 0.15 (BERT's own value)")
        if not 0 < self.noise_density <= 0.5:
            _fail("objective", "noise_density", f"must be in (0, 0.5], got {self.noise_density}",
                  "use 0.15 (T5's own value)")
        if not 1 <= self.mean_span_length <= 64:
            _fail("objective", "mean_span_length", f"must be between 1 and 64, got "
                  f"{self.mean_span_length}", "use 3.0 (T5's own value)")
        if self.short_sequence_length != 0 and self.short_sequence_length < MIN_LENGTH:
            _fail("objective", "short_sequence_length", f"must be 0 (off) or at least "
                  f"{MIN_LENGTH}, got {self.short_sequence_length}",
                  "use 16 (bert) or 32 (t5), or 0 for no warm-up")
        if self.short_sequence_steps < 0:
            _fail("objective", "short_sequence_steps", f"must be >= 0, got "
                  f"{self.short_sequence_steps}", "use 0 for no warm-up")


@dataclass
class FinetuneConfig:
    """`make finetune`: instruction tuning of the trained model on conversations
    (training/finetune.py). The other training settings (device, precision, optimizer, threads,
    logging) are training's."""

    data_dir: str = "data/finetune"
    """Folder of .jsonl conversations; empty (or missing) = the built-in instruction set."""
    base: str = "auto"
    """The checkpoint to tune: 'auto' (checkpoints.dir's best, else latest) or a .pt path."""
    max_steps: int = 1000
    """Optimizer steps (unless epochs is set)."""
    epochs: float = 0.0
    """Passes over the training conversations instead of max_steps (0 = use max_steps)."""
    batch_size: int = 16
    """Conversations per micro-batch (each padded to the batch's longest)."""
    gradient_accumulation: int = 1
    """Micro-batches per optimizer step."""
    learning_rate: float = 1e-3
    """Peak learning rate, after warmup."""
    min_lr: float = 1e-4
    """Learning rate at the end of the cosine decay."""
    warmup_steps: int = 20
    """Steps of linear warmup from 0."""
    weight_decay: float = 0.0
    """Weight decay on matrices."""
    max_length: int = 0
    """Longest conversation in tokens (0 = model.max_length); longer ones are cut, and counted."""
    val_split: float = 0.05
    """Share of the conversations held out for validation (the built-in set holds out stories
    of its own)."""
    length_warmup: float = 0.6
    """Share of the steps over which the batches grow from the shortest conversations to all
    of them (0 = all from the start): a small model learns to find answers near them first
    (data/finetune.py)."""
    eval_interval: int = 50
    """Evaluate every N steps (loss on the assistant's tokens, answer accuracy)."""
    eval_batches: int = 10
    """Validation batches per evaluation."""
    builtin_conversations: int = 20000
    """Training conversations of the built-in set (with 500 held out)."""
    seed: int = 1337
    """Seed of the built-in set, the split and the batch order."""
    lora_rank: int = 0
    """0 = tune every weight; N > 0 = train rank-N LoRA adapters on the attention and MLP
    projections only, the rest frozen (training/lora.py)."""
    lora_alpha: float = 16.0
    """LoRA's scale: the adapters' update is multiplied by lora_alpha / lora_rank."""

    def __post_init__(self) -> None:
        _check_fields(self, "finetune")
        _positive(self, "finetune", "max_steps", "batch_size", "gradient_accumulation",
                  "learning_rate", "eval_interval", "eval_batches", "builtin_conversations")
        for key in ("epochs", "max_length", "lora_rank", "weight_decay", "lora_alpha"):
            if getattr(self, key) < 0:
                _fail("finetune", key, "must be >= 0", f"set finetune.{key} to 0 or more")
        if not 0 <= self.length_warmup <= 1:
            _fail("finetune", "length_warmup", f"must be between 0 and 1, got "
                  f"{self.length_warmup}", "use 0.6 (the first 60% of the steps), or 0 (off)")
        if not 0 < self.val_split < 1:
            _fail("finetune", "val_split", f"must be between 0 and 1, got {self.val_split}",
                  "use 0.05 (5% of the conversations)")
        if not 0 <= self.min_lr <= self.learning_rate:
            _fail("finetune", "min_lr", f"({self.min_lr}) must be between 0 and learning_rate "
                  f"({self.learning_rate})", f"use about {self.learning_rate / 10:g}")
        if self.builtin_conversations > 10_000_000 or self.epochs > 10_000:
            _fail("finetune", "builtin_conversations" if self.epochs <= 10_000 else "epochs",
                  "is far too large", "use the default from a freshly generated llm.config.js")


@dataclass
class CheckpointConfig:
    dir: str = "checkpoints"
    save_interval: int = 500
    """Save every N steps (and always at the end)."""
    save_total_limit: int = 3
    """Keep the newest N step checkpoints; best.pt is always kept."""
    keep_best: bool = True
    """Keep best.pt, chosen by validation loss."""

    def __post_init__(self) -> None:
        _check_fields(self, "checkpoints")
        _positive(self, "checkpoints", "save_interval", "save_total_limit")


# Ports that Chrome and Firefox refuse to open (ERR_UNSAFE_PORT): other protocols' ports, where a
# web page must not send HTTP. The dashboard never listens on them.
BROWSER_UNSAFE_PORTS = frozenset({1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000,
                                  6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080})


@dataclass
class LoggingConfig:
    dir: str = "logs"
    tensorboard: bool = True
    """Also write TensorBoard event files to <dir>/tensorboard (`make tensorboard` shows them)."""
    progress_bar: bool = True
    """A progress bar on a terminal; plain lines otherwise."""
    sample_tokens: int = 48
    """A sample of the model's work on generation.prompt at each evaluation, for the logs and the
    dashboard: gpt writes this many tokens after it, t5 fills its spans writing at most this
    many, bert fills its [MASK]s (any number > 0). 0 = no samples."""
    dashboard: bool = False
    """Serve the live dashboard while training (`make dashboard` serves it any time)."""
    dashboard_host: str = "127.0.0.1"
    """Where the dashboard listens: 127.0.0.1 is this computer only; '0.0.0.0' is every network
    you are on (anyone there can watch the run)."""
    dashboard_port: int = 5050
    """The dashboard's port; when it is busy, the next free one."""

    def __post_init__(self) -> None:
        _check_fields(self, "logging")
        if self.sample_tokens < 0:
            _fail("logging", "sample_tokens", f"is {self.sample_tokens}", "use 0 (off) or more")
        if not 1024 <= self.dashboard_port <= 65535:
            _fail("logging", "dashboard_port", f"is {self.dashboard_port}",
                  "use a port between 1024 and 65535, e.g. 5050")
        if self.dashboard_port in BROWSER_UNSAFE_PORTS:
            _fail("logging", "dashboard_port", f"is {self.dashboard_port}, a port browsers refuse "
                  "to open", "use another port, e.g. 5050")
        if not self.dashboard_host.strip():
            _fail("logging", "dashboard_host", "is empty", "use '127.0.0.1'")


# The training plugins this template ships (each is plugins/<name>.py; the wrapper's --plugins
# picks which files a project gets). synthex is a plugin too, but it makes data before training
# (`make synthex`), so it is never in plugins.enabled.
KNOWN_PLUGINS = ("wandb", "huggingface")


@dataclass
class PluginsConfig:
    enabled: list[str] = field(default_factory=list)
    """The plugins that run with training, e.g. ['wandb', 'huggingface']. One that fails to load
    or raises warns once and training goes on."""

    def __post_init__(self) -> None:
        _check_fields(self, "plugins")
        for name in self.enabled:
            if name == "synthex":
                _fail("plugins", "enabled", "names 'synthex', which makes data before training "
                      "rather than running with it", "remove it from plugins.enabled and run "
                      "`make synthex` (then `make data`) to make synthetic documents")
            if name not in KNOWN_PLUGINS:
                _fail("plugins", "enabled", f"names an unknown plugin '{name}'",
                      f"{_did_you_mean(name, list(KNOWN_PLUGINS))}the plugins are: "
                      f"{', '.join(KNOWN_PLUGINS)}")


WANDB_MODES = ("auto", "online", "offline")


@dataclass
class WandbConfig:
    """The wandb plugin: metrics, config and samples to Weights & Biases."""

    project: str = "create-llm"
    """The W&B project the runs go to."""
    mode: str = "auto"
    """'auto' (online when WANDB_API_KEY is set or you ran `wandb login`, else offline), 'online'
    or 'offline' (runs stay in <logging.dir>/wandb; `wandb sync` uploads them later)."""

    def __post_init__(self) -> None:
        _check_fields(self, "wandb")
        if self.mode not in WANDB_MODES:
            _fail("wandb", "mode", f"is '{self.mode}'", "use 'auto', 'online' or 'offline'")
        if not self.project.strip():
            _fail("wandb", "project", "is empty", "name a W&B project, e.g. 'create-llm'")


@dataclass
class HuggingFaceConfig:
    """The huggingface plugin: export and push to deployment.repo_id when training ends."""

    push_on_best: bool = False
    """Also push each new best checkpoint (at most one push per evaluation)."""

    def __post_init__(self) -> None:
        _check_fields(self, "huggingface")


@dataclass
class SynthexConfig:
    """The synthex plugin (`make synthex`): synthetic documents from an OpenAI-compatible
    chat-completions API into data/raw/synthetic/."""

    base_url: str = "http://127.0.0.1:8080/v1"
    """The API's base URL: 'https://api.openai.com/v1', a llama.cpp or vLLM server's /v1, ..."""
    model: str = ""
    """The model name the API expects."""
    api_key_env: str = "SYNTHEX_API_KEY"
    """The environment variable that holds the API key (the key is never in this file)."""
    prompts: str = "data/synthex_prompts.txt"
    """One prompt per line; each document is one answer."""
    output_dir: str = "data/raw/synthetic"
    """Where the documents go (inside data.raw_dir, so `make data` uses them)."""
    documents: int = 100
    """How many documents to have in output_dir when done."""
    max_tokens: int = 512
    """The longest answer, in tokens."""
    temperature: float = 1.0
    """Sampling temperature of the API (higher = more varied documents)."""
    price_per_million_tokens: float = 0.0
    """Your API's price, to print a cost estimate (0 = not shown)."""
    timeout: float = 60.0
    """Seconds to wait for one answer."""

    def __post_init__(self) -> None:
        _check_fields(self, "synthex")
        if not re.match(r"https?://[^/\s]+", self.base_url):
            _fail("synthex", "base_url", f"is '{self.base_url}', not an http(s) URL",
                  "use e.g. 'http://127.0.0.1:8080/v1' (llama.cpp) or 'https://api.openai.com/v1'")
        if not self.api_key_env or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            _fail("synthex", "api_key_env", f"is '{self.api_key_env}', not the name of an "
                  "environment variable", "use e.g. 'SYNTHEX_API_KEY' (the key itself never goes "
                  "in llm.config.js)")
        _positive(self, "synthex", "documents", "max_tokens", "timeout")
        if not 0 <= self.temperature <= 2:
            _fail("synthex", "temperature", f"must be between 0 and 2, got {self.temperature}",
                  "use 1.0 for varied documents")
        if self.price_per_million_tokens < 0:
            _fail("synthex", "price_per_million_tokens", "must be >= 0",
                  "use 0 (not shown) or your API's price per million tokens")


@dataclass
class GenerationConfig:
    """How `make generate`, `make chat` and evaluation samples pick tokens."""

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

    def __post_init__(self) -> None:
        _check_fields(self, "generation")
        if not 1 <= self.max_new_tokens <= 1_000_000:
            _fail("generation", "max_new_tokens", f"must be between 1 and 1,000,000, got "
                  f"{self.max_new_tokens}", "use e.g. 200")
        # Dividing the scores by a temperature near 0 overflows: 0 itself means greedy.
        if not (self.temperature == 0 or 0.01 <= self.temperature <= 100):
            _fail("generation", "temperature", f"must be 0 or between 0.01 and 100, got "
                  f"{self.temperature}", "use 0 (greedy) to about 1.0 (creative)")
        if self.top_k < 0:
            _fail("generation", "top_k", f"must be >= 0, got {self.top_k}",
                  "use 0 (off) or e.g. 50")
        # Below ~1e-6 the nucleus is always the single likeliest token: say so instead.
        if not 1e-6 <= self.top_p <= 1:
            _fail("generation", "top_p", f"must be in [0.000001, 1], got {self.top_p}",
                  "use 1.0 (off) or e.g. 0.95 (or temperature 0 for the likeliest token)")
        if not 0.01 <= self.repetition_penalty <= 100:
            _fail("generation", "repetition_penalty", f"must be between 0.01 and 100, got "
                  f"{self.repetition_penalty}", "use 1.0 (off) or a little more, e.g. 1.1")


# Hugging Face repo ids: "owner/name", letters, digits, '-', '_', '.'; no '--' or '..'; at most
# 96 characters (the Hub's own rule, checked here so a typo fails before any upload).
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Replicate model names: "owner/name" in lowercase letters, digits, '-', '_' and '.'.
REPLICATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*$")
EXPORT_DTYPES = ("fp32", "bf16", "fp16")
GGUF_TYPES = ("f32", "f16", "q8_0")


@dataclass
class DeploymentConfig:
    """`make export` (Hugging Face folder, GGUF) and `make deploy` (the Hub, Replicate)."""

    checkpoint: str = "auto"
    """Which checkpoint to export: 'auto' (best, else latest), 'best', 'latest' or a .pt path."""
    export_dir: str = "export"
    """Where exports go: <export_dir>/hf/ (Hugging Face) and <export_dir>/gguf/ (llama.cpp)."""
    dtype: str = "fp32"
    """Weights of the Hugging Face export: 'fp32' (exact), 'bf16' or 'fp16' (half the size)."""
    gguf_type: str = "f16"
    """Weights of the GGUF file: 'f32', 'f16' or 'q8_0' (8-bit, a quarter of f32)."""
    repo_id: str = ""
    """The Hugging Face Hub repository to upload to, 'your-name/model-name'."""
    private: bool = True
    """Create the Hub repository as private (only you see it until you make it public)."""
    replicate_model: str = ""
    """The Replicate model to push to, 'your-name/model-name'."""
    license: str = "other"
    """License id for the model card (Hub ids: 'mit', 'apache-2.0', 'bsd-3-clause', 'other')."""
    language: str = "en"
    """Language of the training text, for the model card (an ISO 639-1 code such as 'en')."""

    def __post_init__(self) -> None:
        _check_fields(self, "deployment")
        fail = functools.partial(_fail, "deployment")
        if self.dtype not in EXPORT_DTYPES:
            fail("dtype", f"is '{self.dtype}'", f"{_did_you_mean(self.dtype, list(EXPORT_DTYPES))}"
                 "use 'fp32', 'bf16' or 'fp16'")
        if self.gguf_type not in GGUF_TYPES:
            fail("gguf_type", f"is '{self.gguf_type}'",
                 f"{_did_you_mean(self.gguf_type, list(GGUF_TYPES))}use 'f32', 'f16' or 'q8_0'")
        if self.repo_id and not valid_repo_id(self.repo_id):
            fail("repo_id", f"('{self.repo_id}') is not a Hugging Face repository id",
                 "write it as 'your-name/model-name' (letters, digits, '-', '_', '.'; at most "
                 "96 characters)")
        if self.replicate_model and not REPLICATE_NAME.fullmatch(self.replicate_model):
            fail("replicate_model", f"('{self.replicate_model}') is not a Replicate model name",
                 "write it as 'your-name/model-name' in lowercase letters, digits and '-'")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", self.license):
            fail("license", f"('{self.license}') is not a license id",
                 "use a Hub license id such as 'mit', 'apache-2.0' or 'other'")
        if not re.fullmatch(r"[a-z]{2,3}", self.language):
            fail("language", f"('{self.language}') is not a language code",
                 "use an ISO 639-1 code such as 'en', 'fr' or 'de'")
        for key in ("checkpoint", "export_dir"):
            if not getattr(self, key).strip():
                fail(key, "is empty", f"see the comment next to deployment.{key} in llm.config.js")


def valid_repo_id(repo_id: str) -> bool:
    """Whether `repo_id` is a well-formed Hub repository id ('owner/name')."""
    return (bool(REPO_ID.fullmatch(repo_id)) and len(repo_id) <= 96
            and ".." not in repo_id and "--" not in repo_id
            and not repo_id.endswith((".", "-")) and "-/" not in repo_id and "./" not in repo_id)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    huggingface: HuggingFaceConfig = field(default_factory=HuggingFaceConfig)
    synthex: SynthexConfig = field(default_factory=SynthexConfig)
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
    "objective": ObjectiveConfig,
    "finetune": FinetuneConfig,
    "checkpoints": CheckpointConfig,
    "logging": LoggingConfig,
    "generation": GenerationConfig,
    "deployment": DeploymentConfig,
    "plugins": PluginsConfig,
    "wandb": WandbConfig,
    "huggingface": HuggingFaceConfig,
    "synthex": SynthexConfig,
}
# Sections without sensible defaults: the file must have them.
REQUIRED_SECTIONS = ("model", "tokenizer", "data", "training")
# Keys set by code, never by the file.
INTERNAL_KEYS = {("model", "vocab_size")}
# Keys only some architectures have. A bert or t5 llm.config.js has no such key (and refuses one):
# a knob that changes nothing must not look as if it did.
ONLY_FOR = {
    ("model", "kv_heads"): ("gpt",),
    ("model", "rope_theta"): ("gpt",),
    ("model", "tie_embeddings"): ("gpt",),
    ("model", "qkv_bias"): ("gpt",),
    ("model", "rope_scaling"): ("gpt",),
    ("model", "rope_scaling_factor"): ("gpt",),
    ("model", "rope_low_freq_factor"): ("gpt",),
    ("model", "rope_high_freq_factor"): ("gpt",),
    ("model", "rope_original_max_length"): ("gpt",),
    ("model", "variant"): ("bert",),
    ("model", "relative_attention_buckets"): ("t5",),
    ("model", "relative_attention_max_distance"): ("t5",),
    ("tokenizer", "sentinel_tokens"): ("t5",),
    ("objective", "mask_probability"): ("bert",),
    ("objective", "noise_density"): ("t5",),
    ("objective", "mean_span_length"): ("t5",),
    ("objective", "short_sequence_length"): ("bert", "t5"),
    ("objective", "short_sequence_steps"): ("bert", "t5"),
    # bert fills in masks in one pass (generation.top_k: how many candidates to show); it does
    # not sample tokens one after another.
    ("generation", "max_new_tokens"): ("gpt", "t5"),
    ("generation", "temperature"): ("gpt", "t5"),
    ("generation", "top_p"): ("gpt", "t5"),
    ("generation", "repetition_penalty"): ("gpt", "t5"),
    ("data", "stride"): ("gpt",),  # bert and t5 are scored on windows that do not overlap
    ("deployment", "gguf_type"): ("gpt",),  # llama.cpp files: gpt only (see exporters/gguf.py)
    # An encoder writes no answers: bert has no instruction tuning.
    **{("finetune", f.name): ("gpt", "t5") for f in dataclasses.fields(FinetuneConfig)},
    # LoRA adapters wrap gpt's projections (models/lora.py).
    ("finetune", "lora_rank"): ("gpt",),
    ("finetune", "lora_alpha"): ("gpt",),
}


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


def _has_type(value: Any, tp: Any) -> bool:
    """Whether a value parsed from JSON5 (or given in code) fits a field type. An int fits a
    float field; a bool (a subclass of int in Python) fits only a bool field."""
    if tp is bool:
        return isinstance(value, bool)
    if tp in (int, float) and isinstance(value, bool):
        return False
    if tp is float:
        return isinstance(value, (int, float))
    if tp in (int, str):
        return isinstance(value, tp)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)  # list[str]


def _show(value: Any) -> str:
    """A value as the user wrote it, kept short (a 400-digit number is not worth repeating)."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    text = text.removeprefix("\ufeff")  # a BOM (some Windows editors write one): not content
    body = _strip_module_exports(text, path)
    duplicates: list[str] = []
    try:
        data = json5.loads(body, object_pairs_hook=lambda pairs: _refuse_duplicates(
            pairs, duplicates))
    except RecursionError:
        raise ConfigurationError(
            f"{path} nests objects or lists far too deeply to be a config (llm.config.js has "
            "sections of plain values)",
            "restore it from git (`git checkout llm.config.js`) or regenerate the project",
        ) from None
    except ValueError as error:
        if duplicates:  # (json5 reports the hook's error as its own ValueError)
            lines = _lines_of_duplicate(text, duplicates[0])
            where = f" (lines {lines[0]} and {lines[1]})" if len(lines) >= 2 else ""
            raise ConfigurationError(
                f"{path} sets `{duplicates[0]}` twice in one object{where}: the second would "
                "silently replace the first", f"keep one `{duplicates[0]}` and move what you "
                "want from the other into it") from None
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


def _refuse_duplicates(pairs: list[tuple[str, Any]], duplicates: list[str]) -> dict[str, Any]:
    """json5's object hook: a key written twice in one object is a mistake (a second `model:`
    section would silently replace the first), never a way to set it: noted in `duplicates`."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            duplicates.append(key)
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


def _lines_of_duplicate(text: str, key: str) -> list[int]:
    """The lines (1-based) of `key:` written twice in one object, as far as a scan of the lines
    can tell (keys on lines of their own, as llm.config.js has them); [] if it cannot."""
    pattern = re.compile(rf"^\s*['\"]?{re.escape(key)}['\"]?\s*:")
    opened: list[int] = [0]  # the line of each open { or [ (0: outside any)
    found: dict[int, list[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        code = re.sub(r"//.*", "", re.sub(r"\"(\\.|[^\"\\])*\"|'(\\.|[^'\\])*'", "''", line))
        if pattern.match(line):
            found.setdefault(opened[-1], []).append(number)
        for char in code:
            if char in "{[":
                opened.append(number)
            elif char in "}]" and len(opened) > 1:
                opened.pop()
    return next((lines for lines in found.values() if len(lines) > 1), [])


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
                 overridden: Collection[str] = (), own_project: bool = True) -> Config:
    """Turn the parsed dict into typed dataclasses, checking keys, types and values.

    `overridden`: the "section.key" names set on the command line (errors name the flag then).
    `own_project`: the config is this project's, so its architecture must be one this project
    has the code of (compare.py reads other projects' configs with False).
    """
    sections: dict[str, Any] = {}
    model = data.get("model")
    architecture = model.get("architecture", "gpt") if isinstance(model, dict) else "gpt"
    for name in data:
        if name not in SECTIONS:
            raise ConfigurationError(
                f"unknown section `{name}`{_where(text, path, name)}",
                f"{_did_you_mean(name, list(SECTIONS))}the sections are: {', '.join(SECTIONS)}",
            )
    available = available_architectures()
    if own_project and architecture in ARCHITECTURES and architecture not in available:
        # Before the sections: a gpt config in a bert project would fail on gpt's keys first.
        raise ConfigurationError(
            f"model.architecture is '{architecture}', but this project has the code of "
            f"{' and '.join(available) or 'no architecture'} only (models/architectures/)"
            f"{_where(text, path, 'model', 'architecture', overridden)}",
            f"set architecture: '{available[0]}', or make a {architecture} project: "
            f"`create-llm my-{architecture} --model {architecture}`" if available else
            "restore models/architectures/ from git, or make a new project with create-llm")
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
        allowed = [k for k in types if (name, k) not in INTERNAL_KEYS
                   and architecture in ONLY_FOR.get((name, k), (architecture,))]
        for key in values:
            only = ONLY_FOR.get((name, key), ())
            if only and architecture not in only and architecture in ARCHITECTURES:
                raise ConfigurationError(
                    f"`{name}.{key}` is a setting of {' and '.join(only)} models, and this one "
                    f"is {architecture}{_where(text, path, name, key, overridden)}",
                    (f"leave out that option: a {architecture} model has no such setting"
                     if f"{name}.{key}" in overridden else
                     f"delete it: a {architecture} model has no such setting (a freshly "
                     f"generated {architecture} llm.config.js shows the ones it has)"))
            if key not in allowed:
                hint = (
                    "the vocabulary size is set by `tokenizer.vocab_size`; "
                    if (name, key) in INTERNAL_KEYS
                    else _did_you_mean(key, allowed)
                )
                raise ConfigurationError(
                    f"unknown key `{name}.{key}`{_where(text, path, name, key, overridden)}",
                    f"{hint}the keys of `{name}` are: {', '.join(allowed)}",
                )
        try:
            sections[name] = cls(**values)  # its __post_init__ checks every value
        except ConfigurationError as error:
            named = re.search(rf"\b{name}\.(\w+)", error.message)  # the key it complains of
            key = named.group(1) if named else None
            raise ConfigurationError(error.message + _where(text, path, name, key, overridden),
                                     error.suggestion) from None
    config = Config(**sections, path=path)
    validate(config, text, path, overridden)
    return config


def validate(cfg: Config, text: str = "", path: str = DEFAULT_CONFIG_PATH,
             overridden: Collection[str] = ()) -> None:
    """Rules that join two sections (each section checks its own values in __post_init__)."""
    architecture = cfg.model.architecture
    special = cfg.tokenizer.special_tokens
    if architecture == "bert" and (special[0] != "[SEP]" or
                                   not set(BERT_SPECIAL_TOKENS) <= set(special)):
        missing = [t for t in BERT_SPECIAL_TOKENS if t not in special]
        raise ConfigurationError(
            "tokenizer.special_tokens of a bert model must hold " +
            ", ".join(BERT_SPECIAL_TOKENS) + ", with [SEP] first (it ends every document)" +
            (f"; {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
             if missing else "") + _where(text, path, "tokenizer", "special_tokens", overridden),
            "set tokenizer.special_tokens: ['" + "', '".join(BERT_SPECIAL_TOKENS) + "'], then "
            "`make tokenizer data`")
    if architecture == "t5":
        if not any("pad" in token for token in special):
            raise ConfigurationError(
                "tokenizer.special_tokens of a t5 model must hold a padding token (its decoder "
                f"starts from it){_where(text, path, 'tokenizer', 'special_tokens', overridden)}",
                "set tokenizer.special_tokens: ['</s>', '<pad>', '<unk>'], then "
                "`make tokenizer data`")
        if cfg.tokenizer.sentinel_tokens < 1:
            raise ConfigurationError(
                "tokenizer.sentinel_tokens is 0, and a t5 model needs sentinel tokens (span "
                "corruption replaces each hidden span with one)"
                f"{_where(text, path, 'tokenizer', 'sentinel_tokens', overridden)}",
                "set tokenizer.sentinel_tokens: 100, then `make tokenizer data`")
    _check_run_folders(cfg, text, path, overridden)
    if cfg.finetune.max_length > cfg.model.max_length:
        raise ConfigurationError(
            f"finetune.max_length ({cfg.finetune.max_length}) is longer than the model's context "
            f"(model.max_length {cfg.model.max_length})"
            f"{_where(text, path, 'finetune', 'max_length', overridden)}",
            "use 0 (the model's context) or less")
    if architecture == "gpt" and cfg.data.stride > cfg.model.max_length:
        raise ConfigurationError(
            f"data.stride ({cfg.data.stride}) must be between 1 and model.max_length "
            f"({cfg.model.max_length}){_where(text, path, 'data', 'stride', overridden)}",
            f"use {cfg.model.max_length} (non-overlapping windows)",
        )


def _check_run_folders(cfg: Config, text: str, path: str, overridden: Collection[str]) -> None:
    """A run writes, and moves aside, files in checkpoints.dir and logging.dir
    (runtime/checkpoint_folder.py), and make export writes deployment.export_dir: each must be a
    folder of its own, never the project folder (or one above it), and never overlap the folders
    of the project's text, data and tokenizer, so that nothing can write into, or move, what you
    made (an export's README.md in data/raw would be trained on)."""
    project = Path(cfg.path).resolve().parent
    inputs = {"data.raw_dir": cfg.data.raw_dir, "data.processed_dir": cfg.data.processed_dir,
              "the tokenizer's folder (tokenizer.path)": str(Path(cfg.tokenizer.path).parent)}
    if cfg.data.val_path:
        inputs["data.val_path"] = cfg.data.val_path
    for section, key, value in (("checkpoints", "dir", cfg.checkpoints.dir),
                                ("logging", "dir", cfg.logging.dir),
                                ("deployment", "export_dir", cfg.deployment.export_dir)):
        folder = (project / value).resolve()  # relative paths are the project folder's
        where = _where(text, path, section, key, overridden)
        default = getattr(SECTIONS[section](), key)
        if not value.strip() or project.is_relative_to(folder):
            raise ConfigurationError(
                f"{section}.{key} is {value!r}{where}: that is the project folder"
                f"{'' if folder == project else ' or a folder above it'}, and a run moves "
                "earlier runs' files aside there", f"use a folder of its own, e.g. {section}."
                f"{key}: '{default}' (the default)")
        for name, other in inputs.items():
            other_path = (project / other).resolve()
            if folder == other_path or folder.is_relative_to(other_path) or \
                    other_path.is_relative_to(folder):
                raise ConfigurationError(
                    f"{section}.{key} ({value!r}){where} overlaps {name} ({other!r}): a "
                    "training run would write its files among yours",
                    f"use a folder of its own, e.g. {section}.{key}: '{default}' (the default)")


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
        except (ValueError, RecursionError):  # not a list literal: a comma-separated one
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
                overrides: dict[str, str] | None = None, own_project: bool = True) -> Config:
    """Read llm.config.js, apply command-line overrides, and return the typed config
    (`own_project=False`: another project's, see build_config)."""
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
    return build_config(data, text, path, overridden=set(overrides or {}),
                        own_project=own_project)


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
