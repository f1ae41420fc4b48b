"""Check the answers before cookiecutter writes the project (runs as a script, stdlib only).

Cookiecutter renders this file with Jinja and runs it with its own interpreter, so it may import
the standard library only — never the create-llm wrapper — and `cookiecutter gh:...` works without
create-llm installed. The answers arrive as JSON *data* (the `tojson` filter escapes quotes), never
pasted into Python source, so no answer can change what this script does.

On a bad answer it prints one line, `Error: ...`, to stderr and exits 1; cookiecutter then removes
the project directory it had just created. When the create-llm wrapper runs it, the wrapper sets
CREATE_LLM_ERROR_FILE and this script writes {"message", "suggestion"} there instead, so the
wrapper can print its own two-line `Error:` / `Suggestion:` message.
"""

import json
import os
import re
import sys

# Every answer, plus the private `_presets` table, as data.
CONTEXT = json.loads(r'''{{ cookiecutter | tojson }}''')

# A folder name that is also a valid Python-package-ish name: lowercase ASCII letter first, then
# letters, digits, '-' or '_'. This refuses '', '.', '..', '/', '\', quotes, spaces and unicode.
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
MAX_SLUG_LENGTH = 64

# The generated project's config.py holds the same limits (ModelConfig, TokenizerConfig); a test
# checks on a table of answers that this hook accepts exactly what that code accepts.
MIN_CONTEXT, MAX_CONTEXT = 8, 65536  # tokens; 8 so a window of max_length + 1 tokens is useful
# Byte-level BPE starts from 256 byte symbols plus the special tokens (gpt 5 with the two chat
# tokens, bert 5, t5 5 and 100 sentinels); wordpiece and unigram from 64 plus the sentinels. Fewer
# cannot be trained.
SPECIAL_TOKENS = {"gpt": 5, "bert": 5, "t5": 5 + 100}
SENTINELS = {"gpt": 0, "bert": 0, "t5": 100}
MIN_VOCAB_BYTES, MIN_VOCAB_OTHER, MAX_VOCAB = 256, 64, 1 << 24
MAX_LAYERS, MAX_HEADS, MAX_DIM = 1024, 1024, 65536

CHOICES = {  # keys whose value must be one of the choices in cookiecutter.json
    "preset": ("nano", "tiny", "small", "base", "custom"),
    "model": ("gpt", "bert", "t5"),
    "tokenizer": ("auto", "bpe", "wordpiece", "unigram"),
}


# The plugins a project can have: cookiecutter.json's `_plugins` (plugins/<name>.py in the
# project; hooks/post_gen_project.py removes the files of those not chosen). They are answered as
# one comma-separated text: "wandb,synthex".
PLUGINS = tuple(CONTEXT["_plugins"])


class AnswerError(Exception):
    """A bad answer: what is wrong, and how to fix it."""

    def __init__(self, message: str, suggestion: str) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


def check_slug(slug: object) -> None:
    """The project folder name: safe as a directory and readable as a package name."""
    if not isinstance(slug, str) or not slug:
        raise AnswerError("the project folder name is empty.", "Use a name like my-llm.")
    if len(slug) > MAX_SLUG_LENGTH:
        raise AnswerError(
            f"the project folder name is {len(slug)} characters long (at most "
            f"{MAX_SLUG_LENGTH}).",
            "Use a shorter name like my-llm.",
        )
    if not SLUG_PATTERN.fullmatch(slug):
        raise AnswerError(
            f"{slug!r} cannot be the project folder name: use lowercase letters, digits, "
            "'-' or '_', starting with a letter.",
            "Use a name like my-llm (to create it elsewhere, choose the output directory).",
        )


def check_text(key: str, value: object, required: bool) -> None:
    """Free text (name, description, author) may hold quotes and unicode, but stays one line."""
    if not isinstance(value, str):
        raise AnswerError(f"{key} must be text, not {value!r}.", f"Give {key} as text.")
    if required and not value.strip():
        raise AnswerError(f"{key} is empty.", f"Give the project a {key}.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise AnswerError(
            f"{key} contains a line break or control character.",
            f"Keep {key} on one line.",
        )


def check_choice(key: str, value: object) -> None:
    choices = CHOICES[key]
    if value not in choices:
        raise AnswerError(
            f"{value!r} is not a valid {key}.", f"Choose one of: {', '.join(choices)}."
        )


def plugin_names(value: object) -> list[str]:
    """'wandb, huggingface' -> ['wandb', 'huggingface'], each a known plugin, none twice."""
    if not isinstance(value, str):
        raise AnswerError(f"plugins must be text like 'wandb,huggingface', not {value!r}.",
                          f"Choose from: {', '.join(PLUGINS)} (comma-separated).")
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in PLUGINS:
            raise AnswerError(f"{name!r} is not a plugin of this template.",
                              f"Choose from: {', '.join(PLUGINS)} (comma-separated), or none.")
    if len(set(names)) != len(names):
        raise AnswerError(f"plugins names one twice ({value!r}).", "Name each plugin once.")
    return names


def whole_number(key: str, value: object) -> int:
    """A positive integer, given as a number or as digits (command-line answers are text)."""
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        number = None
    if number is None or number <= 0:
        raise AnswerError(f"{key} must be a positive whole number, not {value!r}.",
                          f"Set {key} to a number like 6.")
    return number


def architecture(context: dict) -> dict:
    """The model sizes this answer set produces: the preset's numbers, or the custom_* answers."""
    preset, model = context["preset"], context.get("model", "gpt")
    if preset == "custom":
        heads = whole_number("heads", context["custom_heads"])
        return {
            "layers": whole_number("layers", context["custom_layers"]),
            "heads": heads,
            "kv_heads": heads,  # llm.config.js gives custom models full multi-head attention
            "dim": whole_number("dim", context["custom_dim"]),
            "max_length": whole_number("max_length", context["custom_max_length"]),
            "vocab_size": whole_number("vocab_size", context["custom_vocab_size"]),
        }
    # gpt's numbers, with the chosen architecture's own entry on top (create_llm_presets.py).
    numbers = {**context["_presets"][preset], **context["_presets"][preset].get(model, {})}
    keys = ("layers", "heads", "kv_heads", "dim", "max_length", "vocab_size")
    shape = {key: whole_number(f"preset {preset}: {key}", numbers[key]) for key in keys}
    if model != "gpt":  # bert and t5: plain multi-head attention
        shape["kv_heads"] = shape["heads"]
    return shape


def check_architecture(arch: dict, tokenizer: str = "bpe", model: str = "gpt") -> None:
    """Sizes the model cannot be built with (see models/architectures/<model>.py in the
    project)."""
    layers, heads, kv_heads, dim = arch["layers"], arch["heads"], arch["kv_heads"], arch["dim"]
    for key, value, limit in (("layers", layers, MAX_LAYERS), ("heads", heads, MAX_HEADS),
                              ("dim", dim, MAX_DIM)):
        if value > limit:
            raise AnswerError(f"{key} {value} is more than {limit:,}.",
                              f"Choose {key} of at most {limit:,}.")
    if dim % heads:
        step = 2 * heads  # a width that divides evenly AND gives an even head size
        lower = dim // step * step
        hint = f"dim {lower} or {lower + step}" if lower else f"dim {step}"
        raise AnswerError(
            f"dim {dim} is not divisible by heads {heads} (each head gets dim / heads "
            "channels).",
            f"Use {hint}, or a number of heads that divides {dim}.",
        )
    if model == "gpt" and (dim // heads) % 2:
        raise AnswerError(
            f"the head size dim / heads = {dim // heads} is odd; rotary position embeddings "
            "rotate channels in pairs.",
            f"Choose dim and heads so that dim / heads is even, e.g. dim {2 * dim}.",
        )
    if heads % kv_heads:
        raise AnswerError(f"kv_heads {kv_heads} does not divide heads {heads}.",
                          "Use a kv_heads that divides heads (heads itself is always fine).")
    if not MIN_CONTEXT <= arch["max_length"] <= MAX_CONTEXT:
        raise AnswerError(
            f"max_length {arch['max_length']} is outside {MIN_CONTEXT}..{MAX_CONTEXT:,} tokens.",
            "Choose a context length like 256 or 1024.",
        )
    special = SPECIAL_TOKENS[model]
    min_vocab = (MIN_VOCAB_BYTES + special if tokenizer == "bpe"
                 else MIN_VOCAB_OTHER + SENTINELS[model])
    if not min_vocab <= arch["vocab_size"] <= MAX_VOCAB:
        why = (f" (byte-level BPE alone needs 256 byte symbols plus {special} special tokens)"
               if tokenizer == "bpe" else
               f" (64 plus {SENTINELS[model]} sentinel tokens)" if SENTINELS[model] else "")
        raise AnswerError(
            f"vocab_size {arch['vocab_size']} is outside {min_vocab}..{MAX_VOCAB:,}{why}.",
            "Choose a vocabulary size like 8192 or 32000.",
        )


def validate(context: dict) -> None:
    """Raise AnswerError for the first answer that cannot produce a working project."""
    check_slug(context["project_slug"])
    check_text("project_name", context["project_name"], required=True)
    check_text("description", context["description"], required=False)
    check_text("author", context["author"], required=False)
    for key in CHOICES:
        check_choice(key, context[key])
    plugin_names(context["plugins"])
    tokenizer = context["tokenizer"]
    if tokenizer == "auto":  # the architecture's own (create_llm_presets.py: tokenizer_type)
        tokenizer = {"gpt": "bpe", "bert": "wordpiece", "t5": "unigram"}[context["model"]]
    check_architecture(architecture(context), tokenizer, context["model"])


def report(error: AnswerError) -> None:
    """One line on stderr for plain cookiecutter; a JSON file for the create-llm wrapper."""
    error_file = os.environ.get("CREATE_LLM_ERROR_FILE")
    if error_file:
        with open(error_file, "w", encoding="utf-8") as f:
            json.dump({"message": error.message, "suggestion": error.suggestion}, f)
    else:
        print(f"Error: {error.message} {error.suggestion}", file=sys.stderr)


def main() -> None:
    try:
        validate(CONTEXT)
    except AnswerError as error:
        report(error)
        sys.exit(1)


if __name__ == "__main__":
    main()
